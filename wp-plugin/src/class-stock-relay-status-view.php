<?php
/**
 * Formats the relay's status answer for the admin page's "Channels" table; no WordPress dependency.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * Presentation only: the data comes from the relay (a signed status.query, made by the admin page);
 * this class turns it into plain-text cells, and the page escapes and prints them.
 */
final class Stock_Relay_Status_View {

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
	public static function rows( int $status, array $body, ?int $now = null ): ?array {
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
}
