<?php
/**
 * Removes everything the plugin stored, on every site of a network: its tables, options, transients, scheduled
 * actions and user meta (Stock_Relay_Uninstall).
 *
 * @package StockRelay
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

require_once __DIR__ . '/src/class-stock-relay-outbox.php';
require_once __DIR__ . '/src/class-stock-relay-uninstall.php';

Stock_Relay_Uninstall::run();
