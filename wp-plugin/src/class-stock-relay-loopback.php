<?php
/**
 * Can this site call itself? Stock_Relay_Kick starts a drain with a request to the site's own admin-ajax.php that it
 * does not wait for, so it never learns when a firewall, basic authentication or a security plugin blocks it. This
 * probe makes the same request (same URL and filter, same key) and waits for the answer, in the background.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The result is kept in a non-autoloaded option: `ok`, `at`, and while it fails `since` (the first failure) and
 * `error` (what the request got, in plain words). Stock_Relay_Alerts turns a failure into an alert.
 */
final class Stock_Relay_Loopback {

	public const OPTION      = 'stock_relay_loopback';
	public const AJAX_ACTION = 'stock_relay_loopback_probe';
	public const TIMEOUT     = 5;

	/**
	 * Try the loopback request now and keep the result.
	 *
	 * @return array<string, mixed> The result kept.
	 */
	public static function probe(): array {
		$url      = (string) apply_filters( 'stock_relay_loopback_url', admin_url( 'admin-ajax.php' ) ); // The URL the kick uses.
		$response = wp_remote_post(
			$url,
			array(
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'sslverify'   => false, // Our own site, as the kick: the request carries no secret.
				'body'        => array(
					'action' => self::AJAX_ACTION,
					'key'    => Stock_Relay_Kick::kick_key(),
				),
				'user-agent'  => 'stock-relay-kick',
			)
		);
		$error    = '';
		if ( is_wp_error( $response ) ) {
			$error = $response->get_error_message();
		} elseif ( 200 !== (int) wp_remote_retrieve_response_code( $response ) || false === strpos( (string) wp_remote_retrieve_body( $response ), '"stock_relay_loopback":"ok"' ) ) {
			/* translators: %d: HTTP status */
			$error = sprintf( __( 'HTTP %d instead of the plugin\'s answer', 'stock-relay' ), (int) wp_remote_retrieve_response_code( $response ) );
		}
		$last   = self::last();
		$result = '' === $error
			? array(
				'ok' => true,
				'at' => time(),
			)
			: array(
				'ok'    => false,
				'at'    => time(),
				'since' => is_array( $last ) && empty( $last['ok'] ) && isset( $last['since'] ) ? (int) $last['since'] : time(),
				'error' => $error,
			);
		if ( false === get_option( self::OPTION, false ) ) {
			add_option( self::OPTION, $result, '', false );
		} else {
			update_option( self::OPTION, $result, false );
		}
		return $result;
	}

	/**
	 * The last probe's result, or null before the first.
	 *
	 * @return array<string, mixed>|null
	 */
	public static function last(): ?array {
		$last = get_option( self::OPTION, null );
		return is_array( $last ) ? $last : null;
	}

	/** The probe's endpoint (wp_ajax_nopriv_ and wp_ajax_): the kick's key, then a fixed answer; it drains nothing. */
	public static function handle(): void {
		$key = isset( $_POST['key'] ) ? sanitize_text_field( wp_unslash( $_POST['key'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Missing -- authenticated by the HMAC key, as the kick: the caller is this site, with no user session.
		if ( ! hash_equals( Stock_Relay_Kick::kick_key(), $key ) ) {
			wp_die( '', '', array( 'response' => 403 ) );
		}
		wp_send_json( array( 'stock_relay_loopback' => 'ok' ) );
	}
}
