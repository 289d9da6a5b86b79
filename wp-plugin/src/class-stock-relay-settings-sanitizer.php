<?php
/**
 * Validates the settings form; no WordPress dependency.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * Each method takes raw input and returns [clean value, error message or ''].
 */
final class Stock_Relay_Settings_Sanitizer {

	/**
	 * The relay's base URL: http(s), no credentials, query or fragment; trailing slash removed.
	 *
	 * @return array{0: string, 1: string}
	 */
	public static function relay_url( string $raw ): array {
		$url = trim( $raw );
		if ( '' === $url ) {
			return array( '', '' );
		}
		$parts = parse_url( $url ); // phpcs:ignore WordPress.WP.AlternativeFunctions.parse_url_parse_url -- plain class, also used outside WordPress.
		if ( false === $parts || ! isset( $parts['scheme'], $parts['host'] ) || ! in_array( strtolower( $parts['scheme'] ), array( 'http', 'https' ), true ) ) {
			return array( '', 'The relay URL must start with https:// (or http:// on a private network).' );
		}
		if ( isset( $parts['user'] ) || isset( $parts['pass'] ) || isset( $parts['query'] ) || isset( $parts['fragment'] ) ) {
			return array( '', 'The relay URL must not contain a user name, password, query or fragment.' );
		}
		if ( preg_match( '/[\s<>"\']/', $url ) ) {
			return array( '', 'The relay URL contains characters that are not allowed.' );
		}
		return array( rtrim( $url, '/' ), '' );
	}

	/**
	 * The site id: 1 to 64 of a-z, 0-9 and '-'.
	 *
	 * @return array{0: string, 1: string}
	 */
	public static function site_id( string $raw ): array {
		$site = strtolower( trim( $raw ) );
		if ( ! preg_match( '/^[a-z0-9-]{1,64}$/', $site ) ) {
			return array( '', 'The site id is 1 to 64 characters of a-z, 0-9 and "-".' );
		}
		return array( $site, '' );
	}

	/**
	 * A new secret typed into the form. Empty means "keep the saved one" (it is never echoed back).
	 *
	 * @return array{0: string|null, 1: string} null = unchanged.
	 */
	public static function secret( string $raw ): array {
		$secret = trim( $raw );
		if ( '' === $secret ) {
			return array( null, '' );
		}
		try {
			Stock_Relay_Signer::key( $secret );
		} catch ( InvalidArgumentException $e ) {
			return array( null, $e->getMessage() . ' Copy it from the relay (stock-relay keygen).' );
		}
		return array( $secret, '' );
	}
}
