<?php
/**
 * The signed `POST /wp-json/stock-relay/v1/snapshot` route (docs/wire-protocol.md §3): paged absolute stock of
 * every product and variation with a SKU, for the relay's reconciliation.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * WordPress glue: the route, its three SQL reads around Stock_Relay_State::read, and the answers.
 * The checks and the page itself are in Stock_Relay_Snapshot (plain PHP, unit tested).
 *
 * A page costs a fixed number of queries whatever its size: the id query, one versions query and
 * Stock_Relay_State::read's two. The route writes nothing, so a repeated webhook-id (a replay
 * within the tolerance) simply reads again: it cannot change anything, and the answer is the
 * current state, which is what the relay asks for.
 */
final class Stock_Relay_Snapshot_Route {

	public const NAMESPACE = Stock_Relay_Signed_Route::NAMESPACE;
	public const ROUTE     = '/snapshot';

	/** Register the route (rest_api_init). */
	public static function register(): void {
		Stock_Relay_Signed_Route::register( self::ROUTE, array( self::class, 'handle' ) );
	}

	/**
	 * The route: authenticate, check the body, read one page.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function handle( WP_REST_Request $request ): WP_REST_Response {
		$now             = time();
		$settings        = Stock_Relay_Plugin::settings();
		$body            = (string) $request->get_body();
		list( , $error ) = Stock_Relay_Signed_Route::authenticate( $request, $settings, $now );
		if ( null === $error ) {
			$params = Stock_Relay_Snapshot::parse_request( (string) $request->get_header( 'content-type' ), $body, $settings['site'] );
			$error  = isset( $params['status'] ) ? $params : null;
		}
		if ( null !== $error ) {
			return new WP_REST_Response( Stock_Relay_Snapshot::error_body( $error, $now ), $error['status'] );
		}
		return new WP_REST_Response( self::page( $settings['site'], $params['after_id'], $params['limit'], $params['modified_after'] ), 200 );
	}

	/**
	 * One page: ids, then versions, then states, each its own statement in this order (a version is
	 * never newer than the state it is shown with: the outbox bumps a version before it reads the state).
	 *
	 * @param string   $site           The site id.
	 * @param int      $after_id       The last id of the previous page (0: from the start).
	 * @param int      $limit          Items per page at most.
	 * @param int|null $modified_after Unix microseconds, or null for every item.
	 * @return array<string, mixed>
	 */
	public static function page( string $site, int $after_id, int $limit, ?int $modified_after ): array {
		$posts    = self::scan( $after_id, $limit, $modified_after );
		$scanned  = array_map( 'intval', array_column( $posts, 'ID' ) );
		$versions = self::versions( Stock_Relay_Snapshot::owner_candidates( $posts ) );
		$manage   = 'yes' === get_option( 'woocommerce_manage_stock', 'yes' );
		$states   = $scanned ? Stock_Relay_State::read( $scanned, $manage ) : array();
		return Stock_Relay_Snapshot::page( $site, $limit, $scanned, $states, $versions, time() );
	}

	/**
	 * The next posts in id order: products and variations with a non-empty SKU, trashed ones
	 * included, auto-drafts not. With modified_after, only those modified since (the post itself,
	 * a variation's parent, or the version of the item's stock owner).
	 *
	 * @return array<int, array<string, mixed>> Rows: ID, post_type, post_parent (an ID may repeat).
	 */
	private static function scan( int $after_id, int $limit, ?int $modified_after ): array {
		global $wpdb;
		$join  = '';
		$where = '';
		$args  = array( $after_id );
		if ( null !== $modified_after ) {
			$versions = Stock_Relay_Outbox::versions_table();
			// The stock owner as Stock_Relay_Payload::state_from_meta decides it: a variation that does
			// not manage stock uses its parent's when the parent does.
			$join = " LEFT JOIN {$wpdb->posts} pp ON p.post_type = 'product_variation' AND pp.ID = p.post_parent
				LEFT JOIN {$wpdb->postmeta} ms ON ms.post_id = p.ID AND ms.meta_key = '_manage_stock'
				LEFT JOIN {$wpdb->postmeta} pms ON p.post_type = 'product_variation' AND pms.post_id = p.post_parent AND pms.meta_key = '_manage_stock'
				LEFT JOIN {$versions} v ON v.product_id = CASE WHEN p.post_type = 'product_variation' AND p.post_parent > 0 AND COALESCE(ms.meta_value, 'no') <> 'yes' AND pms.meta_value = 'yes' THEN p.post_parent ELSE p.ID END";
			// post_modified_gmt has whole seconds: compare with modified_after's second, so an edit
			// later in that same second is never missed (a page may hold a few extra items; never fewer).
			$where  = ' AND (p.post_modified_gmt >= %s OR pp.post_modified_gmt >= %s OR v.version >= %d)';
			$second = gmdate( 'Y-m-d H:i:s', intdiv( $modified_after, 1000000 ) );
			array_push( $args, $second, $second, $modified_after );
		}
		$args[] = $limit;
		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared, WordPress.DB.PreparedSQL.NotPrepared -- $sql below: table names from $wpdb, every value a placeholder for prepare().
		// No DISTINCT: it makes MariaDB build a temporary table of every row after after_id before the
		// LIMIT (a page of 50,000 products cost 60 ms instead of 2). A post with two _sku rows is listed
		// twice; Stock_Relay_Snapshot::page shows it once and still counts both rows for the paging.
		$sql = "SELECT p.ID, p.post_type, p.post_parent FROM {$wpdb->posts} p
			INNER JOIN {$wpdb->postmeta} sku ON sku.post_id = p.ID AND sku.meta_key = '_sku' AND sku.meta_value <> ''{$join}
			WHERE p.post_type IN ('product', 'product_variation') AND p.post_status <> 'auto-draft' AND p.ID > %d{$where}
			ORDER BY p.ID LIMIT %d";
		return (array) $wpdb->get_results( $wpdb->prepare( $sql, $args ), ARRAY_A );
		// phpcs:enable
	}

	/**
	 * The current versions of these ids (one query; ids without a row are left out, i.e. 0).
	 *
	 * @param int[] $ids Candidate stock owners.
	 * @return array<int, int>
	 */
	private static function versions( array $ids ): array {
		global $wpdb;
		if ( ! $ids ) {
			return array();
		}
		$in   = implode( ',', array_map( 'intval', $ids ) );
		$rows = (array) $wpdb->get_results( 'SELECT product_id, version FROM ' . Stock_Relay_Outbox::versions_table() . " WHERE product_id IN ({$in})", ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared, WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix, ids cast to int.
		$out  = array();
		foreach ( $rows as $row ) {
			$out[ (int) $row['product_id'] ] = (int) $row['version'];
		}
		return $out;
	}
}
