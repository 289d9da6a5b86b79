<?php
/**
 * Dead letters (issue 17 item 3): WooCommerce › Dead letters, a list per channel (SKU, product link, the channel's own
 * answer in plain words, since when) with paging and retry per item or for a selection. The page asks the relay
 * nothing; assets/console.js loads each page of the list from stock-relay/v1/dead and retries through
 * stock-relay/v1/dead/retry, showing the outcome.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The page and the list's HTML (escaped here; the route prints it into the page).
 */
final class Stock_Relay_Dead_Letters_Page {

	public const SLUG = 'stock-relay-dead-letters';

	/**
	 * The page's hook suffix (the console script is enqueued on it).
	 *
	 * @var string
	 */
	public static $hook = '';

	/** Hook in (admin requests only). */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ), 20 ); // After the Stock Relay page: listed below it.
	}

	/** The menu entry under WooCommerce. */
	public static function menu(): void {
		self::$hook = (string) add_submenu_page( 'woocommerce', __( 'Stock Relay dead letters', 'stock-relay' ), __( 'Dead letters', 'stock-relay' ), Stock_Relay_Admin::CAP, self::SLUG, array( self::class, 'render' ) );
	}

	/** The page: a loading state the script replaces with the first page of the list. */
	public static function render(): void {
		if ( ! current_user_can( Stock_Relay_Admin::CAP ) ) {
			return;
		}
		$channel = isset( $_GET['channel'] ) ? sanitize_text_field( wp_unslash( $_GET['channel'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only selects what to show.
		echo '<div class="wrap"><h1>' . esc_html__( 'Stock Relay dead letters', 'stock-relay' ) . '</h1>';
		echo '<p>' . esc_html__( 'Changes a channel refused and the relay gave up on. Retrying sends the shop\'s current quantity again (not the refused one); correct the cause first (such as a SKU the channel does not list).', 'stock-relay' ) . '</p>';
		echo '<div id="stock-relay-dead-notice" aria-live="polite"></div>';
		echo '<div id="stock-relay-dead" data-channel="' . esc_attr( $channel ) . '" aria-live="polite" aria-busy="true"><p><span class="spinner is-active" style="float:none;margin:0 .5em 0 0"></span>' . esc_html__( 'Asking the relay…', 'stock-relay' ) . '</p>'
			. '<noscript><p>' . esc_html__( 'The dead letters are loaded with JavaScript; turn it on to see them here.', 'stock-relay' ) . '</p></noscript></div></div>';
	}

	/**
	 * One page of the list: a tab per channel (with its count), the letters, retry buttons and the next page.
	 *
	 * @param string                                                                                               $channel  The chosen channel, or '' for all.
	 * @param int                                                                                                  $cursor   This page's cursor (0: the first).
	 * @param array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null} $answer   dead.query's answer.
	 * @param array<string, int>                                                                                   $channels The site's channels and their open dead letters.
	 */
	public static function render_list( string $channel, int $cursor, array $answer, array $channels ): void {
		$url = admin_url( 'admin.php?page=' . self::SLUG );
		echo '<nav class="nav-tab-wrapper" aria-label="' . esc_attr__( 'Channels', 'stock-relay' ) . '">';
		$tabs = array( '' => __( 'All channels', 'stock-relay' ) );
		foreach ( $channels as $name => $count ) {
			/* translators: 1: channel name, 2: number of open dead letters */
			$tabs[ $name ] = sprintf( __( '%1$s (%2$d)', 'stock-relay' ), $name, $count );
		}
		foreach ( $tabs as $name => $label ) {
			$name = (string) $name;
			echo '<a class="' . esc_attr( 'nav-tab' . ( $name === $channel ? ' nav-tab-active' : '' ) ) . '" data-channel="' . esc_attr( $name ) . '" href="' . esc_url( '' === $name ? $url : add_query_arg( 'channel', rawurlencode( $name ), $url ) ) . '">' . esc_html( $label ) . '</a>';
		}
		echo '</nav>';
		if ( 200 !== $answer['status'] ) {
			$text = ( 404 === $answer['status'] && 'unknown_site' !== $answer['code'] ) || 405 === $answer['status']
				? __( 'This relay does not list dead letters yet; update the relay to see them here.', 'stock-relay' )
				: Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false );
			echo '<div class="notice notice-error inline"><p>' . esc_html( $text ) . '</p></div>';
			return;
		}
		$rows  = Stock_Relay_Console_View::dead_rows( $answer['body'], time() );
		$total = is_numeric( $answer['body']['total'] ?? null ) ? (int) $answer['body']['total'] : count( $rows );
		if ( ! $rows ) {
			echo '<p id="stock-relay-dead-empty">' . esc_html( 0 === $cursor ? __( 'No dead letters: every change reached this channel or is still being sent.', 'stock-relay' ) : __( 'No more dead letters.', 'stock-relay' ) ) . '</p>';
			return;
		}
		/* translators: %d: number of open dead letters */
		echo '<p>' . esc_html( sprintf( _n( '%d dead letter, newest first.', '%d dead letters, newest first.', $total, 'stock-relay' ), $total ) ) . '</p>';
		echo '<table class="widefat striped" id="stock-relay-dead-table"><thead><tr><td class="check-column"><input type="checkbox" id="stock-relay-dead-all" aria-label="' . esc_attr__( 'Select all', 'stock-relay' ) . '"></td>';
		foreach ( array( __( 'Channel', 'stock-relay' ), __( 'SKU', 'stock-relay' ), __( 'Product', 'stock-relay' ), __( 'The channel\'s answer', 'stock-relay' ), __( 'Since', 'stock-relay' ), __( 'Quantity', 'stock-relay' ), '' ) as $head ) {
			echo '<th>' . esc_html( $head ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $rows as $row ) {
			$item = array(
				'channel' => $row['channel'],
				'sku'     => $row['sku'],
			);
			echo '<tr><th class="check-column" scope="row"><input type="checkbox" class="stock-relay-dead-item" value="' . esc_attr( (string) wp_json_encode( $item ) ) . '" aria-label="' . esc_attr( $row['channel'] . ' ' . $row['sku'] ) . '"></th>'
				. '<td>' . esc_html( $row['channel'] ) . '</td><td>' . esc_html( $row['sku'] ) . '</td><td>' . self::product_link( $row['edit_id'] ) . '</td>' // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- escaped in product_link().
				. '<td>' . esc_html( $row['answer'] ) . '</td><td>' . esc_html( $row['since'] ) . '</td><td>' . esc_html( $row['quantity'] ) . '</td>'
				. '<td><button type="button" class="button stock-relay-dead-retry" data-item="' . esc_attr( (string) wp_json_encode( $item ) ) . '">' . esc_html__( 'Retry', 'stock-relay' ) . '</button></td></tr>';
		}
		echo '</tbody></table><p><button type="button" class="button button-primary" id="stock-relay-dead-retry-selected">' . esc_html__( 'Retry selected', 'stock-relay' ) . '</button> ';
		if ( $cursor > 0 ) {
			echo '<button type="button" class="button stock-relay-dead-page" data-cursor="0">' . esc_html__( 'Newest', 'stock-relay' ) . '</button> ';
		}
		$next = $answer['body']['next_cursor'] ?? null;
		if ( is_numeric( $next ) ) {
			echo '<button type="button" class="button stock-relay-dead-page" data-cursor="' . esc_attr( (string) (int) $next ) . '">' . esc_html__( 'Older', 'stock-relay' ) . '</button>';
		}
		echo '</p>';
	}

	/**
	 * A link to the product the relay names (a variation's parent), or why there is none.
	 *
	 * @param int $id Product id.
	 */
	private static function product_link( int $id ): string {
		$post = $id > 0 ? get_post( $id ) : null;
		if ( ! $post || ! in_array( $post->post_type, array( 'product', 'product_variation' ), true ) ) {
			return esc_html__( 'not in the shop', 'stock-relay' );
		}
		$link = get_edit_post_link( $post->ID );
		$name = get_the_title( $post );
		return $link ? '<a href="' . esc_url( $link ) . '">' . esc_html( '' !== $name ? $name : '#' . $post->ID ) . '</a>' : esc_html( $name );
	}
}
