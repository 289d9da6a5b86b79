<?php
/**
 * The browser suite's hands inside WordPress (php wp-state.php COMMAND ARGS, with SRT_WP_CONFIG set by wp-env.sh):
 * it prepares what a test needs with WordPress's and the plugin's own functions, the way the integration bootstrap
 * does, and prints one JSON answer. The browser does the rest through the admin, as a shop owner would.
 *
 *   fresh                      no products, and the plugin as just installed: uninstall.php, then activation again
 *   configure URL SITE SECRET  the three settings, as a saved form leaves them (the secret not autoloaded)
 *   settings                   what is saved: {"url", "site", "secret"}
 *   product SKU QTY            a simple product with managed stock, written as WooCommerce stores it (no hooks); {"id"}
 *   woocommerce on|off         WooCommerce active or not (the stand-ins read srt_no_woocommerce)
 *
 * @package StockRelay
 */

declare(strict_types=1);

if ( ! getenv( 'SRT_WP_CONFIG' ) ) {
	fwrite( STDERR, "wp-state.php needs the WordPress started by wp-plugin/tests/run.sh (SRT_WP_CONFIG).\n" );
	exit( 2 );
}
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
require getenv( 'SRT_WP_CONFIG' );
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/file.php';

$srt_args    = array_slice( $argv, 1 );
$srt_command = (string) array_shift( $srt_args );

switch ( $srt_command ) {
	case 'fresh':
		// What the integration suite left behind (its products, outbox rows, delivery state) is not this suite's.
		global $wpdb;
		$wpdb->query( "DELETE m FROM {$wpdb->postmeta} m JOIN {$wpdb->posts} p ON p.ID = m.post_id WHERE p.post_type IN ('product', 'product_variation')" );
		$wpdb->query( "DELETE FROM {$wpdb->posts} WHERE post_type IN ('product', 'product_variation')" );
		$srt_plugin = 'stock-relay/stock-relay.php';
		deactivate_plugins( $srt_plugin, true );
		uninstall_plugin( $srt_plugin );
		$srt_activated = activate_plugin( $srt_plugin );
		if ( is_wp_error( $srt_activated ) ) {
			fwrite( STDERR, 'activation failed: ' . $srt_activated->get_error_message() . "\n" );
			exit( 1 );
		}
		update_option( 'show_avatars', '0' ); // The test machine is offline: no Gravatar images in the admin bar.
		wp_cache_flush();
		echo wp_json_encode( array( 'ok' => true ) ) . "\n";
		break;
	case 'configure':
		list( $srt_url, $srt_site, $srt_secret ) = $srt_args;
		update_option( 'stock_relay_url', $srt_url );
		update_option( 'stock_relay_site', $srt_site );
		if ( false === get_option( 'stock_relay_secret', false ) ) {
			add_option( 'stock_relay_secret', $srt_secret, '', false );
		} else {
			update_option( 'stock_relay_secret', $srt_secret, false );
		}
		if ( class_exists( 'Stock_Relay_Status_Route' ) ) {
			Stock_Relay_Status_Route::forget(); // As a saved form does: the cached status was for other settings.
		}
		echo wp_json_encode( array( 'ok' => true ) ) . "\n";
		break;
	case 'settings':
		wp_cache_flush();
		echo wp_json_encode(
			array(
				'url'    => get_option( 'stock_relay_url', '' ),
				'site'   => get_option( 'stock_relay_site', '' ),
				'secret' => get_option( 'stock_relay_secret', '' ),
			)
		) . "\n";
		break;
	case 'product':
		list( $srt_sku, $srt_qty ) = $srt_args;
		$srt_id                    = wp_insert_post(
			array(
				'post_type'   => 'product',
				'post_status' => 'publish',
				'post_title'  => 'Browser test ' . $srt_sku,
			)
		);
		$srt_meta                  = array(
			'_sku'          => $srt_sku,
			'_manage_stock' => 'yes',
			'_stock'        => $srt_qty,
			'_stock_status' => 'instock',
			'_backorders'   => 'no',
		);
		foreach ( $srt_meta as $srt_key => $srt_value ) {
			update_post_meta( (int) $srt_id, $srt_key, $srt_value );
		}
		echo wp_json_encode( array( 'id' => (int) $srt_id ) ) . "\n";
		break;
	case 'woocommerce':
		if ( 'off' === ( $srt_args[0] ?? '' ) ) {
			update_option( 'srt_no_woocommerce', 1 );
		} else {
			delete_option( 'srt_no_woocommerce' );
		}
		echo wp_json_encode( array( 'ok' => true ) ) . "\n";
		break;
	default:
		fwrite( STDERR, "unknown command: $srt_command\n" );
		exit( 2 );
}
