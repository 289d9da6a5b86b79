<?php
/**
 * bench/snapshot.py helper: configure Stock Relay (site id and secret) and insert products with plain
 * SQL, the way WooCommerce stores them (posts + _sku, _manage_stock, _stock, _stock_status, _backorders).
 * Usage: php snapshot-setup.php SITE SECRET COUNT  (SRT_WP_CONFIG in the environment) → prints JSON.
 *
 * Of every 25 posts: 20 simple products, one variable parent and 4 variations (two use the parent's
 * stock, two their own); every 10th simple product has a version row, every 50th is in the trash.
 *
 * @package StockRelay
 */

$_SERVER['HTTP_HOST'] = '127.0.0.1';
require getenv( 'SRT_WP_CONFIG' );
update_option( 'stock_relay_site', $argv[1] );
update_option( 'stock_relay_secret', $argv[2], false );
global $wpdb;
$count    = (int) $argv[3];
$next     = (int) $wpdb->get_var( "SELECT COALESCE(MAX(ID), 0) + 1 FROM {$wpdb->posts}" );
$now      = gmdate( 'Y-m-d H:i:s' );
$clock    = (int) floor( microtime( true ) * 1000000 );
$posts    = array();
$meta     = array();
$versions = array();
$parent   = 0;
$flush    = static function () use ( &$posts, &$meta, &$versions, $wpdb ): void {
	if ( $posts ) {
		$wpdb->query( "INSERT INTO {$wpdb->posts} (ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, post_parent, post_type) VALUES " . implode( ',', $posts ) );
		$wpdb->query( "INSERT INTO {$wpdb->postmeta} (post_id, meta_key, meta_value) VALUES " . implode( ',', $meta ) );
	}
	if ( $versions ) {
		$wpdb->query( "INSERT INTO {$wpdb->prefix}stock_relay_versions (product_id, version, last_hash) VALUES " . implode( ',', $versions ) );
	}
	$posts    = array();
	$meta     = array();
	$versions = array();
};
$t0 = microtime( true );
for ( $i = 0; $i < $count; $i++ ) {
	$id   = $next + $i;
	$slot = $i % 25;
	$type = 'product';
	$par  = 0;
	$own  = 'yes';
	if ( 20 === $slot ) {
		$parent = $id;
	} elseif ( $slot > 20 ) {
		$type = 'product_variation';
		$par  = $parent;
		$own  = $slot <= 22 ? 'no' : 'yes';
	}
	$status  = ( 'product' === $type && 0 === $i % 50 ) ? 'trash' : 'publish';
	$sku     = 'SNAP-' . $i;
	$posts[] = $wpdb->prepare( "(%d, 1, %s, %s, '', %s, '', %s, %s, '', '', %s, %s, '', %d, %s)", $id, $now, $now, $sku, $status, strtolower( $sku ), $now, $now, $par, $type );
	foreach ( array( '_sku' => $sku, '_manage_stock' => $own, '_stock' => 'yes' === $own ? (string) ( $i % 100 ) : '', '_stock_status' => 'instock', '_backorders' => 'no' ) as $k => $v ) {
		$meta[] = $wpdb->prepare( '(%d, %s, %s)', $id, $k, $v );
	}
	if ( 'product' === $type && 0 === $i % 10 ) {
		$versions[] = $wpdb->prepare( "(%d, %d, '')", $id, $clock + $i );
	}
	if ( count( $posts ) >= 1000 ) {
		$flush();
	}
}
$flush();
echo wp_json_encode(
	array(
		'first_id'       => $next,
		'last_id'        => $next + $count - 1,
		'insert_seconds' => round( microtime( true ) - $t0, 2 ),
	)
), "\n";
