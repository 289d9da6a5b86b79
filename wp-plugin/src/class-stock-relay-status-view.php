<?php
/**
 * Formats the relay's status answer for the admin page's "Channels", "Sales from marketplaces" and "Oversold"
 * blocks; no WordPress dependency but its translation functions (__, _n).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

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
				return $value ? __( 'yes', 'stock-relay' ) : __( 'no', 'stock-relay' );
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
				/* translators: %d: seconds */
				isset( $channel['oldest_pending_age'] ) && is_numeric( $channel['oldest_pending_age'] ) ? sprintf( __( '%d s', 'stock-relay' ), (int) $channel['oldest_pending_age'] ) : '—',
				$text( $channel['dead_letters'] ?? $channel['dead'] ?? '—' ),
				is_array( $channel['paused'] ?? null ) ? self::paused( $channel['paused'], $now ) : self::circuit( $channel['circuit'] ?? null ),
				null === $last ? __( 'never', 'stock-relay' ) : ( is_int( $last ) || is_float( $last ) ? self::when( (float) $last, $now ) : $text( $last ) ),
				self::last_error( $channel['last_error'] ?? null, $last, $now ),
				self::drift_lines( $channel['drift'] ?? null, $now ),
			);
		}
		return $rows;
	}

	/**
	 * The column heads of rows(), in order.
	 *
	 * @return string[]
	 */
	public static function heads(): array {
		return array( __( 'Channel', 'stock-relay' ), __( 'Pending', 'stock-relay' ), __( 'Oldest pending', 'stock-relay' ), __( 'Dead letters', 'stock-relay' ), __( 'Sending', 'stock-relay' ), __( 'Last success', 'stock-relay' ), __( 'Last error', 'stock-relay' ), __( 'Drift (shop vs channel)', 'stock-relay' ) );
	}

	/**
	 * The relay's circuit breaker state in plain words (the state names are jargon).
	 *
	 * @param mixed $state closed, open, half_open, or missing (a relay that does not run the channel).
	 */
	public static function circuit( $state ): string {
		$plain = array(
			'closed'    => __( 'Sending normally', 'stock-relay' ),
			'open'      => __( 'Paused after failures (tries again shortly)', 'stock-relay' ),
			'half_open' => __( 'Trying again after failures', 'stock-relay' ),
		);
		return is_string( $state ) && isset( $plain[ $state ] ) ? $plain[ $state ] : ( is_string( $state ) && '' !== $state ? $state : '—' );
	}

	/**
	 * A pause in plain words, with who paused the channel, when and why (the relay's `paused` of the channel).
	 *
	 * @param array<string, mixed> $paused `reason`, `actor`, `paused_at` (Unix time).
	 */
	public static function paused( array $paused, int $now ): string {
		return sprintf(
			/* translators: 1: the WordPress login (or other name) of who paused it, 2: a date and time with its age, 3: the reason they gave */
			__( 'Paused by %1$s since %2$s: %3$s', 'stock-relay' ),
			self::scalar( $paused['actor'] ?? null ),
			is_numeric( $paused['paused_at'] ?? null ) ? self::when( (float) $paused['paused_at'], $now ) : '—',
			self::scalar( $paused['reason'] ?? null )
		);
	}

	/**
	 * The channel's newest delivery error, unless a success came after it (then it is history, not news).
	 *
	 * @param mixed $error        The channel's `last_error` ({message, at, sku}) or null.
	 * @param mixed $last_success The channel's `last_success` (Unix time) or null.
	 */
	public static function last_error( $error, $last_success, int $now ): string {
		if ( ! is_array( $error ) || ! is_string( $error['message'] ?? null ) || '' === $error['message'] ) {
			return '—';
		}
		$at = is_numeric( $error['at'] ?? null ) ? (float) $error['at'] : null;
		if ( null !== $at && is_numeric( $last_success ) && (float) $last_success >= $at ) {
			return '—';
		}
		$sku = is_scalar( $error['sku'] ?? null ) && '' !== (string) $error['sku'] ? (string) $error['sku'] : '';
		/* translators: 1: the channel's error, 2: SKU */
		$text = '' !== $sku ? sprintf( __( '%1$s (SKU %2$s)', 'stock-relay' ), $error['message'], $sku ) : $error['message'];
		/* translators: 1: the error, 2: when it happened, such as "2026-12-02 03:00 (5 min ago)" */
		return null === $at ? $text : sprintf( __( '%1$s, %2$s', 'stock-relay' ), $text, self::when( $at, $now ) );
	}

	/**
	 * A drift reason code of the relay in a plain sentence; an unknown code as sent.
	 */
	public static function drift_reason( string $code ): string {
		$plain = array(
			'not_listed'         => __( 'the channel has no listing with this SKU: list it there (sending again cannot fix it)', 'stock-relay' ),
			'missed_event'       => __( 'the relay never received this change from the shop; it is being sent now', 'stock-relay' ),
			'behind_hooks'       => __( 'the shop\'s change reached the relay late; it is being sent now', 'stock-relay' ),
			'never_sent'         => __( 'never sent to this channel yet; it is being sent now', 'stock-relay' ),
			'last_push_differs'  => __( 'the last quantity sent differs from the shop\'s; the right one is being sent', 'stock-relay' ),
			'channel_shows'      => __( 'the channel shows another quantity; the right one is being sent again', 'stock-relay' ),
			'channel_differs'    => __( 'the channel shows another quantity', 'stock-relay' ),
			'lower_unreported'   => __( 'the channel shows fewer than sent, with no sale reported; repaired if no sale explains it within the hour', 'stock-relay' ),
			'explained_by_sales' => __( 'a sale on this channel explains it; the shop applies it', 'stock-relay' ),
		);
		return $plain[ $code ] ?? $code;
	}

	/**
	 * A Unix time as "2026-12-02 03:00 (5 min ago)" in the site's time zone (wp_date), or with " UTC" outside
	 * WordPress: every time on the page has this one format.
	 */
	public static function when( float $time, int $now ): string {
		if ( $time <= 0 ) {
			return __( 'never', 'stock-relay' );
		}
		$diff = $now - (int) $time;
		if ( $diff < 0 ) {
			$age = __( 'ahead of this shop\'s clock', 'stock-relay' );
		} else {
			/* translators: %s: an age such as "5 min" */
			$age = sprintf( __( '%s ago', 'stock-relay' ), self::age( $diff ) );
		}
		$date = function_exists( 'wp_date' ) ? (string) wp_date( 'Y-m-d H:i', (int) $time ) : gmdate( 'Y-m-d H:i', (int) $time ) . ' UTC';
		/* translators: 1: date and time, 2: how long ago, such as "5 min ago" */
		return sprintf( __( '%1$s (%2$s)', 'stock-relay' ), $date, $age );
	}

	/**
	 * The "Sales from marketplaces" block from the answer's `sales` object: label/value rows (waiting, applied,
	 * refused, the newest error of a waiting one) and one line per refused sale with the shop's reason in plain
	 * words. Null when the relay sends no `sales` (an older relay): the page then shows nothing new.
	 *
	 * @param array<string, mixed> $body Decoded status answer.
	 * @param int|null             $now  Unix time; now when null.
	 * @return array{rows: array<int, array{0: string, 1: string}>, refused: string[]}|null
	 */
	public static function sales( array $body, ?int $now = null ): ?array {
		$sales = $body['sales'] ?? null;
		if ( ! is_array( $sales ) ) {
			return null;
		}
		$now     = $now ?? time();
		$count   = static fn( $value ): string => is_numeric( $value ) ? (string) (int) $value : '—';
		$waiting = $count( $sales['pending'] ?? null );
		if ( isset( $sales['oldest_pending_age'] ) && is_numeric( $sales['oldest_pending_age'] ) && (int) $sales['pending'] > 0 ) {
			/* translators: 1: number of sales, 2: an age such as "5 min" */
			$waiting = sprintf( __( '%1$s (the oldest for %2$s)', 'stock-relay' ), $waiting, self::age( (int) $sales['oldest_pending_age'] ) );
		}
		$rows  = array(
			array( __( 'Waiting to be applied in the shop', 'stock-relay' ), $waiting ),
			array( __( 'Applied', 'stock-relay' ), $count( $sales['applied'] ?? null ) ),
			array( __( 'Refused by the shop', 'stock-relay' ), $count( $sales['refused'] ?? null ) ),
		);
		$error = $sales['last_error'] ?? null;
		if ( is_array( $error ) && is_string( $error['message'] ?? null ) && '' !== $error['message'] ) {
			$rows[] = array(
				__( 'Last error while applying a waiting sale', 'stock-relay' ),
				$error['message'] . ( isset( $error['at'] ) && is_numeric( $error['at'] ) ? ' (' . self::when( (float) $error['at'], $now ) . ')' : '' ),
			);
		}
		$refused = array();
		foreach ( is_array( $sales['refused_examples'] ?? null ) ? $sales['refused_examples'] : array() as $example ) {
			if ( ! is_array( $example ) ) {
				continue;
			}
			$refused[] = sprintf(
				/* translators: 1: SKU, 2: stock change such as -1, 3: the sale's key (channel:order:line), 4: the shop's reason */
				__( 'SKU %1$s, change %2$s (sale %3$s): %4$s', 'stock-relay' ),
				self::scalar( $example['sku'] ?? null ),
				is_int( $example['delta'] ?? null ) ? sprintf( '%+d', $example['delta'] ) : '—',
				self::scalar( $example['key'] ?? null ),
				self::refusal( $example['reason'] ?? null )
			);
		}
		return array(
			'rows'    => $rows,
			'refused' => $refused,
		);
	}

	/**
	 * The shop's refusal (the relay keeps it as "code: message") in plain words; an unknown code as sent.
	 *
	 * @param mixed $reason The refused sale's `reason`.
	 */
	public static function refusal( $reason ): string {
		if ( ! is_string( $reason ) || '' === $reason ) {
			return __( 'no reason given', 'stock-relay' );
		}
		$code  = preg_match( '/^([a-z_]+)(?::|$)/', $reason, $m ) ? $m[1] : '';
		$plain = array(
			'unknown_sku'  => __( 'No product has this SKU in the shop. Give the product this SKU (or correct it on the marketplace).', 'stock-relay' ),
			'not_managed'  => __( 'The shop does not manage stock for this product. Turn on "Manage stock" for it (or its parent product).', 'stock-relay' ),
			'trashed'      => __( 'The product is in the shop\'s trash. Restore it if it is still sold.', 'stock-relay' ),
			'invalid_item' => __( 'The shop could not read this sale (a malformed SKU, change or key).', 'stock-relay' ),
		);
		return $plain[ $code ] ?? $reason;
	}

	/**
	 * The "Oversold" block from the answer's `oversold` object: a summary line, one row per incident (newest first:
	 * when, SKU, the channels and orders, the shop's quantity now) and what to do. Incidents are `$entries` when
	 * given (the audit log's `oversold` entries, as audit.query answers them: every incident of the period), else
	 * the answer's `newest` alone. Null when the relay sends no `oversold` (an older relay).
	 *
	 * @param array<string, mixed>    $body    Decoded status answer.
	 * @param array<int, mixed>|null  $entries Audit entries (action oversold), or null.
	 * @param array<string, int|null> $stock   The shop's quantity now, by SKU (missing: unknown).
	 * @param int|null                $now     Unix time; now when null.
	 * @return array{summary: string, rows: array<int, array<int, string|string[]>>, advice: string}|null
	 */
	public static function oversold( array $body, ?array $entries = null, array $stock = array(), ?int $now = null ): ?array {
		$oversold = $body['oversold'] ?? null;
		if ( ! is_array( $oversold ) ) {
			return null;
		}
		$now   = $now ?? time();
		$days  = is_numeric( $oversold['days'] ?? null ) ? (int) $oversold['days'] : 7;
		$count = is_numeric( $oversold['incidents'] ?? null ) ? (int) $oversold['incidents'] : 0;
		$list  = array();
		if ( null !== $entries ) {
			foreach ( $entries as $entry ) {
				if ( is_array( $entry ) && ( $entry['action'] ?? 'oversold' ) === 'oversold' ) {
					$list[] = self::incident_from_audit( $entry );
				}
			}
		}
		if ( ! $list && is_array( $oversold['newest'] ?? null ) ) {
			$list[] = $oversold['newest'];
		}
		usort( $list, static fn( array $a, array $b ): int => (float) ( $b['at'] ?? 0 ) <=> (float) ( $a['at'] ?? 0 ) );
		$count = max( $count, count( $list ) );
		if ( 0 === $count ) {
			return array(
				/* translators: %d: number of days */
				'summary' => sprintf( _n( 'No sale left the shop\'s stock below zero in the last %d day.', 'No sale left the shop\'s stock below zero in the last %d days.', $days, 'stock-relay' ), $days ),
				'rows'    => array(),
				'advice'  => '',
			);
		}
		$rows = array();
		foreach ( $list as $incident ) {
			$sku    = self::scalar( $incident['sku'] ?? null );
			$orders = array();
			foreach ( is_array( $incident['sales'] ?? null ) ? $incident['sales'] : array() as $sale ) {
				if ( is_array( $sale ) ) {
					$orders[] = sprintf(
						/* translators: 1: channel, 2: order number, 3: stock change such as -1, 4: the shop's stock after it */
						__( '%1$s order %2$s: %3$s (shop stock after it: %4$s)', 'stock-relay' ),
						self::scalar( $sale['channel'] ?? null ),
						self::scalar( $sale['order'] ?? null ),
						is_int( $sale['delta'] ?? null ) ? sprintf( '%+d', $sale['delta'] ) : '—',
						self::scalar( $sale['quantity'] ?? null )
					);
				}
			}
			if ( ! $orders ) {
				$channels = is_array( $incident['channels'] ?? null ) ? array_map( array( self::class, 'scalar' ), $incident['channels'] ) : array( self::scalar( $incident['channel'] ?? null ) );
				$orders[] = implode( ', ', $channels );
			}
			$now_qty = array_key_exists( $sku, $stock ) && null !== $stock[ $sku ]
				? (string) (int) $stock[ $sku ]
				/* translators: %s: the shop's stock right after the sale */
				: sprintf( __( 'unknown (%s after the sale)', 'stock-relay' ), self::scalar( $incident['shop_quantity'] ?? null ) );
			$rows[] = array(
				is_numeric( $incident['at'] ?? null ) ? self::when( (float) $incident['at'], $now ) : '—',
				$sku,
				$orders,
				$now_qty,
			);
		}
		$summary = sprintf(
			/* translators: 1: number of incidents, 2: number of days */
			_n( '%1$d sale in the last %2$d days sold a unit the shop no longer had (the last unit sold twice).', '%1$d sales in the last %2$d days sold a unit the shop no longer had (the last unit sold twice).', $count, 'stock-relay' ),
			$count,
			$days
		);
		if ( $count > count( $rows ) ) {
			/* translators: %d: number of incidents shown */
			$summary .= ' ' . sprintf( _n( 'The newest %d is shown; the relay\'s `stock-relay oversold` lists them all.', 'The newest %d are shown; the relay\'s `stock-relay oversold` lists them all.', count( $rows ), 'stock-relay' ), count( $rows ) );
		}
		return array(
			'summary' => $summary,
			'rows'    => $rows,
			'advice'  => __( 'The last unit was sold on two channels: one of the orders cannot be filled from stock. Contact one buyer and cancel that order on its marketplace (the cancellation adds the unit back), or restock the product here; every channel then gets the new quantity. See the plugin documentation, "Oversold".', 'stock-relay' ),
		);
	}

	/**
	 * What the admin notice needs from a status answer: the count and the newest incident's key and time, or null
	 * when the answer reports none (or is from a relay without `oversold`).
	 *
	 * @param array<string, mixed> $body Decoded status answer.
	 * @return array{incidents: int, days: int, key: string, at: float, sku: string}|null
	 */
	public static function oversold_summary( array $body ): ?array {
		$oversold = $body['oversold'] ?? null;
		$newest   = is_array( $oversold ) ? ( $oversold['newest'] ?? null ) : null;
		if ( ! is_array( $newest ) || ! is_numeric( $oversold['incidents'] ?? null ) || (int) $oversold['incidents'] < 1 ) {
			return null;
		}
		return array(
			'incidents' => (int) $oversold['incidents'],
			'days'      => is_numeric( $oversold['days'] ?? null ) ? (int) $oversold['days'] : 7,
			'key'       => self::scalar( $newest['key'] ?? null ),
			'at'        => is_numeric( $newest['at'] ?? null ) ? (float) $newest['at'] : 0.0,
			'sku'       => self::scalar( $newest['sku'] ?? null ),
		);
	}

	/**
	 * An audit entry of action `oversold` (audit.query) as the status answer's incident object.
	 *
	 * @param array<string, mixed> $entry Audit entry.
	 * @return array<string, mixed>
	 */
	private static function incident_from_audit( array $entry ): array {
		$detail = is_array( $entry['detail'] ?? null ) ? $entry['detail'] : array();
		return array(
			'at'            => $entry['at'] ?? null,
			'sku'           => $entry['sku'] ?? null,
			'channel'       => $entry['channel'] ?? null,
			'key'           => $entry['event_id'] ?? null,
			'shop_quantity' => $entry['quantity'] ?? ( $detail['shop_quantity'] ?? null ),
			'channels'      => $detail['channels'] ?? array( $entry['channel'] ?? null ),
			'sales'         => $detail['sales'] ?? array(),
		);
	}

	/**
	 * A value as one plain-text token: '—' for null, '?' for what is not a plain value.
	 *
	 * @param mixed $value Value.
	 */
	private static function scalar( $value ): string {
		return null === $value ? '—' : ( is_scalar( $value ) && ! is_bool( $value ) ? (string) $value : '?' );
	}

	/** Seconds as "45 s", "5 min", "2 h", "3 d". */
	private static function age( int $seconds ): string {
		if ( $seconds < 60 ) {
			/* translators: %d: seconds */
			return sprintf( __( '%d s', 'stock-relay' ), max( 0, $seconds ) );
		}
		if ( $seconds < 3600 ) {
			/* translators: %d: minutes */
			return sprintf( __( '%d min', 'stock-relay' ), intdiv( $seconds, 60 ) );
		}
		return $seconds < 86400
			/* translators: %d: hours */
			? sprintf( __( '%d h', 'stock-relay' ), intdiv( $seconds, 3600 ) )
			/* translators: %d: days */
			: sprintf( __( '%d d', 'stock-relay' ), intdiv( $seconds, 86400 ) );
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
			return array( __( 'not checked', 'stock-relay' ) );
		}
		/* translators: %d: number of SKUs */
		$line = sprintf( _n( '%d SKU differs', '%d SKUs differ', $count, 'stock-relay' ), $count );
		if ( isset( $drift['checked_at'] ) && is_numeric( $drift['checked_at'] ) ) {
			/* translators: 1: "3 SKUs differ", 2: when they were compared, such as "2026-12-02 03:00 (5 min ago)" */
			$line = sprintf( __( '%1$s (checked %2$s)', 'stock-relay' ), $line, self::when( (float) $drift['checked_at'], $now ) );
		}
		$lines  = array( $line );
		$scalar = static fn( $value ): string => null === $value ? '—' : ( is_scalar( $value ) && ! is_bool( $value ) ? (string) $value : '?' );
		foreach ( array_slice( is_array( $drift['examples'] ?? null ) ? array_values( array_filter( $drift['examples'], 'is_array' ) ) : array(), 0, 5 ) as $example ) {
			$line = sprintf(
				/* translators: 1: SKU, 2: the quantity the channel should show, 3: the quantity it shows */
				__( '%1$s: expected %2$s, shown %3$s', 'stock-relay' ),
				$scalar( $example['sku'] ?? null ),
				$scalar( $example['expected'] ?? null ),
				$scalar( $example['shown'] ?? null )
			);
			if ( isset( $example['reason'] ) && is_string( $example['reason'] ) ) {
				/* translators: 1: "A1: expected 5, shown 7", 2: the reason in plain words */
				$line = sprintf( __( '%1$s (%2$s)', 'stock-relay' ), $line, self::drift_reason( $example['reason'] ) );
			}
			$lines[] = $line;
		}
		return $lines;
	}
}
