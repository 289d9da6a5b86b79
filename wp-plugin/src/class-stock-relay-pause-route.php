<?php
/**
 * Pause and resume a channel, or all of them, from the Stock Relay page: the plugin's REST routes
 * stock-relay/v1/pause and /resume, which ask the relay (signed channel.pause / channel.resume) with the reason the
 * shop owner typed and the WordPress user's login as the actor (docs/wire-protocol.md, the console's messages).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Like the status route: cookie + `wp_rest` nonce and manage_woocommerce, called by the page's script, never while a
 * page loads. Pausing every channel needs `confirm` (the script asks first), so no stray request stops them all. The
 * answer is a notice for the page (`type`: success, warning or error, and `message`); the cached status is forgotten,
 * so the channels table the script reloads shows the pause.
 */
final class Stock_Relay_Pause_Route {

	public const MAX_REASON = 500; // As the relay takes it (relay/storage/pauses.py).

	/** Register the routes (rest_api_init). */
	public static function register(): void {
		$channel = array(
			'type'      => 'string',
			'default'   => '',
			'maxLength' => 64,
		);
		register_rest_route(
			Stock_Relay_Status_Route::NS,
			'/pause',
			array(
				'methods'             => 'POST',
				'callback'            => array( self::class, 'pause' ),
				'permission_callback' => array( Stock_Relay_Status_Route::class, 'allowed' ),
				'args'                => array(
					'channel' => $channel,
					'reason'  => array(
						'type'    => 'string',
						'default' => '',
					),
					'confirm' => array(
						'type'    => 'boolean',
						'default' => false,
					),
				),
			)
		);
		register_rest_route(
			Stock_Relay_Status_Route::NS,
			'/resume',
			array(
				'methods'             => 'POST',
				'callback'            => array( self::class, 'resume' ),
				'permission_callback' => array( Stock_Relay_Status_Route::class, 'allowed' ),
				'args'                => array( 'channel' => $channel ),
			)
		);
	}

	/**
	 * Pause `channel` (every channel when empty, once confirmed) with `reason`.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function pause( WP_REST_Request $request ): WP_REST_Response {
		if ( ! Stock_Relay_Admin::configured( Stock_Relay_Plugin::settings() ) ) {
			return self::answer( 'warning', __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ) );
		}
		$channel = self::channel( $request );
		$reason  = trim( sanitize_text_field( (string) $request->get_param( 'reason' ) ) ); // One line: the relay refuses control characters.
		if ( '' === $reason || mb_strlen( $reason ) > self::MAX_REASON ) {
			/* translators: %d: the longest reason, in characters */
			return self::answer( 'error', sprintf( __( 'Say why the sending is paused (1 to %d characters): the reason is shown to everyone who looks at the channel.', 'stock-relay' ), self::MAX_REASON ), 400 );
		}
		if ( '' === $channel && ! $request->get_param( 'confirm' ) ) {
			return self::answer( 'error', __( 'Pausing every channel needs a confirmation: nothing was paused.', 'stock-relay' ), 400 );
		}
		$answer = self::ask( 'pause', 'channel.pause', $channel, array( 'reason' => $reason ) );
		if ( 200 !== $answer['status'] ) {
			return self::refused( $answer );
		}
		return self::answer( 'success', Stock_Relay_Pause_Controls::paused_message( $answer['body'] ) );
	}

	/**
	 * Resume `channel` (every paused channel when empty).
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function resume( WP_REST_Request $request ): WP_REST_Response {
		if ( ! Stock_Relay_Admin::configured( Stock_Relay_Plugin::settings() ) ) {
			return self::answer( 'warning', __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ) );
		}
		$answer = self::ask( 'resume', 'channel.resume', self::channel( $request ), array() );
		if ( 200 !== $answer['status'] ) {
			return self::refused( $answer );
		}
		return self::answer( 'success', Stock_Relay_Pause_Controls::resumed_message( $answer['body'] ) );
	}

	/**
	 * The channel named in the request ('' for all).
	 *
	 * @param WP_REST_Request $request The request.
	 */
	private static function channel( WP_REST_Request $request ): string {
		return trim( sanitize_text_field( (string) $request->get_param( 'channel' ) ) );
	}

	/**
	 * The signed request to the relay, as the current user.
	 *
	 * @param string                $operation The path's last part (pause, resume).
	 * @param string                $type      The message type.
	 * @param string                $channel   The channel ('' for all).
	 * @param array<string, string> $fields    More fields of the message.
	 * @return array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null}
	 */
	private static function ask( string $operation, string $type, string $channel, array $fields ): array {
		$settings = Stock_Relay_Plugin::settings();
		$doc      = array(
			'type' => $type,
			'site' => $settings['site'],
		);
		if ( '' !== $channel ) {
			$doc['channel'] = $channel;
		}
		$doc         += $fields;
		$doc['actor'] = (string) wp_get_current_user()->user_login;
		$answer       = Stock_Relay_Delivery::post( $settings, $operation, (string) stock_relay_json( $doc ) );
		Stock_Relay_Status_Route::forget(); // Whatever happened, the next look at the channels asks the relay.
		return $answer;
	}

	/**
	 * The relay said no, or did not answer: its reason in plain words (a one-off request: nothing is kept or resent).
	 *
	 * @param array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null} $answer The relay's answer.
	 */
	private static function refused( array $answer ): WP_REST_Response {
		$text = 400 === $answer['status'] && '' !== $answer['message']
			/* translators: %s: the relay's reason, such as "This site has no channel 'x'." */
			? sprintf( __( 'The relay refused: %s Nothing was changed.', 'stock-relay' ), $answer['message'] )
			: Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false );
		return self::answer( 'error', $text );
	}

	/** A notice for the page (HTTP 200 unless the request itself was wrong). */
	private static function answer( string $type, string $message, int $http = 200 ): WP_REST_Response {
		return new WP_REST_Response(
			array(
				'type'    => $type,
				'message' => $message,
			),
			$http
		);
	}
}
