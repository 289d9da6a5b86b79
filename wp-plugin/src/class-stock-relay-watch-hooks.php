<?php
/**
 * Wiring of pause and resume, and of what watches the sync: alerts (admin notices), the loopback probe, the WooCommerce
 * log, the e-mail digest and the Site Health routes (issue 17 items 4 and 5). Only add_action calls: the classes named
 * by ::class load when their hook runs.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Called from Stock_Relay_Plugin::boot on every request; a shopper's request pays for the few add_action calls.
 */
final class Stock_Relay_Watch_Hooks {

	/** Hook in (plugins_loaded). */
	public static function register(): void {
		add_action( 'rest_api_init', array( Stock_Relay_Pause_Route::class, 'register' ) ); // Pause and resume (cookie + nonce, manage_woocommerce).
		add_action( 'rest_api_init', array( Stock_Relay_Health_Checks::class, 'register_routes' ) ); // Site Health's asynchronous relay tests.
		// The background refresh of the alerts rides on the one-minute watchdog (at most every Stock_Relay_Alerts::REFRESH s).
		add_action( Stock_Relay_Kick::WATCHDOG, array( Stock_Relay_Alerts::class, 'refresh' ), 20, 0 );
		add_action( Stock_Relay_Kick::WATCHDOG, array( Stock_Relay_Digest::class, 'schedule' ), 30, 0 ); // Mends a lost daily event.
		add_action( Stock_Relay_Digest::HOOK, array( Stock_Relay_Digest::class, 'send' ), 10, 0 );
		add_action( 'add_option_' . Stock_Relay_Digest::OPTION, array( Stock_Relay_Digest::class, 'schedule' ), 10, 0 );
		add_action( 'update_option_' . Stock_Relay_Digest::OPTION, array( Stock_Relay_Digest::class, 'schedule' ), 10, 0 );
		add_action( 'update_option_' . Stock_Relay_Delivery::STATE, array( Stock_Relay_Log::class, 'delivery' ), 10, 2 ); // Failures to the WooCommerce log, once per cause.
		add_action( 'add_option_' . Stock_Relay_Delivery::STATE, array( Stock_Relay_Log::class, 'delivery_added' ), 10, 2 );
		add_action( 'wp_ajax_nopriv_' . Stock_Relay_Loopback::AJAX_ACTION, array( Stock_Relay_Loopback::class, 'handle' ) );
		add_action( 'wp_ajax_' . Stock_Relay_Loopback::AJAX_ACTION, array( Stock_Relay_Loopback::class, 'handle' ) );
		register_deactivation_hook( STOCK_RELAY_FILE, array( Stock_Relay_Digest::class, 'deactivate' ) );
		if ( is_admin() ) {
			add_action( 'admin_notices', array( Stock_Relay_Alert_Notice::class, 'show' ) );
			add_action( 'admin_post_' . Stock_Relay_Alert_Notice::ACTION, array( Stock_Relay_Alert_Notice::class, 'handle_dismiss' ) );
			add_action( 'admin_init', array( Stock_Relay_Digest::class, 'setting' ) );
			add_action( 'admin_enqueue_scripts', array( self::class, 'enqueue' ), 20 );
		}
	}

	/** The pause and resume script, wherever the Stock Relay page's script is (after it: its priority is 10). */
	public static function enqueue(): void {
		if ( ! wp_script_is( Stock_Relay_Admin::SCRIPT, 'enqueued' ) ) {
			return;
		}
		wp_enqueue_script( 'stock-relay-pause', plugins_url( 'assets/pause.js', STOCK_RELAY_FILE ), array( Stock_Relay_Admin::SCRIPT ), STOCK_RELAY_VERSION, true );
		$config = array(
			'pauseUrl'  => esc_url_raw( rest_url( Stock_Relay_Status_Route::NS . '/pause' ) ),
			'resumeUrl' => esc_url_raw( rest_url( Stock_Relay_Status_Route::NS . '/resume' ) ),
			'nonce'     => wp_create_nonce( 'wp_rest' ),
			'text'      => array(
				'pausing'  => __( 'Asking the relay to pause…', 'stock-relay' ),
				'resuming' => __( 'Asking the relay to resume…', 'stock-relay' ),
				/* translators: %s: the reason, such as "HTTP 403" or a network error */
				'failed'   => __( 'The request did not finish (%s). Reload the page and look at the channels before trying again.', 'stock-relay' ),
			),
		);
		wp_add_inline_script( 'stock-relay-pause', 'var stockRelayPause = ' . wp_json_encode( $config ) . ';', 'before' );
	}
}
