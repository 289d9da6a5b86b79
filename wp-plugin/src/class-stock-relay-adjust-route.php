<?php
/**
 * The signed `POST /wp-json/stock-relay/v1/adjust` route (docs/wire-protocol.md §3b): the relay applies
 * marketplace sales, cancellations and refunds to the shop's stock, each under an idempotency key.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Why: two-way sync (issue 15). A marketplace sale must change the shop's stock exactly once however
 * often the relay sees it (invariant 10), so each change carries a key (`channel:order:line`, with
 * `:cancel` or `:refund:<id>` for the reverse) and the plugin applies a key at most once.
 *
 * How, per item: in one database transaction, INSERT the key into `{prefix}stock_relay_adjustments`
 * first (a concurrent request with the same key blocks on the primary key until this one commits,
 * and then finds it), then change the stock with WooCommerce's own atomic `wc_update_product_stock()`
 * (an SQL `meta_value = meta_value ± n`, and WooCommerce's hooks), record the result, COMMIT. The key
 * and the stock change are committed together or not at all.
 *
 * Applied keys are final: a repeat answers `duplicate` with the quantity the application answered.
 * Refused keys are remembered with their refusal, but a repeat is tried again, so a refusal whose
 * cause was fixed (a SKU added, stock management turned on, a product restored) does not block the
 * sale forever.
 *
 * The stock change is captured by the plugin's normal path (WooCommerce's stock hooks) and sent back
 * to the relay like any other, with `cause: {"kind": "relay"}`.
 *
 * Signed exactly like the snapshot route; the answer of each webhook-id is kept for KEEP seconds, so a
 * replayed request gets the original answer and changes nothing.
 */
final class Stock_Relay_Adjust_Route {

	public const ROUTE        = '/adjust';
	public const TYPE         = 'stock.adjust';
	public const ANSWER       = 'adjust.result';
	public const MAX_ITEMS    = 100;
	public const MAX_DELTA    = 1000000;
	public const MAX_BYTES    = 1048576; // 1 MiB, as the relay's own limit: 100 items with long keys and extra fields exceed 64 KiB.
	public const KEEP         = 600; // Seconds a webhook-id's answer is kept: 2 x the 300 s tolerance.
	public const REASONS      = array( 'sale', 'cancel', 'refund' );
	public const LOCK_RETRIES = 3; // Tries of one item's transaction when InnoDB ends it as a deadlock or a lock wait timeout.

	/** Register the route (rest_api_init). */
	public static function register(): void {
		Stock_Relay_Signed_Route::register( self::ROUTE, array( self::class, 'handle' ) );
	}

	/**
	 * The route: authenticate, check the body, answer a replay from memory, else apply each item.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function handle( WP_REST_Request $request ): WP_REST_Response {
		$now                     = time();
		$settings                = Stock_Relay_Plugin::settings();
		$body                    = (string) $request->get_body();
		list( $headers, $error ) = Stock_Relay_Signed_Route::authenticate( $request, $settings, $now, self::MAX_BYTES );
		$items                   = null;
		if ( null === $error ) {
			$items = self::parse_request( (string) $request->get_header( 'content-type' ), $body, $settings['site'] );
			$error = isset( $items['status'] ) ? $items : null;
		}
		if ( null !== $error ) {
			return new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), $error['status'] );
		}
		$digest = hash( 'sha256', $body );
		try {
			$earlier = self::recall( $headers['webhook-id'], $digest, $now );
			if ( null !== $earlier ) {
				return $earlier;
			}
			Stock_Relay_Capture::set_cause( array( 'kind' => 'relay' ) ); // The changes below go back to the relay as its own.
			$answer = array(
				'type'  => self::ANSWER,
				'items' => array_map( array( self::class, 'apply' ), $items ),
			);
			return self::remember( $headers['webhook-id'], $digest, $answer, $now );
		} catch ( RuntimeException $e ) {
			// The database refused (gone, read-only, a deadlock): nothing of the failed item was kept; a
			// retry applies what is missing and answers the rest as duplicates.
			$error = Stock_Relay_Snapshot::error( 503, 'storage_unavailable', 'The shop\'s database could not record the stock change; try again shortly.' );
			$reply = new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), 503 );
			$reply->header( 'Retry-After', '5' );
			return $reply;
		}
	}

	/**
	 * The media type and body of a request whose signature was verified. Items are checked one by one
	 * later (a malformed item is refused on its own; the others still apply).
	 *
	 * @return array<int, mixed>|array{status: int, code: string, message: string} The items, or an error (it has a `status` key).
	 */
	public static function parse_request( string $content_type, string $body, string $site ): array {
		list( $doc, $error ) = Stock_Relay_Snapshot::envelope( $content_type, $body, $site, self::TYPE );
		if ( null !== $error ) {
			return $error;
		}
		if ( ! array_key_exists( 'items', $doc ) ) {
			return Stock_Relay_Snapshot::error( 400, 'missing_field', 'The field items is missing.' );
		}
		$items = $doc['items'];
		if ( ! is_array( $items ) || ! $items ) {
			return Stock_Relay_Snapshot::error( 400, 'malformed_json', 'The field items must be a list of 1 to 100 items.' );
		}
		if ( count( $items ) > self::MAX_ITEMS ) {
			return Stock_Relay_Snapshot::error( 400, 'batch_too_large', 'A request may hold at most 100 items.' );
		}
		return array_values( $items );
	}

	/**
	 * What is wrong with an item, or null when nothing is (the key is checked separately).
	 *
	 * @param array<string, mixed> $item The item's fields.
	 */
	public static function item_problem( array $item ): ?string {
		$sku = $item['sku'] ?? null;
		if ( ! is_string( $sku ) || '' === $sku || mb_strlen( $sku, 'UTF-8' ) > 191 || ! mb_check_encoding( $sku, 'UTF-8' ) ) {
			return 'sku must be a string of 1 to 191 characters.';
		}
		$delta = $item['delta'] ?? null;
		if ( ! is_int( $delta ) || 0 === $delta || abs( $delta ) > self::MAX_DELTA ) {
			return 'delta must be a non-zero whole number from -1000000 to 1000000.';
		}
		if ( ! in_array( $item['reason'] ?? null, self::REASONS, true ) ) {
			return 'reason must be sale, cancel or refund.';
		}
		return null;
	}

	/** Whether a key is well formed: 1 to 191 printable ASCII characters, no spaces. */
	public static function key_ok( $key ): bool {
		return is_string( $key ) && 1 === preg_match( '/^[\x21-\x7e]{1,191}$/D', $key );
	}

	/**
	 * One item: its answer entry. The key's INSERT and the stock change share one transaction.
	 *
	 * @param mixed $raw The item as decoded (an object when well formed).
	 * @return array<string, mixed>
	 * @throws RuntimeException When the database refuses (nothing of this item is kept).
	 */
	public static function apply( $raw ): array {
		global $wpdb;
		$item = $raw instanceof stdClass ? get_object_vars( $raw ) : array();
		$key  = $item['key'] ?? null;
		if ( ! self::key_ok( $key ) ) {
			return self::refused( is_string( $key ) ? $key : null, 'invalid_item', $raw instanceof stdClass ? 'key must be 1 to 191 printable ASCII characters without spaces.' : 'Each item must be a JSON object.' );
		}
		$problem = self::item_problem( $item );
		$sku     = is_string( $item['sku'] ?? null ) ? mb_substr( $item['sku'], 0, 191, 'UTF-8' ) : '';
		$delta   = is_int( $item['delta'] ?? null ) && abs( $item['delta'] ) <= self::MAX_DELTA ? $item['delta'] : 0;
		$reason  = is_string( $item['reason'] ?? null ) ? substr( $item['reason'], 0, 16 ) : '';
		$table   = Stock_Relay_Outbox::adjustments_table();
		$now     = time();

		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix, values through prepare().
		// InnoDB may end one of two transactions that wait on the same key as a deadlock (both read it, then both
		// write it); the loser is rolled back whole, so trying it again is safe, and it then finds the key applied.
		for ( $attempt = 1; ; $attempt++ ) {
			self::sql( 'START TRANSACTION' );
			try {
				// The key first: a concurrent transaction with the same key waits here until this one ends.
				$new = self::sql( $wpdb->prepare( "INSERT IGNORE INTO {$table} (adjust_key, product_id, sku, delta, reason, result, code, quantity, created_at, updated_at) VALUES (%s, 0, %s, %d, %s, 'pending', '', NULL, %d, %d)", $key, $sku, $delta, $reason, $now, $now ) );
				if ( 0 === $new ) {
					// Known key: a locking read sees the latest committed row. A shared lock, as the INSERT's duplicate
					// check already holds: two transactions that both find the key applied then never wait on each other.
					$row = $wpdb->get_row( $wpdb->prepare( "SELECT result, quantity, version FROM {$table} WHERE adjust_key = %s LOCK IN SHARE MODE", $key ), ARRAY_A );
					if ( ! is_array( $row ) ) {
						throw new RuntimeException( 'the adjustment row could not be read: ' . $wpdb->last_error );
					}
					if ( 'applied' === $row['result'] ) {
						self::sql( 'ROLLBACK' );
						return array(
							'key'      => $key,
							'result'   => 'duplicate',
							'quantity' => null === $row['quantity'] ? null : (int) $row['quantity'],
							'version'  => null === $row['version'] ? null : (int) $row['version'],
						);
					}
				}
				list( $owner, $code, $message ) = null === $problem ? self::resolve( $sku ) : array( 0, 'invalid_item', $problem );
				if ( null !== $code ) {
					self::sql( $wpdb->prepare( "UPDATE {$table} SET product_id = %d, sku = %s, delta = %d, reason = %s, result = 'refused', code = %s, quantity = NULL, updated_at = %d WHERE adjust_key = %s", $owner ? $owner->get_id() : 0, $sku, $delta, $reason, $code, $now, $key ) );
					self::sql( 'COMMIT' );
					return self::refused( $key, $code, $message );
				}
				wc_update_product_stock( $owner, abs( $delta ), $delta < 0 ? 'decrease' : 'increase' );
				$stock_id = (int) $owner->get_stock_managed_by_id();
				// This transaction's own write: the row as its UPDATE left it (atomic on the latest value),
				// not the value WooCommerce computed from its earlier read, which a concurrent sale may have changed.
				$quantity = $wpdb->get_var( $wpdb->prepare( "SELECT meta_value FROM {$wpdb->postmeta} WHERE post_id = %d AND meta_key = '_stock' LIMIT 1", $stock_id ) );
				$quantity = (int) round( (float) $quantity );
				// The product's last event version, read under a shared lock that the drainer's version bump waits
				// for: an event with a larger version read the stock after this change, so it includes it. The
				// relay uses that to tell whether a stock event it pushes already holds this sale (0: no event yet).
				$versions = Stock_Relay_Outbox::versions_table();
				$version  = (int) $wpdb->get_var( $wpdb->prepare( "SELECT version FROM {$versions} WHERE product_id = %d LOCK IN SHARE MODE", $stock_id ) );
				self::sql( $wpdb->prepare( "UPDATE {$table} SET product_id = %d, sku = %s, delta = %d, reason = %s, result = 'applied', code = '', quantity = %d, version = %d, updated_at = %d WHERE adjust_key = %s", $stock_id, $sku, $delta, $reason, $quantity, $version, $now, $key ) );
				self::sql( 'COMMIT' );
				break;
			} catch ( Throwable $e ) {
				$wpdb->query( 'ROLLBACK' );
				if ( $attempt < self::LOCK_RETRIES && self::lost_a_lock( $e ) ) {
					continue;
				}
				$failure = $e instanceof RuntimeException ? $e : new RuntimeException( 'adjust failed', 0, $e );
				throw $failure;
			}
		}
		// phpcs:enable
		return array(
			'key'      => $key,
			'result'   => 'applied',
			'quantity' => $quantity,
			'version'  => $version,
		);
	}

	/**
	 * The product whose stock a SKU names (WooCommerce's own lookup: products and variations alike),
	 * or why none can be adjusted.
	 *
	 * @return array{0: mixed, 1: ?string, 2: string} The product (WC_Product) or null, the refusal code or null, the message.
	 */
	private static function resolve( string $sku ): array {
		global $wpdb;
		$id      = (int) wc_get_product_id_by_sku( $sku );
		$product = $id > 0 ? wc_get_product( $id ) : null;
		if ( ! $product ) {
			// WooCommerce's lookup skips the trash: say so rather than "unknown" when the SKU is there.
			$trashed = $wpdb->get_var( $wpdb->prepare( "SELECT p.ID FROM {$wpdb->posts} p INNER JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku' WHERE m.meta_value = %s AND p.post_type IN ('product', 'product_variation') AND p.post_status = 'trash' LIMIT 1", $sku ) );
			if ( $trashed ) {
				return array( null, 'trashed', "The product with the SKU {$sku} is in the trash." );
			}
			return array( null, 'unknown_sku', "No product or variation has the SKU {$sku}." );
		}
		$parent = (int) $product->get_parent_id();
		if ( 'trash' === get_post_status( $id ) || ( $parent > 0 && 'trash' === get_post_status( $parent ) ) ) {
			return array( $product, 'trashed', "The product with the SKU {$sku} is in the trash." );
		}
		if ( ! $product->managing_stock() ) {
			return array( $product, 'not_managed', "Stock is not managed for the SKU {$sku}; turn on stock management for it (or its parent) in WooCommerce." );
		}
		return array( $product, null, '' );
	}

	/**
	 * A refusal entry.
	 *
	 * @return array<string, mixed>
	 */
	private static function refused( ?string $key, string $code, string $message ): array {
		return array(
			'key'     => $key,
			'result'  => 'refused',
			'code'    => $code,
			'message' => $message,
		);
	}

	/**
	 * Whether a failed transaction lost a lock race (MySQL/MariaDB 1213 deadlock, 1205 lock wait timeout).
	 *
	 * @param Throwable $e What the transaction threw.
	 */
	private static function lost_a_lock( Throwable $e ): bool {
		return false !== stripos( $e->getMessage(), 'deadlock' ) || false !== stripos( $e->getMessage(), 'lock wait timeout' );
	}

	/**
	 * Run one statement; a database error is an exception (the item's transaction is rolled back).
	 *
	 * @return int Rows affected (or 0).
	 * @throws RuntimeException On a database error.
	 */
	private static function sql( string $query ): int {
		global $wpdb;
		$result = $wpdb->query( $query ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- prepared by the caller.
		if ( false === $result ) {
			throw new RuntimeException( 'database error: ' . $wpdb->last_error ); // phpcs:ignore WordPress.Security.EscapeOutput.ExceptionNotEscaped -- never output: lost_a_lock() reads it, handle() answers a fixed text.
		}
		return (int) $result;
	}

	/**
	 * The answer already given to this webhook-id, if any (kept KEEP seconds).
	 *
	 * @return WP_REST_Response|null The original answer (or 409 for the same id on another body), or null.
	 */
	private static function recall( string $id, string $digest, int $now ): ?WP_REST_Response {
		global $wpdb;
		$table = Stock_Relay_Outbox::adjust_requests_table();
		$row   = $wpdb->get_row( $wpdb->prepare( "SELECT body_hash, answer FROM {$table} WHERE webhook_id = %s AND created_at > %d", $id, $now - self::KEEP ), ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		if ( ! is_array( $row ) ) {
			return null;
		}
		if ( ! hash_equals( (string) $row['body_hash'], $digest ) ) {
			$error = Stock_Relay_Snapshot::error( 409, 'webhook_id_reused', 'This webhook-id was already used for another request; sign each request with a new one.' );
			return new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), 409 );
		}
		$reply = new WP_REST_Response( json_decode( (string) $row['answer'], true ), 200 );
		$reply->header( 'Idempotent-Replayed', 'true' );
		return $reply;
	}

	/**
	 * Keep this answer under its webhook-id and return it. If a concurrent copy of the same request kept
	 * its answer first, that one is returned instead, so every copy gets the same answer.
	 *
	 * @param string               $id     The request's webhook-id.
	 * @param string               $digest SHA-256 of the request's body (hex).
	 * @param array<string, mixed> $answer The answer.
	 * @param int                  $now    Unix time.
	 */
	private static function remember( string $id, string $digest, array $answer, int $now ): WP_REST_Response {
		global $wpdb;
		$table = Stock_Relay_Outbox::adjust_requests_table();
		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE created_at <= %d", $now - self::KEEP ) );
		$kept = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$table} (webhook_id, body_hash, answer, created_at) VALUES (%s, %s, %s, %d)", $id, $digest, (string) wp_json_encode( $answer ), $now ) );
		// phpcs:enable
		if ( 0 === $kept ) {
			$earlier = self::recall( $id, $digest, $now );
			if ( null !== $earlier ) {
				return $earlier;
			}
		}
		return new WP_REST_Response( $answer, 200 );
	}
}
