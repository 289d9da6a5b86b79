<?php
/**
 * Builds stock events and batches exactly as PROTOCOL.md §2 describes; no WordPress dependency.
 *
 * @package StockRelay
 */

declare(strict_types=1);

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
	 * @param array<string, mixed> $state Keys: product_id, variation_id, parent_id, sku, manage_stock, stock_quantity,
	 *                                    stock_status, backorders, deleted (bool), restored (bool).
	 * @param array<string, mixed> $cause Keys: kind, order_id (optional).
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
	 * @param array<string, string> $own            The item's meta (_sku, _manage_stock, _stock, _stock_status, _backorders).
	 * @param array<string, string> $parent         The parent's meta, for a variation.
	 * @param bool                  $manage_enabled The woocommerce_manage_stock option is "yes".
	 * @return array<string, mixed>
	 */
	public static function state_from_meta( int $id, int $parent_id, array $own, array $parent, bool $manage_enabled ): array {
		$owner   = $id;
		$source  = $own;
		$managed = 'yes' === ( $own['_manage_stock'] ?? 'no' );
		if ( $parent_id && ! $managed && 'yes' === ( $parent['_manage_stock'] ?? 'no' ) ) {
			$owner   = $parent_id;
			$source  = $parent;
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
			'stock_quantity' => $managed && is_numeric( $qty ) ? (int) (float) $qty : null, // wc_stock_amount(): intval.
			'stock_status'   => (string) ( $own['_stock_status'] ?? 'instock' ),
			'backorders'     => $managed ? (string) ( $source['_backorders'] ?? 'no' ) : 'no',
		);
	}

	/**
	 * Rows for the "channels" table from the relay's status answer; null when there is nothing to show
	 * (not a 200, or no channel list), so the page can say why instead. A cell is a string, or a list of
	 * lines (the drift cell: how many SKUs differ, then up to 5 examples). Plain text: the page escapes it.
	 *
	 * @param int                  $status HTTP status.
	 * @param array<string, mixed> $body   Decoded answer.
	 * @param int|null             $now    Unix time (for ages); now when null.
	 * @return array<int, array<int, string|string[]>>|null
	 */
	public static function relay_status_view( int $status, array $body, ?int $now = null ): ?array {
		if ( 200 !== $status || ! isset( $body['channels'] ) || ! is_array( $body['channels'] ) ) {
			return null;
		}
		$now  = $now ?? time();
		$text = static function ( $value ): string {
			if ( is_bool( $value ) ) {
				return $value ? 'yes' : 'no';
			}
			return is_scalar( $value ) ? (string) $value : '—';
		};
		$rows = array();
		foreach ( $body['channels'] as $name => $channel ) {
			if ( ! is_array( $channel ) ) {
				continue;
			}
			$last   = $channel['last_success'] ?? null;
			$rows[] = array(
				$text( $channel['name'] ?? $name ),
				$text( $channel['pending'] ?? $channel['queue_depth'] ?? '—' ),
				isset( $channel['oldest_pending_age'] ) && is_numeric( $channel['oldest_pending_age'] ) ? (int) $channel['oldest_pending_age'] . ' s' : '—',
				$text( $channel['dead_letters'] ?? $channel['dead'] ?? '—' ),
				$text( $channel['circuit'] ?? '—' ),
				null === $last ? 'never' : ( is_int( $last ) || is_float( $last ) ? self::when( (float) $last, $now ) : $text( $last ) ),
				self::drift_lines( $channel['drift'] ?? null, $now ),
			);
		}
		return $rows;
	}

	/**
	 * A Unix time as "2026-12-02 03:00 UTC (5 min ago)".
	 */
	public static function when( float $time, int $now ): string {
		if ( $time <= 0 ) {
			return 'never';
		}
		$diff = $now - (int) $time;
		if ( $diff < 0 ) {
			$age = 'ahead of this shop\'s clock';
		} elseif ( $diff < 60 ) {
			$age = $diff . ' s ago';
		} elseif ( $diff < 3600 ) {
			$age = intdiv( $diff, 60 ) . ' min ago';
		} elseif ( $diff < 86400 ) {
			$age = intdiv( $diff, 3600 ) . ' h ago';
		} else {
			$age = intdiv( $diff, 86400 ) . ' d ago';
		}
		return gmdate( 'Y-m-d H:i', (int) $time ) . ' UTC (' . $age . ')';
	}

	/**
	 * The drift cell: "3 SKUs differ (checked …)", then up to 5 examples; '—' when the relay sends none;
	 * "not checked" when the relay says it never compared the channel (`checked_at` null): a count of 0
	 * is then no news. A relay that leaves `checked_at` out cannot tell, and its count is shown as sent.
	 *
	 * @param mixed $drift The channel's optional `drift` object.
	 * @return string|string[]
	 */
	private static function drift_lines( $drift, int $now ) {
		if ( ! is_array( $drift ) || ! isset( $drift['differ'] ) || ! is_numeric( $drift['differ'] ) ) {
			return '—';
		}
		$count = (int) $drift['differ'];
		if ( 0 === $count && array_key_exists( 'checked_at', $drift ) && null === $drift['checked_at'] ) {
			return array( 'not checked' );
		}
		$line = 1 === $count ? '1 SKU differs' : $count . ' SKUs differ';
		if ( isset( $drift['checked_at'] ) && is_numeric( $drift['checked_at'] ) ) {
			$line .= ' (checked ' . self::when( (float) $drift['checked_at'], $now ) . ')';
		}
		$lines  = array( $line );
		$scalar = static fn( $value ): string => null === $value ? '—' : ( is_scalar( $value ) && ! is_bool( $value ) ? (string) $value : '?' );
		foreach ( array_slice( is_array( $drift['examples'] ?? null ) ? array_values( array_filter( $drift['examples'], 'is_array' ) ) : array(), 0, 5 ) as $example ) {
			$lines[] = sprintf(
				'%s: expected %s, shown %s%s',
				$scalar( $example['sku'] ?? null ),
				$scalar( $example['expected'] ?? null ),
				$scalar( $example['shown'] ?? null ),
				isset( $example['reason'] ) && is_string( $example['reason'] ) ? ' (' . $example['reason'] . ')' : ''
			);
		}
		return $lines;
	}

	/**
	 * The JSON body of a stock.batch.
	 *
	 * @param array<int, array<string, mixed>> $events Events.
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
