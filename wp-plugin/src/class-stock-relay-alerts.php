<?php
/**
 * What needs the shop owner's attention now: the relay's `attention` list (fetched in the background) and the plugin's
 * own troubles (changes waiting too long in the outbox, the loopback request that drains it blocked, the relay not
 * answering). The admin notices, the e-mail digest and the WooCommerce log all read this one list.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The relay is asked (signed status.query) by the one-minute watchdog at most every REFRESH seconds, never while a
 * page is shown; its answer is kept in a non-autoloaded option (not a transient: an object cache may drop those at
 * any time, and an alert must not vanish because of that), and so is every status read of the Stock Relay page. The
 * local alerts are read when asked for, from this site's own database (one aggregate query on the outbox).
 *
 * An alert: `code`, `level` (error or warning), `channel` (or null for the site), `since` (Unix time or null), `count`,
 * `sku`, `detail` (the relay's words: a channel's answer, a reason; data, not a sentence of ours), `actor`, and `key`,
 * which changes when the alert does (a new failure run, a newer dead letter, more refused sales): a user who
 * dismissed an alert sees it again when its key changes. The words are Stock_Relay_Alert_Text's.
 */
final class Stock_Relay_Alerts {

	public const OPTION     = 'stock_relay_alerts'; // The relay's alerts as last read, and how the last read went.
	public const CHECKED    = 'stock_relay_alerts_checked'; // Autoloaded int: when the watchdog last asked.
	public const REFRESH    = 300;
	public const OUTBOX_OLD = 600; // A change waiting this long has missed ten one-minute watchdogs.

	/**
	 * The relay's alerts from a status answer, in its order (errors first). `oversold` is left out: it has its own
	 * notice (Stock_Relay_Oversold_Notice). An older relay without `attention` gives none.
	 *
	 * @param array<string, mixed> $body The relay's status answer.
	 * @return array<int, array<string, mixed>>
	 */
	public static function from_status( array $body ): array {
		$channels = array();
		foreach ( is_array( $body['channels'] ?? null ) ? $body['channels'] : array() as $channel ) {
			if ( is_array( $channel ) && is_scalar( $channel['name'] ?? null ) ) {
				$channels[ (string) $channel['name'] ] = $channel;
			}
		}
		$alerts = array();
		foreach ( is_array( $body['attention'] ?? null ) ? $body['attention'] : array() as $item ) {
			if ( ! is_array( $item ) || ! is_string( $item['code'] ?? null ) || 'oversold' === $item['code'] ) {
				continue;
			}
			$name    = is_scalar( $item['channel'] ?? null ) ? (string) $item['channel'] : null;
			$channel = null === $name ? array() : ( $channels[ $name ] ?? array() );
			$alert   = array(
				'code'    => $item['code'],
				'level'   => 'warning' === ( $item['level'] ?? '' ) ? 'warning' : 'error',
				'channel' => $name,
				'since'   => is_numeric( $item['since'] ?? null ) ? (float) $item['since'] : null,
				'count'   => null,
				'sku'     => '',
				'detail'  => '',
				'actor'   => '',
			);
			switch ( $item['code'] ) {
				case 'paused':
					$alert['actor']  = self::text( $channel['paused']['actor'] ?? null );
					$alert['detail'] = self::text( $channel['paused']['reason'] ?? null );
					$alert['count']  = self::number( $channel['pending'] ?? null );
					break;
				case 'deliveries_failing':
					$alert['count']  = self::number( $channel['failing']['items'] ?? null );
					$alert['detail'] = self::text( $channel['last_error']['message'] ?? null );
					break;
				case 'dead_letters':
					$alert['count']  = self::number( $channel['dead_letters'] ?? null );
					$alert['sku']    = self::text( $channel['newest_dead_letter']['sku'] ?? null );
					$alert['detail'] = self::text( $channel['newest_dead_letter']['reason'] ?? null );
					break;
				case 'channel_unavailable':
					$alert['detail'] = self::text( $channel['circuit_reason'] ?? null );
					break;
				case 'orders_unread':
					$alert['detail'] = self::text( $channel['orders_error'] ?? null );
					break;
				case 'worker_stalled':
					$alert['detail'] = self::text( $channel['worker'] ?? null );
					break;
				case 'sales_refused':
					$alert['count'] = self::number( $body['sales']['refused'] ?? null );
					break;
			}
			$alerts[] = self::keyed( $alert );
		}
		return $alerts;
	}

	/**
	 * The plugin's own alerts, from what this site knows.
	 *
	 * @param array{pending: int, rejected: int, oldest: int|null} $stats    Stock_Relay_Outbox::stats().
	 * @param array<string, mixed>                                 $delivery Stock_Relay_Delivery::state().
	 * @param array<string, mixed>|null                            $loopback Stock_Relay_Loopback::last(): `ok`, `since`, `error`.
	 * @param array<string, mixed>|null                            $relay    How the last status read went: `failing_since`, `error` (null: fine).
	 * @return array<int, array<string, mixed>>
	 */
	public static function local( array $stats, array $delivery, ?array $loopback, ?array $relay, int $now ): array {
		$alerts = array();
		if ( null !== $stats['oldest'] && $now - (int) $stats['oldest'] >= self::OUTBOX_OLD ) {
			$alerts[] = self::keyed(
				array(
					'code'    => 'outbox_old',
					'level'   => 'error',
					'channel' => null,
					'since'   => (float) $stats['oldest'],
					'count'   => (int) $stats['pending'],
					'sku'     => '',
					'detail'  => self::text( $delivery['last_error'] ?? null ), // Why the relay did not take them, if it said.
					'actor'   => '',
				)
			);
		}
		if ( is_array( $loopback ) && empty( $loopback['ok'] ) ) {
			$alerts[] = self::keyed(
				array(
					'code'    => 'loopback_blocked',
					'level'   => 'warning',
					'channel' => null,
					'since'   => is_numeric( $loopback['since'] ?? null ) ? (float) $loopback['since'] : null,
					'count'   => null,
					'sku'     => '',
					'detail'  => self::text( $loopback['error'] ?? null ),
					'actor'   => '',
				)
			);
		}
		if ( is_array( $relay ) && is_numeric( $relay['failing_since'] ?? null ) ) {
			$alerts[] = self::keyed(
				array(
					'code'    => 'relay_unreachable',
					'level'   => 'error',
					'channel' => null,
					'since'   => (float) $relay['failing_since'],
					'count'   => null,
					'sku'     => '',
					'detail'  => self::text( $relay['error'] ?? null ),
					'actor'   => '',
				)
			);
		}
		return $alerts;
	}

	/**
	 * The alert with its `key`: what makes it the same alert (not its words, which include ages and counts that move).
	 *
	 * @param array<string, mixed> $alert Alert without key.
	 * @return array<string, mixed>
	 */
	public static function keyed( array $alert ): array {
		$same = array( $alert['code'], $alert['channel'], $alert['since'] );
		if ( in_array( $alert['code'], array( 'sales_refused', 'dead_letters' ), true ) ) {
			$same[] = $alert['count']; // More refused sales, or another dead letter in the same second.
		}
		$alert['key'] = substr( md5( (string) stock_relay_json( $same ) ), 0, 12 );
		return $alert;
	}

	/**
	 * Every alert now, errors first: the relay's as last read, then this site's.
	 *
	 * @return array<int, array<string, mixed>>
	 */
	public static function current(): array {
		$kept   = self::kept();
		$alerts = array_merge(
			self::local( Stock_Relay_Outbox::stats(), Stock_Relay_Delivery::state(), Stock_Relay_Loopback::last(), $kept['relay'], time() ),
			$kept['alerts']
		);
		usort( $alerts, static fn( array $a, array $b ): int => ( 'error' === $b['level'] ) <=> ( 'error' === $a['level'] ) );
		return $alerts;
	}

	/**
	 * What the last status read left: the relay's alerts, when that was, and whether the relay failed to answer since.
	 *
	 * @return array{alerts: array<int, array<string, mixed>>, at: int, relay: array<string, mixed>|null}
	 */
	public static function kept(): array {
		$kept = get_option( self::OPTION, array() );
		$kept = is_array( $kept ) ? $kept : array();
		return array(
			'alerts' => is_array( $kept['alerts'] ?? null ) ? $kept['alerts'] : array(),
			'at'     => (int) ( $kept['at'] ?? 0 ),
			'relay'  => is_array( $kept['relay'] ?? null ) ? $kept['relay'] : null,
		);
	}

	/**
	 * Keep what a status answer says. A relay that did not answer keeps the alerts it gave last (they are still the
	 * newest news) and adds relay_unreachable, since the first failed read; an older relay without status.query (404
	 * or 405) is no alert.
	 *
	 * @param array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null} $answer The relay's answer.
	 */
	public static function remember( array $answer ): void {
		$kept = self::kept();
		if ( 200 === $answer['status'] ) {
			$kept = array(
				'alerts' => self::from_status( $answer['body'] ),
				'at'     => time(),
				'relay'  => null,
			);
		} elseif ( ( 404 === $answer['status'] && 'unknown_site' !== $answer['code'] ) || 405 === $answer['status'] ) {
			$kept['relay'] = null;
		} else {
			$kept['relay'] = array(
				'failing_since' => (int) ( $kept['relay']['failing_since'] ?? time() ),
				'error'         => Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ),
			);
		}
		if ( false === get_option( self::OPTION, false ) ) {
			add_option( self::OPTION, $kept, '', false );
		} else {
			update_option( self::OPTION, $kept, false );
		}
	}

	/**
	 * The watchdog's part (WP-Cron, every minute): at most every REFRESH seconds, ask the relay for its status, try the
	 * loopback, keep both, and write what is new or gone to the WooCommerce log.
	 */
	public static function refresh(): void {
		if ( (int) get_option( self::CHECKED, 0 ) > time() - self::REFRESH ) {
			return;
		}
		update_option( self::CHECKED, time(), true );
		self::refresh_now();
	}

	/** Ask and keep now (the watchdog's refresh, without its period). */
	public static function refresh_now(): void {
		$settings = Stock_Relay_Plugin::settings();
		if ( Stock_Relay_Admin::configured( $settings ) ) {
			$answer = Stock_Relay_Delivery::status( $settings );
			self::remember( $answer );
			Stock_Relay_Oversold_Notice::remember( $answer['status'], $answer['body'] ); // The same answer keeps that notice current too.
		}
		Stock_Relay_Loopback::probe();
		Stock_Relay_Log::alerts( self::current() );
	}

	/**
	 * A value as one line of text ('' when missing).
	 *
	 * @param mixed $value Value.
	 */
	private static function text( $value ): string {
		return is_scalar( $value ) && ! is_bool( $value ) ? (string) $value : '';
	}

	/**
	 * A count, or null when missing.
	 *
	 * @param mixed $value Value.
	 */
	private static function number( $value ): ?int {
		return is_numeric( $value ) ? (int) $value : null;
	}
}
