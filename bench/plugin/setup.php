<?php
/**
 * bench/plugin_latency.py helper: point Stock Relay at the bench's receiver and make bench products.
 * Usage: php setup.php /path/to/wp-load.php RECEIVER_URL SECRET COUNT  → prints JSON product ids.
 *
 * @package StockRelay
 */

$_SERVER['HTTP_HOST'] = '127.0.0.1';
require $argv[1];
update_option( 'stock_relay_url', $argv[2] );
update_option( 'stock_relay_site', 'bench' );
update_option( 'stock_relay_secret', $argv[3], false );
delete_option( 'stock_relay_delivery' );
update_option( 'stock_relay_due', 0, true );
global $wpdb;
$wpdb->query( "DELETE FROM {$wpdb->prefix}stock_relay_outbox" );
$ids = array();
for ( $i = 0; $i < (int) $argv[4]; $i++ ) {
	$sku = 'BENCH-' . $i;
	$id  = wc_get_product_id_by_sku( $sku );
	if ( ! $id ) {
		$p = new WC_Product_Simple();
		$p->set_name( $sku );
		$p->set_sku( $sku );
		$p->set_manage_stock( true );
		$p->set_stock_quantity( 1000 );
		$id = $p->save();
	}
	$ids[] = $id;
}
echo wp_json_encode( $ids ), "\n";
