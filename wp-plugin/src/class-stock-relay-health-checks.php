<?php
/**
 * Site Health tests beside the cron test of Stock_Relay_Health: the outbox's age (direct: this site's database), and
 * the relay reachable and the clock difference with it (asynchronous: Site Health's script asks the plugin's REST routes
 * stock-relay/v1/health/relay and /clock after the page has loaded, so the screen never waits for the relay).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The two relay tests share one signed ping, kept PING_TTL seconds in a transient (Site Health runs them one after the
 * other). WordPress's weekly background check runs them through `async_direct_test`, without REST. The results are
 * worded here from pure functions (outbox_result, relay_result, clock_result) that the tests call with fixed inputs.
 */
final class Stock_Relay_Health_Checks {

	public const OUTBOX   = 'stock_relay_outbox';
	public const RELAY    = 'stock_relay_relay';
	public const CLOCK    = 'stock_relay_clock';
	public const PING     = 'stock_relay_health_ping';
	public const PING_TTL = 30;
	public const SKEW_OK  = 60; // Beyond this the clocks are worth setting right; the relay refuses signatures beyond 300 s.
	public const SKEW_MAX = 300;

	/**
	 * Add the tests (from Stock_Relay_Health::tests).
	 *
	 * @param array<string, array<string, mixed>> $tests Site Health tests.
	 * @return array<string, array<string, mixed>>
	 */
	public static function add( array $tests ): array {
		$tests['direct'][ self::OUTBOX ] = array(
			'label' => __( 'Stock Relay changes leave the shop', 'stock-relay' ),
			'test'  => array( self::class, 'outbox' ),
		);
		$tests['async'][ self::RELAY ]   = array(
			'label'             => __( 'Stock Relay reaches the relay', 'stock-relay' ),
			'test'              => rest_url( Stock_Relay_Status_Route::NS . '/health/relay' ),
			'has_rest'          => true,
			'async_direct_test' => array( self::class, 'relay' ),
		);
		$tests['async'][ self::CLOCK ]   = array(
			'label'             => __( 'This site\'s clock agrees with the relay\'s', 'stock-relay' ),
			'test'              => rest_url( Stock_Relay_Status_Route::NS . '/health/clock' ),
			'has_rest'          => true,
			'async_direct_test' => array( self::class, 'clock' ),
		);
		return $tests;
	}

	/** The REST routes of the two asynchronous tests (rest_api_init): manage_woocommerce and the wp_rest nonce. */
	public static function register_routes(): void {
		foreach ( array( 'relay', 'clock' ) as $test ) {
			register_rest_route(
				Stock_Relay_Status_Route::NS,
				'/health/' . $test,
				array(
					'methods'             => 'GET',
					'callback'            => static fn(): WP_REST_Response => new WP_REST_Response( 'relay' === $test ? self::relay() : self::clock() ),
					'permission_callback' => array( Stock_Relay_Status_Route::class, 'allowed' ),
				)
			);
		}
	}

	/**
	 * The outbox test.
	 *
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function outbox(): array {
		return self::outbox_result( Stock_Relay_Outbox::stats(), Stock_Relay_Delivery::state(), time() );
	}

	/**
	 * The relay test.
	 *
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function relay(): array {
		$settings = Stock_Relay_Plugin::settings();
		return self::relay_result( Stock_Relay_Admin::configured( $settings ), Stock_Relay_Admin::configured( $settings ) ? self::ping( $settings ) : null );
	}

	/**
	 * The clock test.
	 *
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function clock(): array {
		$settings = Stock_Relay_Plugin::settings();
		return self::clock_result( Stock_Relay_Admin::configured( $settings ) ? self::ping( $settings ) : null );
	}

	/**
	 * A signed ping, with the clock difference measured against the middle of the request: `status`, `error` (plain
	 * words) and `skew` (seconds, the relay's clock minus this site's; null when unknown).
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @return array{status: int, error: string, skew: int|null}
	 */
	private static function ping( array $settings ): array {
		$kept = get_transient( self::PING );
		if ( is_array( $kept ) && isset( $kept['status'] ) ) {
			return $kept;
		}
		$sent   = microtime( true );
		$answer = Stock_Relay_Delivery::post(
			$settings,
			'ping',
			(string) stock_relay_json(
				array(
					'type' => 'ping',
					'site' => $settings['site'],
				)
			)
		);
		$back   = microtime( true );
		$server = 200 === $answer['status'] && is_string( $answer['body']['server_time'] ?? null ) ? strtotime( $answer['body']['server_time'] ) : false;
		$ping   = array(
			'status' => $answer['status'],
			'error'  => 200 === $answer['status'] ? '' : Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ),
			'skew'   => false === $server ? null : (int) round( $server - ( $sent + $back ) / 2 ),
		);
		set_transient( self::PING, $ping, self::PING_TTL );
		return $ping;
	}

	/**
	 * The outbox test's result: good while nothing waits longer than Stock_Relay_Alerts::OUTBOX_OLD.
	 *
	 * @param array{pending: int, rejected: int, oldest: int|null} $stats    Stock_Relay_Outbox::stats().
	 * @param array<string, mixed>                                 $delivery Stock_Relay_Delivery::state().
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function outbox_result( array $stats, array $delivery, int $now ): array {
		$result = self::result( self::OUTBOX, __( 'Stock Relay changes leave the shop', 'stock-relay' ), __( 'Every stock change is sent to the relay within minutes: none is waiting longer.', 'stock-relay' ) );
		if ( null === $stats['oldest'] || $now - (int) $stats['oldest'] < Stock_Relay_Alerts::OUTBOX_OLD ) {
			return $result;
		}
		$alert = array(
			'code'   => 'outbox_old',
			'since'  => (float) $stats['oldest'],
			'count'  => (int) $stats['pending'],
			'detail' => is_string( $delivery['last_error'] ?? null ) ? $delivery['last_error'] : '',
		);
		return self::problem( $result, $now - (int) $stats['oldest'] >= HOUR_IN_SECONDS ? 'critical' : 'recommended', __( 'Stock Relay changes are waiting in the shop', 'stock-relay' ), Stock_Relay_Alert_Text::sentence( $alert, $now ), __( 'The changes are kept and sent as soon as the cause is gone. The Stock Relay page shows what waits and the last error.', 'stock-relay' ) );
	}

	/**
	 * The relay test's result.
	 *
	 * @param bool                                                   $configured Whether the plugin is set up.
	 * @param array{status: int, error: string, skew: int|null}|null $ping       The ping (null: not set up).
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function relay_result( bool $configured, ?array $ping ): array {
		$result = self::result( self::RELAY, __( 'Stock Relay reaches the relay', 'stock-relay' ), __( 'The relay answered a signed request with this site\'s secret.', 'stock-relay' ) );
		if ( ! $configured || null === $ping ) {
			return self::problem( $result, 'recommended', __( 'Stock Relay is not set up', 'stock-relay' ), __( 'No stock change is sent until the relay URL, the site id and the secret are saved.', 'stock-relay' ), __( 'Enter them on WooCommerce › Stock Relay.', 'stock-relay' ) );
		}
		if ( 200 === $ping['status'] ) {
			return $result;
		}
		return self::problem( $result, 'critical', __( 'Stock Relay cannot reach the relay', 'stock-relay' ), $ping['error'], __( 'Stock changes are kept in the shop and sent when the relay answers again. Test connection on WooCommerce › Stock Relay says more.', 'stock-relay' ) );
	}

	/**
	 * The clock test's result: the relay refuses a signature more than 300 s away from its clock.
	 *
	 * @param array{status: int, error: string, skew: int|null}|null $ping The ping (null: not set up).
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function clock_result( ?array $ping ): array {
		$result = self::result( self::CLOCK, __( 'This site\'s clock agrees with the relay\'s', 'stock-relay' ), '' );
		if ( null === $ping || null === $ping['skew'] ) {
			$result['label']       = __( 'The clock difference with the relay is unknown', 'stock-relay' );
			$result['description'] = '<p>' . esc_html( null === $ping ? __( 'Stock Relay is not set up yet.', 'stock-relay' ) : __( 'The relay did not answer, so its clock could not be read (see the test "Stock Relay reaches the relay").', 'stock-relay' ) ) . '</p>';
			return $result;
		}
		$skew = $ping['skew'];
		/* translators: %+d: seconds, with their sign (the relay's clock minus this site's) */
		$said = sprintf( __( 'The relay\'s clock is %+d s from this site\'s.', 'stock-relay' ), $skew );
		if ( abs( $skew ) <= self::SKEW_OK ) {
			$result['description'] = '<p>' . esc_html( $said ) . '</p>';
			return $result;
		}
		$refused = abs( $skew ) > self::SKEW_MAX;
		return self::problem(
			$result,
			$refused ? 'critical' : 'recommended',
			$refused ? __( 'The relay refuses this site\'s requests: the clocks differ too much', 'stock-relay' ) : __( 'This site\'s clock differs from the relay\'s', 'stock-relay' ),
			$said . ' ' . ( $refused ? __( 'The relay refuses a signature more than 300 s away from its clock, so nothing this site sends is accepted.', 'stock-relay' ) : __( 'The relay refuses a signature more than 300 s away from its clock.', 'stock-relay' ) ),
			__( 'Keep both clocks set by NTP (systemd-timesyncd or chrony) on this server and the relay\'s.', 'stock-relay' )
		);
	}

	/**
	 * A good result.
	 *
	 * @return array<string, mixed>
	 */
	private static function result( string $test, string $label, string $description ): array {
		return array(
			'label'       => $label,
			'status'      => 'good',
			'badge'       => array(
				'label' => __( 'Stock Relay', 'stock-relay' ),
				'color' => 'blue',
			),
			'description' => '' !== $description ? '<p>' . esc_html( $description ) . '</p>' : '',
			'actions'     => '',
			'test'        => $test,
		);
	}

	/**
	 * The result made a problem.
	 *
	 * @param array<string, mixed> $result The good result.
	 * @return array<string, mixed>
	 */
	private static function problem( array $result, string $status, string $label, string $description, string $action ): array {
		$result['status']         = $status;
		$result['label']          = $label;
		$result['badge']['color'] = 'critical' === $status ? 'red' : 'orange';
		$result['description']    = '<p>' . esc_html( $description ) . '</p>';
		$result['actions']        = '<p>' . esc_html( $action ) . '</p>';
		return $result;
	}
}
