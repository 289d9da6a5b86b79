<?php
/**
 * Standard Webhooks v1 signing (docs/wire-protocol.md §1), with no WordPress dependency but its translation
 * function (esc_html__: the message of a refused secret is shown on the settings page).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Signs and verifies requests: HMAC-SHA256 over "{id}.{timestamp}.{raw body}" with the
 * base64-decoded part of a whsec_ secret.
 */
final class Stock_Relay_Signer {

	public const TOLERANCE = 300;

	/**
	 * The HMAC key of a whsec_ secret.
	 *
	 * @throws InvalidArgumentException When the secret is malformed (the message never repeats it).
	 */
	public static function key( string $secret ): string {
		if ( 0 !== strpos( $secret, 'whsec_' ) ) {
			throw new InvalidArgumentException( esc_html__( 'The secret must start with whsec_.', 'stock-relay' ) );
		}
		$key = base64_decode( substr( $secret, 6 ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- the secret format is base64.
		if ( false === $key || strlen( $key ) < 24 ) {
			throw new InvalidArgumentException( esc_html__( 'The secret is not valid: after whsec_ it must be base64 of at least 24 bytes.', 'stock-relay' ) );
		}
		return $key;
	}

	/** The webhook-signature value for one secret. */
	public static function sign( string $secret, string $msg_id, int $timestamp, string $body ): string {
		$mac = hash_hmac( 'sha256', $msg_id . '.' . $timestamp . '.' . $body, self::key( $secret ), true );
		return 'v1,' . base64_encode( $mac ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- the wire format is base64.
	}

	/**
	 * The secrets of a saved value: one, or several separated by spaces while the relay's secret rotates
	 * (`whsec_OLD whsec_NEW`, as the relay's own reference holds them).
	 *
	 * @return string[]
	 */
	public static function secrets( string $value ): array {
		$parts = preg_split( '/\s+/', trim( $value ) );
		return array_values( array_filter( false === $parts ? array() : $parts, 'strlen' ) );
	}

	/**
	 * The three Standard Webhooks headers for an outgoing request, signed with each secret of the value (the
	 * relay accepts a request when any listed signature matches any of its active secrets).
	 *
	 * @return array<string, string>
	 */
	public static function headers( string $secret, string $msg_id, int $timestamp, string $body ): array {
		$signatures = array();
		foreach ( self::secrets( $secret ) as $one ) {
			$signatures[] = self::sign( $one, $msg_id, $timestamp, $body );
		}
		return array(
			'webhook-id'        => $msg_id,
			'webhook-timestamp' => (string) $timestamp,
			'webhook-signature' => $signatures ? implode( ' ', $signatures ) : self::sign( $secret, $msg_id, $timestamp, $body ),
		);
	}

	/**
	 * Verify a signed request against any of the active secrets.
	 *
	 * @param string[] $secrets Active secrets.
	 * @return string 'valid', 'invalid' or 'expired'.
	 */
	public static function verify( array $secrets, string $msg_id, string $timestamp, string $body, string $signature_header, int $now ): string {
		if ( '' === $msg_id || ! ctype_digit( $timestamp ) || '' === $signature_header ) {
			return 'invalid';
		}
		if ( abs( $now - (int) $timestamp ) > self::TOLERANCE ) {
			return 'expired';
		}
		$matched = false;
		foreach ( $secrets as $secret ) {
			$expected = self::sign( $secret, $msg_id, (int) $timestamp, $body );
			foreach ( explode( ' ', $signature_header ) as $candidate ) {
				if ( 0 === strpos( $candidate, 'v1,' ) ) {
					$matched = hash_equals( $expected, $candidate ) || $matched;
				}
			}
		}
		return $matched ? 'valid' : 'invalid';
	}

	/** A new message id: msg_ + 26 characters, sortable by time. */
	public static function new_id( string $prefix = 'msg_' ): string {
		$ms = (int) floor( microtime( true ) * 1000 );
		return $prefix . str_pad( base_convert( (string) $ms, 10, 36 ), 10, '0', STR_PAD_LEFT ) . bin2hex( random_bytes( 8 ) );
	}
}
