<?php
/**
 * Unit tests load the plain classes only: signer, payload, status view, retry policy, settings
 * sanitizer, state (its pure part), snapshot.
 *
 * @package StockRelay
 */

declare(strict_types=1);

// Every plugin file exits unless WordPress loaded it (ABSPATH); the unit tests stand in for WordPress here.
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}

$stock_relay_src = dirname( __DIR__ ) . '/src/';
foreach ( array( 'signer', 'payload', 'status-view', 'retry-policy', 'settings-sanitizer', 'state', 'snapshot', 'uninstall' ) as $stock_relay_class ) {
	require_once $stock_relay_src . 'class-stock-relay-' . $stock_relay_class . '.php';
}

// The plain classes translate their words; outside WordPress these are WordPress's own fallbacks (no translation
// loaded), unless a test sets $GLOBALS['stock_relay_test_translate'] (a pseudo-locale: I18nTest checks that no
// English is left untranslated). The escaping functions are WordPress's in effect (htmlspecialchars), for the
// classes that print HTML (the status panel and its pause controls).
if ( ! function_exists( '__' ) ) {
	function __( string $text, string $domain = 'default' ): string { // phpcs:ignore
		$translate = $GLOBALS['stock_relay_test_translate'] ?? null;
		return is_callable( $translate ) ? $translate( $text, $domain ) : $text;
	}
}
if ( ! function_exists( '_n' ) ) {
	function _n( string $single, string $plural, int $number, string $domain = 'default' ): string { // phpcs:ignore
		return __( 1 === $number ? $single : $plural, $domain );
	}
}
if ( ! function_exists( 'esc_html__' ) ) {
	function esc_html__( string $text, string $domain = 'default' ): string { // phpcs:ignore
		return htmlspecialchars( __( $text, $domain ), ENT_QUOTES );
	}
}
if ( ! function_exists( 'esc_html' ) ) {
	function esc_html( string $text ): string { // phpcs:ignore
		return htmlspecialchars( $text, ENT_QUOTES );
	}
}
if ( ! function_exists( 'esc_attr' ) ) {
	function esc_attr( string $text ): string { // phpcs:ignore
		return htmlspecialchars( $text, ENT_QUOTES );
	}
}
if ( ! function_exists( 'esc_attr__' ) ) {
	function esc_attr__( string $text, string $domain = 'default' ): string { // phpcs:ignore
		return htmlspecialchars( __( $text, $domain ), ENT_QUOTES );
	}
}
