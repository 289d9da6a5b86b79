<?php
/**
 * Plugin Name:          Stock Relay
 * Plugin URI:           https://github.com/stock-relay/stock-relay
 * Description:          Sends every WooCommerce stock change, signed, to your self-hosted Stock Relay, which keeps every marketplace in sync.
 * Version:              0.1.0
 * Requires at least:    6.1
 * Requires PHP:         7.4
 * Requires Plugins:     woocommerce
 * WC requires at least: 7.9
 * WC tested up to:      9.4
 * Author:               Stock Relay
 * License:              GPL-2.0-or-later
 * License URI:          https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:          stock-relay
 * Domain Path:          /languages
 *
 * @package StockRelay
 */

defined( 'ABSPATH' ) || exit;

if ( defined( 'STOCK_RELAY_VERSION' ) ) {
	return; // Loaded twice (a second copy of the plugin): keep the first.
}

define( 'STOCK_RELAY_VERSION', '0.1.0' );
define( 'STOCK_RELAY_FILE', __FILE__ );

require_once __DIR__ . '/src/stock-relay-functions.php';
require_once __DIR__ . '/src/class-stock-relay-plugin.php';
require_once __DIR__ . '/src/class-stock-relay-capture.php';
// The other classes load when first used: a shopper's request compiles only what it runs.
spl_autoload_register(
	static function ( string $class_name ): void {
		if ( 0 === strpos( $class_name, 'Stock_Relay_' ) ) {
			$file = __DIR__ . '/src/class-' . str_replace( '_', '-', strtolower( $class_name ) ) . '.php';
			if ( is_file( $file ) ) {
				require_once $file;
			}
		}
	}
);

register_activation_hook( __FILE__, array( 'Stock_Relay_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Stock_Relay_Plugin', 'deactivate' ) );

add_action(
	'before_woocommerce_init',
	static function (): void {
		if ( class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
			\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', __FILE__, true );
		}
	}
);

add_action( 'plugins_loaded', array( 'Stock_Relay_Plugin', 'boot' ) );

// Translations: WordPress's languages folder first (wp-content/languages/plugins/stock-relay-{locale}.mo, from
// translate.wordpress.org or a translation plugin), then this plugin's languages/ folder (Domain Path), where a
// site that installed the zip can put its own. On init: loading a text domain earlier is an error in WP 6.7+.
add_action(
	'init',
	static function (): void {
		load_plugin_textdomain( 'stock-relay', false, dirname( plugin_basename( __FILE__ ) ) . '/languages' );
	}
);
