<?php
/**
 * What the plugin's signed REST routes (snapshot, wake, adjust) share: registration and the signature check.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * The relay has no WordPress account: a route is open to the web on purpose, and the Standard Webhooks
 * signature with the site's secret (Stock_Relay_Snapshot::authenticate) is its authentication, checked
 * first thing. WordPress answers a body it cannot parse as JSON (rest_invalid_json) before any callback
 * runs, in its own error shape; these routes answer that themselves, after the signature check.
 */
final class Stock_Relay_Signed_Route {

	public const NAMESPACE = 'stock-relay/v1';

	/**
	 * The callbacks registered here, so keep_own_errors() knows them.
	 *
	 * @var array<int, callable>
	 */
	private static array $callbacks = array();

	/**
	 * Register a signed POST route (call on rest_api_init).
	 *
	 * @param string   $route    The route under the namespace, e.g. '/snapshot'.
	 * @param callable $callback The handler; it must call authenticate() first.
	 */
	public static function register( string $route, callable $callback ): void {
		register_rest_route(
			self::NAMESPACE,
			$route,
			array(
				'methods'             => 'POST',
				'callback'            => $callback,
				'permission_callback' => '__return_true', // The signature is the authentication.
			)
		);
		if ( ! self::$callbacks ) {
			add_filter( 'rest_request_before_callbacks', array( self::class, 'keep_own_errors' ), 10, 2 );
		}
		self::$callbacks[] = $callback;
	}

	/**
	 * Let one of these routes answer a body WordPress cannot parse as JSON, after its signature check.
	 *
	 * @param mixed                $response Result so far (a WP_Error when WordPress refused the request).
	 * @param array<string, mixed> $handler  The matched handler.
	 * @return mixed
	 */
	public static function keep_own_errors( $response, $handler ) {
		if ( is_wp_error( $response ) && isset( $handler['callback'] ) && in_array( $handler['callback'], self::$callbacks, true ) && 'rest_invalid_json' === $response->get_error_code() ) {
			return null;
		}
		return $response;
	}

	/**
	 * The request's webhook headers, and the result of checking its signature against the site's secret.
	 *
	 * @param WP_REST_Request      $request   The request.
	 * @param array<string, mixed> $settings  The plugin's settings (site, secret).
	 * @param int                  $now       Unix seconds.
	 * @param int                  $max_bytes The largest body the route takes.
	 * @return array{0: array<string, string>, 1: array{status: int, code: string, message: string}|null}
	 */
	public static function authenticate( WP_REST_Request $request, array $settings, int $now, int $max_bytes = Stock_Relay_Snapshot::MAX_BYTES ): array {
		$headers = array();
		foreach ( array( 'webhook-id', 'webhook-timestamp', 'webhook-signature' ) as $name ) {
			$headers[ $name ] = (string) $request->get_header( $name );
		}
		$error = Stock_Relay_Snapshot::authenticate( (string) $settings['site'], (string) $settings['secret'], $headers, (string) $request->get_body(), $now, $max_bytes );
		return array( $headers, $error );
	}
}
