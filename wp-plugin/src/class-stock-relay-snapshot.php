<?php
/**
 * The `snapshot.page` request and answer (docs/wire-protocol.md §3), with no WordPress dependency: checking a
 * request, and building a page from rows the glue layer read.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Pure logic of the signed snapshot route; Stock_Relay_Snapshot_Route does the WordPress part.
 */
final class Stock_Relay_Snapshot {

	public const TYPE          = 'snapshot.page';
	public const MAX_LIMIT     = 500;
	public const DEFAULT_LIMIT = 500;
	public const MAX_BYTES     = 65536;

	/**
	 * The checks that come before anything else: a site id and secret are configured, the body is
	 * within 64 KiB, and the Standard Webhooks signature is valid for the site's secret.
	 *
	 * @param string                $site      The configured site id ('' when not set).
	 * @param string                $secret    The configured secret ('' when not set; two during a rotation).
	 * @param array<string, string> $headers   webhook-id, webhook-timestamp, webhook-signature ('' when absent).
	 * @param string                $body      The raw request body, as signed.
	 * @param int                   $now       Unix time (the timestamp's tolerance is measured from it).
	 * @param int                   $max_bytes The route's body limit (64 KiB unless it says otherwise).
	 * @return array{status: int, code: string, message: string}|null Null when the request is authentic.
	 */
	public static function authenticate( string $site, string $secret, array $headers, string $body, int $now, int $max_bytes = self::MAX_BYTES ): ?array {
		if ( '' === $site || '' === $secret ) {
			return self::error( 404, 'unknown_site', 'This shop has no Stock Relay site id and secret configured yet.' );
		}
		if ( strlen( $body ) > $max_bytes ) {
			return self::error( 413, 'body_too_large', 'The request body may be at most ' . intdiv( $max_bytes, 1024 ) . ' KiB.' );
		}
		$id        = (string) ( $headers['webhook-id'] ?? '' );
		$timestamp = (string) ( $headers['webhook-timestamp'] ?? '' );
		$signature = (string) ( $headers['webhook-signature'] ?? '' );
		if ( '' === $id || '' === $timestamp || '' === $signature ) {
			return self::error( 401, 'signature_missing', 'The request lacks the webhook-id, webhook-timestamp or webhook-signature header.' );
		}
		try {
			$result = Stock_Relay_Signer::verify( Stock_Relay_Signer::secrets( $secret ), $id, $timestamp, $body, $signature, $now );
		} catch ( InvalidArgumentException $e ) {
			// The saved secret is not a valid whsec_ secret: as good as none (its text is never repeated).
			return self::error( 404, 'unknown_site', 'The Stock Relay secret saved in this shop is not valid; save the one from the relay again.' );
		}
		if ( 'expired' === $result ) {
			return self::error( 401, 'timestamp_out_of_tolerance', 'The webhook-timestamp is more than 300 seconds away from the shop\'s clock.' );
		}
		if ( 'valid' !== $result ) {
			return self::error( 401, 'signature_invalid', 'The signature does not match this shop\'s Stock Relay secret.' );
		}
		return null;
	}

	/**
	 * The envelope every signed request to the plugin shares, checked after its signature: a JSON media
	 * type, an object body, and its `type` and `site` (strings, this route's and this shop's).
	 *
	 * @param string $content_type The Content-Type header.
	 * @param string $body         The raw body.
	 * @param string $site         This shop's site id.
	 * @param string $type         The body type the route takes, e.g. snapshot.page.
	 * @return array{0: array<string, mixed>|null, 1: array{status: int, code: string, message: string}|null} The body's fields, or the error.
	 */
	public static function envelope( string $content_type, string $body, string $site, string $type ): array {
		$media = strtolower( trim( explode( ';', $content_type )[0] ) );
		if ( 'application/json' !== $media ) {
			return array( null, self::error( 415, 'unsupported_media_type', "Send the {$type} request as application/json." ) );
		}
		$doc = json_decode( $body, false );
		if ( ! $doc instanceof stdClass ) {
			return array( null, self::error( 400, 'malformed_json', 'The body must be a JSON object.' ) );
		}
		$doc = get_object_vars( $doc );
		foreach ( array( 'type', 'site' ) as $field ) {
			if ( isset( $doc[ $field ] ) && ! is_string( $doc[ $field ] ) ) {
				return array( null, self::error( 400, 'malformed_json', "The field {$field} must be a string." ) );
			}
		}
		if ( ( $doc['type'] ?? null ) !== $type ) {
			return array( null, self::error( 400, 'type_mismatch', "This route takes only type {$type}." ) );
		}
		if ( ( $doc['site'] ?? null ) !== $site ) {
			return array( null, self::error( 400, 'type_mismatch', 'The site in the body is not this shop\'s site id.' ) );
		}
		return array( $doc, null );
	}

	/**
	 * Check the media type and the body of a request whose signature was already verified.
	 *
	 * @param string $content_type The Content-Type header ('' when absent).
	 * @param string $body         The raw body.
	 * @param string $site         This shop's site id.
	 * @return array{after_id: int, limit: int, modified_after: ?int}|array{status: int, code: string, message: string}
	 *         The parameters (modified_after in Unix microseconds), or an error (it has a `status` key).
	 */
	public static function parse_request( string $content_type, string $body, string $site ): array {
		list( $doc, $error ) = self::envelope( $content_type, $body, $site, self::TYPE );
		if ( null !== $error ) {
			return $error;
		}
		$after_id = $doc['after_id'] ?? 0;
		if ( ! is_int( $after_id ) || $after_id < 0 ) {
			return self::error( 400, 'malformed_json', 'The field after_id must be an integer >= 0.' );
		}
		$limit = $doc['limit'] ?? self::DEFAULT_LIMIT;
		if ( ! is_int( $limit ) || $limit < 1 ) {
			return self::error( 400, 'malformed_json', 'The field limit must be an integer from 1 to 500.' );
		}
		if ( $limit > self::MAX_LIMIT ) {
			return self::error( 400, 'batch_too_large', 'The field limit may be at most 500.' );
		}
		$modified_after = null;
		if ( isset( $doc['modified_after'] ) ) {
			$modified_after = is_string( $doc['modified_after'] ) ? self::parse_time( $doc['modified_after'] ) : null;
			if ( null === $modified_after ) {
				return self::error( 400, 'malformed_json', 'The field modified_after must be an RFC 3339 UTC timestamp such as 2026-12-02T03:00:00Z.' );
			}
		}
		return array(
			'after_id'       => $after_id,
			'limit'          => $limit,
			'modified_after' => $modified_after,
		);
	}

	/**
	 * An RFC 3339 timestamp (Z or a numeric offset, optional fraction) as Unix microseconds.
	 *
	 * @return int|null Null when it is not one.
	 */
	public static function parse_time( string $value ): ?int {
		if ( ! preg_match( '/^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))$/', $value, $m ) ) {
			return null;
		}
		list( , $year, $month, $day, $hour, $minute, $second ) = array_map( 'intval', array_slice( $m, 0, 7 ) );
		if ( ! checkdate( $month, $day, $year ) || $hour > 23 || $minute > 59 || $second > 60 ) {
			return null;
		}
		$seconds = gmmktime( $hour, $minute, min( $second, 59 ), $month, $day, $year );
		if ( empty( $m[8] ) ) {
			$offset   = ( (int) $m[10] * 3600 + (int) $m[11] * 60 ) * ( '-' === $m[9] ? -1 : 1 );
			$seconds -= $offset;
		}
		$micro = isset( $m[7] ) && '' !== $m[7] ? (int) substr( str_pad( $m[7], 6, '0' ), 0, 6 ) : 0;
		return $seconds * 1000000 + $micro;
	}

	/**
	 * The candidate stock owners of the scanned posts (each item, and a variation's parent), whose
	 * versions are read before the states.
	 *
	 * @param array<int, array<string, mixed>> $posts Scanned rows: ID, post_type, post_parent.
	 * @return int[]
	 */
	public static function owner_candidates( array $posts ): array {
		$ids = array();
		foreach ( $posts as $post ) {
			$ids[] = (int) $post['ID'];
			if ( 'product_variation' === $post['post_type'] && (int) $post['post_parent'] > 0 ) {
				$ids[] = (int) $post['post_parent'];
			}
		}
		return array_values( array_unique( $ids ) );
	}

	/**
	 * One page of the answer.
	 *
	 * @param string                           $site     The site id.
	 * @param int                              $limit    The page size asked for (a full page means more may follow).
	 * @param int[]                            $scanned  Post ids the id query returned, in id order (an id may
	 *                                                   repeat: it is shown once, and counted as scanned).
	 * @param array<int, array<string, mixed>> $states   Item id => state from Stock_Relay_State::read (with post_status).
	 * @param array<int, int>                  $versions Owner id => version, read before the states.
	 * @param int                              $now      Unix time of the answer.
	 * @return array<string, mixed>
	 */
	public static function page( string $site, int $limit, array $scanned, array $states, array $versions, int $now ): array {
		$items = array();
		foreach ( array_unique( $scanned ) as $id ) {
			if ( ! isset( $states[ $id ] ) ) {
				continue; // Deleted for good between the two reads: nothing to show.
			}
			$state            = Stock_Relay_State::sendable( $states[ $id ] );
			$state['deleted'] = 'trash' === ( $states[ $id ]['post_status'] ?? '' );
			$event            = Stock_Relay_Payload::event( $state, $versions[ (int) $state['product_id'] ] ?? 0, array(), '', 0.0 );
			unset( $event['id'], $event['occurred_at'], $event['cause'] );
			$items[] = array( 'item_id' => (int) $id ) + $event;
		}
		return array(
			'type'          => self::TYPE,
			'site'          => $site,
			'server_time'   => gmdate( 'Y-m-d\TH:i:s\Z', $now ),
			'items'         => $items,
			'next_after_id' => count( $scanned ) < $limit || ! $scanned ? null : (int) end( $scanned ),
		);
	}

	/**
	 * The protocol's error body, with the shop's clock on a 401.
	 *
	 * @param array{status: int, code: string, message: string} $error Error.
	 * @return array<string, mixed>
	 */
	public static function error_body( array $error, int $now ): array {
		$inner = array(
			'code'    => $error['code'],
			'message' => $error['message'],
		);
		if ( 401 === $error['status'] ) {
			$inner['server_time'] = gmdate( 'Y-m-d\TH:i:s\Z', $now );
		}
		return array( 'error' => $inner );
	}

	/**
	 * An error.
	 *
	 * @return array{status: int, code: string, message: string}
	 */
	public static function error( int $status, string $code, string $message ): array {
		return array(
			'status'  => $status,
			'code'    => $code,
			'message' => $message,
		);
	}
}
