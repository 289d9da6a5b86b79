<?php
/**
 * Starts a drain without making the shopper wait: what every request loads of the delivery side.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Kept apart from Stock_Relay_Delivery so that a page view or a stock-changing request compiles only
 * these few lines; the drainer (after the response, or in the loopback request) loads the rest.
 */
final class Stock_Relay_Kick {

	public const HOOK        = 'stock_relay_drain';
	public const WATCHDOG    = 'stock_relay_watchdog';
	public const AJAX_ACTION = 'stock_relay_drain';
	public const DUE         = 'stock_relay_due';

	/**
	 * Rows were queued in this request: make sure they leave soon, without adding latency here.
	 *
	 * 1. Fast: after the response is sent, either in this process (fastcgi_finish_request() under
	 *    PHP-FPM, litespeed_finish_request() under LiteSpeed) or through a loopback request that this
	 *    process only writes to a socket and never waits for (0.2-0.5 ms on the bench machine, plus
	 *    any wait for a CPU that the drainer it wakes is using on a busy two-core machine).
	 * 2. Durable: the rows are in the outbox already. A one-minute WP-Cron watchdog drains whenever
	 *    rows wait, and the autoloaded `stock_relay_due` timestamp makes every request's shutdown
	 *    kick a drain while it is due: the drainer sets it when it backs off after a failure, and
	 *    this request sets it when the loopback cannot even be written. A healthy request writes no
	 *    option at all. Retries after a failure go to Action Scheduler (or WP-Cron) from the drainer,
	 *    never from a shopper's request: enqueueing an Action Scheduler action costs several queries.
	 */
	public static function request_drain(): void {
		if ( self::$requested ) {
			return;
		}
		self::$requested = true;
		add_action( 'shutdown', array( self::class, 'after_response' ), PHP_INT_MAX );
	}

	/** Make every request's shutdown kick a drain until one runs (the loopback could not be written). */
	private static function mark_due(): void {
		if ( 0 === (int) get_option( self::DUE, 0 ) ) {
			update_option( self::DUE, time(), true );
		}
	}

	/**
	 * Whether request_drain() ran in this request.
	 *
	 * @var bool
	 */
	private static bool $requested = false;

	/**
	 * Whether this process already finished its response or kicked a drain.
	 *
	 * @var bool
	 */
	private static bool $kicked = false;

	/**
	 * On every request's shutdown: if a retry is due (the relay was down, or a kick got lost), kick a
	 * drain. Costs one read of an autoloaded option; this is what keeps retries going on a site with
	 * DISABLE_WP_CRON and no system cron, as long as anybody visits.
	 */
	public static function maybe_kick_due(): void {
		if ( self::$requested || self::$kicked ) {
			return;
		}
		$due = (int) get_option( self::DUE, 0 );
		if ( 0 === $due || $due > time() || doing_action( self::HOOK ) || wp_doing_ajax() && self::AJAX_ACTION === ( $_REQUEST['action'] ?? '' ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended, WordPress.Security.ValidatedSanitizedInput.MissingUnslash, WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- only compared with our action's name, never used otherwise.
			return;
		}
		update_option( self::DUE, time() + 30, true ); // At most one kick per 30 s while nothing answers.
		self::after_response();
	}

	/** After the response: drain here when the server lets us finish the response, else kick a loopback. */
	public static function after_response(): void {
		if ( self::$kicked ) {
			return;
		}
		self::$kicked = true;
		if ( function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI ) {
			fastcgi_finish_request();
			Stock_Relay_Delivery::drain( 10 );
			return;
		}
		if ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
			Stock_Relay_Delivery::drain( 10 );
			return;
		}
		if ( ! self::kick() && self::$requested ) {
			self::mark_due();
		}
	}

	/** The secret key of the loopback URL, so strangers cannot make the site drain at will. */
	public static function kick_key(): string {
		return substr( hash_hmac( 'sha256', 'stock_relay_drain', wp_salt( 'nonce' ) ), 0, 32 );
	}

	/**
	 * A loopback POST to admin-ajax.php that this process writes and does not wait for.
	 *
	 * @return bool Whether the request was written.
	 */
	public static function kick(): bool {
		$url   = (string) apply_filters( 'stock_relay_loopback_url', admin_url( 'admin-ajax.php' ) );
		$parts = wp_parse_url( $url );
		if ( ! is_array( $parts ) || empty( $parts['host'] ) ) {
			return false;
		}
		$https  = 'https' === ( $parts['scheme'] ?? 'http' );
		$port   = (int) ( $parts['port'] ?? ( $https ? 443 : 80 ) );
		$path   = ( $parts['path'] ?? '/' ) . ( isset( $parts['query'] ) ? '?' . $parts['query'] : '' );
		$body   = 'action=' . self::AJAX_ACTION . '&key=' . self::kick_key();
		$host   = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
		$target = ( $https ? 'ssl://' : 'tcp://' ) . $parts['host'] . ':' . $port;
		$ctx    = stream_context_create(
			array(
				'ssl' => array(
					'verify_peer'      => false,
					'verify_peer_name' => false,
				),
			)
		); // Our own site: the request carries no secret.
		$socket = @stream_socket_client( $target, $errno, $errstr, 1.0, STREAM_CLIENT_CONNECT, $ctx ); // phpcs:ignore WordPress.PHP.NoSilencedErrors.Discouraged -- a failed kick is normal (the durable schedule remains).
		if ( false === $socket ) {
			return false;
		}
		$request = "POST {$path} HTTP/1.1\r\nHost: {$host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " . strlen( $body ) . "\r\nConnection: close\r\nUser-Agent: stock-relay-kick\r\n\r\n" . $body;
		$written = fwrite( $socket, $request ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_system_operations_fwrite -- a socket, not a file.
		fclose( $socket ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_system_operations_fclose -- a socket, not a file.
		return strlen( $request ) === $written;
	}

	/** The loopback endpoint: check the key, then drain even though the caller has hung up. */
	public static function handle_kick(): void {
		$key = isset( $_POST['key'] ) ? sanitize_text_field( wp_unslash( $_POST['key'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Missing -- authenticated by the HMAC key instead: the caller is this site, with no user session.
		if ( ! hash_equals( self::kick_key(), $key ) ) {
			wp_die( '', '', array( 'response' => 403 ) );
		}
		ignore_user_abort( true );
		Stock_Relay_Delivery::drain( 20 );
		wp_die( '', '', array( 'response' => 204 ) );
	}
}
