<?php
/**
 * A Site Health test: does anything run Stock Relay's retries when nobody visits the shop?
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Changes that could not reach the relay are retried by the one-minute WP-Cron watchdog, by any page view
 * once a retry is due, and when the relay wakes the shop at its start (with `shop_url` set). WP-Cron runs
 * only on page views unless a system cron drives it, and not at all with DISABLE_WP_CRON and no system
 * cron; a quiet shop's retries then wait for a visitor. The watchdog's next run time tells, for free,
 * whether any cron ran lately: it moves on each time one runs it.
 */
final class Stock_Relay_Health {

	public const TEST    = 'stock_relay_cron';
	public const OVERDUE = 600; // The one-minute watchdog this late: no cron has run for ten minutes.

	/**
	 * Add the test, and Stock_Relay_Health_Checks' (site_status_tests).
	 *
	 * @param array<string, array<string, mixed>> $tests Site Health tests.
	 * @return array<string, array<string, mixed>>
	 */
	public static function tests( array $tests ): array {
		$tests['direct'][ self::TEST ] = array(
			'label' => __( 'Stock Relay retries run without visitors', 'stock-relay' ),
			'test'  => array( self::class, 'run' ),
		);
		return Stock_Relay_Health_Checks::add( $tests ); // The outbox's age, the relay reachable, the clock difference.
	}

	/**
	 * The test, on this site's WP-Cron.
	 *
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function run(): array {
		$next = wp_next_scheduled( Stock_Relay_Kick::WATCHDOG );
		return self::result( defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON, false === $next ? null : (int) $next, time() );
	}

	/**
	 * The result for a watchdog due at $due (null: not scheduled) at time $now.
	 *
	 * @return array<string, mixed> A Site Health result.
	 */
	public static function result( bool $cron_disabled, ?int $due, int $now ): array {
		$result = array(
			'label'       => __( 'Stock Relay retries run without visitors', 'stock-relay' ),
			'status'      => 'good',
			'badge'       => array(
				'label' => __( 'Performance', 'stock-relay' ),
				'color' => 'blue',
			),
			'description' => '<p>' . esc_html__( 'Scheduled tasks run on time, so changes waiting for the relay (after an outage, say) are retried every minute, whether or not anybody visits the shop.', 'stock-relay' ) . '</p>',
			'actions'     => '',
			'test'        => self::TEST,
		);
		if ( null !== $due && $now - $due < self::OVERDUE ) {
			return $result;
		}
		$minutes = null === $due ? null : intdiv( $now - $due, 60 );
		$late    = null === $minutes
			? __( 'Stock Relay\'s one-minute watchdog is not scheduled.', 'stock-relay' )
			/* translators: %d: minutes */
			: sprintf( _n( 'No scheduled task has run for %d minute (Stock Relay\'s one-minute watchdog is that late).', 'No scheduled task has run for %d minutes (Stock Relay\'s one-minute watchdog is that late).', $minutes, 'stock-relay' ), $minutes );
		$why  = $cron_disabled
			? __( 'DISABLE_WP_CRON is set in wp-config.php, and no system cron runs WordPress\'s scheduled tasks.', 'stock-relay' )
			: __( 'WordPress runs its scheduled tasks (WP-Cron) only when someone visits the site.', 'stock-relay' );
		$then = __( 'Changes waiting for the relay are then retried only at the next visit, or when the relay wakes the shop as it starts (if its config has shop_url).', 'stock-relay' );

		$result['status']         = 'recommended';
		$result['label']          = __( 'Stock Relay retries wait for visitors', 'stock-relay' );
		$result['badge']['color'] = 'orange';
		$result['description']    = '<p>' . esc_html( $why . ' ' . $late . ' ' . $then ) . '</p>';
		$result['actions']        = '<p>' . esc_html__( 'Add a system cron that runs `wp cron event run --due-now` every minute (and set DISABLE_WP_CRON, so visits do not run it too).', 'stock-relay' ) . '</p>';
		return $result;
	}
}
