<?php
/**
 * Reads items' absolute stock state straight from posts and postmeta, the way WooCommerce derives
 * it (Stock_Relay_Payload::state_from_meta), without loading product objects.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Two queries for any number of items (their posts, then the stock meta of the items and their
 * parents), so reading is cheap and never goes through object caches another request may have
 * left stale. Used by the outbox when it turns captured changes into events, by the trash hooks,
 * and by "Resend everything".
 */
final class Stock_Relay_State {

	/** The stock meta keys WooCommerce keeps per product and variation. */
	private const KEYS = "'_sku','_manage_stock','_stock','_stock_status','_backorders'";

	/**
	 * The states of these items; ids that are not products or variations are left out.
	 *
	 * @param int[] $ids Product and variation ids.
	 * @return array<int, array<string, mixed>> Item id => state (Stock_Relay_Payload::state_from_meta) plus
	 *                                          `post_status`, in id order.
	 */
	public static function read( array $ids, ?bool $manage_enabled = null ): array {
		global $wpdb;
		$ids = array_values( array_unique( array_filter( array_map( 'intval', $ids ) ) ) );
		if ( ! $ids ) {
			return array();
		}
		if ( null === $manage_enabled ) {
			$manage_enabled = 'yes' === get_option( 'woocommerce_manage_stock', 'yes' );
		}
		$in = implode( ',', $ids );
		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared, WordPress.DB.PreparedSQL.NotPrepared -- ids cast to int, keys are constants.
		$posts = (array) $wpdb->get_results( "SELECT ID, post_type, post_parent, post_status FROM {$wpdb->posts} WHERE ID IN ({$in}) AND post_type IN ('product', 'product_variation')", ARRAY_A );
		if ( ! $posts ) {
			return array();
		}
		$all = array_map( 'intval', array_column( $posts, 'ID' ) );
		foreach ( $posts as $post ) {
			if ( 'product_variation' === $post['post_type'] && (int) $post['post_parent'] > 0 ) {
				$all[] = (int) $post['post_parent'];
			}
		}
		$in2  = implode( ',', array_unique( $all ) );
		$rows = (array) $wpdb->get_results( "SELECT post_id, meta_key, meta_value FROM {$wpdb->postmeta} WHERE post_id IN ({$in2}) AND meta_key IN (" . self::KEYS . ')', ARRAY_A );
		// phpcs:enable
		$meta = array();
		foreach ( $rows as $row ) {
			$meta[ (int) $row['post_id'] ][ (string) $row['meta_key'] ] = (string) $row['meta_value'];
		}
		$out = array();
		foreach ( $posts as $post ) {
			$id     = (int) $post['ID'];
			$parent = 'product_variation' === $post['post_type'] ? (int) $post['post_parent'] : 0;
			$state  = Stock_Relay_Payload::state_from_meta( $id, $parent, $meta[ $id ] ?? array(), $parent ? ( $meta[ $parent ] ?? array() ) : array(), $manage_enabled );

			$state['post_status'] = (string) $post['post_status'];
			$out[ $id ]           = $state;
		}
		ksort( $out );
		return $out;
	}

	/**
	 * The variations (not in the trash) that use these products' stock: a variable product that
	 * manages stock for its variations gets the stock hooks for itself only, while the channels list
	 * each variation under its own SKU.
	 *
	 * @param int[] $parent_ids Products that manage their own stock.
	 * @return array<int, int> Variation id => the parent whose stock it uses.
	 */
	public static function inheriting_variations( array $parent_ids, ?bool $manage_enabled = null ): array {
		global $wpdb;
		$parent_ids = array_values( array_unique( array_filter( array_map( 'intval', $parent_ids ) ) ) );
		if ( ! $parent_ids ) {
			return array();
		}
		$in       = implode( ',', $parent_ids );
		$children = $wpdb->get_col( "SELECT ID FROM {$wpdb->posts} WHERE post_parent IN ({$in}) AND post_type = 'product_variation' AND post_status <> 'trash' ORDER BY ID" ); // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- ids cast to int.
		$out      = array();
		foreach ( self::read( array_map( 'intval', (array) $children ), $manage_enabled ) as $id => $state ) {
			if ( in_array( (int) $state['product_id'], $parent_ids, true ) && (int) $state['product_id'] !== $id ) {
				$out[ $id ] = (int) $state['product_id'];
			}
		}
		return $out;
	}

	/**
	 * The part of a state that is sent (and hashed to skip unchanged states).
	 *
	 * @param array<string, mixed> $state A state from read().
	 * @return array<string, mixed>
	 */
	public static function sendable( array $state ): array {
		unset( $state['post_status'] );
		return $state;
	}
}
