<?php
/**
 * The durable outbox: one table in the WordPress database, written before the request ends.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * Rows are delivered in id order, acknowledged rows are deleted, rejected rows are kept and shown.
 */
final class Stock_Relay_Outbox {

	public const SCHEMA_VERSION = 1;

	/** The outbox table name. */
	public static function table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_outbox';
	}

	/** The per-product version table name. */
	public static function versions_table(): string {
		global $wpdb;
		return $wpdb->prefix . 'stock_relay_versions';
	}

	/** Create or migrate the tables (activation, and on load when the stored schema is older). */
	public static function install(): void {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$charset = $wpdb->get_charset_collate();
		$outbox  = self::table();
		$version = self::versions_table();
		dbDelta(
			"CREATE TABLE {$outbox} (
				id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
				product_id bigint(20) unsigned NOT NULL,
				event_id varchar(64) NOT NULL,
				payload longtext NOT NULL,
				status varchar(16) NOT NULL DEFAULT 'pending',
				last_error text NULL,
				created_at bigint(20) NOT NULL,
				PRIMARY KEY  (id),
				KEY status_id (status, id)
			) {$charset};
			CREATE TABLE {$version} (
				product_id bigint(20) unsigned NOT NULL,
				version bigint(20) unsigned NOT NULL,
				PRIMARY KEY  (product_id)
			) {$charset};"
		);
		update_option( 'stock_relay_schema', self::SCHEMA_VERSION, true );
	}

	/** Drop everything the plugin stored (uninstall). */
	public static function uninstall(): void {
		global $wpdb;
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
		$wpdb->query( 'DROP TABLE IF EXISTS ' . self::versions_table() ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix.
	}

	/**
	 * The next version of a product, monotonic even across concurrent requests and plugin reinstalls:
	 * an atomic upsert that takes the larger of (stored + 1) and the microsecond clock.
	 */
	public static function next_version( int $product_id ): int {
		global $wpdb;
		$table = self::versions_table();
		$clock = (int) floor( microtime( true ) * 1000000 );
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$wpdb->query( $wpdb->prepare( "INSERT INTO {$table} (product_id, version) VALUES (%d, %d) ON DUPLICATE KEY UPDATE version = GREATEST(version + 1, VALUES(version))", $product_id, $clock ) );
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		return (int) $wpdb->get_var( $wpdb->prepare( "SELECT version FROM {$table} WHERE product_id = %d", $product_id ) );
	}

	/**
	 * Store one event.
	 *
	 * @param array<string, mixed> $event Event as built by Stock_Relay_Payload::event().
	 */
	public static function add( array $event ): void {
		global $wpdb;
		$wpdb->insert(
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
	}

	/**
	 * The oldest pending rows, in order.
	 *
	 * @return array<int, array<string, mixed>> Each with 'id' and the decoded 'event'.
	 */
	public static function pending( int $limit ): array {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table name from $wpdb->prefix.
		$rows = $wpdb->get_results( $wpdb->prepare( "SELECT id, payload FROM {$table} WHERE status = 'pending' ORDER BY id LIMIT %d", $limit ), ARRAY_A );
		$out  = array();
		foreach ( (array) $rows as $row ) {
			$out[] = array(
				'id'    => (int) $row['id'],
				'event' => json_decode( (string) $row['payload'], true ),
			);
		}
		return $out;
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
			$wpdb->update( self::table(), array( 'status' => 'rejected', 'last_error' => $reason ), array( 'id' => (int) $id ), array( '%s', '%s' ), array( '%d' ) );
		}
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
		$row = $wpdb->get_row( "SELECT SUM(status = 'pending') AS pending, SUM(status = 'rejected') AS rejected, MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest FROM {$table}", ARRAY_A );
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
		return (array) $wpdb->get_results( $wpdb->prepare( "SELECT id, event_id, product_id, last_error, created_at FROM {$table} WHERE status = 'rejected' ORDER BY id DESC LIMIT %d", $limit ), ARRAY_A );
	}
}
