<?php
/**
 * Plugin Name: Stock Relay test harness (tests only)
 * Description: One admin-ajax action that plays a shop request: it runs the WooCommerce operations it is
 * given (through the stand-ins), then the request ends normally, so the plugin's shutdown capture
 * and its after-response delivery run exactly as in production.
 *
 * @package StockRelay
 */

// phpcs:disable WordPress.Security.NonceVerification.Missing -- a test-only endpoint on a throwaway site.

add_action( 'wp_ajax_nopriv_srt_ops', 'srt_ops' );
add_action( 'wp_ajax_srt_ops', 'srt_ops' );

/** Run the operations in $_POST['ops'] (JSON list of [name, ...args]). */
function srt_ops(): void {
	$ops = json_decode( wp_unslash( (string) ( $_POST['ops'] ?? '[]' ) ), true );
	$out = array();
	foreach ( (array) $ops as $op ) {
		$name = array_shift( $op );
		switch ( $name ) {
			case 'set_stock': // wc_update_product_stock(id, qty, op): orders, bulk edit, admin order edits.
				$out[] = wc_update_product_stock( (int) $op[0], $op[1], $op[2] ?? 'set' );
				break;
			case 'crud': // set props + save(): REST, admin edit, quick edit, import.
				$product = wc_get_product( (int) $op[0] );
				foreach ( (array) $op[1] as $prop => $value ) {
					$product->{'set_' . $prop}( $value );
				}
				$out[] = $product->save();
				break;
			case 'admin_save': // the admin "Update" button saves twice (#55882).
				$product = wc_get_product( (int) $op[0] );
				foreach ( (array) $op[1] as $prop => $value ) {
					$product->{'set_' . $prop}( $value );
				}
				$product->save();
				$out[] = wc_get_product( (int) $op[0] )->save();
				break;
			case 'bulk_edit': // bulk_edit_save: set_stock with the unchanged qty before save(), then the bulk hook.
				$product = wc_get_product( (int) $op[0] );
				wc_update_product_stock( $product, $op[1] ?? $product->get_stock_quantity(), 'set', true );
				$product->save();
				do_action( 'woocommerce_product_bulk_edit_save', $product );
				$out[] = true;
				break;
			case 'import':
				$product = wc_get_product( (int) $op[0] );
				foreach ( (array) $op[1] as $prop => $value ) {
					$product->{'set_' . $prop}( $value );
				}
				$product->save();
				do_action( 'woocommerce_product_import_inserted_product_object', $product, array() );
				$out[] = true;
				break;
			case 'order':
				wc_reduce_stock_levels( new WC_Order( (int) $op[0], array_map( 'intval', (array) $op[1] ) ) );
				$out[] = true;
				break;
			case 'cancel_order':
				wc_increase_stock_levels( new WC_Order( (int) $op[0], array_map( 'intval', (array) $op[1] ) ) );
				$out[] = true;
				break;
			case 'refund':
				wc_restock_refunded_items( new WC_Order( (int) $op[0] ), array_map( 'intval', (array) $op[1] ) );
				$out[] = true;
				break;
			case 'trash':
				$out[] = (bool) wp_trash_post( (int) $op[0] );
				break;
			case 'untrash':
				$out[] = (bool) wp_untrash_post( (int) $op[0] );
				break;
			case 'delete':
				$out[] = wc_get_product( (int) $op[0] )->delete( true );
				break;
			case 'as_rest': // what WordPress defines for a REST API request (single or batch).
				if ( ! defined( 'REST_REQUEST' ) ) {
					define( 'REST_REQUEST', true );
				}
				break;
			case 'nothing':
				$out[] = true;
				break;
			case 'hold_drain': // no drain after this response: the test looks at the outbox as the request left it.
				add_action(
					'shutdown',
					static function (): void {
						remove_action( 'shutdown', array( Stock_Relay_Kick::class, 'after_response' ), PHP_INT_MAX );
					},
					21
				);
				$out[] = true;
				break;
			case 'slow_end': // a shutdown function that runs after every shutdown action and takes $op[0] ms.
				add_action(
					'shutdown',
					static function () use ( $op ): void {
						register_shutdown_function( 'usleep', 1000 * (int) $op[0] );
					},
					21
				);
				$out[] = true;
				break;
			case 'outer_buffer': // an output buffer that changes the bytes (as a page cache or minifier may), opened before any stock hook.
				ob_start(
					static function ( $buffer ) {
						return $buffer . "\n";
					}
				);
				$out[] = true;
				break;
			case 'big': // a large answer ($op[0] bytes of JSON string).
				$out[] = str_repeat( 'x', (int) $op[0] );
				break;
			case 'send_headers_now': // the headers leave before the response is done (a page that streams).
				header( 'X-Srt-Streamed: 1' );
				ob_flush();
				flush();
				$out[] = true;
				break;
			case 'count_queries': // queries made from shutdown priority 19 to the very end, written to $SRT_WORK/queries.
				add_action(
					'shutdown',
					static function (): void {
						$GLOBALS['srt_queries'] = $GLOBALS['wpdb']->num_queries;
						register_shutdown_function(
							static function (): void {
								file_put_contents( getenv( 'SRT_WORK' ) . '/queries', (string) ( $GLOBALS['wpdb']->num_queries - $GLOBALS['srt_queries'] ) );
							}
						);
					},
					19
				);
				$out[] = true;
				break;
		}
	}
	wp_send_json( array( 'ok' => true, 'out' => $out ) );
}

/**
 * A slow stock write on demand (option srt_slow_stock_ms): WooCommerce's before_set_stock hook sleeps, so
 * two requests adjusting the same key overlap inside the plugin's transaction instead of one after the other.
 */
function srt_slow_stock(): void {
	$ms = (int) get_option( 'srt_slow_stock_ms', 0 );
	if ( $ms > 0 ) {
		usleep( 1000 * $ms );
	}
}
add_action( 'woocommerce_product_before_set_stock', 'srt_slow_stock' );
add_action( 'woocommerce_variation_before_set_stock', 'srt_slow_stock' );
