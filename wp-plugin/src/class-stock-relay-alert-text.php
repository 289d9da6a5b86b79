<?php
/**
 * An alert (Stock_Relay_Alerts) in a translatable sentence, worded by the plugin from the alert's code and fields
 * (the relay's English `message` is never shown): for the admin notice, the e-mail digest and the WooCommerce log.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Plain text, with no WordPress dependency but its translation functions; whoever prints it escapes it. The relay's
 * own words (a channel's answer, a pause's reason) appear as data inside the sentence.
 */
final class Stock_Relay_Alert_Text {

	/**
	 * The sentence for one alert at time $now: what is wrong, since when, and what to do.
	 *
	 * @param array<string, mixed> $alert An alert.
	 */
	public static function sentence( array $alert, int $now ): string {
		$channel = (string) ( $alert['channel'] ?? '' );
		$count   = is_int( $alert['count'] ?? null ) ? $alert['count'] : 0;
		$since   = is_numeric( $alert['since'] ?? null ) ? Stock_Relay_Status_View::when( (float) $alert['since'], $now ) : '';
		$detail  = (string) ( $alert['detail'] ?? '' );
		switch ( $alert['code'] ) {
			case 'deliveries_failing':
				/* translators: 1: channel name, 2: a date and time with its age, 3: number of products */
				$text = sprintf( _n( 'Sending to %1$s has been failing since %2$s for %3$d product; the relay keeps retrying.', 'Sending to %1$s has been failing since %2$s for %3$d products; the relay keeps retrying.', $count, 'stock-relay' ), $channel, $since, $count );
				/* translators: %s: the channel's own answer */
				return $text . ( '' !== $detail ? ' ' . sprintf( __( 'Last error: %s', 'stock-relay' ), $detail ) : '' );
			case 'dead_letters':
				/* translators: 1: channel name, 2: number of changes */
				$text = sprintf( _n( '%1$s refused %2$d change (a dead letter): it is not retried by itself.', '%1$s refused %2$d changes (dead letters): they are not retried by themselves.', $count, 'stock-relay' ), $channel, $count );
				if ( '' !== (string) ( $alert['sku'] ?? '' ) ) {
					/* translators: 1: SKU, 2: a date and time with its age, 3: the channel's answer */
					$text .= ' ' . sprintf( __( 'The newest: SKU %1$s, %2$s: %3$s', 'stock-relay' ), (string) $alert['sku'], $since, $detail );
				}
				return $text . ' ' . __( 'Fix the product or its listing, then retry it from WooCommerce › Dead letters.', 'stock-relay' );
			case 'paused':
				/* translators: 1: channel name, 2: who paused it, 3: a date and time with its age, 4: the reason they gave, 5: number of changes */
				return sprintf( _n( '%1$s is paused by %2$s since %3$s: %4$s. %5$d change waits for it and is sent when it is resumed.', '%1$s is paused by %2$s since %3$s: %4$s. %5$d changes wait for it and are sent when it is resumed.', $count, 'stock-relay' ), $channel, (string) ( $alert['actor'] ?? '' ), $since, $detail, $count );
			case 'channel_unavailable':
				/* translators: 1: channel name, 2: the relay's reason */
				return sprintf( __( 'The relay is not sending to %1$s for now (%2$s); it tries again by itself.', 'stock-relay' ), $channel, $detail );
			case 'orders_unread':
				$text = '' !== $since
					/* translators: 1: channel name, 2: a date and time with its age */
					? sprintf( __( '%1$s\'s orders have not been read since %2$s, so its sales do not reach the shop\'s stock.', 'stock-relay' ), $channel, $since )
					/* translators: %s: channel name */
					: sprintf( __( '%s\'s orders have not been read since the relay started, so its sales do not reach the shop\'s stock.', 'stock-relay' ), $channel );
				/* translators: %s: the marketplace's answer */
				return $text . ( '' !== $detail ? ' ' . sprintf( __( 'Last error: %s', 'stock-relay' ), $detail ) : '' );
			case 'worker_stalled':
				/* translators: 1: channel name, 2: the sender's state, such as "stuck" */
				return sprintf( __( 'The relay\'s sender for %1$s is %2$s: restart the relay if this lasts.', 'stock-relay' ), $channel, $detail );
			case 'sales_refused':
				/* translators: %d: number of sales */
				return sprintf( _n( 'The shop refused %d sale reported by a marketplace: its stock does not include it. See the Stock Relay page.', 'The shop refused %d sales reported by marketplaces: its stock does not include them. See the Stock Relay page.', $count, 'stock-relay' ), $count );
			case 'outbox_old':
				/* translators: 1: number of changes, 2: a date and time with its age */
				$text = sprintf( _n( '%1$d stock change is waiting to be sent to the relay, since %2$s.', '%1$d stock changes are waiting to be sent to the relay, the oldest since %2$s.', $count, 'stock-relay' ), $count, $since );
				return $text . ' ' . ( '' !== $detail
					/* translators: %s: why the relay did not take them */
					? sprintf( __( 'The relay did not take them: %s', 'stock-relay' ), $detail )
					: __( 'Nothing has sent them: see Tools › Site Health for scheduled tasks and the loopback request.', 'stock-relay' ) );
			case 'loopback_blocked':
				/* translators: 1: a date and time with its age, 2: what the request got */
				return sprintf( __( 'This site cannot call itself (since %1$s: %2$s), so a stock change is sent only by the one-minute scheduled task, not right away. Allow requests from the server to its own admin-ajax.php (a firewall, basic authentication or a security plugin may block them).', 'stock-relay' ), $since, $detail );
			case 'relay_unreachable':
				/* translators: 1: a date and time with its age, 2: what went wrong, in plain words */
				return sprintf( __( 'The relay has not answered since %1$s: %2$s', 'stock-relay' ), $since, $detail );
		}
		/* translators: %s: the relay's code for it */
		return sprintf( __( 'The relay reports something that needs attention (%s): see the Stock Relay page.', 'stock-relay' ), (string) $alert['code'] );
	}
}
