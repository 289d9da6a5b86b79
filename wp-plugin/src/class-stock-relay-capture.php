<?php
/**
 * Listens to WooCommerce's stock hooks, collects touched products per request, and at the end of
 * the request writes them to the outbox in one INSERT; the drainer turns them into events.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Why collect and read later: hooks fire twice (admin save), with unchanged values (bulk edit,
 * creation) or before other properties are saved, and WooCommerce re-saves a variable parent at
 * shutdown priority 10. At priority 20 the request notes each touched item once, durably (one
 * INSERT: all a shopper's request pays for); the drainer, after the response, reads the state the
 * database finally holds, under the product's version lock, and skips it if nothing changed.
 */
final class Stock_Relay_Capture {

	/** The outbox table (after $wpdb->prefix; Stock_Relay_Outbox owns it). */
	public const TABLE = 'stock_relay_outbox';

	/** The status of an outbox row that notes a touched item, not yet an event. */
	public const TOUCHED = 'touched';

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

	/**
	 * Whether the CSV importer saved a product in this request.
	 *
	 * @var bool
	 */
	private static bool $imported = false;

	/** Hook in. */
	public static function register(): void {
		foreach ( array( 'woocommerce_product_set_stock', 'woocommerce_variation_set_stock', 'woocommerce_product_quick_edit_save' ) as $hook ) {
			add_action( $hook, array( self::class, 'on_product' ), 10, 1 );
		}
		add_action( 'woocommerce_product_import_inserted_product_object', array( self::class, 'on_import' ), 10, 1 );
		add_action( 'woocommerce_updated_product_stock', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_product_bulk_edit_save', array( self::class, 'on_bulk_edit' ), 10, 1 );
		add_action( 'woocommerce_product_set_stock_status', array( self::class, 'on_status' ), 10, 1 );
		add_action( 'woocommerce_variation_set_stock_status', array( self::class, 'on_status' ), 10, 1 );
		add_action( 'woocommerce_update_product', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_update_product_variation', array( self::class, 'on_id' ), 10, 1 );
		add_action( 'woocommerce_reduce_order_stock', array( self::class, 'on_order' ), 10, 1 );
		add_action( 'woocommerce_restore_order_stock', array( self::class, 'on_order' ), 10, 1 );
		add_action( 'woocommerce_restock_refunded_item', array( self::class, 'on_refund' ), 10, 4 );
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
	 * Stock status changed (also without any quantity change): the hook's status and product arguments are not
	 * needed, the state is read again when the touched row is turned into an event.
	 *
	 * @param mixed $id Product id.
	 */
	public static function on_status( $id ): void {
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
	 */
	public static function on_refund( $product_id, $old_stock = null, $new_stock = null, $order = null ): void {
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
		if ( ! self::is_product_type( get_post_type( (int) $post_id ) ) ) {
			return;
		}
		$state = Stock_Relay_State::read( array( (int) $post_id ) )[ (int) $post_id ] ?? null;
		if ( null === $state ) {
			return;
		}
		self::$touched[ (int) $post_id ] = array(
			'deleted' => true,
			'state'   => Stock_Relay_State::sendable( $state ),
		);
		Stock_Relay_Response::hold();
	}

	/**
	 * Restored from the trash.
	 *
	 * @param mixed $post_id Post id.
	 */
	public static function on_untrash( $post_id ): void {
		if ( self::is_product_type( get_post_type( (int) $post_id ) ) ) {
			self::$touched[ (int) $post_id ] = array( 'restored' => true );
			Stock_Relay_Response::hold();
		}
	}

	/**
	 * Name the cause of this request's changes when no hook can tell it: the relay's signed
	 * stock.adjust route sets `relay` before it applies a change, so the change it causes goes back to
	 * the relay like any other, marked as the relay's own (PROTOCOL.md §3).
	 *
	 * @param array<string, mixed> $cause E.g. array( 'kind' => 'relay' ).
	 */
	public static function set_cause( array $cause ): void {
		self::$cause = $cause;
	}

	/** Remember a product for the end of the request. */
	private static function touch( int $id ): void {
		if ( $id > 0 && ! isset( self::$touched[ $id ] ) ) {
			self::$touched[ $id ] = array();
			Stock_Relay_Response::hold();
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
	 * End of request (shutdown, priority 20: after WooCommerce's deferred parent sync at 10): write
	 * the touched items to the outbox, durably, before the request ends, and ask for a drain.
	 */
	public static function flush(): void {
		if ( ! self::$touched ) {
			return;
		}
		$touched       = self::$touched;
		self::$touched = array();
		if ( ! self::write( $touched, self::request_cause(), microtime( true ) ) ) {
			// Never break the shop's request; the change is caught by the next save or a resend.
			Stock_Relay_Delivery::note_error( __( 'Stock Relay could not write to its outbox table.', 'stock-relay' ) );
			return;
		}
		Stock_Relay_Kick::request_drain();
	}

	/**
	 * Note the touched items in the outbox: one INSERT of `touched` rows, atomic on its own.
	 *
	 * This is all a stock-changing request pays for in the database. A touched row is as durable as
	 * an event row; the drainer turns it into an event (Stock_Relay_Outbox::materialise()).
	 *
	 * @param array<int, array<string, mixed>> $touched Item id => flags (deleted, restored, and state:
	 *                                                  read when the item was trashed or deleted).
	 * @param array<string, mixed>             $cause   The request's cause.
	 * @param float                            $at      When (Unix seconds).
	 * @return bool Whether the rows were written.
	 */
	public static function write( array $touched, array $cause, float $at ): bool {
		global $wpdb;
		$rows = array();
		$now  = time();
		foreach ( $touched as $id => $flags ) {
			$touch  = array(
				'cause' => $cause,
				'at'    => $at,
			) + array_intersect_key( (array) $flags, array_flip( array( 'deleted', 'restored', 'state' ) ) );
			$rows[] = array( (int) $id, '', (string) wp_json_encode( $touch, JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION ), self::TOUCHED, $now );
		}
		if ( ! $rows ) {
			return true;
		}
		$sql = 'INSERT INTO ' . $wpdb->prefix . self::TABLE . ' (product_id, event_id, payload, status, created_at) VALUES ';
		$pdo = self::sqlite_pdo();
		if ( null !== $pdo ) {
			try {
				$statement = $pdo->prepare( $sql . implode( ', ', array_fill( 0, count( $rows ), '(?, ?, ?, ?, ?)' ) ) );
				if ( false !== $statement ) {
					$position = 0;
					foreach ( $rows as $row ) {
						foreach ( $row as $value ) {
							$statement->bindValue( ++$position, $value, is_int( $value ) ? PDO::PARAM_INT : PDO::PARAM_STR ); // phpcs:ignore WordPress.DB.RestrictedClasses.mysql__PDO -- WordPress's own SQLite connection (sqlite_pdo()), not a second one.
						}
					}
					if ( $statement->execute() ) {
						return true;
					}
				}
			} catch ( Throwable $e ) {
				unset( $e ); // Through the driver below, then.
			}
		}
		$values = array();
		foreach ( $rows as $row ) {
			// The payload is ASCII JSON (unicode escaped), so wpdb has no charset to look up for it.
			$values[] = $wpdb->prepare( '(%d, %s, %s, %s, %d)', ...$row ); // phpcs:ignore WordPress.DB.PreparedSQLPlaceholders.ReplacementsWrongNumber -- $row holds the five values, spread.
		}
		return false !== $wpdb->query( $sql . implode( ', ', $values ) ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- table name from $wpdb->prefix, values prepared above.
	}

	/**
	 * On the SQLite database integration (3.0+), its SQLite connection: the driver translates each
	 * MySQL statement in PHP (about 1 ms for this INSERT on the bench machine), while this plain INSERT
	 * means the same to SQLite (same table, same connection, same transaction if one is open) and runs
	 * natively in a few microseconds. Uses the driver's public accessors, WP_SQLite_DB::get_driver()
	 * and get_sqlite_pdo(); any other database (or an older integration) goes through $wpdb.
	 */
	private static function sqlite_pdo(): ?PDO {
		global $wpdb;
		if ( ! ( $wpdb instanceof WP_SQLite_DB ) || ! method_exists( $wpdb, 'get_driver' ) ) {
			return null;
		}
		try {
			$driver = $wpdb->get_driver();
			$pdo    = is_object( $driver ) && method_exists( $driver, 'get_sqlite_pdo' ) ? $driver->get_sqlite_pdo() : null;
		} catch ( Throwable $e ) {
			return null; // No connection yet: $wpdb connects and reports as usual.
		}
		return $pdo instanceof PDO ? $pdo : null;
	}

	/**
	 * Product post types.
	 *
	 * @param mixed $type Post type.
	 */
	private static function is_product_type( $type ): bool {
		return in_array( $type, array( 'product', 'product_variation' ), true );
	}
}
