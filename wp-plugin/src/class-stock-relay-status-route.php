<?php
/**
 * The Stock Relay page's own REST routes (stock-relay/v1/status and /ping): the page loads the relay's status
 * and runs Test connection through them from JavaScript, so no admin page ever waits for the relay.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Both routes need manage_woocommerce. They are called with the logged-in user's cookie and a `wp_rest` nonce
 * (X-WP-Nonce): WordPress's REST cookie check treats a request without a valid nonce as logged out, so the
 * capability check refuses it (401), and a user without the capability gets 403.
 *
 * The status answer is cached for CACHE_TTL seconds (a transient), so reloading the page, or several people on it,
 * ask the relay at most once per period; a changed setting or a replay forgets it, and `refresh=1` skips it.
 */
final class Stock_Relay_Status_Route {

	public const NS        = 'stock-relay/v1';
	public const CACHE     = 'stock_relay_status_cache';
	public const CACHE_TTL = 30;

	/** Register the routes (rest_api_init). */
	public static function register(): void {
		register_rest_route(
			self::NS,
			'/status',
			array(
				'methods'             => 'GET',
				'callback'            => array( self::class, 'status' ),
				'permission_callback' => array( self::class, 'allowed' ),
				'args'                => array(
					'refresh' => array(
						'type'    => 'boolean',
						'default' => false,
					),
				),
			)
		);
		register_rest_route(
			self::NS,
			'/ping',
			array(
				'methods'             => 'POST',
				'callback'            => array( self::class, 'ping' ),
				'permission_callback' => array( self::class, 'allowed' ),
			)
		);
	}

	/** The capability check (the nonce is WordPress's cookie check, before this). */
	public static function allowed(): bool {
		return current_user_can( Stock_Relay_Admin::CAP );
	}

	/**
	 * The relay's status as the page's HTML: `html` (escaped here), `ok` (the relay answered 200), `cached` and `at`
	 * (when the relay was asked).
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function status( WP_REST_Request $request ): WP_REST_Response {
		$settings = Stock_Relay_Plugin::settings();
		if ( ! Stock_Relay_Admin::configured( $settings ) ) {
			return new WP_REST_Response(
				array(
					'ok'   => false,
					'html' => '<p>' . esc_html__( 'Enter the relay URL, the site id and the secret above to see the relay\'s channels.', 'stock-relay' ) . '</p>',
				)
			);
		}
		$cached = $request->get_param( 'refresh' ) ? false : get_transient( self::CACHE );
		$fresh  = ! is_array( $cached ) || ! isset( $cached['answer'], $cached['at'] );
		if ( $fresh ) {
			$answer = Stock_Relay_Delivery::status( $settings );
			Stock_Relay_Oversold_Notice::remember( $answer['status'], $answer['body'] );
			Stock_Relay_Alerts::remember( $answer ); // The admin notices follow what the page was told.
			$cached = array(
				'answer' => $answer,
				'at'     => time(),
			);
			set_transient( self::CACHE, $cached, self::CACHE_TTL );
		}
		ob_start();
		Stock_Relay_Status_Panel::render( $settings, $cached['answer'] );
		$html = (string) ob_get_clean();
		return new WP_REST_Response(
			array(
				'ok'     => 200 === $cached['answer']['status'],
				'html'   => $html,
				'cached' => ! $fresh,
				'at'     => (int) $cached['at'],
			)
		);
	}

	/** Test connection: `type` (success, error, warning: the notice's colour) and `message`. */
	public static function ping(): WP_REST_Response {
		return new WP_REST_Response( Stock_Relay_Admin::ping( Stock_Relay_Plugin::settings() ) );
	}

	/** Forget the cached status (a setting changed, or a replay changed what the relay will report). */
	public static function forget(): void {
		delete_transient( self::CACHE );
	}
}
