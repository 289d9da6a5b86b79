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
