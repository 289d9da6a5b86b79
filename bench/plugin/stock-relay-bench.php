<?php
/**
 * Plugin Name: Stock Relay bench probe (bench only, never shipped)
 * Description: For bench/plugin_latency.py. `?srb=change&id=N&qty=Q` sets a product's stock through
 * wc_update_product_stock() (the path orders use) and answers with the time the stock hook fired;
 * `&srb_off=1` runs the same request with Stock Relay not loaded (the baseline), `&srb_plugin=SLUG` with
 * another copy of it (wp-content/plugins/SLUG) loaded instead. Every request's
 * server-side time, from this mu-plugin's load to the end of the last shutdown callback, is appended
 * to wp-content/srb-timings.log, with the time until the response was complete when the plugin sent it
 * with its length before the end (what the client waits for then). `?srb=ping` is a cheap page view for
 * the "steady traffic" condition.
 *
 * @package StockRelay
 */

// phpcs:disable WordPress.Security.NonceVerification.Recommended -- a bench endpoint on a throwaway site.

if ( ! isset( $_GET['srb'] ) ) {
	return;
}
$GLOBALS['srb_t0']    = hrtime( true );
$GLOBALS['srb_off']   = ! empty( $_GET['srb_off'] );
$GLOBALS['srb_state'] = $GLOBALS['srb_off'] ? 'off' : ( empty( $_GET['srb_plugin'] ) ? 'on' : 'ref' );

if ( 'on' !== $GLOBALS['srb_state'] ) {
	add_filter(
		'option_active_plugins',
		static function ( $plugins ) {
			$plugins = array_values( array_diff( (array) $plugins, array( 'stock-relay/stock-relay.php' ) ) );
			if ( 'ref' === $GLOBALS['srb_state'] ) {
				// Another copy of the plugin (bench --compare-ref), in the same place in the load order.
				$plugins[] = sanitize_key( $_GET['srb_plugin'] ) . '/stock-relay.php';
				sort( $plugins );
			}
			return $plugins;
		}
	);
}

add_action(
	'woocommerce_product_set_stock',
	static function (): void {
		$GLOBALS['srb_hook_at'] = $GLOBALS['srb_hook_at'] ?? microtime( true );
	},
	1
);

add_action(
	'shutdown',
	static function (): void {
		register_shutdown_function(
			static function (): void {
				$ms = ( hrtime( true ) - $GLOBALS['srb_t0'] ) / 1e6;
				// Until the response was complete: when the plugin sent it with its length before kicking, that moment; else the end.
				$done = isset( $GLOBALS['srb_complete'] ) ? ( $GLOBALS['srb_complete'] - $GLOBALS['srb_t0'] ) / 1e6 : $ms;
				file_put_contents( WP_CONTENT_DIR . '/srb-timings.log', sprintf( "%s %s %.3f %.3f\n", sanitize_key( $_GET['srb'] ), $GLOBALS['srb_state'], $ms, $done ), FILE_APPEND | LOCK_EX );
			}
		);
	},
	PHP_INT_MAX
);

add_action(
	'wp_loaded',
	static function (): void {
		if ( 'change' === $_GET['srb'] ) {
			$product = wc_get_product( (int) $_GET['id'] );
			wc_update_product_stock( $product, (int) $_GET['qty'], 'set' );
			// Added after the stock hooks ran, so on shutdown it runs after the plugin's own last action that
			// finishes a held response (added at the first stock hook) and before its kick (added at priority 20).
			add_action(
				'shutdown',
				static function (): void {
					if ( headers_sent() && preg_grep( '/^content-length:/i', headers_list() ) ) {
						$GLOBALS['srb_complete'] = hrtime( true );
					}
				},
				PHP_INT_MAX
			);
			wp_send_json( array( 'hook_at' => $GLOBALS['srb_hook_at'] ?? null ) );
		}
		wp_send_json(
			array(
				'ok'             => true,
				'cron_disabled'  => defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON,
				'finish_request' => function_exists( 'fastcgi_finish_request' ) && 'cli' !== PHP_SAPI, // PHP-FPM: the plugin drains in-process after the response.
			)
		);
	}
);
