<?php
/**
 * Router for PHP's built-in web server in the test WordPress: the docroot is WordPress's core (Debian's tree),
 * but wp-content (the plugin, with its assets/admin.js) lives in the test's work folder, which the built-in server
 * would never serve. Static files under /wp-content/ are served from there; everything else as without a router.
 *
 * @package StockRelay
 */

$srt_path = (string) parse_url( (string) $_SERVER['REQUEST_URI'], PHP_URL_PATH );
if ( 0 === strpos( $srt_path, '/wp-content/' ) && ! preg_match( '/\.php$/i', $srt_path ) ) {
	$srt_root = realpath( (string) getenv( 'SRT_WORK' ) . '/wp-content' );
	$srt_file = realpath( (string) getenv( 'SRT_WORK' ) . rawurldecode( $srt_path ) );
	if ( false !== $srt_root && false !== $srt_file && 0 === strpos( $srt_file, $srt_root . '/' ) && is_file( $srt_file ) ) {
		$srt_types = array( 'js' => 'text/javascript', 'css' => 'text/css', 'png' => 'image/png', 'svg' => 'image/svg+xml', 'json' => 'application/json' );
		header( 'Content-Type: ' . ( $srt_types[ strtolower( pathinfo( $srt_file, PATHINFO_EXTENSION ) ) ] ?? 'application/octet-stream' ) );
		readfile( $srt_file );
		return true;
	}
}
return false;
