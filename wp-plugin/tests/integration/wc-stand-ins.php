<?php
/**
 * Plugin Name: WooCommerce stand-ins (tests only)
 * Description: The smallest faithful stand-ins for the WooCommerce pieces Stock Relay touches, with
 * the hook order observed in WooCommerce 7.9 and 9.4 (shared/refs/woocommerce.md §1.2). Data lives in
 * the real postmeta rows WooCommerce uses (_sku, _manage_stock, _stock, _stock_status, _backorders).
 * Never shipped: it lives in wp-plugin/tests/ only.
 *
 * @package StockRelay
 */

// phpcs:disable Generic.Files.OneObjectStructurePerFile.MultipleFound, WordPress.DB.DirectDatabaseQuery

namespace Automattic\WooCommerce\Utilities {
	/** Records HPOS declarations so the test can see the plugin made one inside before_woocommerce_init. */
	class FeaturesUtil {
		/** @var array<int, array{0: string, 1: string, 2: bool, 3: bool}> */
		public static array $declared = array();
		public static function declare_compatibility( string $feature, string $file, bool $ok = true ): bool {
			self::$declared[] = array( $feature, basename( $file ), $ok, doing_action( 'before_woocommerce_init' ) );
			return true;
		}
	}
}

namespace {
	// WooCommerce's main class, as plugins test for it; the option srt_no_woocommerce plays "WooCommerce inactive".
	if ( ! get_option( 'srt_no_woocommerce' ) ) {
		class WooCommerce {} // phpcs:ignore
	}

	add_action(
		'plugins_loaded',
		static function (): void {
			do_action( 'before_woocommerce_init' );
			update_option( 'srt_hpos_declared', \Automattic\WooCommerce\Utilities\FeaturesUtil::$declared, false );
		},
		-10
	);

	/** A simple product, read from and written to postmeta like WC_Product_Data_Store_CPT. */
	class WC_Product {
		protected int $id;
		/** @var array<string, mixed> */
		protected array $data;
		/** @var array<string, mixed> */
		protected array $changes = array();

		public function __construct( int $id ) {
			$this->id   = $id;
			$this->data = array(
				'sku'            => (string) get_post_meta( $id, '_sku', true ),
				'manage_stock'   => 'yes' === get_post_meta( $id, '_manage_stock', true ),
				'stock_quantity' => '' === get_post_meta( $id, '_stock', true ) ? null : (int) get_post_meta( $id, '_stock', true ),
				'stock_status'   => (string) ( get_post_meta( $id, '_stock_status', true ) ?: 'instock' ),
				'backorders'     => (string) ( get_post_meta( $id, '_backorders', true ) ?: 'no' ),
			);
		}
		public function get_id(): int { return $this->id; }
		public function get_type(): string { return 'simple'; }
		public function get_parent_id(): int { return (int) wp_get_post_parent_id( $this->id ); }
		protected function prop( string $key ) { return array_key_exists( $key, $this->changes ) ? $this->changes[ $key ] : $this->data[ $key ]; }
		public function get_sku( string $context = 'view' ): string { return (string) $this->prop( 'sku' ); }
		/** @return bool|string */
		public function get_manage_stock( string $context = 'view' ) { return $this->prop( 'manage_stock' ); }
		public function managing_stock(): bool { return 'yes' === get_option( 'woocommerce_manage_stock', 'yes' ) && (bool) $this->get_manage_stock(); }
		public function get_stock_quantity( string $context = 'view' ) { return $this->prop( 'stock_quantity' ); }
		public function get_stock_status( string $context = 'view' ): string { return (string) $this->prop( 'stock_status' ); }
		public function get_backorders( string $context = 'view' ): string { return (string) $this->prop( 'backorders' ); }
		public function get_stock_managed_by_id(): int { return $this->id; }
		public function set_sku( string $v ): void { $this->changes['sku'] = $v; }
		public function set_manage_stock( bool $v ): void { $this->changes['manage_stock'] = $v; }
		public function set_stock_quantity( $v ): void { $this->changes['stock_quantity'] = null === $v ? null : (int) $v; }
		public function set_stock_status( string $v ): void { $this->changes['stock_status'] = $v; }
		public function set_backorders( string $v ): void { $this->changes['backorders'] = $v; }
		protected function hook( string $name ): string { return 'woocommerce_product_' . $name; }
		protected function update_hook(): string { return 'woocommerce_update_product'; }

		/** WC_Product::validate_props(): the status follows the quantity when stock is managed. */
		protected function validate(): void {
			if ( true === (bool) $this->prop( 'manage_stock' ) && 'yes' === get_option( 'woocommerce_manage_stock', 'yes' ) ) {
				$qty = (int) $this->prop( 'stock_quantity' );
				if ( $qty > (int) get_option( 'woocommerce_notify_no_stock_amount', 0 ) ) {
					$this->changes['stock_status'] = 'instock';
				} elseif ( 'no' !== $this->prop( 'backorders' ) ) {
					$this->changes['stock_status'] = 'onbackorder';
				} else {
					$this->changes['stock_status'] = 'outofstock';
				}
			}
			if ( ! $this->prop( 'manage_stock' ) ) {
				$this->changes['stock_quantity'] = null;
				$this->changes['backorders']     = 'no';
			}
		}

		/** The CRUD save: before_set_stock → write → set_stock (if _stock changed) → set_stock_status (if changed) → updated_props → update_product. */
		public function save(): int {
			$this->validate();
			$qty_changed    = array_key_exists( 'stock_quantity', $this->changes ) && $this->changes['stock_quantity'] !== $this->data['stock_quantity'];
			$status_changed = array_key_exists( 'stock_status', $this->changes ) && $this->changes['stock_status'] !== $this->data['stock_status'];
			if ( $qty_changed ) {
				do_action( $this->hook( 'before_set_stock' ), $this );
			}
			$map = array( 'sku' => '_sku', 'manage_stock' => '_manage_stock', 'stock_quantity' => '_stock', 'stock_status' => '_stock_status', 'backorders' => '_backorders' );
			foreach ( $this->changes as $key => $value ) {
				if ( 'manage_stock' === $key ) {
					$value = $value ? 'yes' : 'no';
				}
				update_post_meta( $this->id, $map[ $key ], null === $value ? '' : (string) $value );
			}
			$changed       = array_keys( $this->changes );
			$this->data    = array_merge( $this->data, $this->changes );
			$this->changes = array();
			if ( $qty_changed ) {
				do_action( $this->hook( 'set_stock' ), $this );
			}
			if ( $status_changed ) {
				do_action( $this->hook( 'set_stock_status' ), $this->id, $this->data['stock_status'], $this );
			}
			do_action( 'woocommerce_product_object_updated_props', $this, $changed );
			do_action( $this->update_hook(), $this->id, $this );
			if ( $this->get_parent_id() ) {
				wc_deferred_product_sync( $this->get_parent_id() );
			}
			return $this->id;
		}

		/** Used by wc_update_product_stock(): the new quantity goes into data, not changes. */
		public function set_stock_from_db( int $qty ): void {
			$this->data['stock_quantity'] = $qty;
		}

		public function delete( bool $force = false ): bool {
			if ( $force ) {
				do_action( 'woocommerce_before_delete_' . ( 'variation' === $this->get_type() ? 'product_variation' : 'product' ), $this->id );
				wp_delete_post( $this->id, true );
				do_action( 'woocommerce_delete_' . ( 'variation' === $this->get_type() ? 'product_variation' : 'product' ), $this->id );
			} else {
				wp_trash_post( $this->id );
				do_action( 'woocommerce_trash_' . ( 'variation' === $this->get_type() ? 'product_variation' : 'product' ), $this->id );
			}
			return true;
		}
	}

	/** A variable product's parent (manages no stock unless told to). */
	class WC_Product_Variable extends WC_Product {
		public function get_type(): string { return 'variable'; }
	}

	/** A variation: manage_stock 'parent' when it does not manage and the parent does; SKU falls back to the parent's in 'view'. */
	class WC_Product_Variation extends WC_Product {
		public function get_type(): string { return 'variation'; }
		protected function hook( string $name ): string { return 'woocommerce_variation_' . $name; }
		protected function update_hook(): string { return 'woocommerce_update_product_variation'; }
		private function parent(): WC_Product { return new WC_Product_Variable( $this->get_parent_id() ); }
		public function get_sku( string $context = 'view' ): string {
			$own = parent::get_sku( 'edit' );
			return 'view' === $context && '' === $own ? $this->parent()->get_sku( 'edit' ) : $own;
		}
		public function get_manage_stock( string $context = 'view' ) {
			$own = parent::get_manage_stock( 'edit' );
			return 'view' === $context && ! $own && $this->parent()->get_manage_stock( 'edit' ) ? 'parent' : $own;
		}
		public function get_stock_quantity( string $context = 'view' ) {
			return 'view' === $context && 'parent' === $this->get_manage_stock() ? ( $this->parent()->get_stock_quantity( 'edit' ) ?? 0 ) : parent::get_stock_quantity( $context );
		}
		public function get_backorders( string $context = 'view' ): string {
			return 'view' === $context && 'parent' === $this->get_manage_stock() ? $this->parent()->get_backorders( 'edit' ) : parent::get_backorders( $context );
		}
		public function get_stock_managed_by_id(): int {
			return 'parent' === $this->get_manage_stock() ? $this->get_parent_id() : $this->id;
		}
	}

	/** A minimal order: an id and line items [product_id => qty]. */
	class WC_Order {
		private int $id;
		/** @var array<int, int> */
		public array $items;
		public function __construct( int $id, array $items = array() ) { $this->id = $id; $this->items = $items; }
		public function get_id(): int { return $this->id; }
	}

	function wc_get_product( $id ) {
		$id = $id instanceof WC_Product ? $id->get_id() : (int) $id;
		switch ( get_post_type( $id ) ) {
			case 'product':
				return 'variable' === get_post_meta( $id, '_srt_type', true ) ? new WC_Product_Variable( $id ) : new WC_Product( $id );
			case 'product_variation':
				return new WC_Product_Variation( $id );
		}
		return false;
	}

	/**
	 * wc_get_product_id_by_sku(): WC_Product_Data_Store_CPT::get_product_id_by_sku, the id of a product or
	 * variation with this SKU that is not in the trash, or 0 (WooCommerce ≥ 3.6 reads the SKU from its
	 * wc_product_meta_lookup table, which mirrors `_sku`; the stand-ins have no lookup table, so `_sku`).
	 */
	function wc_get_product_id_by_sku( $sku ): int {
		global $wpdb;
		if ( ! $sku ) {
			return 0;
		}
		$id = $wpdb->get_var( $wpdb->prepare( "SELECT posts.ID FROM {$wpdb->posts} AS posts INNER JOIN {$wpdb->postmeta} AS meta ON posts.ID = meta.post_id AND meta.meta_key = '_sku' WHERE posts.post_type IN ( 'product', 'product_variation' ) AND posts.post_status != 'trash' AND meta.meta_value = %s LIMIT 1", $sku ) );
		return (int) apply_filters( 'woocommerce_get_product_id_by_sku', $id, $sku );
	}

	/** WC_Post_Data::deferred_product_sync: the parent is re-saved at shutdown priority 10. */
	function wc_deferred_product_sync( int $parent_id ): void {
		global $srt_deferred;
		$srt_deferred = (array) $srt_deferred;
		if ( ! $srt_deferred ) {
			add_action(
				'shutdown',
				static function (): void {
					global $srt_deferred;
					foreach ( array_unique( $srt_deferred ) as $pid ) {
						$parent = wc_get_product( $pid );
						if ( $parent ) {
							do_action( 'woocommerce_variable_product_sync_data', $parent );
							$parent->save();
						}
					}
				},
				10
			);
		}
		$srt_deferred[] = $parent_id;
	}

	/**
	 * wc_update_product_stock(): before_set_stock → SQL UPDATE (atomic ± for increase/decrease) →
	 * woocommerce_updated_product_stock → save() (status, update_product) → set_stock, once.
	 */
	function wc_update_product_stock( $product, $qty = null, string $operation = 'set', bool $updating = false ) {
		global $wpdb;
		$product = is_object( $product ) ? $product : wc_get_product( $product );
		if ( ! $product || null === $qty || ! $product->managing_stock() ) {
			return false;
		}
		$owner = wc_get_product( $product->get_stock_managed_by_id() );
		do_action( $owner->get_type() === 'variation' ? 'woocommerce_variation_before_set_stock' : 'woocommerce_product_before_set_stock', $owner );
		add_post_meta( $owner->get_id(), '_stock', 0, true ); // The data store ensures a row exists to update.
		$sql = array(
			'set'      => $wpdb->prepare( "UPDATE {$wpdb->postmeta} SET meta_value = %f WHERE post_id = %d AND meta_key = '_stock'", $qty, $owner->get_id() ),
			'increase' => $wpdb->prepare( "UPDATE {$wpdb->postmeta} SET meta_value = meta_value + %f WHERE post_id = %d AND meta_key = '_stock'", $qty, $owner->get_id() ),
			'decrease' => $wpdb->prepare( "UPDATE {$wpdb->postmeta} SET meta_value = meta_value - %f WHERE post_id = %d AND meta_key = '_stock'", $qty, $owner->get_id() ),
		)[ $operation ];
		$wpdb->query( $sql ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- prepared above.
		wp_cache_delete( $owner->get_id(), 'post_meta' );
		do_action( 'woocommerce_updated_product_stock', $owner->get_id() );
		$new = (int) get_post_meta( $owner->get_id(), '_stock', true );
		$owner->set_stock_from_db( $new );
		if ( ! $updating ) {
			$owner->set_stock_quantity( $new ); // validate_props sees the new qty; data already holds it, so no second set_stock.
			$owner->save();
		}
		do_action( $owner->get_type() === 'variation' ? 'woocommerce_variation_set_stock' : 'woocommerce_product_set_stock', $owner );
		return $new;
	}

	/** wc_reduce_stock_levels(): per item the stock sequence and reduce_order_item_stock, then reduce_order_stock. */
	function wc_reduce_stock_levels( WC_Order $order ): void {
		foreach ( $order->items as $product_id => $qty ) {
			$product = wc_get_product( $product_id );
			$from    = $product->get_stock_quantity();
			$to      = wc_update_product_stock( $product, $qty, 'decrease' );
			do_action( 'woocommerce_reduce_order_item_stock', null, array( 'product' => $product, 'from' => $from, 'to' => $to ), $order );
		}
		do_action( 'woocommerce_reduce_order_stock', $order );
	}

	/** wc_increase_stock_levels(): the reverse, on cancel. */
	function wc_increase_stock_levels( WC_Order $order ): void {
		foreach ( $order->items as $product_id => $qty ) {
			$product = wc_get_product( $product_id );
			$old     = $product->get_stock_quantity();
			$new     = wc_update_product_stock( $product, $qty, 'increase' );
			do_action( 'woocommerce_restore_order_item_stock', null, $new, $old, $order );
		}
		do_action( 'woocommerce_restore_order_stock', $order );
	}

	/** wc_restock_refunded_items(): increase, then woocommerce_restock_refunded_item per item. */
	function wc_restock_refunded_items( WC_Order $order, array $items ): void {
		foreach ( $items as $product_id => $qty ) {
			$product = wc_get_product( $product_id );
			$old     = $product->get_stock_quantity();
			$new     = wc_update_product_stock( $product, $qty, 'increase' );
			do_action( 'woocommerce_restock_refunded_item', $product->get_id(), $old, $new, $order, $product );
		}
	}

	/**
	 * The admin screens WooCommerce adds, so pages have their real screen ids and hook names: the Products list
	 * (edit-product) and the top-level WooCommerce menu, without which a submenu page's hook would be admin_page_*
	 * instead of woocommerce_page_*. WooCommerce's own product capabilities are left out: the post ones do here.
	 */
	add_action(
		'init',
		static function (): void {
			register_post_type(
				'product',
				array(
					'labels'          => array( 'name' => 'Products', 'singular_name' => 'Product' ),
					'public'          => true,
					'show_ui'         => true,
					'capability_type' => 'post',
					'map_meta_cap'    => true,
					'supports'        => array( 'title' ),
				)
			);
			register_post_type( 'product_variation', array( 'public' => false ) );
		},
		5
	);
	add_action(
		'admin_menu',
		static function (): void {
			add_menu_page( 'WooCommerce', 'WooCommerce', 'manage_woocommerce', 'woocommerce', '__return_null', 'dashicons-cart', '55.5' );
		},
		9
	);

	/**
	 * WooCommerce's logger (WC_Logger_Interface::log( $level, $message, $context )) with its file handler's line format
	 * ("2026-12-03T12:00:00+00:00 ERROR message") in wp-content/uploads/wc-logs/{source}.log: what WooCommerce ›
	 * Status › Logs lists by source (the real handler adds a date and a hash to the file name).
	 */
	class WC_Logger { // phpcs:ignore
		public function log( string $level, string $message, array $context = array() ): void {
			$dir = WP_CONTENT_DIR . '/uploads/wc-logs';
			wp_mkdir_p( $dir );
			file_put_contents( $dir . '/' . sanitize_file_name( (string) ( $context['source'] ?? 'log' ) ) . '.log', gmdate( 'c' ) . ' ' . strtoupper( $level ) . ' ' . $message . "\n", FILE_APPEND | LOCK_EX );
		}
	}
	function wc_get_logger(): WC_Logger {
		static $logger = null;
		return $logger ?? ( $logger = new WC_Logger() );
	}
}
