<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Events carry absolute state exactly as PROTOCOL.md §2 shows; batches respect 500 events and 1 MiB.
 */
final class PayloadTest extends TestCase {

	private function state( array $overrides = array() ): array {
		return array_merge(
			array(
				'product_id'     => 42,
				'variation_id'   => null,
				'parent_id'      => null,
				'sku'            => 'TS-RED-M',
				'manage_stock'   => true,
				'stock_quantity' => 7,
				'stock_status'   => 'instock',
				'backorders'     => 'no',
			),
			$overrides
		);
	}

	public function test_event_matches_protocol_example(): void {
		$event = Stock_Relay_Payload::event( $this->state(), 1187, array( 'kind' => 'order', 'order_id' => 1001 ), 'evt_1', 1763805599.5 );
		$this->assertSame(
			array(
				'id'             => 'evt_1',
				'kind'           => 'stock',
				'product_id'     => 42,
				'variation_id'   => null,
				'parent_id'      => null,
				'sku'            => 'TS-RED-M',
				'manage_stock'   => true,
				'stock_quantity' => 7,
				'stock_status'   => 'instock',
				'backorders'     => 'no',
				'version'        => 1187,
				'occurred_at'    => '2025-11-22T09:59:59.500000Z',
				'cause'          => array( 'kind' => 'order', 'order_id' => 1001 ),
			),
			$event
		);
	}

	public function test_variation_keys_and_kinds(): void {
		$event = Stock_Relay_Payload::event( $this->state( array( 'variation_id' => 43, 'parent_id' => 40, 'deleted' => true ) ), 2, array(), 'evt_2', 0.0 );
		$this->assertSame( array( 'deleted', 42, 43, 40 ), array( $event['kind'], $event['product_id'], $event['variation_id'], $event['parent_id'] ) );
		$this->assertSame( array( 'kind' => 'other' ), $event['cause'] );
		$restored = Stock_Relay_Payload::event( $this->state( array( 'restored' => true ) ), 3, array(), 'evt_3', 0.0 );
		$this->assertSame( 'restored', $restored['kind'] );
	}

	public function test_unmanaged_stock_has_null_quantity(): void {
		$event = Stock_Relay_Payload::event( $this->state( array( 'manage_stock' => false, 'stock_quantity' => '' ) ), 1, array( 'kind' => 'admin' ), 'e', 0.0 );
		$this->assertNull( $event['stock_quantity'] );
		$this->assertFalse( $event['manage_stock'] );
	}

	public function test_unknown_values_are_normalised(): void {
		$event = Stock_Relay_Payload::event( $this->state( array( 'stock_status' => 'weird', 'backorders' => 'maybe', 'sku' => ' A ' ) ), 1, array( 'kind' => 'hack' ), 'e', 0.0 );
		$this->assertSame( array( 'outofstock', 'no', 'A', 'other' ), array( $event['stock_status'], $event['backorders'], $event['sku'], $event['cause']['kind'] ) );
	}

	public function test_batch_body_is_a_stock_batch(): void {
		$body = json_decode( Stock_Relay_Payload::batch_body( 'main', array( array( 'id' => 'e' ) ), 1763805600 ), true );
		$this->assertSame( array( 'type' => 'stock.batch', 'site' => 'main', 'sent_at' => '2025-11-22T10:00:00Z', 'events' => array( array( 'id' => 'e' ) ) ), $body );
	}

	public function test_unicode_is_sent_as_utf8(): void {
		$body = Stock_Relay_Payload::batch_body( 'main', array( array( 'sku' => 'MÜTZE/XL' ) ), 0 );
		$this->assertStringContainsString( 'MÜTZE/XL', $body );
	}

	public function test_split_by_count_and_bytes_keeps_order(): void {
		$events  = array_map( static fn( $i ) => array( 'id' => "e$i", 'pad' => str_repeat( 'x', 1000 ) ), range( 1, 1200 ) );
		$batches = Stock_Relay_Payload::split( $events );
		$this->assertSame( array( 500, 500, 200 ), array_map( 'count', $batches ) );
		$small = Stock_Relay_Payload::split( $events, 500, 100000 );
		foreach ( $small as $batch ) {
			$this->assertLessThanOrEqual( 100000, strlen( Stock_Relay_Payload::batch_body( 'main', $batch, 0 ) ) );
		}
		$this->assertSame( array_column( $events, 'id' ), array_merge( ...array_map( static fn( $b ) => array_column( $b, 'id' ), $small ) ) );
	}

	public function test_state_from_meta_simple_product(): void {
		$state = Stock_Relay_Payload::state_from_meta( 10, 0, array( '_sku' => 'A', '_manage_stock' => 'yes', '_stock' => '7.000', '_stock_status' => 'instock', '_backorders' => 'notify' ), array(), true );
		$this->assertSame( array( 10, null, null, 'A', true, 7, 'instock', 'notify' ), array_values( $state ) );
	}

	public function test_state_from_meta_variation_using_parent_stock(): void {
		$state = Stock_Relay_Payload::state_from_meta( 11, 10, array( '_sku' => 'A-RED', '_manage_stock' => 'no', '_stock_status' => 'outofstock' ), array( '_sku' => 'A', '_manage_stock' => 'yes', '_stock' => '0', '_backorders' => 'no' ), true );
		$this->assertSame( 10, $state['product_id'], 'the parent owns the stock row' );
		$this->assertSame( array( 11, 10, 'A-RED', 0, 'outofstock' ), array( $state['variation_id'], $state['parent_id'], $state['sku'], $state['stock_quantity'], $state['stock_status'] ) );
	}

	public function test_state_from_meta_unmanaged_and_global_switch(): void {
		$own   = array( '_sku' => 'V', '_manage_stock' => 'yes', '_stock' => '3', '_stock_status' => 'instock', '_backorders' => 'yes' );
		$state = Stock_Relay_Payload::state_from_meta( 12, 10, $own, array( '_manage_stock' => 'no' ), false );
		$this->assertSame( array( 12, false, null, 'no' ), array( $state['product_id'], $state['manage_stock'], $state['stock_quantity'], $state['backorders'] ) );
		$own_stock = Stock_Relay_Payload::state_from_meta( 12, 10, $own, array( '_manage_stock' => 'yes', '_stock' => '99' ), true );
		$this->assertSame( array( 12, 3 ), array( $own_stock['product_id'], $own_stock['stock_quantity'] ), 'a variation managing its own stock owns it' );
	}

	public function test_relay_status_view(): void {
		$this->assertNull( Stock_Relay_Payload::relay_status_view( 404, array() ) );
		$this->assertNull( Stock_Relay_Payload::relay_status_view( 200, array( 'status' => 'ok' ) ) );
		$rows = Stock_Relay_Payload::relay_status_view( 200, array( 'channels' => array( array( 'name' => 'ebay', 'pending' => 3, 'oldest_pending_age' => 12.5, 'dead_letters' => 1, 'circuit' => 'open', 'last_success' => '2026-11-22T10:00:00Z' ), 'junk' ) ) );
		$this->assertSame( array( array( 'ebay', '3', '12 s', '1', 'open', '2026-11-22T10:00:00Z', '—' ) ), $rows, 'no drift: a dash' );
	}

	public function test_relay_status_view_says_not_checked_when_the_relay_never_compared_the_channel(): void {
		$now      = 1796180400; // 2026-12-02T03:00:00Z
		$drift    = static fn( array $drift ): array => array( 'name' => 'ebay', 'drift' => $drift );
		$channels = array(
			// As relay/views.py answers before any reconciliation pass or read-back round.
			$drift( array( 'differ' => 0, 'examples' => array(), 'checked_at' => null, 'checked_at_iso' => null ) ),
			$drift( array( 'differ' => 0, 'examples' => array(), 'checked_at' => $now - 60.5, 'checked_at_iso' => '2026-12-02T02:58:59.500Z' ) ),
			// Found by a pass that failed later, or a read-back round still under way: known to differ.
			$drift( array( 'differ' => 2, 'examples' => array(), 'checked_at' => null ) ),
			// A relay from before checked_at: it cannot tell, so the count is shown as it always was.
			$drift( array( 'differ' => 0, 'examples' => array() ) ),
		);
		$rows = Stock_Relay_Payload::relay_status_view( 200, array( 'channels' => $channels ), $now );
		$this->assertSame( array( 'not checked' ), $rows[0][6], 'never checked is not "0 SKUs differ"' );
		$this->assertSame( array( '0 SKUs differ (checked 2026-12-02 02:58 UTC (1 min ago))' ), $rows[1][6] );
		$this->assertSame( array( '2 SKUs differ' ), $rows[2][6] );
		$this->assertSame( array( '0 SKUs differ' ), $rows[3][6] );
	}

	public function test_relay_status_view_shows_last_success_as_a_date_and_drift_with_up_to_five_examples(): void {
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
		$rows = Stock_Relay_Payload::relay_status_view( 200, array( 'channels' => $channels ), $now );
		$this->assertSame( '2026-12-02 02:54 UTC (5 min ago)', $rows[0][5] );
		$this->assertSame(
			array( '7 SKUs differ (checked 2026-12-02 01:00 UTC (2 h ago))', 'A1: expected 5, shown 7 (channel_differs)', 'A2: expected 5, shown 7 (channel_differs)', 'A3: expected 5, shown — (channel_differs)', 'A4: expected 5, shown 7 (channel_differs)', 'A5: expected 5, shown 7 (channel_differs)' ),
			$rows[0][6]
		);
		$this->assertSame( array( 'never', array( '1 SKU differs' ) ), array( $rows[1][5], $rows[1][6] ) );
		$this->assertSame( array( '2026-11-29 03:00 UTC (3 d ago)', '—' ), array( $rows[2][5], $rows[2][6] ), 'drift without a count is left out' );
		$this->assertSame( '2026-12-02 03:00 UTC (ahead of this shop\'s clock)', Stock_Relay_Payload::when( $now + 30, $now ) );
		$this->assertSame( '2026-12-02 02:59 UTC (30 s ago)', Stock_Relay_Payload::when( $now - 30, $now ) );
	}
}
