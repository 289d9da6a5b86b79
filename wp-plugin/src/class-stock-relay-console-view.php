<?php
/**
 * Plain words for the relay's per-product answers (issue 17 items 2 and 3): product.query per channel, lineage.query's
 * chain, dead.query's letters and dead.retry's outcome. No WordPress dependency but its translation functions (__,
 * _n), so the unit tests cover every sentence; the screens escape and print what comes out of here.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Presentation only. A "line" is array{channel: string, level: string, state: string, detail: string[]}: level is
 * error (a dead letter: the channel will not get this SKU until someone acts), warning (failing, paused), ok
 * (confirmed and nothing waits) or info (waiting, never sent). Lines are sorted errors first, as the issue asks.
 */
final class Stock_Relay_Console_View {

	private const ORDER = array(
		'error'   => 0,
		'warning' => 1,
		'info'    => 2,
		'ok'      => 3,
	);

	/**
	 * The lines of one product.query entry (`products[]`: sku, newest_event, channels), errors first.
	 *
	 * @param array<string, mixed> $product One entry of the answer's `products`.
	 * @param int                  $now     Unix time.
	 * @return array<int, array{channel: string, level: string, state: string, detail: string[]}>
	 */
	public static function product_lines( array $product, int $now ): array {
		$lines = array();
		foreach ( (array) ( $product['channels'] ?? array() ) as $entry ) {
			if ( is_array( $entry ) ) {
				$lines[] = self::channel_line( $entry, $now );
			}
		}
		usort(
			$lines,
			static fn( array $a, array $b ): int => array( self::ORDER[ $a['level'] ], $a['channel'] ) <=> array( self::ORDER[ $b['level'] ], $b['channel'] )
		);
		return $lines;
	}

	/**
	 * One channel of one SKU in plain words: what the channel was last sent and confirmed, when, what waits, and the
	 * error or dead letter.
	 *
	 * @param array<string, mixed> $entry One of a product's `channels`.
	 * @param int                  $now   Unix time.
	 * @return array{channel: string, level: string, state: string, detail: string[]}
	 */
	public static function channel_line( array $entry, int $now ): array {
		$channel   = self::text( $entry['channel'] ?? '' );
		$state     = self::text( $entry['state'] ?? 'never_sent' );
		$confirmed = is_numeric( $entry['confirmed_quantity'] ?? null ) ? (int) $entry['confirmed_quantity'] : null;
		$detail    = array();
		if ( null !== $confirmed ) {
			$at       = is_numeric( $entry['confirmed_at'] ?? null ) ? Stock_Relay_Status_View::when( (float) $entry['confirmed_at'], $now ) : '';
			$detail[] = '' !== $at
				/* translators: 1: a quantity, 2: a date and time with its age */
				? sprintf( __( 'Last confirmed: %1$d, %2$s', 'stock-relay' ), $confirmed, $at )
				/* translators: %d: a quantity */
				: sprintf( __( 'Last confirmed: %d', 'stock-relay' ), $confirmed );
		}
		$dead  = is_array( $entry['dead_letter'] ?? null ) ? $entry['dead_letter'] : null;
		$level = 'ok';
		if ( null !== $dead ) {
			$level   = 'error';
			$words   = __( 'Not updated: the channel refused it (dead letter)', 'stock-relay' );
			$since   = is_numeric( $dead['since'] ?? null ) ? Stock_Relay_Status_View::when( (float) $dead['since'], $now ) : '';
			$message = self::text( $dead['message'] ?? '' );
			// First: the Products list shows a dead letter's first detail beside its state.
			array_unshift(
				$detail,
				'' !== $since
				/* translators: 1: the channel's answer in plain words, 2: a date and time with its age */
				? sprintf( __( 'The channel answered: %1$s (since %2$s)', 'stock-relay' ), '' !== $message ? $message : __( 'no reason given', 'stock-relay' ), $since )
				/* translators: %s: the channel's answer in plain words */
				: sprintf( __( 'The channel answered: %s', 'stock-relay' ), '' !== $message ? $message : __( 'no reason given', 'stock-relay' ) )
			);
			if ( is_numeric( $dead['quantity'] ?? null ) ) {
				/* translators: %d: a quantity */
				$detail[] = sprintf( __( 'Refused quantity: %d', 'stock-relay' ), (int) $dead['quantity'] );
			}
		} elseif ( 'pending' === $state ) {
			$failing = is_numeric( $entry['failing_since'] ?? null );
			$level   = $failing ? 'warning' : 'info';
			$words   = $failing ? __( 'Failing: retrying', 'stock-relay' ) : __( 'Waiting to be sent', 'stock-relay' );
			if ( is_numeric( $entry['pending_quantity'] ?? null ) ) {
				$since    = is_numeric( $entry['pending_since'] ?? null ) ? Stock_Relay_Status_View::when( (float) $entry['pending_since'], $now ) : '';
				$detail[] = '' !== $since
					/* translators: 1: a quantity, 2: a date and time with its age */
					? sprintf( __( 'To send: %1$d (waiting since %2$s)', 'stock-relay' ), (int) $entry['pending_quantity'], $since )
					/* translators: %d: a quantity */
					: sprintf( __( 'To send: %d', 'stock-relay' ), (int) $entry['pending_quantity'] );
			}
			if ( $failing && is_numeric( $entry['next_attempt_at'] ?? null ) ) {
				/* translators: 1: number of attempts, 2: a date and time */
				$detail[] = sprintf( __( 'Attempts: %1$d; next try %2$s', 'stock-relay' ), (int) ( $entry['attempts'] ?? 0 ), Stock_Relay_Status_View::when( (float) $entry['next_attempt_at'], $now ) );
			}
		} elseif ( 'delivered' === $state ) {
			$words = __( 'In sync', 'stock-relay' );
		} else {
			$level = 'info';
			$words = __( 'Never sent to this channel', 'stock-relay' );
		}
		$error = self::text( $entry['last_error'] ?? '' );
		if ( '' !== $error && 'delivered' !== $state && null === $dead ) {
			/* translators: %s: the last error, in the relay's words */
			$detail[] = sprintf( __( 'Last error: %s', 'stock-relay' ), $error );
		}
		if ( ! empty( $entry['paused'] ) ) {
			$level    = 'error' === $level ? 'error' : 'warning';
			$detail[] = __( 'This channel is paused in the relay: nothing is sent to it until it is resumed.', 'stock-relay' );
		}
		return array(
			'channel' => $channel,
			'level'   => $level,
			'state'   => $words,
			'detail'  => $detail,
		);
	}

	/**
	 * The worst level of some lines (the Products list's one-word summary), or '' for none.
	 *
	 * @param array<int, array{level: string}> $lines Lines.
	 */
	public static function worst( array $lines ): string {
		$worst = '';
		foreach ( $lines as $line ) {
			if ( '' === $worst || self::ORDER[ $line['level'] ] < self::ORDER[ $worst ] ) {
				$worst = $line['level'];
			}
		}
		return $worst;
	}

	/**
	 * Lineage.query's chain for one SKU, newest shop change first: what the shop sent, and on each channel what
	 * became of it, as lines of plain words.
	 *
	 * @param array<string, mixed> $answer The relay's lineage answer.
	 * @param int                  $now    Unix time.
	 * @return array{now: string[], events: array<int, array{title: string, steps: string[]}>}
	 */
	public static function lineage( array $answer, int $now ): array {
		$current = array();
		foreach ( (array) ( $answer['channels'] ?? array() ) as $channel ) {
			if ( ! is_array( $channel ) ) {
				continue;
			}
			$name      = self::text( $channel['channel'] ?? '' );
			$shows     = is_numeric( $channel['shows'] ?? null ) ? (string) (int) $channel['shows'] : __( 'unknown', 'stock-relay' );
			$delivered = is_array( $channel['delivered_event'] ?? null ) ? $channel['delivered_event'] : null;
			$line      = null === $delivered
				/* translators: 1: channel name, 2: a quantity or "unknown" */
				? sprintf( __( '%1$s shows %2$s: no change from the shop was confirmed there yet.', 'stock-relay' ), $name, $shows )
				/* translators: 1: channel name, 2: a quantity, 3: version number, 4: the cause in plain words */
				: sprintf( __( '%1$s shows %2$s, from the shop\'s change version %3$d (%4$s).', 'stock-relay' ), $name, $shows, (int) ( $delivered['version'] ?? 0 ), self::cause( $delivered['cause'] ?? null, $delivered['order_id'] ?? null ) );
			if ( 'dead' === ( $channel['state'] ?? '' ) ) {
				$line .= ' ' . __( 'Its newest change was refused (dead letter).', 'stock-relay' );
			} elseif ( 'pending' === ( $channel['state'] ?? '' ) && is_array( $channel['newest_event'] ?? null ) && is_numeric( $channel['newest_event']['quantity'] ?? null ) ) {
				/* translators: %d: a quantity */
				$line .= ' ' . sprintf( __( 'Waiting to send %d.', 'stock-relay' ), (int) $channel['newest_event']['quantity'] );
			}
			$current[] = $line;
		}
		$events = array();
		foreach ( array_reverse( (array) ( $answer['events'] ?? array() ) ) as $event ) {
			if ( ! is_array( $event ) ) {
				continue;
			}
			$quantity = is_numeric( $event['quantity'] ?? null ) ? (string) (int) $event['quantity'] : self::stock_status( $event['stock_status'] ?? '' );
			$at       = is_numeric( $event['received_at'] ?? null ) ? Stock_Relay_Status_View::when( (float) $event['received_at'], $now ) : '';
			$title    = sprintf(
				/* translators: 1: version number, 2: a quantity or stock status, 3: the cause in plain words, 4: a date and time */
				__( 'Version %1$d: the shop set %2$s (%3$s), received %4$s', 'stock-relay' ),
				(int) ( $event['version'] ?? 0 ),
				$quantity,
				self::cause( $event['cause'] ?? null, $event['order_id'] ?? null ),
				'' !== $at ? $at : '?'
			);
			$outcome = self::text( $event['outcome'] ?? 'accepted' );
			if ( 'stale' === $outcome ) {
				$title .= ' — ' . __( 'not sent on: the relay already had a newer change of this product', 'stock-relay' );
			} elseif ( 'accepted' !== $outcome ) {
				/* translators: %s: the relay's outcome code (one this plugin does not know yet) */
				$title .= ' — ' . sprintf( __( 'not sent on: the relay found it %s', 'stock-relay' ), $outcome );
			}
			$steps = array();
			foreach ( (array) ( $event['channels'] ?? array() ) as $name => $actions ) {
				foreach ( (array) $actions as $action ) {
					if ( is_array( $action ) ) {
						$steps[] = self::text( $name ) . ': ' . self::step( $action, $now );
					}
				}
			}
			$events[] = array(
				'title' => $title,
				'steps' => $steps,
			);
		}
		return array(
			'now'    => $current,
			'events' => $events,
		);
	}

	/**
	 * One audit step of the lineage on a channel.
	 *
	 * @param array<string, mixed> $action The step.
	 * @param int                  $now    Unix time.
	 */
	private static function step( array $action, int $now ): string {
		$at     = is_numeric( $action['at'] ?? null ) ? ' (' . Stock_Relay_Status_View::when( (float) $action['at'], $now ) . ')' : '';
		$status = is_numeric( $action['http_status'] ?? null ) ? ' HTTP ' . (int) $action['http_status'] : '';
		$words  = trim( self::text( $action['error'] ?? '' ) . ' ' . self::text( $action['response'] ?? '' ) );
		switch ( self::text( $action['action'] ?? '' ) ) {
			case 'attempt':
				$outcome = self::text( $action['outcome'] ?? '' );
				if ( 'ok' === $outcome ) {
					/* translators: %s: a quantity */
					return sprintf( __( 'sent %s, confirmed', 'stock-relay' ), is_numeric( $action['quantity'] ?? null ) ? (string) (int) $action['quantity'] : '?' ) . $status . $at;
				}
				/* translators: %s: the channel's answer */
				return sprintf( __( 'attempt failed: %s', 'stock-relay' ), trim( $status . ' ' . $words ) ) . $at;
			case 'dead_letter':
				/* translators: %s: the reason */
				return sprintf( __( 'given up (dead letter): %s', 'stock-relay' ), self::text( $action['reason'] ?? '' ) ) . $at;
			case 'skipped':
				return __( 'not sent: the channel already showed it', 'stock-relay' ) . $at;
			case 'replay':
				return __( 'sent again on request', 'stock-relay' ) . $at;
			case 'coalesced':
				return __( 'not sent on its own: a newer change went in its place', 'stock-relay' );
			case 'waiting':
				return __( 'waiting for its turn', 'stock-relay' );
			default:
				return self::text( $action['action'] ?? '' ) . $at;
		}
	}

	/**
	 * The cause of a shop change in plain words.
	 *
	 * @param mixed $cause    The event's cause kind.
	 * @param mixed $order_id The order, if any.
	 */
	public static function cause( $cause, $order_id = null ): string {
		$words = array(
			'order'     => __( 'an order', 'stock-relay' ),
			'refund'    => __( 'a refund', 'stock-relay' ),
			'admin'     => __( 'edited in the admin', 'stock-relay' ),
			'bulk_edit' => __( 'a bulk edit', 'stock-relay' ),
			'import'    => __( 'a CSV import', 'stock-relay' ),
			'rest'      => __( 'the REST API', 'stock-relay' ),
			'relay'     => __( 'a marketplace sale', 'stock-relay' ),
		);
		$text  = $words[ self::text( $cause ) ] ?? __( 'a change in the shop', 'stock-relay' );
		if ( is_numeric( $order_id ) ) {
			/* translators: 1: the cause, 2: an order number */
			$text = sprintf( __( '%1$s, order #%2$d', 'stock-relay' ), $text, (int) $order_id );
		}
		return $text;
	}

	/**
	 * Dead.query's letters as rows for the list: channel, SKU, product id (the variation's parent when there is one),
	 * the channel's own answer in plain words, since when, and the quantity refused beside the shop's now.
	 *
	 * @param array<string, mixed> $answer The relay's dead_letters answer.
	 * @param int                  $now    Unix time.
	 * @return array<int, array{channel: string, sku: string, product_id: int, edit_id: int, answer: string, since: string, quantity: string}>
	 */
	public static function dead_rows( array $answer, int $now ): array {
		$rows = array();
		foreach ( (array) ( $answer['dead_letters'] ?? array() ) as $letter ) {
			if ( ! is_array( $letter ) ) {
				continue;
			}
			$product = is_numeric( $letter['product_id'] ?? null ) ? (int) $letter['product_id'] : 0;
			$parent  = is_numeric( $letter['parent_id'] ?? null ) ? (int) $letter['parent_id'] : 0;
			$refused = is_numeric( $letter['quantity'] ?? null ) ? (string) (int) $letter['quantity'] : '?';
			$shop    = is_numeric( $letter['shop_quantity'] ?? null ) ? (string) (int) $letter['shop_quantity'] : '?';
			$rows[]  = array(
				'channel'    => self::text( $letter['channel'] ?? '' ),
				'sku'        => self::text( $letter['sku'] ?? '' ),
				'product_id' => $product,
				'edit_id'    => $parent > 0 ? $parent : $product, // A variation is edited in its parent's screen.
				'answer'     => self::text( $letter['message'] ?? $letter['reason'] ?? '' ),
				'since'      => is_numeric( $letter['created_at'] ?? null ) ? Stock_Relay_Status_View::when( (float) $letter['created_at'], $now ) : '',
				/* translators: 1: the refused quantity, 2: the shop's quantity now */
				'quantity'   => sprintf( __( '%1$s refused; the shop has %2$s now', 'stock-relay' ), $refused, $shop ),
			);
		}
		return $rows;
	}

	/**
	 * Dead.retry's outcome in plain words, and the notice's colour.
	 *
	 * @param array<string, mixed> $answer The relay's dead_retry answer.
	 * @return array{type: string, message: string}
	 */
	public static function retry_outcome( array $answer ): array {
		$items     = array_filter( (array) ( $answer['items'] ?? array() ), 'is_array' );
		$scheduled = count( array_filter( $items, static fn( array $i ): bool => 'scheduled' === ( $i['result'] ?? '' ) ) );
		$not_dead  = count( $items ) - $scheduled;
		$parts     = array();
		if ( $scheduled > 0 ) {
			/* translators: %d: a count */
			$parts[] = sprintf( _n( '%d dead letter will be sent again with the shop\'s current quantity.', '%d dead letters will be sent again with the shop\'s current quantity.', $scheduled, 'stock-relay' ), $scheduled );
		}
		if ( $not_dead > 0 ) {
			/* translators: %d: a count */
			$parts[] = sprintf( _n( '%d was no longer a dead letter (delivered or retried meanwhile): nothing was done for it.', '%d were no longer dead letters (delivered or retried meanwhile): nothing was done for them.', $not_dead, 'stock-relay' ), $not_dead );
		}
		if ( ! $parts ) {
			$parts[] = __( 'The relay retried nothing.', 'stock-relay' );
		}
		return array(
			'type'    => $scheduled > 0 ? 'success' : 'warning',
			'message' => implode( ' ', $parts ),
		);
	}

	/**
	 * A product's stock status (the event's, when it has no quantity: stock not managed) in WooCommerce's words; an
	 * unknown status as sent.
	 *
	 * @param mixed $status instock, outofstock or onbackorder.
	 */
	private static function stock_status( $status ): string {
		$words = array(
			'instock'     => __( 'in stock', 'stock-relay' ),
			'outofstock'  => __( 'out of stock', 'stock-relay' ),
			'onbackorder' => __( 'on backorder', 'stock-relay' ),
		);
		return $words[ self::text( $status ) ] ?? self::text( $status );
	}

	/**
	 * A scalar as text; anything else as ''.
	 *
	 * @param mixed $value Value.
	 */
	private static function text( $value ): string {
		return is_scalar( $value ) ? (string) $value : '';
	}
}
