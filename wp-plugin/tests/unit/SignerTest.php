<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The PHP signer against the shared Standard Webhooks vectors: the relay's copy in the repository's
 * tests/vectors/signing.json, the one copy both suites read (the release zip holds no tests).
 */
final class SignerTest extends TestCase {

	private static function vectors(): array {
		return json_decode( (string) file_get_contents( dirname( __DIR__, 3 ) . '/tests/vectors/signing.json' ), true );
	}

	public static function positive(): array {
		$out = array();
		foreach ( self::vectors()['standard_webhooks_v1'] as $v ) {
			$out[ $v['name'] ] = array( $v );
		}
		return $out;
	}

	/** @dataProvider positive */
	public function test_sign_reproduces_vector( array $v ): void {
		$this->assertSame( $v['signature'], Stock_Relay_Signer::sign( $v['secret'], $v['webhook_id'], $v['webhook_timestamp'], $v['body'] ) );
	}

	/** @dataProvider positive */
	public function test_verify_accepts_vector( array $v ): void {
		$this->assertSame( 'valid', Stock_Relay_Signer::verify( array( $v['secret'] ), $v['webhook_id'], (string) $v['webhook_timestamp'], $v['body'], $v['signature'], $v['webhook_timestamp'] ) );
	}

	public function test_negative_vectors(): void {
		$base = array();
		foreach ( self::vectors()['standard_webhooks_v1'] as $v ) {
			$base[ $v['name'] ] = $v;
		}
		foreach ( self::vectors()['negative'] as $case ) {
			$b      = $base[ $case['base'] ];
			$now    = $b['webhook_timestamp'] + ( $case['now_minus_timestamp'] ?? 0 );
			$result = Stock_Relay_Signer::verify( array( $case['secret'] ?? $b['secret'] ), $b['webhook_id'], (string) $b['webhook_timestamp'], $case['body'] ?? $b['body'], $case['signature_header'] ?? $b['signature'], $now );
			$this->assertSame( $case['expect'], $result, $case['name'] );
		}
	}

	public function test_rotation_accepts_any_active_secret(): void {
		$v     = self::positive()['ping'][0];
		$other = 'whsec_' . base64_encode( random_bytes( 32 ) );
		$this->assertSame( 'valid', Stock_Relay_Signer::verify( array( $other, $v['secret'] ), $v['webhook_id'], (string) $v['webhook_timestamp'], $v['body'], $v['signature'], $v['webhook_timestamp'] ) );
		$this->assertSame( 'invalid', Stock_Relay_Signer::verify( array( $other ), $v['webhook_id'], (string) $v['webhook_timestamp'], $v['body'], $v['signature'], $v['webhook_timestamp'] ) );
	}

	public function test_malformed_secret_is_refused_without_echo(): void {
		try {
			Stock_Relay_Signer::key( 'whsec_hunter2' );
			$this->fail( 'accepted a malformed secret' );
		} catch ( InvalidArgumentException $e ) {
			$this->assertStringNotContainsString( 'hunter2', $e->getMessage() );
		}
	}

	public function test_new_ids_are_unique_and_prefixed(): void {
		$a = Stock_Relay_Signer::new_id();
		$b = Stock_Relay_Signer::new_id();
		$this->assertNotSame( $a, $b );
		$this->assertMatchesRegularExpression( '/^msg_[0-9a-z]{26}$/', $a );
		$this->assertMatchesRegularExpression( '/^evt_[0-9a-z]{26}$/', Stock_Relay_Signer::new_id( 'evt_' ) );
	}

	public function test_a_mid_rotation_value_signs_with_each_secret_and_verifies_either(): void {
		$old     = 'whsec_' . base64_encode( str_repeat( 'a', 32 ) );
		$new     = 'whsec_' . base64_encode( str_repeat( 'b', 32 ) );
		$headers = Stock_Relay_Signer::headers( "$old $new", 'msg_1', 1700000000, '{}' );
		$this->assertSame( Stock_Relay_Signer::sign( $old, 'msg_1', 1700000000, '{}' ) . ' ' . Stock_Relay_Signer::sign( $new, 'msg_1', 1700000000, '{}' ), $headers['webhook-signature'] );
		$this->assertSame( array( $old, $new ), Stock_Relay_Signer::secrets( " $old  $new " ) );
		$this->assertSame( 'valid', Stock_Relay_Signer::verify( array( $new ), 'msg_1', '1700000000', '{}', $headers['webhook-signature'], 1700000000 ), 'a relay that has only the new one' );
		$this->assertSame( Stock_Relay_Signer::sign( $old, 'msg_1', 1700000000, '{}' ), Stock_Relay_Signer::headers( $old, 'msg_1', 1700000000, '{}' )['webhook-signature'], 'one secret: one signature, as before' );
	}
}
