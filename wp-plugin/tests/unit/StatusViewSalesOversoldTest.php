<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The relay's `sales` and `oversold` status fields as the admin page's "Sales from marketplaces" and
 * "Oversold" blocks, and the summary the admin notice keeps. Shapes as relay/storage/views.py answers.
 */
final class StatusViewSalesOversoldTest extends TestCase {

	private const NOW = 1796180400; // 2026-12-02T03:00:00Z

	/** @return array<string, mixed> */
	private static function incident( float $at, string $sku, string $key ): array {
		return array(
			'at'            => $at,
			'at_iso'        => gmdate( 'c', (int) $at ),
			'sku'           => $sku,
			'channel'       => 'ebay',
			'key'           => $key,
			'shop_quantity' => -1,
			'channels'      => array( 'ebay', 'shopify' ),
			'sales'         => array(
				array( 'key' => $key, 'channel' => 'ebay', 'order' => '12-345', 'delta' => -1, 'quantity' => -1 ),
				array( 'key' => 'shopify:1001:1', 'channel' => 'shopify', 'order' => '1001', 'delta' => -1, 'quantity' => 0 ),
			),
		);
	}

	public function test_an_older_relay_without_the_fields_gives_nothing_new(): void {
		$body = array( 'type' => 'status', 'channels' => array() );
		$this->assertNull( Stock_Relay_Status_View::sales( $body, self::NOW ) );
		$this->assertNull( Stock_Relay_Status_View::oversold( $body, null, array(), self::NOW ) );
		$this->assertNull( Stock_Relay_Status_View::oversold_summary( $body ) );
		$this->assertNull( Stock_Relay_Status_View::sales( array( 'sales' => 'junk' ) ) );
		$this->assertNull( Stock_Relay_Status_View::oversold_summary( array( 'oversold' => array( 'days' => 7, 'incidents' => 0, 'newest' => null ) ) ) );
	}

	public function test_sales_counts_the_newest_error_and_refusals_in_plain_words(): void {
		$body  = array(
			'sales' => array(
				'pending'            => 2,
				'applied'            => 40,
				'refused'            => 3,
				'oldest_pending_age' => 330.5,
				'last_error'         => array( 'key' => 'ebay:9:1', 'message' => 'HTTP 503', 'at' => self::NOW - 60 ),
				'refused_examples'   => array(
					array( 'key' => 'ebay:1:1', 'sku' => 'TS-RED-M', 'delta' => -1, 'reason' => 'unknown_sku: No product or variation has the SKU TS-RED-M.', 'updated_at' => self::NOW ),
					array( 'key' => 'shopify:2:1', 'sku' => 'MUG', 'delta' => 2, 'reason' => 'not_managed: Stock is not managed for the SKU MUG.', 'updated_at' => self::NOW ),
					array( 'key' => 'till:3:1', 'sku' => 'X', 'delta' => -1, 'reason' => 'HTTP 410: gone', 'updated_at' => self::NOW ),
					'junk',
				),
			),
		);
		$sales = Stock_Relay_Status_View::sales( $body, self::NOW );
		$this->assertSame(
			array(
				array( 'Waiting to be applied in the shop', '2 (the oldest for 5 min)' ),
				array( 'Applied', '40' ),
				array( 'Refused by the shop', '3' ),
				array( 'Last error while applying a waiting sale', 'HTTP 503 (2026-12-02 02:59 UTC (1 min ago))' ),
			),
			$sales['rows']
		);
		$this->assertSame(
			array(
				'SKU TS-RED-M, change -1 (sale ebay:1:1): No product has this SKU in the shop. Give the product this SKU (or correct it on the marketplace).',
				'SKU MUG, change +2 (sale shopify:2:1): The shop does not manage stock for this product. Turn on "Manage stock" for it (or its parent product).',
				'SKU X, change -1 (sale till:3:1): HTTP 410: gone',
			),
			$sales['refused']
		);
		$this->assertSame( 'The product is in the shop\'s trash. Restore it if it is still sold.', Stock_Relay_Status_View::refusal( 'trashed' ) );
		$none = Stock_Relay_Status_View::sales( array( 'sales' => array( 'pending' => 0, 'applied' => 0, 'refused' => 0, 'oldest_pending_age' => null, 'last_error' => null, 'refused_examples' => array() ) ), self::NOW );
		$this->assertSame( array( array( 'Waiting to be applied in the shop', '0' ), array( 'Applied', '0' ), array( 'Refused by the shop', '0' ) ), $none['rows'] );
		$this->assertSame( array(), $none['refused'] );
	}

	public function test_oversold_newest_first_with_channels_orders_and_the_shops_quantity_now(): void {
		$newest = self::incident( self::NOW - 120, 'TS-RED-M', 'ebay:12-345:1' );
		$body   = array( 'oversold' => array( 'days' => 7, 'incidents' => 3, 'newest' => $newest ) );
		// audit.query's entries (action oversold), not in order; one SKU the shop does not know now.
		$entries = array(
			array( 'id' => 7, 'at' => self::NOW - 2 * 86400, 'action' => 'oversold', 'channel' => 'shopify', 'sku' => 'MUG', 'event_id' => 'shopify:1:1', 'quantity' => -2, 'detail' => array( 'shop_quantity' => -2, 'channels' => array( 'shopify' ), 'sales' => array() ) ),
			array( 'id' => 9, 'at' => self::NOW - 120, 'action' => 'oversold', 'channel' => 'ebay', 'sku' => 'TS-RED-M', 'event_id' => 'ebay:12-345:1', 'quantity' => -1, 'detail' => array( 'shop_quantity' => -1, 'channels' => array( 'ebay', 'shopify' ), 'sales' => $newest['sales'] ) ),
			array( 'id' => 8, 'at' => self::NOW - 3600, 'action' => 'oversold', 'channel' => 'ebay', 'sku' => '<b>Z</b>', 'event_id' => 'ebay:5:1', 'quantity' => -1, 'detail' => null ),
		);
		$view    = Stock_Relay_Status_View::oversold( $body, $entries, array( 'TS-RED-M' => 4, 'MUG' => null ), self::NOW );
		$this->assertSame( '3 sales in the last 7 days sold a unit the shop no longer had (the last unit sold twice).', $view['summary'] );
		$this->assertSame(
			array(
				'2026-12-02 02:58 UTC (2 min ago)',
				'TS-RED-M',
				array( 'ebay order 12-345: -1 (shop stock after it: -1)', 'shopify order 1001: -1 (shop stock after it: 0)' ),
				'4',
			),
			$view['rows'][0]
		);
		$this->assertSame( array( '2026-12-02 02:00 UTC (1 h ago)', '<b>Z</b>', array( 'ebay' ), 'unknown (-1 after the sale)' ), $view['rows'][1], 'plain text: the page escapes it' );
		$this->assertSame( array( 'MUG', array( 'shopify' ), 'unknown (-2 after the sale)' ), array_slice( $view['rows'][2], 1 ) );
		$this->assertStringContainsString( 'The last unit was sold on two channels', $view['advice'] );
		$this->assertStringContainsString( 'restock', $view['advice'] );

		// Without the audit entries: the newest alone, and the summary says the rest are at the relay.
		$view = Stock_Relay_Status_View::oversold( $body, null, array(), self::NOW );
		$this->assertCount( 1, $view['rows'] );
		$this->assertSame( 'unknown (-1 after the sale)', $view['rows'][0][3] );
		$this->assertStringContainsString( 'The newest 1 is shown', $view['summary'] );

		$this->assertSame(
			array( 'incidents' => 3, 'days' => 7, 'key' => 'ebay:12-345:1', 'at' => (float) ( self::NOW - 120 ), 'sku' => 'TS-RED-M' ),
			Stock_Relay_Status_View::oversold_summary( $body )
		);
	}

	public function test_no_incidents_says_so_without_rows(): void {
		$view = Stock_Relay_Status_View::oversold( array( 'oversold' => array( 'days' => 7, 'incidents' => 0, 'newest' => null ) ), null, array(), self::NOW );
		$this->assertSame( array( 'summary' => 'No sale left the shop\'s stock below zero in the last 7 days.', 'rows' => array(), 'advice' => '' ), $view );
	}
}
