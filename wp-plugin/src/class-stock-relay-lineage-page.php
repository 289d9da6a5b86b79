<?php
/**
 * A product's lineage (issue 17 item 2): a small admin page, reached from the Products list's row action and the
 * product box, that shows lineage.query's chain for each SKU of the product in plain words: the shop's changes, what
 * each channel did with them, and where each channel stands. Loaded by assets/console.js from
 * stock-relay/v1/lineage; the page itself asks the relay nothing.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * A page without a menu entry (parent ''), under WooCommerce's capability.
 */
final class Stock_Relay_Lineage_Page {

	public const SLUG = 'stock-relay-lineage';

	/**
	 * The page's hook suffix (the console script is enqueued on it).
	 *
	 * @var string
	 */
	public static $hook = '';

	/** Hook in (admin requests only). */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
	}

	/** The page, with no menu entry. */
	public static function menu(): void {
		self::$hook = (string) add_submenu_page( '', __( 'Stock Relay lineage', 'stock-relay' ), '', Stock_Relay_Admin::CAP, self::SLUG, array( self::class, 'render' ) );
		add_action( 'load-' . self::$hook, array( self::class, 'title' ) );
	}

	/** A page without a menu entry has no title WordPress can find: give it one (admin-header.php prints it). */
	public static function title(): void {
		global $title;
		$title = __( 'Stock Relay lineage', 'stock-relay' ); // phpcs:ignore WordPress.WP.GlobalVariablesOverride.Prohibited -- what WordPress reads for the page title.
	}

	/**
	 * The page's address for a product.
	 *
	 * @param int $product_id Product id.
	 */
	public static function url( int $product_id ): string {
		return admin_url( 'admin.php?page=' . self::SLUG . '&product=' . $product_id );
	}

	/** The page: the product's name and a loading state the script replaces. */
	public static function render(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) ) {
			return;
		}
		$id   = isset( $_GET['product'] ) ? absint( wp_unslash( $_GET['product'] ) ) : 0; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only selects what to show.
		$post = get_post( $id );
		echo '<div class="wrap">';
		if ( ! $post || 'product' !== $post->post_type ) {
			echo '<h1>' . esc_html__( 'Stock Relay lineage', 'stock-relay' ) . '</h1><p>' . esc_html__( 'No such product.', 'stock-relay' ) . '</p></div>';
			return;
		}
		/* translators: %s: product name */
		echo '<h1>' . esc_html( sprintf( __( 'Lineage of %s', 'stock-relay' ), get_the_title( $post ) ) ) . '</h1>';
		echo '<p>' . esc_html__( 'Each change the shop sent for this product, and what every channel did with it: from the shop\'s change to each channel\'s answer.', 'stock-relay' )
			. ' <a href="' . esc_url( (string) get_edit_post_link( $id ) ) . '">' . esc_html__( 'Edit the product', 'stock-relay' ) . '</a></p>';
		echo '<div id="stock-relay-lineage" data-product="' . esc_attr( (string) $id ) . '" aria-live="polite" aria-busy="true"><p><span class="spinner is-active" style="float:none;margin:0 .5em 0 0"></span>' . esc_html__( 'Asking the relay…', 'stock-relay' ) . '</p>'
			. '<noscript><p>' . esc_html__( 'The lineage is loaded with JavaScript; turn it on to see it here.', 'stock-relay' ) . '</p></noscript></div></div>';
	}
}
