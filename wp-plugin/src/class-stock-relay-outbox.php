<?php
/**
 * The durable outbox: its own table in the WordPress database, written before the request ends.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Rows are delivered in id order, acknowledged rows are deleted, rejected rows are kept and shown.
 *
 * Two tables:
 * - `{prefix}stock_relay_outbox`: one row per event (`pending`, or `rejected` by the relay), or per
 *   item a request changed and no drainer has turned into an event yet (`touched`). A drainer claims
 *   rows by writing its own `claim_token` and a `claimed_until` lease in one UPDATE whose WHERE
 *   clause skips rows another drainer holds, so two concurrent drainers never send the same rows.
 * - `{prefix}stock_relay_versions`: per id, the last `version` given out (for the id that owns the
 *   stock row) and the hash of the last state queued (for the item itself).
 *
 * Only SQL that MySQL/MariaDB and the SQLite integration plugin both run is used here.
 */
final class Stock_Relay_Outbox {

	public const SCHEMA_VERSION = 4; // 3: the stock.adjust tables (adjustments, adjust_requests); 4: adjustments.version.
	public const LEASE          = 60;
	public const TOUCHED        = 'touched'; // Stock_Relay_Capture::TOUCHED (uninstall.php loads this file alone).

	/** The outbox table name. */
	public static function table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_outbox'; // Stock_Relay_Capture::TABLE.
	}

	/** The per-product version and last-hash table name. */
	public static function versions_table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_versions';
	}

	/** The relay's stock.adjust keys: one row per key, applied (final) or refused (tried again on a repeat). */
	public static function adjustments_table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_adjustments';
	}

	/** The answers of stock.adjust requests by webhook-id (replay memory, kept Stock_Relay_Adjust_Route::KEEP seconds). */
	public static function adjust_requests_table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_adjust_requests';
	}

	/** Create or migrate the tables (activation, and on load when the stored schema is older). */
	public static function install(): void {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$charset = $wpdb->get_charset_collate();
		$outbox  = self::table();
		$version = self::versions_table();
		$adjust  = self::adjustments_table();
		$answers = self::adjust_requests_table();
		// Keys and webhook-ids are printable ASCII compared byte for byte (ascii_bin): the default
		// utf8mb4 collation is case-insensitive and would take `ebay:A1:1` for `EBAY:a1:1`.
		dbDelta(
			"CREATE TABLE {$outbox} (
				id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
				product_id bigint(20) unsigned NOT NULL,
				event_id varchar(64) NOT NULL,
				payload longtext NOT NULL,
				status varchar(16) NOT NULL DEFAULT 'pending',
				last_error text NULL,
				created_at bigint(20) NOT NULL,
				claim_token varchar(40) NOT NULL DEFAULT '',
				claimed_until bigint(20) NOT NULL DEFAULT 0,
				PRIMARY KEY  (id),
				KEY status_id (status,id)
			) {$charset};
			CREATE TABLE {$version} (
				product_id bigint(20) unsigned NOT NULL,
				version bigint(20) unsigned NOT NULL DEFAULT 0,
				last_hash varchar(40) NOT NULL DEFAULT '',
				PRIMARY KEY  (product_id)
			) {$charset};
			CREATE TABLE {$adjust} (
				adjust_key varchar(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				product_id bigint(20) unsigned NOT NULL DEFAULT 0,
				sku varchar(191) NOT NULL DEFAULT '',
				delta bigint(20) NOT NULL DEFAULT 0,
				reason varchar(16) NOT NULL DEFAULT '',
				result varchar(16) NOT NULL DEFAULT '',
				code varchar(32) NOT NULL DEFAULT '',
				quantity bigint(20) NULL,
				version bigint(20) unsigned NULL,
				created_at bigint(20) NOT NULL,
				updated_at bigint(20) NOT NULL,
				PRIMARY KEY  (adjust_key),
				KEY product_id (product_id)
			) {$charset};
			CREATE TABLE {$answers} (
				webhook_id varchar(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				body_hash char(64) NOT NULL,
				answer longtext NOT NULL,
				created_at bigint(20) NOT NULL,
				PRIMARY KEY  (webhook_id),
				KEY created_at (created_at)
			) {$charset};"
		);
		update_option( 'stock_relay_schema', self::SCHEMA_VERSION, true );
	}

	/** Drop everything the plugin stored (uninstall). */
	public static function uninstall(): void {
		global $wpdb;
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery.SchemaChange -- the plugin's own table, its name from $wpdb->prefix.
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::versions_table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery.SchemaChange -- the plugin's own table, its name from $wpdb->prefix.
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::adjustments_table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery.SchemaChange -- the plugin's own table, its name from $wpdb->prefix.
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::adjust_requests_table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared, WordPress.DB.DirectDatabaseQuery.SchemaChange -- the plugin's own table, its name from $wpdb->prefix.
	}

	/**
	 * Turn touched rows into events, oldest first; safe to run in several processes at once (each
	 * claims the rows it works on). Several touches of one item are one event: the state read now,
	 * with the cause and time of the latest touch.
	 *
	 * @return int How many touched rows this call took.
	 * @throws Throwable What reading or recording threw, once the claimed rows are given back.
	 */
	public static function materialise( int $limit = 200 ): int {
		global $wpdb;
		$table = self::table();
		$now   = time();
		$token = Stock_Relay_Signer::new_id( 'mat_' );
		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix, ids cast to int.
		$ids = $wpdb->get_col( $wpdb->prepare( "SELECT id FROM {$table} WHERE status = %s AND claimed_until <= %d ORDER BY id LIMIT %d", self::TOUCHED, $now, $limit ) );
		if ( ! $ids ) {
			return 0;
		}
		$in = implode( ',', array_map( 'intval', $ids ) );
		$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET claim_token = %s, claimed_until = %d WHERE id IN ({$in}) AND status = %s AND claimed_until <= %d", $token, $now + self::LEASE, self::TOUCHED, $now ) );
		$rows = (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, product_id, payload FROM {$table} WHERE claim_token = %s AND status = %s ORDER BY id", $token, self::TOUCHED ), ARRAY_A );
		// phpcs:enable
		$items = array();
		foreach ( $rows as $row ) {
			$touch = json_decode( (string) $row['payload'], true );
			$touch = is_array( $touch ) ? $touch : array();
			$item  = (int) $row['product_id'];
			$prev  = $items[ $item ] ?? array(
				'rows'  => array(),
				'state' => null,
			);

			$items[ $item ] = array(
				'rows'     => array_merge( $prev['rows'], array( (int) $row['id'] ) ),
				'cause'    => is_array( $touch['cause'] ?? null ) ? $touch['cause'] : array( 'kind' => 'other' ),
				'at'       => (float) ( $touch['at'] ?? microtime( true ) ),
				'deleted'  => ! empty( $touch['deleted'] ),
				'restored' => ! empty( $touch['restored'] ),
				'state'    => is_array( $touch['state'] ?? null ) ? $touch['state'] : $prev['state'],
			);
		}
		try {
			$manage = 'yes' === get_option( 'woocommerce_manage_stock', 'yes' );
			// Who owns each item's stock row (to lock the right version row), and the variations that
			// share a touched parent's stock: they are listed on the channels under their own SKUs.
			$owners  = array();
			$parents = array();
			foreach ( Stock_Relay_State::read( array_keys( $items ), $manage ) as $id => $state ) {
				$owners[ $id ] = (int) $state['product_id'];
				if ( null === $state['variation_id'] && $state['manage_stock'] ) {
					$parents[] = $id;
				}
			}
			foreach ( Stock_Relay_State::inheriting_variations( $parents, $manage ) as $child => $parent ) {
				if ( ! isset( $items[ $child ] ) ) {
					$items[ $child ]  = array(
						'rows'     => array(),
						'restored' => false,
						'state'    => null,
					) + $items[ $parent ];
					$owners[ $child ] = $parent;
				}
			}
			foreach ( $items as $item => $touch ) {
				self::record( (int) $item, $owners[ $item ] ?? (int) ( $touch['state']['product_id'] ?? 0 ), $touch, $manage );
			}
		} catch ( Throwable $e ) {
			// Give the rest back at once: the next drain takes them again.
			self::release( $token );
			throw $e;
		}
		return count( $rows );
	}

	/**
	 * Turn one item's touches into an event, if its state differs from the last state queued for it.
	 *
	 * Order matters for correctness under concurrent writers. In one transaction: (1) bump the
	 * owner's version with a write, which locks that row (InnoDB row lock; SQLite's write lock)
	 * until commit; (2) only then read the state; (3) compare with the last queued hash and write.
	 * Any two records of one product are therefore serialised, and the one with the larger version
	 * always read the state later, so the newest version carries the newest state. Reading before
	 * taking the version (or deduping outside the lock) lets a stale read win with a larger version.
	 *
	 * @param int                  $item_id  The product or variation id (the hash key).
	 * @param int                  $owner_id The id that owns the stock row (the version key).
	 * @param array<string, mixed> $touch    rows (touched row ids), cause, at, deleted, restored, state.
	 * @return bool Whether an event was queued.
	 * @throws Throwable What the transaction threw, once it is rolled back.
	 */
	private static function record( int $item_id, int $owner_id, array $touch, bool $manage ): bool {
		global $wpdb;
		$rows = array_map( 'intval', $touch['rows'] );
		if ( $owner_id <= 0 ) {
			self::remove( $rows ); // Not a product (or gone without a trace): nothing to send.
			return false;
		}
		$wpdb->query( 'START TRANSACTION' );
		try {
			$version = self::bump_version( $owner_id );
			$fresh   = Stock_Relay_State::read( array( $item_id ), $manage )[ $item_id ] ?? null;
			$state   = null !== $fresh ? Stock_Relay_State::sendable( $fresh ) : $touch['state'];
			if ( null === $state ) {
				self::remove( $rows );
				$wpdb->query( 'COMMIT' );
				return false;
			}
			// Trashed (or gone, with the state read when it was deleted): channels must show 0.
			$state['deleted']  = ! empty( $touch['deleted'] ) || null === $fresh || 'trash' === $fresh['post_status'];
			$state['restored'] = ! empty( $touch['restored'] ) && ! $state['deleted'];
			if ( (int) $state['product_id'] !== $owner_id ) {
				// The stock owner changed meanwhile (manage stock toggled): version the real owner.
				$owner_id = (int) $state['product_id'];
				$version  = self::bump_version( $owner_id );
			}
			$hash = sha1( (string) stock_relay_json( $state ) );
			if ( self::last_hash( $item_id ) === $hash ) {
				self::remove( $rows );
				$wpdb->query( 'COMMIT' );
				return false;
			}
			self::set_last_hash( $item_id, $hash );
			$event = Stock_Relay_Payload::event( $state, $version, (array) $touch['cause'], Stock_Relay_Signer::new_id( 'evt_' ), (float) $touch['at'] );
			if ( $rows ) {
				// The event takes the place of the item's first touch (its place in the queue); later
				// touches are folded into it.
				$row = (int) array_shift( $rows );
				$wpdb->update(
					self::table(),
					array(
						'event_id'      => (string) $event['id'],
						'payload'       => stock_relay_json( $event ),
						'status'        => 'pending',
						'claim_token'   => '',
						'claimed_until' => 0,
					),
					array( 'id' => $row ),
					array( '%s', '%s', '%s', '%s', '%d' ),
					array( '%d' )
				);
				self::remove( $rows );
			} else {
				self::add( $event );
			}
			$wpdb->query( 'COMMIT' );
			return true;
		} catch ( Throwable $e ) {
			$wpdb->query( 'ROLLBACK' );
			throw $e;
		}
	}

	/**
	 * The next version of a product: larger than any before, even across concurrent requests (the
	 * UPDATE is atomic and locks the row) and across a reinstall (never below the microsecond clock,
	 * so the relay, which remembers the highest version it saw, never takes a new event for stale).
	 *
	 * @throws RuntimeException When three tries found no version (the row kept changing or could not be written).
	 */
	public static function bump_version( int $product_id ): int {
		global $wpdb;
		self::$hashes = array();
		$table        = self::versions_table();
		$clock        = (int) floor( microtime( true ) * 1000000 );
		for ( $try = 0; $try < 3; $try++ ) {
			// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
			$changed = $wpdb->query( $wpdb->prepare( "UPDATE {$table} SET version = CASE WHEN version + 1 > %d THEN version + 1 ELSE %d END WHERE product_id = %d", $clock, $clock, $product_id ) );
			if ( $changed ) {
				// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
				$row                         = $wpdb->get_row( $wpdb->prepare( "SELECT version, last_hash FROM {$table} WHERE product_id = %d", $product_id ), ARRAY_A );
				self::$hashes[ $product_id ] = (string) ( $row['last_hash'] ?? '' );
				return (int) ( $row['version'] ?? 0 );
			}
			$suppress = $wpdb->suppress_errors( true );
			$inserted = $wpdb->insert(
				$table,
				array(
					'product_id' => $product_id,
					'version'    => $clock,
					'last_hash'  => '',
				),
				array( '%d', '%d', '%s' )
			);
			$wpdb->suppress_errors( $suppress );
			if ( $inserted ) {
				self::$hashes[ $product_id ] = '';
				return $clock;
			}
			// Another request inserted the row first: go round and update it.
		}
		/* translators: %d: product id. Shown as the last error on the Stock Relay page. */
		throw new RuntimeException( esc_html( sprintf( __( 'Stock Relay could not allocate a version for product %d.', 'stock-relay' ), $product_id ) ) );
	}

	/**
	 * Last hashes read together with a version under the row lock (saves a query for simple products).
	 *
	 * @var array<int, string>
	 */
	private static array $hashes = array();

	/** The hash of the last state queued for an item, '' if none. */
	private static function last_hash( int $item_id ): string {
		global $wpdb;
		if ( isset( self::$hashes[ $item_id ] ) ) {
			$hash = self::$hashes[ $item_id ];
			unset( self::$hashes[ $item_id ] );
			return $hash;
		}
		$table = self::versions_table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		return (string) $wpdb->get_var( $wpdb->prepare( "SELECT last_hash FROM {$table} WHERE product_id = %d", $item_id ) );
	}

	/** Remember the hash of the state just queued for an item. */
	private static function set_last_hash( int $item_id, string $hash ): void {
		global $wpdb;
		$table = self::versions_table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		if ( ! $wpdb->query( $wpdb->prepare( "UPDATE {$table} SET last_hash = %s WHERE product_id = %d", $hash, $item_id ) ) ) {
			$suppress = $wpdb->suppress_errors( true );
			$inserted = $wpdb->insert(
				$table,
				array(
					'product_id' => $item_id,
					'version'    => 0,
					'last_hash'  => $hash,
				),
				array( '%d', '%d', '%s' )
			);
			$wpdb->suppress_errors( $suppress );
			if ( ! $inserted ) {
				// The row appeared meanwhile (or held this hash already): set it.
				// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
				$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET last_hash = %s WHERE product_id = %d", $hash, $item_id ) );
			}
		}
	}

	/** Forget the last hashes (Resend everything sends every state again). */
	public static function forget_hashes(): void {
		global $wpdb;
		$wpdb->query( 'UPDATE ' . self::versions_table() . " SET last_hash = ''" ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
	}

	/**
	 * Store one event.
	 *
	 * @param array<string, mixed> $event Event as built by Stock_Relay_Payload::event().
	 * @throws RuntimeException When the row could not be written.
	 */
	public static function add( array $event ): void {
		global $wpdb;
		$ok = $wpdb->insert(
			self::table(),
			array(
				'product_id' => (int) $event['product_id'],
				'event_id'   => (string) $event['id'],
				'payload'    => stock_relay_json( $event ),
				'status'     => 'pending',
				'created_at' => time(),
			),
			array( '%d', '%s', '%s', '%s', '%d' )
		);
		if ( ! $ok ) {
			throw new RuntimeException( esc_html__( 'Stock Relay could not write to its outbox table.', 'stock-relay' ) );
		}
	}

	/**
	 * Claim the oldest pending rows for one drainer, in id order.
	 *
	 * Returns nothing while another live drainer holds any of the oldest rows, so batches leave in
	 * outbox order. The claim itself is one UPDATE whose WHERE clause re-checks the lease: when two
	 * drainers race, the database serialises the two UPDATEs and the second one claims no row.
	 *
	 * @return array<int, array{id: int, event: array<string, mixed>}>
	 */
	public static function claim( string $token, int $limit, int $now ): array {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$head = $wpdb->get_results( $wpdb->prepare( "SELECT id, claimed_until FROM {$table} WHERE status = 'pending' ORDER BY id LIMIT %d", $limit ), ARRAY_A );
		if ( ! $head ) {
			return array();
		}
		foreach ( $head as $row ) {
			if ( (int) $row['claimed_until'] > $now ) {
				return array();
			}
		}
		$ids = implode( ',', array_map( 'intval', array_column( $head, 'id' ) ) );
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix, ids cast to int.
		$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET claim_token = %s, claimed_until = %d WHERE id IN ({$ids}) AND status = 'pending' AND claimed_until <= %d", $token, $now + self::LEASE, $now ) );
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$rows = $wpdb->get_results( $wpdb->prepare( "SELECT id, payload FROM {$table} WHERE claim_token = %s AND status = 'pending' ORDER BY id", $token ), ARRAY_A );
		$out  = array();
		foreach ( (array) $rows as $row ) {
			$out[] = array(
				'id'    => (int) $row['id'],
				'event' => (array) json_decode( (string) $row['payload'], true ),
			);
		}
		return $out;
	}

	/**
	 * Give claimed rows back (not sent, or to be sent later).
	 *
	 * @param string $token The claim's token.
	 * @param int[]  $ids   Row ids; all rows of the token when empty.
	 */
	public static function release( string $token, array $ids = array() ): void {
		global $wpdb;
		$table = self::table();
		$where = $ids ? ' AND id IN (' . implode( ',', array_map( 'intval', $ids ) ) . ')' : '';
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix, ids cast to int.
		$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET claim_token = '', claimed_until = 0 WHERE claim_token = %s{$where}", $token ) );
	}

	/**
	 * Remove acknowledged rows.
	 *
	 * @param int[] $ids Row ids.
	 */
	public static function remove( array $ids ): void {
		global $wpdb;
		if ( ! $ids ) {
			return;
		}
		$table = self::table();
		$in    = implode( ',', array_map( 'intval', $ids ) );
		$wpdb->query( "DELETE FROM {$table} WHERE id IN ({$in})" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- ids are cast to int.
	}

	/**
	 * Mark rows the relay refused for good: kept and shown in the admin page, never resent.
	 *
	 * @param array<int, string> $errors Row id => reason.
	 */
	public static function reject( array $errors ): void {
		global $wpdb;
		foreach ( $errors as $id => $reason ) {
			$wpdb->update(
				self::table(),
				array(
					'status'        => 'rejected',
					'last_error'    => $reason,
					'claim_token'   => '',
					'claimed_until' => 0,
				),
				array( 'id' => (int) $id ),
				array( '%s', '%s', '%s', '%d' ),
				array( '%d' )
			);
		}
	}

	/** Put refused rows back in the queue (after fixing the cause), keeping their place by id. */
	public static function retry_rejected(): int {
		global $wpdb;
		return (int) $wpdb->query( 'UPDATE ' . self::table() . " SET status = 'pending', claim_token = '', claimed_until = 0 WHERE status = 'rejected'" ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
	}

	/** Drop refused rows. */
	public static function clear_rejected(): int {
		global $wpdb;
		return (int) $wpdb->query( 'DELETE FROM ' . self::table() . " WHERE status = 'rejected'" ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
	}

	/** Whether any row waits to be sent. */
	public static function has_pending(): bool {
		global $wpdb;
		return null !== $wpdb->get_var( 'SELECT id FROM ' . self::table() . " WHERE status IN ('pending', 'touched') LIMIT 1" ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
	}

	/**
	 * Depth and age for the status panel.
	 *
	 * @return array{pending: int, rejected: int, oldest: int|null}
	 */
	public static function stats(): array {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$row = $wpdb->get_row( "SELECT SUM(CASE WHEN status IN ('pending', 'touched') THEN 1 ELSE 0 END) AS pending, SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS rejected, MIN(CASE WHEN status IN ('pending', 'touched') THEN created_at END) AS oldest FROM {$table}", ARRAY_A );
		return array(
			'pending'  => (int) ( $row['pending'] ?? 0 ),
			'rejected' => (int) ( $row['rejected'] ?? 0 ),
			'oldest'   => isset( $row['oldest'] ) ? (int) $row['oldest'] : null,
		);
	}

	/**
	 * The most recent rejected rows, for the status panel.
	 *
	 * @return array<int, array<string, mixed>>
	 */
	public static function rejected( int $limit = 20 ): array {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		return (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, event_id, product_id, payload, last_error, created_at FROM {$table} WHERE status = 'rejected' ORDER BY id DESC LIMIT %d", $limit ), ARRAY_A );
	}
}
