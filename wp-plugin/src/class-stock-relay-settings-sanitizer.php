<?php
/**
 * Validates the settings form; no WordPress dependency but its translation function (__).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Each method takes raw input and returns [clean value, error message or ''].
 */
final class Stock_Relay_Settings_Sanitizer {

	/**
	 * The site id as typed: the form's HTML `pattern` and the server check are this one rule, so the browser never
	 * blocks what the server would accept (capitals are accepted and saved in small letters, as the relay has them).
	 */
	public const SITE_PATTERN = '[A-Za-z0-9\-]{1,64}';

	/**
	 * The relay's base URL: https (http only to a private or loopback host), no credentials, query, fragment or
	 * API path; trailing slash removed.
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
			return array( '', __( 'The relay URL must start with https:// (or http:// on a private network).', 'stock-relay' ) );
		}
		if ( isset( $parts['user'] ) || isset( $parts['pass'] ) || isset( $parts['query'] ) || isset( $parts['fragment'] ) ) {
			return array( '', __( 'The relay URL must not contain a user name, password, query or fragment.', 'stock-relay' ) );
		}
		if ( preg_match( '/[\s<>"\']/', $url ) ) {
			return array( '', __( 'The relay URL contains characters that are not allowed.', 'stock-relay' ) );
		}
		// The documented mistake: pasting an API address. The plugin adds /v1/sites/SITE/... itself.
		if ( preg_match( '#(^|/)v1(/|$)#i', (string) ( $parts['path'] ?? '' ) ) ) {
			return array( '', __( 'Enter the relay\'s base address (for example https://relay.example.com), without /v1/sites/...: the plugin adds that path itself.', 'stock-relay' ) );
		}
		// Over http the secret-signed requests and the shop's stock cross the network in clear: only where it stays private.
		if ( 'http' === strtolower( $parts['scheme'] ) && ! self::is_private_host( (string) $parts['host'] ) ) {
			return array( '', __( 'Use https:// for a relay on a public address: http:// is only for a relay on this machine or a private network (localhost, 10.x, 172.16-31.x, 192.168.x, fd00::/8, a .local, .internal, .lan or .home.arpa name, or a name without dots).', 'stock-relay' ) );
		}
		return array( rtrim( $url, '/' ), '' );
	}

	/**
	 * Whether a host is loopback or private by its own text (no DNS lookup: a save must not depend on the
	 * network, and a name can resolve differently later): private and loopback IP literals, localhost, names
	 * without a dot (a container or LAN name) and the private-use suffixes.
	 */
	public static function is_private_host( string $host ): bool {
		$host = strtolower( trim( $host, '[]' ) );
		if ( false !== filter_var( $host, FILTER_VALIDATE_IP ) ) {
			if ( in_array( $host, array( '::1' ), true ) || 0 === strpos( $host, '127.' ) ) {
				return true;
			}
			// Private (10/8, 172.16/12, 192.168/16, fc00::/7) and reserved (link-local, 0/8, ...) ranges: never routed publicly.
			return false === filter_var( $host, FILTER_VALIDATE_IP, FILTER_FLAG_NO_PRIV_RANGE | FILTER_FLAG_NO_RES_RANGE );
		}
		if ( false === strpos( $host, '.' ) ) {
			return true;
		}
		return (bool) preg_match( '/(^|\.)(localhost|local|internal|lan|home\.arpa)$/', $host );
	}

	/**
	 * The site id: 1 to 64 of a-z, 0-9 and '-' (capitals are taken as small letters).
	 *
	 * @return array{0: string, 1: string}
	 */
	public static function site_id( string $raw ): array {
		$site = trim( $raw );
		if ( ! preg_match( '/^' . self::SITE_PATTERN . '$/', $site ) ) {
			return array( '', __( 'The site id is 1 to 64 characters of a-z, 0-9 and "-" (capitals are saved as small letters), as in the relay configuration.', 'stock-relay' ) );
		}
		return array( strtolower( $site ), '' );
	}

	/**
	 * A new secret typed into the form. Empty means "keep the saved one" (it is never echoed back). Several
	 * secrets separated by spaces (the relay's value while it rotates: `whsec_OLD whsec_NEW`) are accepted when
	 * each is valid, and saved separated by one space; the plugin then signs with each.
	 *
	 * @return array{0: string|null, 1: string} null = unchanged.
	 */
	public static function secret( string $raw ): array {
		$secrets = Stock_Relay_Signer::secrets( $raw );
		if ( ! $secrets ) {
			return array( null, '' );
		}
		foreach ( $secrets as $index => $secret ) {
			try {
				Stock_Relay_Signer::key( $secret );
			} catch ( InvalidArgumentException $e ) {
				$which = count( $secrets ) > 1
					/* translators: %d: position of the secret in the pasted value (1, 2, ...) */
					? sprintf( __( 'Secret %d of the pasted value: ', 'stock-relay' ), $index + 1 )
					: '';
				return array( null, $which . $e->getMessage() . ' ' . __( 'Copy it from the relay (stock-relay keygen).', 'stock-relay' ) );
			}
		}
		return array( implode( ' ', $secrets ), '' );
	}
}
