<?php
/**
 * Removes everything the plugin stored: its tables, options, transients and scheduled actions.
 *
 * @package StockRelay
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

require_once __DIR__ . '/src/class-stock-relay-outbox.php';

Stock_Relay_Outbox::uninstall();

global $wpdb;
foreach ( array( 'stock_relay_', '_transient_stock_relay_', '_transient_timeout_stock_relay_' ) as $stock_relay_prefix ) {
	$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( $stock_relay_prefix ) . '%' ) );
}
delete_metadata( 'user', 0, 'stock_relay_oversold_dismissed', '', true );
wp_cache_flush();
foreach ( array( 'stock_relay_drain', 'stock_relay_watchdog', 'stock_relay_resend_chunk' ) as $stock_relay_hook ) {
	wp_clear_scheduled_hook( $stock_relay_hook );
	if ( function_exists( 'as_unschedule_all_actions' ) ) {
		as_unschedule_all_actions( $stock_relay_hook );
	}
}
