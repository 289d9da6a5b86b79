<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-console-view.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-alert-text.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-pause-route.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-pause-controls.php';
require_once dirname( __DIR__, 2 ) . '/src/class-stock-relay-status-panel.php';

/**
 * Every word a shop owner reads goes through the translation functions: under a pseudo-locale that writes the
 * English in capitals (placeholders kept), the plain classes' texts have no small letter left but in the data
 * they were given (the relay's message, a SKU, an error code). The status panel's HTML is read as a person reads
 * it: its text and the attributes shown (placeholder, data-confirm's question).
 */
final class I18nTest extends TestCase {

	/** @var array<int, string> Domains asked for, to check every text uses the plugin's own. */
	private array $domains = array();

	protected function setUp(): void {
		$this->domains                          = array();
		$GLOBALS['stock_relay_test_translate'] = function ( string $text, string $domain ): string {
			$this->domains[] = $domain;
			// Capitals outside the sprintf placeholders (%s, %d, %1$s, %+d), which must survive translation.
			return (string) preg_replace_callback(
				'/(%(?:\d+\$)?[+\-]?[sdfu])|([^%]+|%)/',
				static fn( array $m ): string => '' !== $m[1] ? $m[1] : strtoupper( $m[2] ),
				$text
			);
		};
	}

	protected function tearDown(): void {
		unset( $GLOBALS['stock_relay_test_translate'] );
	}

	/**
	 * Asserts that $text, less the data it was given, has no untranslated (small-letter) word.
	 *
	 * @param string   $text Output of the plugin.
	 * @param string[] $data Values that came from outside and are shown as they are.
	 */
	private function assertTranslated( string $text, array $data = array(), string $label = '' ): void {
		usort( $data, static fn( string $a, string $b ): int => strlen( $b ) <=> strlen( $a ) ); // "ebay" inside "http 500 from ebay".
		$rest = str_replace( array_filter( $data, 'strlen' ), '', $text );
		$rest = str_replace( 'UTC', '', $rest ); // The unit tests' date, outside WordPress (wp_date gives the site's).
		$this->assertDoesNotMatchRegularExpression( '/[a-z]{2,}/', $rest, "untranslated words in: $text ($label)" );
		$this->assertSame( array( 'stock-relay' ), array_values( array_unique( $this->domains ) ), "text domain ($label)" );
	}

	public function test_retry_policy_explanations(): void {
		$cases = array(
			array( 0, '' ),
			array( 401, 'signature_invalid' ),
			array( 401, 'signature_missing' ),
			array( 401, 'timestamp_out_of_tolerance' ),
			array( 404, 'unknown_site' ),
			array( 503, 'storage_unavailable' ),
			array( 503, 'shutting_down' ),
			array( 429, 'rate_limited' ),
			array( 400, 'malformed_json' ),
			array( 400, 'type_mismatch' ),
			array( 400, 'missing_field' ),
			array( 415, 'unsupported_media_type' ),
			array( 413, 'body_too_large' ),
			array( 400, 'batch_too_large' ),
			array( 301, '' ),
			array( 308, '' ),
			array( 502, '' ),
			array( 504, '' ),
			array( 500, 'internal' ),
			array( 418, '' ),
		);
		foreach ( $cases as list( $status, $code ) ) {
			foreach ( array( true, false ) as $queued ) {
				foreach ( array( 'cURL error 7: failed', '' ) as $message ) {
					$this->assertTranslated( Stock_Relay_Retry_Policy::explain( $status, $code, $message, $queued ), array( $code, $message ), "$status $code" );
				}
			}
		}
	}

	public function test_signer_and_sanitizer_errors(): void {
		foreach ( array( 'nope', 'whsec_c2hvcnQ=', 'whsec_not*base64' ) as $bad ) {
			try {
				Stock_Relay_Signer::key( $bad );
				$this->fail( "accepted $bad" );
			} catch ( InvalidArgumentException $e ) {
				$this->assertTranslated( str_replace( 'WHSEC_', '', $e->getMessage() ), array(), $bad );
			}
		}
		$errors = array(
			Stock_Relay_Settings_Sanitizer::relay_url( 'ftp://x' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://u:p@x' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://x/a"b' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://x/v1/sites/shop' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'http://relay.example.com' )[1],
			Stock_Relay_Settings_Sanitizer::site_id( 'a b' )[1],
			Stock_Relay_Settings_Sanitizer::secret( 'nope' )[1],
			Stock_Relay_Settings_Sanitizer::secret( 'whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz nope' )[1],
		);
		foreach ( $errors as $error ) {
			$this->assertNotSame( '', $error );
			// The examples in the texts (addresses, suffixes, the keygen command) are not words to translate.
			$this->assertTranslated( strtolower( $error ) === $error ? $error : preg_replace( '/HTTPS?:\/\/\S*|WHSEC_\S*|STOCK-RELAY KEYGEN|\.[A-Z.]+|A-Z|\bA\b/', '', $error ), array(), $error );
		}
	}

	public function test_status_words_and_ages(): void {
		$now  = 1796180400;
		$rows = Stock_Relay_Status_View::rows(
			200,
			array(
				'channels' => array(
					array(
						'name'               => 'ebay',
						'pending'            => true,
						'oldest_pending_age' => 12,
						'dead_letters'       => false,
						'circuit'            => 'half_open',
						'last_success'       => null,
						'last_error'         => array(
							'message' => 'http 500 from ebay',
							'at'      => $now - 600,
							'sku'     => 'sku-1',
						),
						'drift'              => array(
							'differ'     => 2,
							'checked_at' => $now - 7200,
							'examples'   => array(
								array(
									'sku'      => 'sku-2',
									'expected' => 5,
									'shown'    => 7,
									'reason'   => 'channel_differs',
								),
							),
						),
					),
					array(
						'name'  => 'etsy',
						'drift' => array(
							'differ'     => 0,
							'checked_at' => null,
						),
					),
				),
			),
			$now
		);
		$cells = array();
		array_walk_recursive(
			$rows,
			static function ( $cell ) use ( &$cells ): void {
				$cells[] = (string) $cell;
			}
		);
		$this->assertTranslated( implode( ' | ', $cells ), array( 'ebay', 'etsy', 'http 500 from ebay', 'sku-1', 'sku-2' ), 'channels' );
		foreach ( array( 30, 600, 7200, 3 * 86400, -30 ) as $ago ) {
			$this->assertTranslated( Stock_Relay_Status_View::when( $now - $ago, $now ), array(), "when $ago" );
		}
		$this->assertTranslated( Stock_Relay_Status_View::when( 0, $now ), array(), 'never' );
		foreach ( Stock_Relay_Status_View::heads() as $head ) {
			$this->assertTranslated( $head, array(), 'head' );
		}
	}

	private const NOW = 1796180400; // 2026-12-02T03:00:00Z

	/**
	 * What a person reads of some HTML: its text, and the attributes a browser shows or asks with.
	 */
	private static function visible( string $html ): string {
		preg_match_all( '/\b(?:placeholder|data-confirm|title|aria-label)="([^"]*)"/', $html, $m );
		return html_entity_decode( strip_tags( $html ) . ' | ' . implode( ' | ', $m[1] ), ENT_QUOTES );
	}

	public function test_status_view_states_drift_sales_and_oversold(): void {
		foreach ( array( 'closed', 'open', 'half_open' ) as $state ) {
			$this->assertTranslated( Stock_Relay_Status_View::circuit( $state ), array(), "circuit $state" );
		}
		foreach ( array( 'not_listed', 'missed_event', 'behind_hooks', 'never_sent', 'last_push_differs', 'channel_shows', 'channel_differs', 'lower_unreported', 'explained_by_sales' ) as $code ) {
			$this->assertTranslated( Stock_Relay_Status_View::drift_reason( $code ), array(), "drift $code" );
		}
		$reasons = array( 'unknown_sku: no product', 'not_managed', 'trashed: in the trash', 'invalid_item', null, 'something new' );
		$sales   = Stock_Relay_Status_View::sales(
			array(
				'sales' => array(
					'pending'            => 2,
					'oldest_pending_age' => 400,
					'applied'            => 9,
					'refused'            => 6,
					'last_error'         => array(
						'message' => 'shop answered 503',
						'at'      => self::NOW - 60,
					),
					'refused_examples'   => array_map(
						static fn( $reason ): array => array(
							'sku'    => 'sku-1',
							'delta'  => -1,
							'key'    => 'ebay:o-1:l-1',
							'reason' => $reason,
						),
						$reasons
					),
				),
			),
			self::NOW
		);
		$this->assertNotNull( $sales );
		$cells = array_merge( array_merge( ...$sales['rows'] ), $sales['refused'] );
		$this->assertTranslated( implode( ' | ', $cells ), array( 'shop answered 503', 'sku-1', 'ebay:o-1:l-1', 'something new' ), 'sales' );

		$incident = array(
			'at'            => self::NOW - 3600,
			'sku'           => 'sku-1',
			'key'           => 'ebay:o-1:l-1',
			'shop_quantity' => -1,
			'sales'         => array(
				array(
					'channel'  => 'ebay',
					'order'    => 'o-1',
					'delta'    => -1,
					'quantity' => 0,
				),
				array(
					'channel'  => 'etsy',
					'order'    => 'o-2',
					'delta'    => -1,
					'quantity' => -1,
				),
			),
		);
		$cases = array(
			'none'   => array( array( 'incidents' => 0 ), null, array() ),
			'newest' => array(
				array(
					'incidents' => 1,
					'days'      => 1,
					'newest'    => $incident,
				),
				null,
				array( 'sku-1' => 3 ),
			),
			'more'   => array(
				array(
					'incidents' => 9,
					'newest'    => $incident,
				),
				array(
					array(
						'action'  => 'oversold',
						'at'      => self::NOW - 60,
						'sku'     => 'sku-2',
						'channel' => 'etsy',
						'detail'  => array( 'channels' => array( 'etsy', 'ebay' ) ),
					),
				),
				array(),
			),
		);
		foreach ( $cases as $label => list( $oversold, $entries, $stock ) ) {
			$view = Stock_Relay_Status_View::oversold( array( 'oversold' => $oversold ), $entries, $stock, self::NOW );
			$this->assertNotNull( $view );
			$lines = array( $view['summary'], $view['advice'] );
			array_walk_recursive(
				$view['rows'],
				static function ( $cell ) use ( &$lines ): void {
					$lines[] = (string) $cell;
				}
			);
			$this->assertTranslated( implode( ' | ', $lines ), array( 'sku-1', 'sku-2', 'ebay', 'etsy', 'o-1', 'o-2' ), "oversold $label" );
		}
	}

	public function test_status_panel_as_read_in_the_browser(): void {
		$body = array(
			'channels' => array(
				array(
					'name'    => 'ebay',
					'pending' => 1,
					'circuit' => 'closed',
					'paused'  => null,
				),
				array(
					'name'    => 'etsy',
					'pending' => 4,
					'paused'  => array(
						'reason'    => 'stocktake',
						'actor'     => 'alice',
						'paused_at' => self::NOW - 600,
					),
				),
			),
			'sales'    => array(
				'pending'          => 0,
				'applied'          => 3,
				'refused'          => 1,
				'refused_examples' => array(
					array(
						'sku'    => 'sku-1',
						'delta'  => -1,
						'key'    => 'ebay:o-1:l-1',
						'reason' => 'unknown_sku: no product',
					),
				),
			),
			'oversold' => array(
				'incidents' => 1,
				'newest'    => array(
					'at'            => self::NOW - 60,
					'sku'           => 'sku-1',
					'channels'      => array( 'ebay', 'etsy' ),
					'shop_quantity' => -1,
				),
			),
		);
		$answers = array(
			'channels' => array( 200, '', '', $body ),
			'old'      => array( 404, 'not_found', 'Not Found', array() ),
			'down'     => array( 0, '', 'cURL error 7: failed', array() ),
			'refused'  => array( 401, 'signature_invalid', 'bad signature', array() ),
		);
		foreach ( $answers as $label => list( $status, $code, $message, $answer_body ) ) {
			ob_start();
			Stock_Relay_Status_Panel::render(
				array( 'site' => 'shop' ),
				array(
					'status'      => $status,
					'code'        => $code,
					'message'     => $message,
					'body'        => $answer_body,
					'retry_after' => null,
				)
			);
			$html = (string) ob_get_clean();
			$this->assertNotSame( '', trim( strip_tags( $html ) ), $label );
			$this->assertTranslated( self::visible( $html ), array( 'ebay', 'etsy', 'stocktake', 'alice', 'sku-1', 'ebay:o-1:l-1', 'signature_invalid', 'bad signature', 'cURL error 7: failed' ), "panel $label" );
		}
		$this->assertTranslated( Stock_Relay_Pause_Controls::paused_message( array( 'paused' => array( array( 'channel' => 'ebay' ) ) ) ), array( 'ebay' ), 'paused' );
		$this->assertTranslated(
			Stock_Relay_Pause_Controls::paused_message(
				array(
					'paused'         => array(),
					'already_paused' => array(
						array(
							'channel'   => 'etsy',
							'actor'     => 'alice',
							'reason'    => 'stocktake',
							'paused_at' => self::NOW - 60,
						),
					),
				)
			),
			array( 'etsy', 'alice', 'stocktake' ),
			'already paused'
		);
		$this->assertTranslated( Stock_Relay_Pause_Controls::resumed_message( array( 'resumed' => array( array( 'channel' => 'ebay' ) ) ) ), array( 'ebay' ), 'resumed' );
		$this->assertTranslated( Stock_Relay_Pause_Controls::resumed_message( array() ), array(), 'nothing resumed' );
	}

	public function test_alert_sentences(): void {
		$codes = array( 'deliveries_failing', 'dead_letters', 'paused', 'channel_unavailable', 'orders_unread', 'worker_stalled', 'sales_refused', 'outbox_old', 'loopback_blocked', 'relay_unreachable', 'something_new' );
		foreach ( $codes as $code ) {
			foreach ( array( 1, 3 ) as $count ) {
				foreach ( array( array( self::NOW - 600, 'invalid token', 'sku-1' ), array( null, '', '' ) ) as list( $since, $detail, $sku ) ) {
					$alert = array(
						'code'    => $code,
						'channel' => 'ebay',
						'count'   => $count,
						'since'   => $since,
						'detail'  => $detail,
						'sku'     => $sku,
						'actor'   => 'alice',
					);
					$this->assertTranslated( Stock_Relay_Alert_Text::sentence( $alert, self::NOW ), array( 'ebay', 'invalid token', 'sku-1', 'alice', 'something_new' ), "alert $code" );
				}
			}
		}
	}

	public function test_console_view_lines_lineage_dead_letters_and_retries(): void {
		$entry = static fn( array $over ): array => $over + array(
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
		$entries = array(
			'delivered'     => array(),
			'no time'       => array( 'confirmed_at' => null ),
			'failing'       => array(
				'state'            => 'pending',
				'pending_quantity' => 6,
				'pending_since'    => self::NOW - 120,
				'failing_since'    => self::NOW - 120,
				'attempts'         => 3,
				'next_attempt_at'  => self::NOW + 60,
				'last_error'       => 'http 503 from ebay',
			),
			'waiting'       => array(
				'state'            => 'pending',
				'pending_quantity' => 6,
			),
			'dead'          => array(
				'state'       => 'dead',
				'dead_letter' => array(
					'since'    => self::NOW - 7200,
					'quantity' => 4,
					'message'  => 'listing not found',
				),
			),
			'dead, no word' => array(
				'state'       => 'dead',
				'dead_letter' => array(),
			),
			'never'         => array(
				'state'              => 'never_sent',
				'confirmed_quantity' => null,
			),
			'paused'        => array(
				'paused'           => true,
				'state'            => 'pending',
				'pending_quantity' => 2,
			),
		);
		foreach ( $entries as $label => $over ) {
			$line = Stock_Relay_Console_View::channel_line( $entry( $over ), self::NOW );
			$this->assertTranslated( $line['state'] . ' | ' . implode( ' | ', $line['detail'] ), array( 'ebay', 'http 503 from ebay', 'listing not found' ), "line $label" );
		}

		$lineage = Stock_Relay_Console_View::lineage(
			array(
				'channels' => array(
					array(
						'channel'         => 'ebay',
						'state'           => 'delivered',
						'shows'           => 7,
						'delivered_event' => array(
							'version'  => 2,
							'cause'    => 'order',
							'order_id' => 1001,
						),
					),
					array(
						'channel'         => 'amazon',
						'state'           => 'dead',
						'shows'           => null,
						'delivered_event' => null,
					),
					array(
						'channel'      => 'etsy',
						'state'        => 'pending',
						'shows'        => 3,
						'newest_event' => array( 'quantity' => 5 ),
					),
				),
				'events'   => array(
					array(
						'version'      => 1,
						'quantity'     => null,
						'stock_status' => 'outofstock',
						'cause'        => 'admin',
						'received_at'  => self::NOW - 900,
						'outcome'      => 'stale',
						'channels'     => array(),
					),
					array(
						'version'      => 2,
						'quantity'     => null,
						'stock_status' => 'onbackorder',
						'cause'        => 'import',
						'received_at'  => self::NOW - 800,
						'outcome'      => 'accepted',
						'channels'     => array(),
					),
					array(
						'version'     => 3,
						'quantity'    => 7,
						'cause'       => 'order',
						'order_id'    => 1001,
						'received_at' => self::NOW - 60,
						'outcome'     => 'accepted',
						'channels'    => array(
							'ebay'    => array(
								array(
									'action'      => 'attempt',
									'outcome'     => 'ok',
									'quantity'    => 7,
									'http_status' => 200,
									'at'          => self::NOW - 50,
								),
							),
							'amazon'  => array(
								array(
									'action'      => 'attempt',
									'outcome'     => 'permanent',
									'http_status' => 400,
									'error'       => 'invalid sku',
									'at'          => self::NOW - 50,
								),
								array(
									'action' => 'dead_letter',
									'reason' => 'invalid sku',
									'at'     => self::NOW - 50,
								),
							),
							'etsy'    => array( array( 'action' => 'skipped' ), array( 'action' => 'replay' ) ),
							'shopify' => array( array( 'action' => 'coalesced' ), array( 'action' => 'waiting' ) ),
						),
					),
				),
			),
			self::NOW
		);
		$lines = $lineage['now'];
		foreach ( $lineage['events'] as $event ) {
			$lines = array_merge( $lines, array( $event['title'] ), $event['steps'] );
		}
		$this->assertTranslated( implode( ' | ', $lines ), array( 'ebay', 'amazon', 'etsy', 'shopify', 'invalid sku' ), 'lineage' );

		foreach ( array( 'order', 'refund', 'admin', 'bulk_edit', 'import', 'rest', 'relay', 'other', null ) as $cause ) {
			$this->assertTranslated( Stock_Relay_Console_View::cause( $cause, 1001 ), array(), 'cause ' . $cause );
		}

		$rows = Stock_Relay_Console_View::dead_rows(
			array(
				'dead_letters' => array(
					array(
						'channel'       => 'ebay',
						'sku'           => 'sku-1',
						'quantity'      => 4,
						'shop_quantity' => 6,
						'created_at'    => self::NOW - 3600,
						'message'       => 'listing not found',
					),
					array(
						'channel' => 'ebay',
						'sku'     => 'sku-2',
						'reason'  => 'gone',
					),
				),
			),
			self::NOW
		);
		foreach ( $rows as $row ) {
			$this->assertTranslated( $row['since'] . ' | ' . $row['quantity'], array(), 'dead row' );
		}

		$outcomes = array(
			array(
				'items' => array(
					array( 'result' => 'scheduled' ),
					array( 'result' => 'scheduled' ),
					array( 'result' => 'not_dead' ),
				),
			),
			array( 'items' => array( array( 'result' => 'scheduled' ) ) ),
			array( 'items' => array( array( 'result' => 'not_dead' ) ) ),
			array(),
		);
		foreach ( $outcomes as $answer ) {
			$this->assertTranslated( Stock_Relay_Console_View::retry_outcome( $answer )['message'], array(), 'retry' );
		}
	}
}
