<?php
/**
 * Installs the throwaway WordPress (wp_install) and activates Stock Relay through activate_plugin(),
 * which runs the plugin's real activation hook (tables via dbDelta). Run once per test site.
 *
 * @package StockRelay
 */

define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
require getenv( 'SRT_WP_CONFIG' );
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
$result = wp_install( 'Stock Relay test shop', 'admin', 'admin@example.com', false, '', 'admin-password' );
if ( is_wp_error( $result ) ) {
	fwrite( STDERR, $result->get_error_message() . "\n" );
	exit( 1 );
}
update_option( 'woocommerce_manage_stock', 'yes' );
update_option( 'permalink_structure', '/%postname%/' ); // Pretty permalinks, so /wp-json/ routes resolve as on a real shop.
$activated = activate_plugin( 'stock-relay/stock-relay.php' );
if ( is_wp_error( $activated ) ) {
	fwrite( STDERR, 'activation failed: ' . $activated->get_error_message() . "\n" );
	exit( 1 );
}
echo "installed and activated\n";
// WooCommerce's installer gives administrators and shop managers this capability; the stand-ins do the same.
get_role( 'administrator' )->add_cap( 'manage_woocommerce' );
