<?php
/**
 * The signed `POST /wp-json/stock-relay/v1/wake` route: the relay says it is (back) up, so the outbox
 * should be sent now rather than at the end of its backoff or at the next visit.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Why: after a relay outage the plugin retries on its own backoff (up to 15 min) and, on a site without
 * a system cron, only when someone visits. A quiet shop's changes then wait for both although the relay
 * is back. The relay knows the shop's URL (`shop_url`, as for the snapshot route) and calls this when it
 * starts; the route clears the backoff and starts a drain the usual way (Stock_Relay_Kick: after the
 * response, in this process under PHP-FPM, else through the loopback), so it answers at once.
 *
 * Signed exactly like the snapshot route (Stock_Relay_Snapshot::authenticate: the site's secret, 300 s
 * timestamp tolerance). Unlike that route it does something, so it remembers every webhook-id it took
 * for 2 x the tolerance and answers a repeat with the original answer without waking anything again
 * (docs/wire-protocol.md §1); the same id with another body is refused with 409, as the relay does.
 */
final class Stock_Relay_Wake_Route {

	public const ROUTE = '/wake';
	public const TYPE  = 'outbox.wake';
	public const SEEN  = 'stock_relay_wake_ids'; // webhook-id => [time taken, body digest]; not autoloaded.
	public const KEEP  = 600; // Seconds a webhook-id is remembered: 2 x the 300 s tolerance.

	/** Register the route (rest_api_init). */
	public static function register(): void {
		Stock_Relay_Signed_Route::register( self::ROUTE, array( self::class, 'handle' ) );
	}

	/**
	 * The route: authenticate, check the body, remember the webhook-id, then wake the drain.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function handle( WP_REST_Request $request ): WP_REST_Response {
		$now                     = time();
		$settings                = Stock_Relay_Plugin::settings();
		$body                    = (string) $request->get_body();
		list( $headers, $error ) = Stock_Relay_Signed_Route::authenticate( $request, $settings, $now );
		if ( null === $error ) {
			$error = self::check_body( (string) $request->get_header( 'content-type' ), $body, $settings['site'] );
		}
		if ( null !== $error ) {
			return new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), $error['status'] );
		}
		$answer = new WP_REST_Response(
			array(
				'type' => self::TYPE,
				'site' => $settings['site'],
			),
			202
		);
		$seen   = self::remember( $headers['webhook-id'], hash( 'sha256', $body ), $now );
		if ( 'reused' === $seen ) {
			$error = Stock_Relay_Snapshot::error( 409, 'webhook_id_reused', 'This webhook-id was already used for another request; sign each request with a new one.' );
			return new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), 409 );
		}
		if ( 'repeat' === $seen ) {
			$answer->header( 'Idempotent-Replayed', 'true' ); // The original answer; nothing is woken twice.
			return $answer;
		}
		self::wake();
		return $answer;
	}

	/**
	 * The media type and body of a request whose signature was verified: `{"type": "outbox.wake", "site": ...}`.
	 *
	 * @return array{status: int, code: string, message: string}|null Null when it is fine.
	 */
	public static function check_body( string $content_type, string $body, string $site ): ?array {
		return Stock_Relay_Snapshot::envelope( $content_type, $body, $site, self::TYPE )[1];
	}

	/**
	 * Note a webhook-id as taken (compare-and-swap on one small option, so two concurrent requests with the
	 * same id cannot both wake), forgetting ids older than KEEP.
	 *
	 * @return string 'new' (taken now), 'repeat' (taken before, same body) or 'reused' (taken before, other body).
	 */
	private static function remember( string $id, string $digest, int $now ): string {
		global $wpdb;
		// The option exists before the first compare-and-swap (INSERT IGNORE: never overwrites a concurrent one).
		$wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')", self::SEEN, maybe_serialize( array() ) ) );
		for ( $try = 0; $try < 10; $try++ ) {
			$raw  = (string) $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", self::SEEN ) );
			$seen = maybe_unserialize( $raw );
			$seen = is_array( $seen ) ? $seen : array();
			if ( isset( $seen[ $id ] ) && (int) $seen[ $id ][0] > $now - self::KEEP ) {
				return hash_equals( (string) $seen[ $id ][1], $digest ) ? 'repeat' : 'reused';
			}
			$next        = array_filter( $seen, static fn( $entry ): bool => is_array( $entry ) && (int) $entry[0] > $now - self::KEEP );
			$next[ $id ] = array( $now, $digest );
			if ( $wpdb->query( $wpdb->prepare( "UPDATE {$wpdb->options} SET option_value = %s WHERE option_name = %s AND option_value = %s", maybe_serialize( $next ), self::SEEN, $raw ) ) ) {
				wp_cache_delete( self::SEEN, 'options' );
				return 'new';
			}
		}
		return 'new'; // Lost ten races in a row: wake anyway (a second drain is harmless; a missed wake is not).
	}

	/**
	 * The relay is up: end the backoff (the next try would otherwise wait for it) and drain after the response.
	 */
	private static function wake(): void {
		$state = Stock_Relay_Delivery::state();
		if ( (int) $state['next_attempt_at'] > 0 ) {
			$state['next_attempt_at'] = 0;
			update_option( Stock_Relay_Delivery::STATE, $state, false );
		}
		update_option( Stock_Relay_Kick::DUE, time(), true ); // Until a drain runs, the watchdog and page views kick too.
		Stock_Relay_Kick::request_drain();
	}
}
