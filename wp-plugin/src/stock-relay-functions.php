<?php
/**
 * Plain functions shared by the plugin's classes (and the unit tests, outside WordPress).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

if ( ! function_exists( 'stock_relay_json' ) ) {
	/**
	 * JSON with unescaped unicode and slashes (the relay verifies the exact bytes; any valid JSON works).
	 *
	 * @param mixed $value Value.
	 * @return string|false
	 */
	function stock_relay_json( $value ) {
		return json_encode( $value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION ); // phpcs:ignore WordPress.WP.AlternativeFunctions.json_encode_json_encode -- used outside WordPress in tests too.
	}
}
