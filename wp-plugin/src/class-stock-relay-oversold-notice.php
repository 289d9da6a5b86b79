<?php
/**
 * The admin notice for oversold incidents (the last unit sold twice), from what the plugin last heard from the
 * relay: never a request to the relay while a page is shown.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * The relay's `oversold` summary is kept in a non-autoloaded option whenever the plugin reads the relay's status
 * (the Stock Relay page, and the watchdog at most every REFRESH seconds); the notice reads only that option. A user
 * dismisses the notice for the newest incident it names; a newer incident shows it again.
 */
final class Stock_Relay_Oversold_Notice {

	public const OPTION    = 'stock_relay_oversold';
	public const CHECKED   = 'stock_relay_oversold_checked'; // Autoloaded int: the watchdog's last status read.
	public const DISMISSED = 'stock_relay_oversold_dismissed'; // User meta: the newest incident key dismissed.
	public const ACTION    = 'stock_relay_dismiss_oversold';
	public const REFRESH   = 900;

	/** Hook in (admin requests). */
	public static function register(): void {
		add_action( 'admin_notices', array( self::class, 'show' ) );
		add_action( 'admin_post_' . self::ACTION, array( self::class, 'handle_dismiss' ) );
	}

	/**
	 * Keep the summary of a status answer (any 200): the newest incident, or nothing when there is none or the
	 * relay does not report them.
	 *
	 * @param int                  $status HTTP status.
	 * @param array<string, mixed> $body   Decoded answer.
	 */
	public static function remember( int $status, array $body ): void {
		if ( 200 !== $status ) {
			return; // The relay did not answer: keep what it last said.
		}
		$summary = Stock_Relay_Status_View::oversold_summary( $body );
		if ( null === $summary ) {
			delete_option( self::OPTION );
			return;
		}
		if ( false === get_option( self::OPTION, false ) ) {
			add_option( self::OPTION, $summary, '', false );
		} else {
			update_option( self::OPTION, $summary, false );
		}
	}

	/** The watchdog's part: read the relay's status at most every REFRESH seconds, so the notice is current. */
	public static function refresh(): void {
		if ( (int) get_option( self::CHECKED, 0 ) > time() - self::REFRESH ) {
			return;
		}
		update_option( self::CHECKED, time(), true );
		$settings = Stock_Relay_Plugin::settings();
		if ( ! Stock_Relay_Admin::configured( $settings ) ) {
			return;
		}
		$answer = Stock_Relay_Delivery::status( $settings );
		self::remember( $answer['status'], $answer['body'] );
	}

	/**
	 * The summary to show this user now, or null: none kept, older than its period, or dismissed.
	 *
	 * @return array{incidents: int, days: int, key: string, at: float, sku: string}|null
	 */
	public static function current(): ?array {
		$summary = get_option( self::OPTION, null );
		if ( ! is_array( $summary ) || ! isset( $summary['key'], $summary['at'], $summary['days'], $summary['incidents'] ) ) {
			return null;
		}
		if ( (float) $summary['at'] < time() - 86400 * (int) $summary['days'] ) {
			return null; // The newest incident left the period since the relay was last asked.
		}
		if ( (string) get_user_meta( get_current_user_id(), self::DISMISSED, true ) === (string) $summary['key'] ) {
			return null;
		}
		return $summary;
	}

	/** Is this screen one where the notice belongs: the dashboard, WooCommerce's and Products' screens. */
	private static function screen_fits(): bool {
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( ! $screen instanceof WP_Screen ) {
			return false;
		}
		$ids = function_exists( 'wc_get_screen_ids' ) ? (array) wc_get_screen_ids() : array();
		return 'dashboard' === $screen->id
			|| in_array( $screen->id, $ids, true )
			|| in_array( $screen->post_type, array( 'product', 'product_variation', 'shop_order' ), true )
			|| in_array( $screen->id, array( 'edit-product', 'product', 'edit-shop_order', 'shop_order', 'toplevel_page_woocommerce' ), true )
			|| false !== strpos( (string) $screen->id, 'page_' . Stock_Relay_Admin::SLUG )
			|| 0 === strpos( (string) $screen->id, 'woocommerce_page_' )
			|| 0 === strpos( (string) $screen->id, 'product_page_' );
	}

	/** The notice (admin_notices). */
	public static function show(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) || ! self::screen_fits() ) {
			return;
		}
		$summary = self::current();
		if ( null === $summary ) {
			return;
		}
		$page    = admin_url( 'admin.php?page=' . Stock_Relay_Admin::SLUG . '#stock-relay-oversold' );
		$dismiss = wp_nonce_url( admin_url( 'admin-post.php?action=' . self::ACTION . '&key=' . rawurlencode( (string) $summary['key'] ) ), self::ACTION );
		$text    = sprintf(
			/* translators: 1: number of incidents, 2: number of days, 3: SKU */
			_n( 'Stock Relay: %1$d marketplace sale in the last %2$d days sold a unit the shop no longer had (newest: SKU %3$s). One order cannot be filled from stock: contact one buyer, or restock.', 'Stock Relay: %1$d marketplace sales in the last %2$d days sold a unit the shop no longer had (newest: SKU %3$s). One order cannot be filled from stock: contact one buyer, or restock.', (int) $summary['incidents'], 'stock-relay' ), // One line: xgettext keeps a translators comment only when the text starts on the line below it.
			(int) $summary['incidents'],
			(int) $summary['days'],
			(string) $summary['sku']
		);
		echo '<div class="notice notice-warning" id="stock-relay-oversold-notice"><p>' . esc_html( $text )
			. ' <a href="' . esc_url( $page ) . '">' . esc_html__( 'See the incidents', 'stock-relay' ) . '</a>'
			. ' | <a href="' . esc_url( $dismiss ) . '">' . esc_html__( 'Dismiss until a new one', 'stock-relay' ) . '</a></p></div>';
	}

	/** Dismiss (admin-post): remember the newest incident this user has seen. */
	public static function handle_dismiss(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( self::ACTION );
		$key = isset( $_GET['key'] ) ? sanitize_text_field( wp_unslash( (string) $_GET['key'] ) ) : '';
		if ( '' !== $key ) {
			update_user_meta( get_current_user_id(), self::DISMISSED, $key );
		}
		$back = wp_get_referer();
		wp_safe_redirect( $back ? $back : admin_url() );
		exit;
	}
}
