<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The settings form accepts good values, refuses bad ones with a reason, and never echoes a secret.
 */
final class SettingsSanitizerTest extends TestCase {

	public function test_relay_url(): void {
		$this->assertSame( array( 'https://relay.example.com', '' ), Stock_Relay_Settings_Sanitizer::relay_url( ' https://relay.example.com/ ' ) );
		$this->assertSame( array( 'http://10.0.0.5:8787', '' ), Stock_Relay_Settings_Sanitizer::relay_url( 'http://10.0.0.5:8787' ) );
		foreach ( array( 'ftp://x', 'javascript:alert(1)', 'https://u:p@x', 'https://x/?a=1', 'https://x/"><script>', 'relay.example.com' ) as $bad ) {
			list( $value, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( $bad );
			$this->assertSame( '', $value, $bad );
			$this->assertNotSame( '', $error, $bad );
		}
	}

	public function test_site_id(): void {
		$this->assertSame( array( 'main-shop', '' ), Stock_Relay_Settings_Sanitizer::site_id( ' Main-Shop ' ) );
		foreach ( array( '', 'a b', 'ü', str_repeat( 'a', 65 ), 'a/b' ) as $bad ) {
			$this->assertNotSame( '', Stock_Relay_Settings_Sanitizer::site_id( $bad )[1], $bad );
		}
	}

	public function test_secret_empty_keeps_saved_one(): void {
		$this->assertSame( array( null, '' ), Stock_Relay_Settings_Sanitizer::secret( '  ' ) );
	}

	public function test_secret_valid_and_invalid(): void {
		$good = 'whsec_' . base64_encode( random_bytes( 32 ) );
		$this->assertSame( array( $good, '' ), Stock_Relay_Settings_Sanitizer::secret( $good ) );
		list( $value, $error ) = Stock_Relay_Settings_Sanitizer::secret( 'whsec_tooshort' );
		$this->assertNull( $value );
		$this->assertStringNotContainsString( 'tooshort', $error );
	}
}
