<?php
/**
 * The HTML of the relay's part of the Stock Relay page ("Channels", "Sales from marketplaces", "Oversold"), made
 * for the status REST route (Stock_Relay_Status_Route) from the relay's status answer; the page itself never
 * waits for the relay.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Prints escaped HTML; the words come from Stock_Relay_Status_View.
 */
final class Stock_Relay_Status_Panel {

	/**
	 * The panel for one status answer. Until the relay offers status.query (404), it says so instead of failing.
	 *
	 * @param array<string, mixed>                                                                                 $settings Settings.
	 * @param array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null} $answer   The relay's answer.
	 */
	public static function render( array $settings, array $answer ): void {
		$view = Stock_Relay_Status_View::rows( $answer['status'], $answer['body'] );
		if ( null === $view ) {
			$text = ( 404 === $answer['status'] && 'unknown_site' !== $answer['code'] ) || 405 === $answer['status']
				? __( 'This relay does not report channel health yet; update the relay to see it here.', 'stock-relay' )
				: Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false );
			echo '<div class="notice notice-error inline"><p>' . esc_html( $text ) . '</p></div>';
			return;
		}
		$controls = Stock_Relay_Pause_Controls::cells( $answer['body'] ); // One per row, in order.
		echo '<table class="widefat striped" style="max-width:60em"><thead><tr>';
		foreach ( Stock_Relay_Status_View::heads() as $head ) {
			echo '<th>' . esc_html( $head ) . '</th>';
		}
		echo '<th>' . esc_html__( 'Pause', 'stock-relay' ) . '</th></tr></thead><tbody>';
		foreach ( $view as $i => $row ) {
			echo '<tr>';
			foreach ( $row as $cell ) {
				// A list of lines (drift: the count, then examples), each escaped on its own.
				echo '<td>' . implode( '<br>', array_map( 'esc_html', (array) $cell ) ) . '</td>';
			}
			echo '<td>' . ( $controls[ $i ] ?? '' ) . '</td></tr>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- escaped by Stock_Relay_Pause_Controls.
		}
		echo '</tbody></table>';
		echo Stock_Relay_Pause_Controls::all( $answer['body'] ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- escaped by Stock_Relay_Pause_Controls.
		self::render_sales( $answer['body'] );
		self::render_oversold( $settings, $answer['body'] );
	}

	/**
	 * "Sales from marketplaces": what other systems reported, as the relay counts it (nothing from an older relay).
	 *
	 * @param array<string, mixed> $body The relay's status answer.
	 */
	private static function render_sales( array $body ): void {
		$sales = Stock_Relay_Status_View::sales( $body );
		if ( null === $sales ) {
			return;
		}
		echo '<h2>' . esc_html__( 'Sales from marketplaces', 'stock-relay' ) . '</h2><table class="widefat striped" style="max-width:60em"><tbody>';
		foreach ( $sales['rows'] as $row ) {
			echo '<tr><th scope="row">' . esc_html( $row[0] ) . '</th><td>' . esc_html( $row[1] ) . '</td></tr>';
		}
		echo '</tbody></table>';
		if ( $sales['refused'] ) {
			echo '<p>' . esc_html__( 'Refused by the shop (the newest):', 'stock-relay' ) . '</p><ul style="list-style:disc;margin-left:2em">';
			foreach ( $sales['refused'] as $line ) {
				echo '<li>' . esc_html( $line ) . '</li>';
			}
			echo '</ul>';
		}
	}

	/**
	 * "Oversold": the last days' incidents, newest first, with the shop's quantity now and what to do. When the
	 * relay counts more than one, its audit log (audit.query, action oversold) lists them; else the newest alone.
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @param array<string, mixed> $body     The relay's status answer.
	 */
	private static function render_oversold( array $settings, array $body ): void {
		$oversold = $body['oversold'] ?? null;
		if ( ! is_array( $oversold ) ) {
			return;
		}
		$entries = null;
		if ( is_numeric( $oversold['incidents'] ?? null ) && (int) $oversold['incidents'] > 1 ) {
			$days    = is_numeric( $oversold['days'] ?? null ) ? (int) $oversold['days'] : 7;
			$query   = array(
				'type'   => 'audit.query',
				'site'   => $settings['site'],
				'action' => 'oversold',
				'since'  => time() - 86400 * $days,
				'limit'  => 50,
			);
			$audit   = Stock_Relay_Delivery::post( $settings, 'audit', (string) stock_relay_json( $query ) );
			$entries = 200 === $audit['status'] && is_array( $audit['body']['entries'] ?? null ) ? $audit['body']['entries'] : null;
		}
		$stock = array();
		foreach ( array_merge( (array) ( $entries ?? array() ), array( $oversold['newest'] ?? null ) ) as $incident ) {
			$sku = is_array( $incident ) && is_string( $incident['sku'] ?? null ) ? $incident['sku'] : '';
			if ( '' !== $sku && ! array_key_exists( $sku, $stock ) && function_exists( 'wc_get_product_id_by_sku' ) ) {
				$product       = wc_get_product( wc_get_product_id_by_sku( $sku ) );
				$stock[ $sku ] = $product && $product->managing_stock() ? (int) $product->get_stock_quantity() : null;
			}
		}
		$view = Stock_Relay_Status_View::oversold( $body, $entries, $stock );
		if ( null === $view ) {
			return;
		}
		echo '<h2 id="stock-relay-oversold">' . esc_html__( 'Oversold', 'stock-relay' ) . '</h2><p>' . esc_html( $view['summary'] ) . '</p>';
		if ( ! $view['rows'] ) {
			return;
		}
		echo '<table class="widefat striped" style="max-width:60em"><thead><tr>';
		foreach ( array( __( 'When', 'stock-relay' ), __( 'SKU', 'stock-relay' ), __( 'Channels and orders', 'stock-relay' ), __( 'Shop stock now', 'stock-relay' ) ) as $head ) {
			echo '<th>' . esc_html( $head ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $view['rows'] as $row ) {
			echo '<tr>';
			foreach ( $row as $cell ) {
				echo '<td>' . implode( '<br>', array_map( 'esc_html', (array) $cell ) ) . '</td>';
			}
			echo '</tr>';
		}
		echo '</tbody></table><p>' . esc_html( $view['advice'] ) . '</p>';
	}
}
