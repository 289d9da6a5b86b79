<?php
/**
 * Wiring: settings access, activation, hooks, and delivery after the response.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * The plugin's entry points; everything else is in classes with one job each.
 */
final class Stock_Relay_Plugin {

	/** Whether a drain is already registered for after this response. */
	private static bool $deliver_registered = false;

	/** Hook everything in. */
	public static function boot(): void {
		if ( (int) get_option( 'stock_relay_schema', 0 ) < Stock_Relay_Outbox::SCHEMA_VERSION ) {
			Stock_Relay_Outbox::install();
		}
		Stock_Relay_Capture::register();
		add_action( Stock_Relay_Delivery::HOOK, array( Stock_Relay_Delivery::class, 'drain' ) );
		add_action( Stock_Relay_Admin::RESEND_HOOK, array( Stock_Relay_Admin::class, 'resend_chunk' ), 10, 1 );
		if ( is_admin() ) {
			Stock_Relay_Admin::register();
		}
	}

	/** Activation: create the tables. */
	public static function activate(): void {
		Stock_Relay_Outbox::install();
	}

	/**
	 * The settings, with the secret from wp-config.php when STOCK_RELAY_SECRET is defined.
	 *
	 * @return array{url: string, site: string, secret: string, secret_from_constant: bool}
	 */
	public static function settings(): array {
		$constant = defined( 'STOCK_RELAY_SECRET' ) && is_string( STOCK_RELAY_SECRET ) && '' !== STOCK_RELAY_SECRET;
		return array(
			'url'                  => (string) get_option( 'stock_relay_url', '' ),
			'site'                 => (string) get_option( 'stock_relay_site', '' ),
			'secret'               => $constant ? (string) STOCK_RELAY_SECRET : (string) get_option( 'stock_relay_secret', '' ),
			'secret_from_constant' => $constant,
		);
	}

	/**
	 * Deliver without adding latency to the shopper's request: after fastcgi_finish_request() where
	 * PHP-FPM offers it, else through Action Scheduler (or WP-Cron). A scheduled drain is always
	 * registered too, so a drain that dies with the request is picked up again.
	 */
	public static function deliver_after_response(): void {
		Stock_Relay_Delivery::schedule( 0 );
		if ( self::$deliver_registered || ! function_exists( 'fastcgi_finish_request' ) ) {
			return;
		}
		self::$deliver_registered = true;
		add_action(
			'shutdown',
			static function (): void {
				fastcgi_finish_request();
				Stock_Relay_Delivery::drain( 10 );
			},
			PHP_INT_MAX
		);
	}
}
