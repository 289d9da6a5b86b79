<?php
/**
 * Plugin Name: Offline test site (browser stage only)
 * Description: The test WordPress may not call out (WP_HTTP_BLOCK_EXTERNAL), so each of core's update checks fails
 * and logs a PHP warning ("An unexpected error occurred. Something may be wrong with WordPress.org ..."). The browser
 * stage fails on any PHP warning in debug.log, so the checks are turned off here, as on any site that may not call
 * out; what remains in debug.log is what the pages themselves cause. Copied into mu-plugins by tests/browser/conftest.py.
 *
 * @package StockRelay
 */

foreach ( array( 'admin_init' => array( '_maybe_update_core', '_maybe_update_plugins', '_maybe_update_themes' ) ) as $srt_hook => $srt_callbacks ) {
	foreach ( $srt_callbacks as $srt_callback ) {
		remove_action( $srt_hook, $srt_callback );
	}
}
foreach ( array( 'load-plugins.php', 'load-update.php', 'load-update-core.php', 'wp_update_plugins' ) as $srt_hook ) {
	remove_action( $srt_hook, 'wp_update_plugins' );
}
foreach ( array( 'load-themes.php', 'load-update.php', 'load-update-core.php', 'wp_update_themes' ) as $srt_hook ) {
	remove_action( $srt_hook, 'wp_update_themes' );
}
remove_action( 'wp_version_check', 'wp_version_check' );
remove_action( 'wp_maybe_auto_update', 'wp_maybe_auto_update' );
