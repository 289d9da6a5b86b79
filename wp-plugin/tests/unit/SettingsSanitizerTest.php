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
		$this->assertSame( array( 'shop', '' ), Stock_Relay_Settings_Sanitizer::site_id( 'Shop' ) );
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

	public function test_http_only_to_a_private_or_loopback_host(): void {
		foreach ( array( 'http://127.0.0.1:8787', 'http://localhost:8787', 'http://[::1]:8787', 'http://192.168.1.20', 'http://172.20.0.3:8787', 'http://relay:8787', 'http://relay.lan', 'http://nas.local', 'http://relay.internal', 'http://box.home.arpa', 'http://[fd00::5]' ) as $good ) {
			$this->assertSame( array( $good, '' ), Stock_Relay_Settings_Sanitizer::relay_url( $good ), $good );
		}
		foreach ( array( 'http://relay.example.com', 'http://8.8.8.8:8787', 'http://172.32.0.1', 'http://[2606:4700::1111]' ) as $public ) {
			list( $value, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( $public );
			$this->assertSame( '', $value, $public );
			$this->assertStringContainsString( 'Use https://', $error, $public );
		}
		$this->assertSame( array( 'https://relay.example.com', '' ), Stock_Relay_Settings_Sanitizer::relay_url( 'https://relay.example.com' ) );
	}

	public function test_an_api_path_is_refused_with_the_base_address_hint(): void {
		foreach ( array( 'https://relay.example.com/v1/sites/shop', 'https://relay.example.com/v1/sites/shop/events', 'https://relay.example.com/v1', 'http://10.0.0.5/relay/v1/sites/x' ) as $bad ) {
			list( $value, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( $bad );
			$this->assertSame( '', $value, $bad );
			$this->assertStringContainsString( 'base address', $error, $bad );
		}
		$this->assertSame( array( 'https://example.com/relay', '' ), Stock_Relay_Settings_Sanitizer::relay_url( 'https://example.com/relay/' ), 'a proxy prefix is fine' );
	}

	public function test_the_site_pattern_of_the_form_is_the_servers_rule(): void {
		$html = '/^(?:' . Stock_Relay_Settings_Sanitizer::SITE_PATTERN . ')$/'; // As a browser applies the pattern attribute.
		foreach ( array( 'Shop', 'shop', 'main-shop', 'A', str_repeat( 'a', 64 ), '', 'a b', 'ü', str_repeat( 'a', 65 ), 'a/b', 'a_b' ) as $typed ) {
			$this->assertSame( (bool) preg_match( $html, $typed ), '' === Stock_Relay_Settings_Sanitizer::site_id( $typed )[1], var_export( $typed, true ) );
		}
	}

	public function test_a_mid_rotation_value_is_two_secrets_each_checked(): void {
		$old = 'whsec_' . base64_encode( random_bytes( 32 ) );
		$new = 'whsec_' . base64_encode( random_bytes( 32 ) );
		$this->assertSame( array( "$old $new", '' ), Stock_Relay_Settings_Sanitizer::secret( " $old \n $new " ) );
		list( $value, $error ) = Stock_Relay_Settings_Sanitizer::secret( "$old whsec_tooshort" );
		$this->assertNull( $value );
		$this->assertStringContainsString( 'Secret 2 of the pasted value', $error );
		$this->assertStringNotContainsString( substr( $old, 6, 12 ), $error );
	}
}
