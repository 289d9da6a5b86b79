<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-console-view.php';

/**
 * The relay's per-product answers in plain words (product.query, lineage.query, dead.query, dead.retry), shaped as
 * relay/storage/products.py, views.lineage and views.dead_letters answer.
 */
final class ConsoleViewTest extends TestCase {

	private const NOW = 1796180400; // 2026-12-02T03:00:00Z

	/** @return array<string, mixed> */
	private static function entry( array $over ): array {
		return $over + array(
			'channel'            => 'ebay',
			'state'              => 'delivered',
			'paused'             => false,
			'confirmed_quantity' => 7,
			'confirmed_at'       => self::NOW - 300,
			'pending_quantity'   => null,
			'pending_since'      => null,
			'next_attempt_at'    => null,
			'attempts'           => 0,
			'failing_since'      => null,
			'last_error'         => null,
			'dead_letter'        => null,
		);
	}

	public function test_each_state_in_plain_words_with_quantity_and_when(): void {
		$ok = Stock_Relay_Console_View::channel_line( self::entry( array() ), self::NOW );
		$this->assertSame( array( 'ebay', 'ok', 'In sync', array( 'Last confirmed: 7, 2026-12-02 02:55 UTC (5 min ago)' ) ), array_values( $ok ) );

		$failing = Stock_Relay_Console_View::channel_line( self::entry( array( 'state' => 'pending', 'pending_quantity' => 6, 'pending_since' => self::NOW - 120, 'failing_since' => self::NOW - 120, 'attempts' => 3, 'next_attempt_at' => self::NOW + 60, 'last_error' => 'HTTP 503 from eBay' ) ), self::NOW );
		$this->assertSame( 'warning', $failing['level'] );
		$this->assertSame( 'Failing: retrying', $failing['state'] );
		$this->assertContains( 'To send: 6 (waiting since 2026-12-02 02:58 UTC (2 min ago))', $failing['detail'] );
		$this->assertContains( 'Last error: HTTP 503 from eBay', $failing['detail'] );
		$this->assertContains( 'Last confirmed: 7, 2026-12-02 02:55 UTC (5 min ago)', $failing['detail'], 'what the channel shows meanwhile' );

		$waiting = Stock_Relay_Console_View::channel_line( self::entry( array( 'state' => 'pending', 'pending_quantity' => 6 ) ), self::NOW );
		$this->assertSame( array( 'info', 'Waiting to be sent' ), array( $waiting['level'], $waiting['state'] ) );

		$dead = Stock_Relay_Console_View::channel_line(
			self::entry(
				array(
					'state'       => 'dead',
					'last_error'  => 'listing not found',
					'dead_letter' => array( 'since' => self::NOW - 7200, 'quantity' => 4, 'http_status' => 404, 'answer' => 'Item not found', 'message' => 'listing not found; answered HTTP 404 Item not found' ),
				)
			),
			self::NOW
		);
		$this->assertSame( array( 'error', 'Not updated: the channel refused it (dead letter)' ), array( $dead['level'], $dead['state'] ) );
		$this->assertContains( 'The channel answered: listing not found; answered HTTP 404 Item not found (since 2026-12-02 01:00 UTC (2 h ago))', $dead['detail'] );
		$this->assertContains( 'Refused quantity: 4', $dead['detail'] );

		$never = Stock_Relay_Console_View::channel_line( self::entry( array( 'state' => 'never_sent', 'confirmed_quantity' => null, 'confirmed_at' => null ) ), self::NOW );
		$this->assertSame( array( 'info', 'Never sent to this channel', array() ), array( $never['level'], $never['state'], $never['detail'] ) );

		$paused = Stock_Relay_Console_View::channel_line( self::entry( array( 'paused' => true, 'state' => 'pending', 'pending_quantity' => 2 ) ), self::NOW );
		$this->assertSame( 'warning', $paused['level'] );
		$this->assertStringContainsString( 'paused', end( $paused['detail'] ) );
	}

	public function test_lines_are_sorted_errors_first_and_the_worst_level_summarises(): void {
		$product = array(
			'sku'      => 'TEE',
			'channels' => array(
				self::entry( array( 'channel' => 'amazon' ) ),
				self::entry( array( 'channel' => 'shopify', 'state' => 'pending', 'pending_quantity' => 1 ) ),
				self::entry( array( 'channel' => 'etsy', 'state' => 'pending', 'failing_since' => self::NOW - 5 ) ),
				self::entry( array( 'channel' => 'ebay', 'state' => 'dead', 'dead_letter' => array( 'message' => 'gone' ) ) ),
				'junk',
			),
		);
		$lines = Stock_Relay_Console_View::product_lines( $product, self::NOW );
		$this->assertSame( array( 'ebay', 'etsy', 'shopify', 'amazon' ), array_column( $lines, 'channel' ) );
		$this->assertSame( 'error', Stock_Relay_Console_View::worst( $lines ) );
		$this->assertSame( '', Stock_Relay_Console_View::worst( array() ) );
	}

	public function test_lineage_tells_the_chain_newest_change_first(): void {
		$answer = array(
			'site'     => 'shop',
			'sku'      => 'TEE',
			'channels' => array(
				array( 'channel' => 'ebay', 'state' => 'delivered', 'shows' => 7, 'delivered_event' => array( 'event_id' => 'evt_2', 'version' => 2, 'cause' => 'order', 'order_id' => 1001 ), 'newest_event' => array( 'quantity' => 7 ) ),
				array( 'channel' => 'amazon', 'state' => 'dead', 'shows' => null, 'delivered_event' => null, 'newest_event' => array( 'quantity' => 7 ) ),
			),
			'events'   => array(
				array( 'event_id' => 'evt_1', 'version' => 1, 'quantity' => 9, 'cause' => 'admin', 'order_id' => null, 'received_at' => self::NOW - 600, 'outcome' => 'accepted', 'channels' => array( 'ebay' => array( array( 'action' => 'coalesced', 'into' => 'evt_2' ) ) ) ),
				array(
					'event_id'    => 'evt_2',
					'version'     => 2,
					'quantity'    => 7,
					'cause'       => 'order',
					'order_id'    => 1001,
					'received_at' => self::NOW - 60,
					'outcome'     => 'accepted',
					'channels'    => array(
						'ebay'   => array( array( 'action' => 'attempt', 'outcome' => 'ok', 'quantity' => 7, 'http_status' => 200, 'at' => self::NOW - 50 ) ),
						'amazon' => array(
							array( 'action' => 'attempt', 'outcome' => 'permanent', 'http_status' => 400, 'error' => 'invalid SKU', 'response' => '{"code":"InvalidInput"}', 'at' => self::NOW - 50 ),
							array( 'action' => 'dead_letter', 'reason' => 'invalid SKU', 'at' => self::NOW - 50 ),
						),
					),
				),
			),
		);
		$view = Stock_Relay_Console_View::lineage( $answer, self::NOW );
		$this->assertSame( 'ebay shows 7, from the shop\'s change version 2 (an order, order #1001).', $view['now'][0] );
		$this->assertSame( 'amazon shows unknown: no change from the shop was confirmed there yet. Its newest change was refused (dead letter).', $view['now'][1] );
		$this->assertSame( 'Version 2: the shop set 7 (an order, order #1001), received 2026-12-02 02:59 UTC (1 min ago)', $view['events'][0]['title'], 'newest first' );
		$this->assertSame(
			array(
				'ebay: sent 7, confirmed HTTP 200 (2026-12-02 02:59 UTC (50 s ago))',
				'amazon: attempt failed: HTTP 400 invalid SKU {"code":"InvalidInput"} (2026-12-02 02:59 UTC (50 s ago))',
				'amazon: given up (dead letter): invalid SKU (2026-12-02 02:59 UTC (50 s ago))',
			),
			$view['events'][0]['steps']
		);
		$this->assertSame( array( 'ebay: not sent on its own: a newer change went in its place' ), $view['events'][1]['steps'] );
		$this->assertSame( array( 'now' => array(), 'events' => array() ), Stock_Relay_Console_View::lineage( array( 'channels' => 'junk' ), self::NOW ) );
	}

	public function test_lineage_says_a_stock_status_and_a_stale_change_in_words(): void {
		$answer = array(
			'events' => array(
				array( 'version' => 4, 'quantity' => null, 'stock_status' => 'outofstock', 'cause' => 'admin', 'received_at' => self::NOW - 60, 'outcome' => 'stale', 'channels' => array() ),
				array( 'version' => 5, 'quantity' => null, 'stock_status' => 'onbackorder', 'cause' => 'admin', 'received_at' => self::NOW - 60, 'outcome' => 'accepted', 'channels' => array() ),
				array( 'version' => 6, 'quantity' => null, 'stock_status' => 'instock', 'cause' => 'admin', 'received_at' => self::NOW - 60, 'outcome' => 'future_code', 'channels' => array() ),
			),
		);
		$this->assertSame(
			array(
				'Version 6: the shop set in stock (edited in the admin), received 2026-12-02 02:59 UTC (1 min ago) — not sent on: the relay found it future_code',
				'Version 5: the shop set on backorder (edited in the admin), received 2026-12-02 02:59 UTC (1 min ago)',
				'Version 4: the shop set out of stock (edited in the admin), received 2026-12-02 02:59 UTC (1 min ago) — not sent on: the relay already had a newer change of this product',
			),
			array_column( Stock_Relay_Console_View::lineage( $answer, self::NOW )['events'], 'title' )
		);
	}

	public function test_dead_rows_link_a_variation_to_its_parent_and_say_both_quantities(): void {
		$answer = array(
			'total'        => 2,
			'dead_letters' => array(
				array( 'id' => 9, 'channel' => 'ebay', 'sku' => 'TEE-RED', 'quantity' => 4, 'reason' => 'listing not found', 'created_at' => self::NOW - 3600, 'shop_quantity' => 6, 'http_status' => 404, 'answer' => 'Item not found', 'product_id' => 31, 'parent_id' => 30, 'message' => 'listing not found; answered HTTP 404 Item not found' ),
				array( 'id' => 8, 'channel' => 'ebay', 'sku' => 'MUG', 'quantity' => null, 'reason' => 'gone', 'created_at' => null, 'product_id' => 12, 'parent_id' => null ),
			),
		);
		$rows = Stock_Relay_Console_View::dead_rows( $answer, self::NOW );
		$this->assertSame( array( 'ebay', 'TEE-RED', 31, 30, 'listing not found; answered HTTP 404 Item not found', '2026-12-02 02:00 UTC (1 h ago)', '4 refused; the shop has 6 now' ), array_values( $rows[0] ) );
		$this->assertSame( array( 12, 'gone', '', '? refused; the shop has ? now' ), array( $rows[1]['edit_id'], $rows[1]['answer'], $rows[1]['since'], $rows[1]['quantity'] ) );
	}

	public function test_retry_outcome_counts_what_was_scheduled_and_what_was_no_longer_dead(): void {
		$answer = array(
			'type'      => 'dead_retry',
			'scheduled' => 2,
			'items'     => array(
				array( 'channel' => 'ebay', 'sku' => 'A', 'result' => 'scheduled' ),
				array( 'channel' => 'ebay', 'sku' => 'B', 'result' => 'scheduled' ),
				array( 'channel' => 'amazon', 'sku' => 'A', 'result' => 'not_dead' ),
			),
		);
		$this->assertSame(
			array( 'type' => 'success', 'message' => '2 dead letters will be sent again with the shop\'s current quantity. 1 was no longer a dead letter (delivered or retried meanwhile): nothing was done for it.' ),
			Stock_Relay_Console_View::retry_outcome( $answer )
		);
		$none = Stock_Relay_Console_View::retry_outcome( array( 'items' => array( array( 'result' => 'not_dead' ) ) ) );
		$this->assertSame( 'warning', $none['type'] );
		$this->assertSame( 'The relay retried nothing.', Stock_Relay_Console_View::retry_outcome( array() )['message'] );
	}
}
