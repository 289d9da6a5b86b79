<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Backoff is exponential, jittered, capped at 15 minutes, and never gives up; answers map to actions per PROTOCOL.md.
 */
final class RetryPolicyTest extends TestCase {

	public function test_backoff_grows_and_caps_at_15_minutes(): void {
		$this->assertSame( 3, Stock_Relay_Retry_Policy::delay( 1, null, 0.0 ) );
		$this->assertSame( 5, Stock_Relay_Retry_Policy::delay( 1, null, 0.999 ) );
		$this->assertSame( 40, Stock_Relay_Retry_Policy::delay( 5, null, 0.0 ) );
		$this->assertSame( 900, Stock_Relay_Retry_Policy::delay( 1000, null, 0.999 ) );
		$this->assertGreaterThanOrEqual( 450, Stock_Relay_Retry_Policy::delay( 1000, null, 0.0 ) );
	}

	public function test_retry_after_is_honoured_within_the_cap(): void {
		$this->assertSame( 120, Stock_Relay_Retry_Policy::delay( 1, 120, 0.0 ) );
		$this->assertSame( 900, Stock_Relay_Retry_Policy::delay( 1, 86400, 0.0 ) );
	}

	public function test_classification_follows_the_protocol_table(): void {
		$cases = array(
			array( 202, '', 'ack' ),
			array( 400, 'malformed_json', 'reject' ),
			array( 400, 'batch_too_large', 'split' ),
			array( 413, 'body_too_large', 'split' ),
			array( 415, 'unsupported_media_type', 'reject' ),
			array( 401, 'signature_invalid', 'retry' ),
			array( 404, 'unknown_site', 'retry' ),
			array( 429, 'rate_limited', 'retry' ),
			array( 409, 'webhook_id_reused', 'renew' ),
			array( 409, '', 'retry' ),
			array( 503, 'storage_unavailable', 'retry' ),
			array( 0, '', 'retry' ),
			array( 500, '', 'retry' ),
		);
		foreach ( $cases as list( $status, $code, $action ) ) {
			$this->assertSame( $action, Stock_Relay_Retry_Policy::classify( $status, $code ), "$status $code" );
		}
	}

	public function test_explanations_are_plain_words(): void {
		$this->assertStringContainsString( 'secret', Stock_Relay_Retry_Policy::explain( 401, 'signature_invalid', '' ) );
		$this->assertStringContainsString( 'clock', Stock_Relay_Retry_Policy::explain( 401, 'timestamp_out_of_tolerance', '' ) );
		$this->assertStringContainsString( 'could not be reached', Stock_Relay_Retry_Policy::explain( 0, '', 'cURL error 7' ) );
	}

	public function test_rejected_rows_maps_event_ids_to_rows(): void {
		$body = array(
			'accepted' => 1,
			'rejected' => array(
				array( 'id' => 'evt_b', 'code' => 'invalid_quantity', 'message' => 'stock_quantity must be an integer' ),
				array( 'id' => 'evt_unknown', 'code' => 'x' ),
				'garbage',
				array( 'id' => 'evt_c', 'code' => 'invalid_sku', 'message' => str_repeat( 'y', 1000 ) ),
			),
		);
		$rows = Stock_Relay_Retry_Policy::rejected_rows( $body, array( 'evt_a' => 1, 'evt_b' => 2, 'evt_c' => 3 ) );
		$this->assertSame( array( 2, 3 ), array_keys( $rows ) );
		$this->assertSame( 'invalid_quantity: stock_quantity must be an integer', $rows[2] );
		$this->assertLessThanOrEqual( 300, strlen( $rows[3] ) );
		$this->assertSame( array(), Stock_Relay_Retry_Policy::rejected_rows( array( 'accepted' => 3 ), array( 'evt_a' => 1 ) ) );
	}

	public function test_every_protocol_error_row_has_a_plain_explanation(): void {
		foreach ( array( array( 400, 'malformed_json' ), array( 404, 'unknown_site' ), array( 413, 'body_too_large' ), array( 415, 'unsupported_media_type' ), array( 429, 'rate_limited' ), array( 503, 'shutting_down' ), array( 503, 'storage_unavailable' ) ) as list( $status, $code ) ) {
			$text = Stock_Relay_Retry_Policy::explain( $status, $code, '' );
			$this->assertStringNotContainsString( 'answered', $text, $code );
		}
	}

	public function test_a_redirect_says_to_use_https_and_a_bare_proxy_error_says_the_relay_is_down(): void {
		foreach ( array( 301, 308 ) as $status ) {
			$this->assertStringContainsString( 'Use the https:// address', Stock_Relay_Retry_Policy::explain( $status, '', '' ) );
		}
		foreach ( array( 502, 503, 504 ) as $status ) {
			$this->assertStringContainsString( 'the relay behind it is down', Stock_Relay_Retry_Policy::explain( $status, '', '' ) );
		}
		$this->assertStringNotContainsString( 'behind it', Stock_Relay_Retry_Policy::explain( 503, 'storage_unavailable', '' ), 'the relay\'s own 503 says what it is' );
	}

	public function test_a_one_off_request_never_claims_changes_are_kept_and_resent(): void {
		foreach ( array( array( 0, '' ), array( 500, '' ), array( 502, '' ), array( 301, '' ), array( 503, 'shutting_down' ), array( 503, 'storage_unavailable' ), array( 429, 'rate_limited' ), array( 400, 'malformed_json' ) ) as list( $status, $code ) ) {
			$text = Stock_Relay_Retry_Policy::explain( $status, $code, 'cURL error 7', false );
			$this->assertStringNotContainsString( 'resent', $text, "$status $code" );
			$this->assertStringNotContainsString( 'kept', $text, "$status $code" );
		}
		$this->assertStringContainsString( 'Nothing was done', Stock_Relay_Retry_Policy::explain( 0, '', 'cURL error 7', false ) );
		$this->assertStringContainsString( 'kept here and resent', Stock_Relay_Retry_Policy::explain( 0, '', 'cURL error 7' ), 'deliveries still say it' );
	}
}
