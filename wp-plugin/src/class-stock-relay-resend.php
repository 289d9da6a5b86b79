<?php
/**
 * "Resend everything": queue the current state of every product and variation with a SKU, in
 * chunks of 500 read with plain SQL (no product objects), so 50,000 products never time out.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Progress lives in one option. Each chunk first advances the option with a compare-and-swap
 * UPDATE, so the admin page's AJAX steps and the background chain (Action Scheduler or WP-Cron)
 * can both drive a resend without ever taking the same chunk.
 */
final class Stock_Relay_Resend {

	public const HOOK   = 'stock_relay_resend_chunk';
	public const OPTION = 'stock_relay_resend';
	public const CHUNK  = 500;

	/** Start (or restart) a resend. */
	public static function start(): void {
		$progress = array(
			'after_id' => 0,
			'queued'   => 0,
			'total'    => self::count(),
			'started'  => time(),
			'done'     => false,
		);
		delete_option( self::OPTION );
		add_option( self::OPTION, $progress, '', false );
		self::schedule_next();
	}

	/**
	 * The progress, read from the database (not the cache: another process advances it).
	 *
	 * @return array<string, mixed>
	 */
	public static function progress(): array {
		global $wpdb;
		$raw = $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", self::OPTION ) );
		$val = null === $raw ? array() : maybe_unserialize( $raw );
		return is_array( $val ) ? $val : array();
	}

	/** Background chain: run one chunk, schedule the next. */
	public static function run_chunk(): void {
		$progress = self::step();
		if ( $progress && empty( $progress['done'] ) ) {
			self::schedule_next();
		}
	}

	/** Schedule the next background chunk. */
	private static function schedule_next(): void {
		if ( function_exists( 'as_enqueue_async_action' ) ) {
			as_enqueue_async_action( self::HOOK, array(), 'stock-relay', true );
		} else {
			wp_schedule_single_event( time(), self::HOOK );
		}
	}

	/**
	 * Queue one chunk, if one is left and no other process took it.
	 *
	 * @return array<string, mixed> The progress after this step (empty when no resend runs).
	 */
	public static function step(): array {
		global $wpdb;
		$progress = self::progress();
		if ( ! $progress || ! empty( $progress['done'] ) ) {
			return $progress;
		}
		$ids  = self::ids( (int) $progress['after_id'], self::CHUNK );
		$next = $progress;

		$next['after_id'] = $ids ? (int) end( $ids ) : (int) $progress['after_id'];
		$next['queued']   = (int) $progress['queued'] + count( $ids );
		$next['done']     = count( $ids ) < self::CHUNK;
		// Compare-and-swap: only the process that moves the option from $progress to $next owns this chunk.
		$swapped = $wpdb->query( $wpdb->prepare( "UPDATE {$wpdb->options} SET option_value = %s WHERE option_name = %s AND option_value = %s", maybe_serialize( $next ), self::OPTION, maybe_serialize( $progress ) ) );
		wp_cache_delete( self::OPTION, 'options' );
		if ( ! $swapped ) {
			return self::progress();
		}
		if ( $ids ) {
			self::queue( $ids );
			Stock_Relay_Kick::request_drain();
		}
		return $next;
	}

	/**
	 * Queue the current state of these items: versions first, then one SQL read, then the rows,
	 * all in one transaction (the same order as when the outbox turns captured changes into events).
	 *
	 * @param int[] $ids Product and variation ids.
	 */
	public static function queue( array $ids ): void {
		global $wpdb;
		$manage_enabled = 'yes' === get_option( 'woocommerce_manage_stock', 'yes' );
		$wpdb->query( 'START TRANSACTION' );
		try {
			// One version per item, even for variations sharing their parent's stock row: the relay
			// gates versions per product_id, so two events of one owner must not carry the same version.
			$versions = array();
			foreach ( Stock_Relay_State::read( $ids, $manage_enabled ) as $item_id => $state ) {
				$versions[ $item_id ] = Stock_Relay_Outbox::bump_version( (int) $state['product_id'] );
			}
			foreach ( Stock_Relay_State::read( $ids, $manage_enabled ) as $item_id => $state ) {
				$ver   = $versions[ $item_id ] ?? Stock_Relay_Outbox::bump_version( (int) $state['product_id'] );
				$state = Stock_Relay_State::sendable( $state ) + array(
					'deleted'  => false,
					'restored' => false,
				);
				Stock_Relay_Outbox::add( Stock_Relay_Payload::event( $state, $ver, array( 'kind' => 'other' ), Stock_Relay_Signer::new_id( 'evt_' ), microtime( true ) ) );
			}
			$wpdb->query( 'COMMIT' );
		} catch ( Throwable $e ) {
			$wpdb->query( 'ROLLBACK' );
			Stock_Relay_Delivery::note_error( $e->getMessage() );
		}
	}

	/**
	 * Product and variation ids with a SKU, in id order: one indexed query, no product objects.
	 *
	 * @return int[]
	 */
	private static function ids( int $after_id, int $limit ): array {
		global $wpdb;
		return array_map(
			'intval',
			$wpdb->get_col(
				$wpdb->prepare(
					"SELECT p.ID FROM {$wpdb->posts} p INNER JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku' AND m.meta_value <> ''
					 WHERE p.post_type IN ('product', 'product_variation') AND p.post_status NOT IN ('trash', 'auto-draft') AND p.ID > %d ORDER BY p.ID LIMIT %d",
					$after_id,
					$limit
				)
			)
		);
	}

	/** Is there anything to resend: at least one product or variation with a SKU (one indexed row read). */
	public static function has_products(): bool {
		return (bool) self::ids( 0, 1 );
	}

	/** How many products and variations a resend sends. */
	private static function count(): int {
		global $wpdb;
		return (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$wpdb->posts} p INNER JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku' AND m.meta_value <> '' WHERE p.post_type IN ('product', 'product_variation') AND p.post_status NOT IN ('trash', 'auto-draft')" );
	}
}
