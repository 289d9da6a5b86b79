<?php
/**
 * Listens to WooCommerce's stock hooks, collects touched products per request, and at the end of
 * the request reads each one fresh and writes its absolute state to the outbox.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * Why collect and read later: hooks fire twice (admin save), with unchanged values (bulk edit,
 * creation) or before other properties are saved, and WooCommerce re-saves a variable parent at
 * shutdown priority 10. Reading fresh at priority 20 sends what the database finally holds, once.
 */
final class Stock_Relay_Capture {

	/**
	 * Touched products of this request: own id => flags.
	 *
	 * @var array<int, array<string, mixed>>
	 */
	private static array $touched = array();

	/**
	 * The cause of this request's changes.
	 *
	 * @var array<string, mixed>
	 */
	private static array $cause = array( 'kind' => 'other' );

	/** Whether the CSV importer saved a product in this request. */
	private static bool $imported = false;

	/** Hook in. */
	public static function register(): void {
		foreach ( array( 'woocommerce_product_set_stock', 'woocommerce_variation_set_stock', 'woocommerce_product_quick_edit_save' ) as $hook ) {
			add_action( $hook, array( self::class, 'on_product' ), 10, 1 );
		}
		add_action( 'woocommerce_product_import_inserted_product_object', array( self::class, 'on_import' ), 10, 1 );
		add_action( 'woocommerce_updated_product_stock', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_product_bulk_edit_save', array( self::class, 'on_bulk_edit' ), 10, 1 );
		add_action( 'woocommerce_product_set_stock_status', array( self::class, 'on_status' ), 10, 3 );
		add_action( 'woocommerce_variation_set_stock_status', array( self::class, 'on_status' ), 10, 3 );
		add_action( 'woocommerce_update_product', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_update_product_variation', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_reduce_order_stock', array( self::class, 'on_order' ), 10, 1 );
		add_action( 'woocommerce_restore_order_stock', array( self::class, 'on_order' ), 10, 1 );
		add_action( 'woocommerce_restock_refunded_item', array( self::class, 'on_refund' ), 10, 5 );
		add_action( 'wp_trash_post', array( self::class, 'on_trash' ), 10, 1 );
		add_action( 'before_delete_post', array( self::class, 'on_trash' ), 10, 1 );
		add_action( 'untrashed_post', array( self::class, 'on_untrash' ), 10, 1 );
		add_action( 'shutdown', array( self::class, 'flush' ), 20 );
	}

	/**
	 * A product object changed stock.
	 *
	 * @param mixed $product WC_Product.
	 */
	public static function on_product( $product ): void {
		if ( is_object( $product ) && method_exists( $product, 'get_id' ) ) {
			self::touch( (int) $product->get_id() );
		}
	}

	/**
	 * Bulk edit: the cause is known.
	 *
	 * @param mixed $product WC_Product.
	 */
	public static function on_bulk_edit( $product ): void {
		self::$cause = array( 'kind' => 'bulk_edit' );
		self::on_product( $product );
	}

	/**
	 * CSV import saved a product (each row is a CRUD save; the importer runs 30 rows per AJAX request).
	 *
	 * @param mixed $product WC_Product.
	 */
	public static function on_import( $product ): void {
		self::$imported = true;
		self::on_product( $product );
	}

	/**
	 * Stock status changed (also without any quantity change).
	 *
	 * @param mixed $id     Product id.
	 * @param mixed $status New status.
	 * @param mixed $product WC_Product (WooCommerce ≥ 3.0).
	 */
	public static function on_status( $id, $status = null, $product = null ): void {
		self::touch( (int) $id );
	}

	/**
	 * Any product save (catches SKU, manage_stock and backorders edits; deduplicated below).
	 *
	 * @param mixed $id Product id.
	 */
	public static function on_id( $id ): void {
		self::touch( (int) $id );
	}

	/**
	 * Order stock reduced or restored: remember the order for the cause.
	 *
	 * @param mixed $order WC_Order.
	 */
	public static function on_order( $order ): void {
		if ( is_object( $order ) && method_exists( $order, 'get_id' ) ) {
			self::$cause = array(
				'kind'     => 'order',
				'order_id' => (int) $order->get_id(),
			);
		}
	}

	/**
	 * A refund restocked an item.
	 *
	 * @param mixed $product_id Product id.
	 * @param mixed $old_stock  Old stock.
	 * @param mixed $new_stock  New stock.
	 * @param mixed $order      WC_Order.
	 * @param mixed $product    WC_Product.
	 */
	public static function on_refund( $product_id, $old_stock = null, $new_stock = null, $order = null, $product = null ): void {
		self::$cause = array(
			'kind'     => 'refund',
			'order_id' => is_object( $order ) && method_exists( $order, 'get_id' ) ? (int) $order->get_id() : null,
		);
		self::touch( (int) $product_id );
	}

	/**
	 * Trashed or about to be deleted: capture the state now, the post may be gone at shutdown.
	 *
	 * @param mixed $post_id Post id.
	 */
	public static function on_trash( $post_id ): void {
		$product = self::product( (int) $post_id );
		if ( null === $product ) {
			return;
		}
		self::$touched[ (int) $post_id ] = array(
			'deleted' => true,
			'state'   => self::read( $product ),
		);
	}

	/**
	 * Restored from the trash.
	 *
	 * @param mixed $post_id Post id.
	 */
	public static function on_untrash( $post_id ): void {
		if ( self::is_product_type( get_post_type( (int) $post_id ) ) ) {
			self::$touched[ (int) $post_id ] = array( 'restored' => true );
		}
	}

	/** Remember a product for the end of the request. */
	private static function touch( int $id ): void {
		if ( $id > 0 && ! isset( self::$touched[ $id ] ) ) {
			self::$touched[ $id ] = array();
		}
	}

	/**
	 * The cause of this request, when no hook named one.
	 *
	 * @return array<string, mixed>
	 */
	private static function request_cause(): array {
		if ( 'other' !== self::$cause['kind'] ) {
			return self::$cause;
		}
		if ( defined( 'REST_REQUEST' ) && REST_REQUEST ) {
			return array( 'kind' => 'rest' );
		}
		if ( self::$imported || ( defined( 'WP_IMPORTING' ) && WP_IMPORTING ) ) {
			return array( 'kind' => 'import' );
		}
		if ( is_admin() ) {
			return array( 'kind' => 'admin' );
		}
		return self::$cause;
	}

	/**
	 * End of request (shutdown, priority 20: after WooCommerce's deferred parent sync at 10): read
	 * each touched product fresh and queue the states that really changed.
	 */
	public static function flush(): void {
		if ( ! self::$touched ) {
			return;
		}
		$touched       = self::with_inheriting_variations( self::$touched );
		self::$touched = array();
		$cause         = self::request_cause();
		$queued        = 0;
		foreach ( $touched as $id => $flags ) {
			$id      = (int) $id;
			// The owner from this request's copy; the state itself is read fresh under the owner's lock.
			$product = self::product( $id );
			$owner   = null !== $product ? (int) $product->get_stock_managed_by_id() : (int) ( $flags['state']['product_id'] ?? 0 );
			if ( $owner <= 0 ) {
				continue;
			}
			$read  = static function () use ( $id, $flags ): ?array {
				$product = self::product( $id, true );
				$state   = null !== $product ? self::read( $product ) : ( $flags['state'] ?? null );
				if ( null === $state ) {
					return null;
				}
				$state['deleted']  = ! empty( $flags['deleted'] ) || ( null !== $product && 'trash' === get_post_status( $id ) );
				$state['restored'] = ! empty( $flags['restored'] ) && ! $state['deleted'];
				return $state;
			};
			$build = static function ( array $state, int $version ) use ( $cause ): array {
				return Stock_Relay_Payload::event( $state, $version, $cause, Stock_Relay_Signer::new_id( 'evt_' ), microtime( true ) );
			};
			try {
				$queued += Stock_Relay_Outbox::record( $id, $owner, $read, $build ) ? 1 : 0;
			} catch ( Throwable $e ) {
				// Never break the shop's request; the change is caught by the next save or a resend.
				Stock_Relay_Delivery::note_error( $e->getMessage() );
			}
		}
		if ( $queued ) {
			Stock_Relay_Delivery::request_drain();
		}
	}

	/**
	 * A variable product that manages stock for its variations: each variation without stock of its
	 * own is listed on the channels under its own SKU, so it gets its own event when the parent's
	 * quantity changes (WooCommerce fires the stock hooks for the parent only).
	 *
	 * @param array<int, array<string, mixed>> $touched Touched ids => flags.
	 * @return array<int, array<string, mixed>>
	 */
	private static function with_inheriting_variations( array $touched ): array {
		global $wpdb;
		foreach ( array_keys( $touched ) as $id ) {
			$product = self::product( (int) $id );
			if ( null === $product || 'variable' !== $product->get_type() || ! $product->managing_stock() ) {
				continue;
			}
			$children = $wpdb->get_col( $wpdb->prepare( "SELECT ID FROM {$wpdb->posts} WHERE post_parent = %d AND post_type = 'product_variation' AND post_status <> 'trash' ORDER BY ID", (int) $id ) );
			foreach ( array_map( 'intval', $children ) as $child ) {
				$variation = isset( $touched[ $child ] ) ? null : self::product( $child );
				if ( null !== $variation && (int) $variation->get_stock_managed_by_id() === (int) $id ) {
					$touched[ $child ] = empty( $touched[ $id ]['deleted'] ) ? array() : array( 'deleted' => true );
				}
			}
		}
		return $touched;
	}

	/**
	 * The product, if the id is a product or variation.
	 *
	 * @return object|null WC_Product.
	 */
	private static function product( int $id, bool $fresh = false ): ?object {
		if ( $fresh ) {
			// Another request may have written since this one primed its caches.
			wp_cache_delete( $id, 'post_meta' );
			wp_cache_delete( $id, 'posts' );
		}
		if ( ! function_exists( 'wc_get_product' ) || ! self::is_product_type( get_post_type( $id ) ) ) {
			return null;
		}
		$product = wc_get_product( $id );
		if ( $fresh && is_object( $product ) && $product->get_parent_id() ) {
			wp_cache_delete( (int) $product->get_parent_id(), 'post_meta' );
			$product = wc_get_product( $id );
		}
		return is_object( $product ) ? $product : null;
	}

	/**
	 * Product post types.
	 *
	 * @param mixed $type Post type.
	 */
	private static function is_product_type( $type ): bool {
		return in_array( $type, array( 'product', 'product_variation' ), true );
	}

	/**
	 * The absolute stock state of a product or variation, keyed by the id that owns the stock row.
	 *
	 * @param object $product WC_Product.
	 * @return array<string, mixed>
	 */
	public static function read( object $product ): array {
		$is_variation = 'variation' === $product->get_type();
		return array(
			'product_id'     => (int) $product->get_stock_managed_by_id(),
			'variation_id'   => $is_variation ? (int) $product->get_id() : null,
			'parent_id'      => $product->get_parent_id() ? (int) $product->get_parent_id() : null,
			'sku'            => (string) $product->get_sku( 'edit' ),
			'manage_stock'   => (bool) $product->managing_stock(),
			'stock_quantity' => $product->managing_stock() ? $product->get_stock_quantity() : null,
			'stock_status'   => (string) $product->get_stock_status(),
			'backorders'     => (string) $product->get_backorders(),
		);
	}
}
