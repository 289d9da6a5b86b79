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
		$this->assertSame( array( array( 'ebay', '3', '12 s', '1', 'open', '2026-11-22T10:00:00Z', '—' ) ), $rows, 'no drift: a dash' );
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
		$this->assertSame( array( 'not checked' ), $rows[0][6], 'never checked is not "0 SKUs differ"' );
		$this->assertSame( array( '0 SKUs differ (checked 2026-12-02 02:58 UTC (1 min ago))' ), $rows[1][6] );
		$this->assertSame( array( '2 SKUs differ' ), $rows[2][6] );
		$this->assertSame( array( '0 SKUs differ' ), $rows[3][6] );
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
			array( '7 SKUs differ (checked 2026-12-02 01:00 UTC (2 h ago))', 'A1: expected 5, shown 7 (channel_differs)', 'A2: expected 5, shown 7 (channel_differs)', 'A3: expected 5, shown — (channel_differs)', 'A4: expected 5, shown 7 (channel_differs)', 'A5: expected 5, shown 7 (channel_differs)' ),
			$rows[0][6]
		);
		$this->assertSame( array( 'never', array( '1 SKU differs' ) ), array( $rows[1][5], $rows[1][6] ) );
		$this->assertSame( array( '2026-11-29 03:00 UTC (3 d ago)', '—' ), array( $rows[2][5], $rows[2][6] ), 'drift without a count is left out' );
		$this->assertSame( '2026-12-02 03:00 UTC (ahead of this shop\'s clock)', Stock_Relay_Status_View::when( $now + 30, $now ) );
		$this->assertSame( '2026-12-02 02:59 UTC (30 s ago)', Stock_Relay_Status_View::when( $now - 30, $now ) );
	}
}
