<?php
/**
 * Builds stock events and batches exactly as docs/wire-protocol.md §2 describes; no WordPress dependency.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Turns a product's stock state (read by the glue layer) into an absolute-state event, and
 * events into batches that respect the relay's limits (500 events, 1 MiB).
 */
final class Stock_Relay_Payload {

	public const MAX_EVENTS = 500;
	public const MAX_BYTES  = 1048576;

	/**
	 * One event.
	 *
	 * @param array<string, mixed> $state       Keys: product_id, variation_id, parent_id, sku, manage_stock,
	 *                                          stock_quantity, stock_status, backorders, deleted (bool), restored (bool).
	 * @param int                  $version     The product's version (Stock_Relay_Outbox::bump_version()).
	 * @param array<string, mixed> $cause       Keys: kind, order_id (optional).
	 * @param string               $event_id    The event's id ('' in a snapshot, whose items carry none).
	 * @param float                $occurred_at When (Unix seconds, with microseconds).
	 * @return array<string, mixed>
	 */
	public static function event( array $state, int $version, array $cause, string $event_id, float $occurred_at ): array {
		$kind = 'stock';
		if ( ! empty( $state['deleted'] ) ) {
			$kind = 'deleted';
		} elseif ( ! empty( $state['restored'] ) ) {
			$kind = 'restored';
		}
		$manage   = (bool) $state['manage_stock'];
		$quantity = $manage && null !== $state['stock_quantity'] && '' !== $state['stock_quantity'] ? (int) $state['stock_quantity'] : null;
		$status   = in_array( $state['stock_status'], array( 'instock', 'outofstock', 'onbackorder' ), true ) ? $state['stock_status'] : 'outofstock';
		$back     = in_array( $state['backorders'] ?? 'no', array( 'no', 'notify', 'yes' ), true ) ? $state['backorders'] : 'no';
		$event    = array(
			'id'             => $event_id,
			'kind'           => $kind,
			'product_id'     => (int) $state['product_id'],
			'variation_id'   => empty( $state['variation_id'] ) ? null : (int) $state['variation_id'],
			'parent_id'      => empty( $state['parent_id'] ) ? null : (int) $state['parent_id'],
			'sku'            => trim( (string) $state['sku'] ),
			'manage_stock'   => $manage,
			'stock_quantity' => $quantity,
			'stock_status'   => $status,
			'backorders'     => $back,
			'version'        => $version,
			'occurred_at'    => gmdate( 'Y-m-d\TH:i:s', (int) $occurred_at ) . sprintf( '.%06dZ', (int) round( fmod( $occurred_at, 1.0 ) * 1000000 ) % 1000000 ),
			'cause'          => self::cause( $cause ),
		);
		return $event;
	}

	/**
	 * The cause object, limited to the kinds the protocol knows.
	 *
	 * @param array<string, mixed> $cause Cause.
	 * @return array<string, mixed>
	 */
	private static function cause( array $cause ): array {
		$kinds = array( 'order', 'refund', 'admin', 'rest', 'import', 'bulk_edit', 'relay', 'other' );
		$out   = array( 'kind' => in_array( $cause['kind'] ?? '', $kinds, true ) ? $cause['kind'] : 'other' );
		if ( ! empty( $cause['order_id'] ) ) {
			$out['order_id'] = (int) $cause['order_id'];
		}
		return $out;
	}

	/**
	 * An item's stock state from its raw postmeta, the way WooCommerce derives it (Resend everything
	 * reads 500 items with one query instead of loading 500 product objects).
	 *
	 * A variation whose _manage_stock is "no" while its parent's is "yes" uses the parent's stock
	 * (WooCommerce's manage_stock = 'parent'): the parent owns the stock row and the backorders.
	 *
	 * @param int                   $id             The product or variation id.
	 * @param int                   $parent_id      A variation's parent product id; 0 for a product.
	 * @param array<string, string> $own            The item's meta (_sku, _manage_stock, _stock, _stock_status, _backorders).
	 * @param array<string, string> $parent_meta    The parent's meta, for a variation.
	 * @param bool                  $manage_enabled The woocommerce_manage_stock option is "yes".
	 * @return array<string, mixed>
	 */
	public static function state_from_meta( int $id, int $parent_id, array $own, array $parent_meta, bool $manage_enabled ): array {
		$owner   = $id;
		$source  = $own;
		$managed = 'yes' === ( $own['_manage_stock'] ?? 'no' );
		if ( $parent_id && ! $managed && 'yes' === ( $parent_meta['_manage_stock'] ?? 'no' ) ) {
			$owner   = $parent_id;
			$source  = $parent_meta;
			$managed = true;
		}
		$managed = $managed && $manage_enabled;
		$qty     = $source['_stock'] ?? '';
		return array(
			'product_id'     => $owner,
			'variation_id'   => $parent_id ? $id : null,
			'parent_id'      => $parent_id ? $parent_id : null,
			'sku'            => (string) ( $own['_sku'] ?? '' ),
			'manage_stock'   => $managed,
			'stock_quantity' => $managed && is_numeric( $qty ) ? (int) (float) $qty : null, // An integer, as WooCommerce's wc_stock_amount() makes it.
			'stock_status'   => (string) ( $own['_stock_status'] ?? 'instock' ),
			'backorders'     => $managed ? (string) ( $source['_backorders'] ?? 'no' ) : 'no',
		);
	}

	/**
	 * The JSON body of a stock.batch.
	 *
	 * @param string                           $site   The site id.
	 * @param array<int, array<string, mixed>> $events Events.
	 * @param int                              $now    Unix time of sending (sent_at).
	 */
	public static function batch_body( string $site, array $events, int $now ): string {
		$doc = array(
			'type'    => 'stock.batch',
			'site'    => $site,
			'sent_at' => gmdate( 'Y-m-d\TH:i:s\Z', $now ),
			'events'  => array_values( $events ),
		);
		return (string) stock_relay_json( $doc );
	}

	/**
	 * Split events into batches of at most MAX_EVENTS and at most $max_bytes each, keeping order.
	 *
	 * @param array<int, array<string, mixed>> $events Events in outbox order.
	 * @return array<int, array<int, array<string, mixed>>>
	 */
	public static function split( array $events, int $max_events = self::MAX_EVENTS, int $max_bytes = self::MAX_BYTES ): array {
		$batches = array();
		$current = array();
		$size    = 200; // Envelope allowance.
		foreach ( $events as $event ) {
			$len = strlen( (string) stock_relay_json( $event ) ) + 1;
			if ( $current && ( count( $current ) >= $max_events || $size + $len > $max_bytes ) ) {
				$batches[] = $current;
				$current   = array();
				$size      = 200;
			}
			$current[] = $event;
			$size     += $len;
		}
		if ( $current ) {
			$batches[] = $current;
		}
		return $batches;
	}
}

require_once __DIR__ . '/stock-relay-functions.php';
