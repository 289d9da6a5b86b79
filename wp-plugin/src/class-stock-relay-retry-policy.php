<?php
/**
 * What to do with the relay's answer, and when to try again (docs/wire-protocol.md §2); no WordPress dependency
 * but its translation function (__).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * The outbox never gives up and never disables itself: every failure that resending could fix is
 * retried with exponential backoff capped at 15 minutes, forever.
 */
final class Stock_Relay_Retry_Policy {

	public const BASE_DELAY = 5;
	public const MAX_DELAY  = 900;

	public const ACK    = 'ack';    // 2xx: the relay owns the events; remove them.
	public const SPLIT  = 'split';  // 413 or batch_too_large: send fewer events per request.
	public const REJECT = 'reject'; // 400/415: resending the same bytes cannot help; keep and show.
	public const RETRY  = 'retry';  // Everything else: keep, back off, try again.
	public const RENEW  = 'renew';  // 409 webhook_id_reused: the id is spent on other content; resend under a new one.

	/**
	 * Seconds to wait before the next try.
	 *
	 * @param int      $attempts    Failed tries so far (1 after the first failure).
	 * @param int|null $retry_after The relay's Retry-After, if it sent one.
	 * @param float    $jitter      A random number in [0, 1).
	 */
	public static function delay( int $attempts, ?int $retry_after, float $jitter ): int {
		$ceiling = min( self::MAX_DELAY, self::BASE_DELAY * ( 2 ** min( max( $attempts, 1 ) - 1, 20 ) ) );
		$delay   = (int) ceil( $ceiling / 2 + $jitter * $ceiling / 2 );
		if ( null !== $retry_after && $retry_after > 0 ) {
			$delay = max( $delay, min( $retry_after, self::MAX_DELAY ) );
		}
		return max( 1, min( self::MAX_DELAY, $delay ) );
	}

	/**
	 * The action for an HTTP status (0 = no answer: timeout, refused connection, DNS).
	 *
	 * @param int    $status HTTP status.
	 * @param string $code   The relay's error code, if any.
	 */
	public static function classify( int $status, string $code = '' ): string {
		if ( $status >= 200 && $status < 300 ) {
			return self::ACK;
		}
		if ( 413 === $status || 'batch_too_large' === $code ) {
			return self::SPLIT;
		}
		if ( 400 === $status || 415 === $status ) {
			return self::REJECT;
		}
		if ( 409 === $status && 'webhook_id_reused' === $code ) {
			return self::RENEW;
		}
		return self::RETRY;
	}

	/**
	 * The rows a 202 answer refused, with the reason (docs/wire-protocol.md: a refusal is final).
	 *
	 * @param array<string, mixed> $body      The decoded 202 body.
	 * @param array<string, int>   $row_by_id Event id => outbox row id, for the batch that was sent.
	 * @return array<int, string> Row id => "code: message".
	 */
	public static function rejected_rows( array $body, array $row_by_id ): array {
		$out = array();
		foreach ( (array) ( $body['rejected'] ?? array() ) as $item ) {
			if ( ! is_array( $item ) || ! isset( $item['id'] ) || ! is_string( $item['id'] ) || ! isset( $row_by_id[ $item['id'] ] ) ) {
				continue;
			}
			$code                             = is_string( $item['code'] ?? null ) ? $item['code'] : 'rejected';
			$text                             = is_string( $item['message'] ?? null ) ? $item['message'] : '';
			$out[ $row_by_id[ $item['id'] ] ] = self::clip( $code . ( '' !== $text ? ': ' . $text : '' ) );
		}
		return $out;
	}

	/** At most 300 characters of text from the relay or the transport, for storage and display. */
	private static function clip( string $text ): string {
		return strlen( $text ) > 300 ? substr( $text, 0, 297 ) . '...' : $text;
	}

	/**
	 * A sentence a shop owner can act on, for the status panel and the page's notices.
	 *
	 * @param int    $status  HTTP status (0 = no answer).
	 * @param string $code    The relay's error code.
	 * @param string $message The relay's message or the transport error.
	 * @param bool   $queued  True for the outbox's deliveries (their changes are kept and resent); false for a
	 *                        one-off request from the page (ping, status, replay), which nothing resends.
	 */
	public static function explain( int $status, string $code, string $message, bool $queued = true ): string {
		$message = self::clip( $message );
		$after   = ' ' . ( $queued
			? __( 'Changes are kept here and resent.', 'stock-relay' )
			: __( 'Nothing was done: try again when the relay answers.', 'stock-relay' ) );
		switch ( $code ) {
			case 'signature_invalid':
			case 'signature_missing':
				return __( 'The relay did not accept the signature: check that the secret here matches the relay\'s site secret.', 'stock-relay' );
			case 'timestamp_out_of_tolerance':
				return __( 'The relay says this server\'s clock is more than 5 minutes off: fix the server time (NTP).', 'stock-relay' );
			case 'unknown_site':
				return __( 'The relay does not know this site id: check the site id here and in the relay config.', 'stock-relay' );
			case 'storage_unavailable':
				return __( 'The relay cannot write to its database right now (disk full?).', 'stock-relay' ) . $after;
			case 'shutting_down':
				return __( 'The relay is restarting.', 'stock-relay' ) . $after;
			case 'rate_limited':
				return __( 'The relay asked to slow down.', 'stock-relay' ) . $after;
			case 'malformed_json':
			case 'type_mismatch':
			case 'missing_field':
				return $queued
					/* translators: %s: the relay's error code */
					? sprintf( __( 'The relay could not read a batch (%s); it is kept below as refused. Update the plugin and the relay to matching versions.', 'stock-relay' ), $code )
					/* translators: %s: the relay's error code */
					: sprintf( __( 'The relay could not read the request (%s). Update the plugin and the relay to matching versions.', 'stock-relay' ), $code );
			case 'unsupported_media_type':
				return __( 'The relay refused the content type of a batch; it is kept below as refused. Check that no proxy rewrites the requests.', 'stock-relay' );
		}
		if ( 413 === $status || 'batch_too_large' === $code || 'body_too_large' === $code ) {
			return __( 'The relay said a batch was too large: batches are being split and resent.', 'stock-relay' );
		}
		if ( 0 === $status ) {
			return $queued
				/* translators: %s: the transport error, such as "cURL error 7: Failed to connect" */
				? sprintf( __( 'The relay could not be reached (%s). Changes are kept here and resent when it is back.', 'stock-relay' ), $message )
				/* translators: %s: the transport error, such as "cURL error 7: Failed to connect" */
				: sprintf( __( 'The relay could not be reached (%s).', 'stock-relay' ), $message ) . $after;
		}
		if ( in_array( $status, array( 301, 302, 307, 308 ), true ) ) {
			// The shipped deploy/nginx.conf answers http:// with a redirect; a signed POST is never followed (the
			// body and signature would not survive it), so only the address can fix this.
			/* translators: %d: HTTP status such as 301 */
			return sprintf( __( 'The relay answered %d, a redirect: the relay\'s proxy redirects to https. Use the https:// address as the relay URL.', 'stock-relay' ), $status ) . $after;
		}
		if ( in_array( $status, array( 502, 503, 504 ), true ) && '' === $code ) {
			// A relay error always carries its own code; a bare 502/503/504 comes from the proxy in front of it.
			/* translators: %d: HTTP status such as 502 */
			return sprintf( __( 'The proxy in front of the relay answered %d: the proxy answered but the relay behind it is down (or the proxy cannot reach it). Start the relay, or check the proxy\'s upstream address.', 'stock-relay' ), $status ) . $after;
		}
		if ( '' === $message ) {
			/* translators: %d: HTTP status */
			return sprintf( __( 'The relay answered %d.', 'stock-relay' ), $status ) . $after;
		}
		/* translators: 1: HTTP status, 2: the relay's message (in English, as the relay sends it) */
		return sprintf( __( 'The relay answered %1$d: %2$s.', 'stock-relay' ), $status, $message ) . $after;
	}
}
