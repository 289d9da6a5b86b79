<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The relay's status answer as the admin page's "Channels" table: plain-text cells, ages and drift.
 */
final class StatusViewTest extends TestCase {

	public function test_rows_only_for_a_200_with_channels_and_a_dash_for_what_is_missing(): void {
		$this->assertNull( Stock_Relay_Status_View::rows( 404, array() ) );
		$this->assertNull( Stock_Relay_Status_View::rows( 200, array( 'status' => 'ok' ) ) );
		$rows = Stock_Relay_Status_View::rows( 200, array( 'channels' => array( array( 'name' => 'ebay', 'pending' => 3, 'oldest_pending_age' => 12.5, 'dead_letters' => 1, 'circuit' => 'open', 'last_success' => '2026-11-22T10:00:00Z' ), 'junk' ) ) );
		$this->assertSame( array( array( 'ebay', '3', '12 s', '1', 'Paused after failures (tries again shortly)', '2026-11-22T10:00:00Z', '—', '—' ) ), $rows, 'no drift: a dash' );
	}

	public function test_not_checked_when_the_relay_never_compared_the_channel(): void {
		$now      = 1796180400; // 2026-12-02T03:00:00Z
		$drift    = static fn( array $drift ): array => array( 'name' => 'ebay', 'drift' => $drift );
		$channels = array(
			// As relay/operator/views.py answers before any reconciliation pass or read-back round.
			$drift( array( 'differ' => 0, 'examples' => array(), 'checked_at' => null, 'checked_at_iso' => null ) ),
			$drift( array( 'differ' => 0, 'examples' => array(), 'checked_at' => $now - 60.5, 'checked_at_iso' => '2026-12-02T02:58:59.500Z' ) ),
			// Found by a pass that failed later, or a read-back round still under way: known to differ.
			$drift( array( 'differ' => 2, 'examples' => array(), 'checked_at' => null ) ),
			// A relay from before checked_at: it cannot tell, so the count is shown as it always was.
			$drift( array( 'differ' => 0, 'examples' => array() ) ),
		);
		$rows = Stock_Relay_Status_View::rows( 200, array( 'channels' => $channels ), $now );
		$this->assertSame( array( 'not checked' ), $rows[0][7], 'never checked is not "0 SKUs differ"' );
		$this->assertSame( array( '0 SKUs differ (checked 2026-12-02 02:58 UTC (1 min ago))' ), $rows[1][7] );
		$this->assertSame( array( '2 SKUs differ' ), $rows[2][7] );
		$this->assertSame( array( '0 SKUs differ' ), $rows[3][7] );
	}

	public function test_last_success_as_a_date_and_drift_with_up_to_five_examples(): void {
		$now      = 1796180400; // 2026-12-02T03:00:00Z
		$examples = array();
		for ( $i = 1; $i <= 7; $i++ ) {
			$examples[] = array( 'sku' => "A$i", 'expected' => 5, 'shown' => 7, 'reason' => 'channel_differs' );
		}
		$examples[2]['shown'] = null;
		$channels             = array(
			array( 'name' => 'ebay', 'last_success' => $now - 300.5, 'drift' => array( 'differ' => 7, 'checked_at' => $now - 7200.0, 'examples' => $examples ) ),
			array( 'name' => 'etsy', 'last_success' => null, 'drift' => array( 'differ' => 1, 'examples' => 'junk' ) ),
			array( 'name' => 'amazon', 'last_success' => $now - 3 * 86400, 'drift' => array( 'checked_at' => 1 ) ),
		);
		$rows = Stock_Relay_Status_View::rows( 200, array( 'channels' => $channels ), $now );
		$this->assertSame( '2026-12-02 02:54 UTC (5 min ago)', $rows[0][5] );
		$this->assertSame(
			array( '7 SKUs differ (checked 2026-12-02 01:00 UTC (2 h ago))', 'A1: expected 5, shown 7 (the channel shows another quantity)', 'A2: expected 5, shown 7 (the channel shows another quantity)', 'A3: expected 5, shown — (the channel shows another quantity)', 'A4: expected 5, shown 7 (the channel shows another quantity)', 'A5: expected 5, shown 7 (the channel shows another quantity)' ),
			$rows[0][7]
		);
		$this->assertSame( array( 'never', array( '1 SKU differs' ) ), array( $rows[1][5], $rows[1][7] ) );
		$this->assertSame( array( '2026-11-29 03:00 UTC (3 d ago)', '—' ), array( $rows[2][5], $rows[2][7] ), 'drift without a count is left out' );
		$this->assertSame( '2026-12-02 03:00 UTC (ahead of this shop\'s clock)', Stock_Relay_Status_View::when( $now + 30, $now ) );
		$this->assertSame( '2026-12-02 02:59 UTC (30 s ago)', Stock_Relay_Status_View::when( $now - 30, $now ) );
	}

	public function test_circuit_states_in_plain_words(): void {
		$this->assertSame( 'Sending normally', Stock_Relay_Status_View::circuit( 'closed' ) );
		$this->assertSame( 'Paused after failures (tries again shortly)', Stock_Relay_Status_View::circuit( 'open' ) );
		$this->assertSame( 'Trying again after failures', Stock_Relay_Status_View::circuit( 'half_open' ) );
		$this->assertSame( '—', Stock_Relay_Status_View::circuit( null ) );
		$this->assertSame( 'odd', Stock_Relay_Status_View::circuit( 'odd' ), 'an unknown state as sent' );
		$this->assertCount( 8, Stock_Relay_Status_View::heads() );
		$this->assertNotContains( 'Circuit', Stock_Relay_Status_View::heads() );
	}

	public function test_drift_codes_as_sentences(): void {
		foreach ( array( 'not_listed', 'missed_event', 'behind_hooks', 'never_sent', 'last_push_differs', 'channel_shows', 'lower_unreported', 'explained_by_sales' ) as $code ) {
			$text = Stock_Relay_Status_View::drift_reason( $code );
			$this->assertStringNotContainsString( '_', $text, $code );
			$this->assertGreaterThan( 20, strlen( $text ), $code );
		}
		$this->assertStringContainsString( 'no listing', Stock_Relay_Status_View::drift_reason( 'not_listed' ) );
		$this->assertSame( 'new_code', Stock_Relay_Status_View::drift_reason( 'new_code' ) );
		$rows = Stock_Relay_Status_View::rows( 200, array( 'channels' => array( array( 'name' => 'ebay', 'drift' => array( 'differ' => 1, 'examples' => array( array( 'sku' => 'A', 'expected' => 2, 'shown' => null, 'reason' => 'not_listed' ) ) ) ) ) ), 1796180400 );
		$this->assertStringNotContainsString( 'not_listed', implode( ' ', $rows[0][7] ) );
	}

	public function test_the_last_error_only_while_no_success_came_after_it(): void {
		$now   = 1796180400; // 2026-12-02T03:00:00Z
		$error = array( 'message' => 'HTTP 500 from eBay', 'at' => $now - 600.0, 'sku' => 'A1' );
		$this->assertSame( 'HTTP 500 from eBay (SKU A1), 2026-12-02 02:50 UTC (10 min ago)', Stock_Relay_Status_View::last_error( $error, $now - 900.0, $now ) );
		$this->assertSame( 'HTTP 500 from eBay (SKU A1), 2026-12-02 02:50 UTC (10 min ago)', Stock_Relay_Status_View::last_error( $error, null, $now ) );
		$this->assertSame( '—', Stock_Relay_Status_View::last_error( $error, $now - 60.0, $now ), 'a later success clears it' );
		$this->assertSame( '—', Stock_Relay_Status_View::last_error( null, null, $now ) );
		$rows = Stock_Relay_Status_View::rows( 200, array( 'channels' => array( array( 'name' => 'ebay', 'last_success' => $now - 60.0, 'last_error' => $error ) ) ), $now );
		$this->assertSame( '—', $rows[0][6] );
	}
}
