<?php
/**
 * Unit tests load the plain classes only: signer, payload, status view, retry policy, settings
 * sanitizer, state (its pure part), snapshot.
 *
 * @package StockRelay
 */

declare(strict_types=1);

$stock_relay_src = dirname( __DIR__ ) . '/src/';
foreach ( array( 'signer', 'payload', 'status-view', 'retry-policy', 'settings-sanitizer', 'state', 'snapshot' ) as $stock_relay_class ) {
	require_once $stock_relay_src . 'class-stock-relay-' . $stock_relay_class . '.php';
}

// The status view translates its words; outside WordPress these are WordPress's own fallbacks (no translation loaded).
if ( ! function_exists( '__' ) ) {
	function __( string $text, string $domain = 'default' ): string { // phpcs:ignore
		return $text;
	}
}
if ( ! function_exists( '_n' ) ) {
	function _n( string $single, string $plural, int $number, string $domain = 'default' ): string { // phpcs:ignore
		return 1 === $number ? $single : $plural;
	}
}
