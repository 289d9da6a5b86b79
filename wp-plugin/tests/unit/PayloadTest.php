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
}
