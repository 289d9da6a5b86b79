<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once dirname( __DIR__, 2 ) . '/src/stock-relay-functions.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-alerts.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-alert-text.php';

/**
 * The alert list (Stock_Relay_Alerts) from the relay's status answer and this site's state, its keys, and the
 * plugin's own sentences (Stock_Relay_Alert_Text).
 */
final class AlertsTest extends TestCase {

	private const NOW = 1796180400; // 2026-12-02T03:00:00Z

	/** @return array<string, mixed> A status answer as relay/http/operator_api.py gives it. */
	private static function status( float $failing_since, int $dead ): array {
		return array(
			'channels'  => array(
				array( 'name' => 'ebay', 'pending' => 4, 'dead_letters' => $dead, 'failing' => array( 'items' => 3, 'since' => $failing_since ), 'last_error' => array( 'message' => 'Invalid token', 'at' => 1.0 ), 'newest_dead_letter' => array( 'sku' => 'A-1', 'reason' => 'Listing ended', 'since' => self::NOW - 60 ), 'paused' => null ),
				array( 'name' => 'amazon', 'pending' => 7, 'paused' => array( 'reason' => 'Stocktake', 'actor' => 'alice', 'paused_at' => self::NOW - 7200 ) ),
			),
			'sales'     => array( 'refused' => 2 ),
			'attention' => array(
				array( 'code' => 'deliveries_failing', 'level' => 'error', 'channel' => 'ebay', 'since' => $failing_since, 'message' => 'English' ),
				array( 'code' => 'dead_letters', 'level' => 'error', 'channel' => 'ebay', 'since' => self::NOW - 60, 'message' => 'English' ),
				array( 'code' => 'paused', 'level' => 'warning', 'channel' => 'amazon', 'since' => self::NOW - 7200, 'message' => 'English' ),
				array( 'code' => 'sales_refused', 'level' => 'warning', 'channel' => null, 'since' => null, 'message' => 'English' ),
				array( 'code' => 'oversold', 'level' => 'warning', 'channel' => null, 'since' => null, 'message' => 'English' ),
				array( 'code' => 'something_new', 'level' => 'odd', 'channel' => null, 'since' => null, 'message' => 'English' ),
			),
		);
	}

	public function test_the_relays_attention_with_each_channels_facts_and_without_oversold(): void {
		$alerts = Stock_Relay_Alerts::from_status( self::status( self::NOW - 1800, 2 ) );
		$this->assertSame( array( 'deliveries_failing', 'dead_letters', 'paused', 'sales_refused', 'something_new' ), array_column( $alerts, 'code' ) );
		$this->assertSame( array( 3, 'Invalid token' ), array( $alerts[0]['count'], $alerts[0]['detail'] ) );
		$this->assertSame( array( 2, 'A-1', 'Listing ended' ), array( $alerts[1]['count'], $alerts[1]['sku'], $alerts[1]['detail'] ) );
		$this->assertSame( array( 'alice', 'Stocktake', 7 ), array( $alerts[2]['actor'], $alerts[2]['detail'], $alerts[2]['count'] ) );
		$this->assertSame( 2, $alerts[3]['count'] );
		$this->assertSame( 'error', $alerts[4]['level'], 'an unknown level counts as an error' );
		$this->assertSame( array(), Stock_Relay_Alerts::from_status( array( 'channels' => array() ) ), 'an older relay: none' );
	}

	public function test_a_key_changes_with_a_new_failure_run_or_another_dead_letter_but_not_with_counts_that_move(): void {
		$key = static fn( array $body, int $i ): string => Stock_Relay_Alerts::from_status( $body )[ $i ]['key'];
		$one = self::status( self::NOW - 1800, 2 );
		$this->assertSame( $key( $one, 0 ), $key( array_replace_recursive( $one, array( 'channels' => array( array( 'failing' => array( 'items' => 9 ) ) ) ) ), 0 ), 'more failing products: the same run' );
		$this->assertNotSame( $key( $one, 0 ), $key( self::status( self::NOW - 600, 2 ), 0 ), 'a new failure run' );
		$this->assertNotSame( $key( $one, 1 ), $key( self::status( self::NOW - 1800, 3 ), 1 ), 'another dead letter' );
	}

	public function test_this_sites_own_alerts(): void {
		$stats = array( 'pending' => 5, 'rejected' => 0, 'oldest' => self::NOW - 600 );
		$this->assertSame( array(), Stock_Relay_Alerts::local( array( 'oldest' => self::NOW - 599 ) + $stats, array(), array( 'ok' => true ), null, self::NOW ) );
		$alerts = Stock_Relay_Alerts::local( $stats, array( 'last_error' => 'The relay answered 503.' ), array( 'ok' => false, 'since' => self::NOW - 60, 'error' => 'HTTP 401' ), array( 'failing_since' => self::NOW - 300, 'error' => 'could not be reached' ), self::NOW );
		$this->assertSame( array( 'outbox_old', 'loopback_blocked', 'relay_unreachable' ), array_column( $alerts, 'code' ) );
		$this->assertSame( array( 5, 'The relay answered 503.' ), array( $alerts[0]['count'], $alerts[0]['detail'] ) );
	}

	public function test_sentences_are_the_plugins_own_words_with_the_relays_facts(): void {
		$alerts = Stock_Relay_Alerts::from_status( self::status( self::NOW - 1800, 2 ) );
		$text   = static fn( int $i ): string => Stock_Relay_Alert_Text::sentence( $alerts[ $i ], self::NOW );
		$this->assertSame( 'Sending to ebay has been failing since 2026-12-02 02:30 UTC (30 min ago) for 3 products; the relay keeps retrying. Last error: Invalid token', $text( 0 ) );
		$this->assertStringStartsWith( 'ebay refused 2 changes (dead letters): they are not retried by themselves. The newest: SKU A-1, 2026-12-02 02:59 UTC (1 min ago): Listing ended', $text( 1 ) );
		$this->assertSame( 'amazon is paused by alice since 2026-12-02 01:00 UTC (2 h ago): Stocktake. 7 changes wait for it and are sent when it is resumed.', $text( 2 ) );
		$this->assertStringStartsWith( 'The shop refused 2 sales reported by marketplaces', $text( 3 ) );
		$this->assertSame( 'The relay reports something that needs attention (something_new): see the Stock Relay page.', $text( 4 ) );
		$unread = Stock_Relay_Alerts::from_status(
			array(
				'channels'  => array( array( 'name' => 'etsy', 'orders_error' => 'HTTP 401 from Etsy' ) ),
				'attention' => array( array( 'code' => 'orders_unread', 'level' => 'error', 'channel' => 'etsy', 'since' => self::NOW - 3600, 'message' => 'English' ) ),
			)
		)[0];
		$this->assertSame( 'etsy\'s orders have not been read since 2026-12-02 02:00 UTC (1 h ago), so its sales do not reach the shop\'s stock. Last error: HTTP 401 from Etsy', Stock_Relay_Alert_Text::sentence( $unread, self::NOW ) );
		foreach ( array( 0, 1, 2, 3, 4 ) as $i ) {
			$this->assertStringNotContainsString( 'English', $text( $i ) );
		}
	}
}
