<?php
/**
 * The admin notices of the alerts (Stock_Relay_Alerts) on WooCommerce's screens, the Products screens and the Stock
 * Relay pages, each dismissible by a user until it changes. Nothing here asks the relay.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * A dismissal is the alert's key in the user's meta DISMISSED; keys of alerts that are gone are dropped when the
 * notices are shown, so an alert that ends and comes back shows again, and the meta never grows.
 */
final class Stock_Relay_Alert_Notice {

	public const DISMISSED = 'stock_relay_alerts_dismissed'; // User meta: keys dismissed.
	public const ACTION    = 'stock_relay_dismiss_alert';

	/** Is this screen one where alerts belong: WooCommerce's, the Products and Orders screens, ours. */
	private static function screen_fits(): bool {
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( ! $screen instanceof WP_Screen ) {
			return false;
		}
		$ids = function_exists( 'wc_get_screen_ids' ) ? (array) wc_get_screen_ids() : array();
		return in_array( $screen->id, $ids, true )
			|| in_array( $screen->post_type, array( 'product', 'product_variation', 'shop_order' ), true )
			|| in_array( $screen->id, array( 'edit-product', 'product', 'edit-shop_order', 'shop_order', 'toplevel_page_woocommerce' ), true )
			|| 0 === strpos( (string) $screen->id, 'woocommerce_page_' )
			|| 0 === strpos( (string) $screen->id, 'product_page_' );
	}

	/** The notices (admin_notices). */
	public static function show(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) || ! self::screen_fits() ) {
			return;
		}
		$alerts    = Stock_Relay_Alerts::current();
		$user      = get_current_user_id();
		$dismissed = self::dismissed( $user );
		$keys      = array_column( $alerts, 'key' );
		$still     = array_values( array_intersect( $dismissed, $keys ) );
		if ( $still !== $dismissed ) {
			update_user_meta( $user, self::DISMISSED, $still );
		}
		$now = time();
		foreach ( $alerts as $alert ) {
			if ( in_array( $alert['key'], $still, true ) ) {
				continue;
			}
			$dismiss = wp_nonce_url( admin_url( 'admin-post.php?action=' . self::ACTION . '&key=' . rawurlencode( (string) $alert['key'] ) ), self::ACTION );
			$where   = 'dead_letters' === $alert['code'] && class_exists( 'Stock_Relay_Dead_Letters_Page' )
				? array( admin_url( 'admin.php?page=' . Stock_Relay_Dead_Letters_Page::SLUG ), __( 'See the dead letters', 'stock-relay' ) )
				: array( admin_url( 'admin.php?page=' . Stock_Relay_Admin::SLUG ), __( 'Open Stock Relay', 'stock-relay' ) );
			echo '<div class="' . esc_attr( 'notice notice-' . ( 'error' === $alert['level'] ? 'error' : 'warning' ) . ' stock-relay-alert' ) . '" data-stock-relay-alert="' . esc_attr( (string) $alert['code'] ) . '"><p>'
				. '<strong>' . esc_html__( 'Stock Relay:', 'stock-relay' ) . '</strong> ' . esc_html( Stock_Relay_Alert_Text::sentence( $alert, $now ) )
				. ' <a href="' . esc_url( $where[0] ) . '">' . esc_html( $where[1] ) . '</a>'
				. ' | <a href="' . esc_url( $dismiss ) . '">' . esc_html__( 'Dismiss until it changes', 'stock-relay' ) . '</a></p></div>';
		}
	}

	/**
	 * The keys a user dismissed.
	 *
	 * @return string[]
	 */
	private static function dismissed( int $user ): array {
		$keys = get_user_meta( $user, self::DISMISSED, true );
		return is_array( $keys ) ? array_values( array_filter( $keys, static fn( $key ): bool => is_string( $key ) && '' !== $key ) ) : array();
	}

	/** Dismiss (admin-post): this user no longer sees the alert with this key, until its key changes. */
	public static function handle_dismiss(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( self::ACTION );
		$key = isset( $_GET['key'] ) ? sanitize_key( wp_unslash( (string) $_GET['key'] ) ) : '';
		if ( '' !== $key ) {
			$dismissed   = self::dismissed( get_current_user_id() );
			$dismissed[] = $key;
			update_user_meta( get_current_user_id(), self::DISMISSED, array_values( array_unique( $dismissed ) ) );
		}
		$back = wp_get_referer();
		wp_safe_redirect( $back ? $back : admin_url( 'admin.php?page=' . Stock_Relay_Admin::SLUG ) );
		exit;
	}
}
