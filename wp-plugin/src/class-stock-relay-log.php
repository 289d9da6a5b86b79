<?php
/**
 * Failures in WooCommerce's log (wc_get_logger(), source `stock-relay`, shown under WooCommerce › Status › Logs): once
 * per cause, not once per retry, and a line when the cause is gone.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Each topic (the plugin's own sending to the relay; each alert by code and channel) remembers the cause it last
 * logged, in a non-autoloaded option: the same cause again writes nothing; another cause writes a line; the topic's
 * end writes one `info` line. A cause is the alert's key, or for the sending the error text with its numbers taken
 * out (a timeout's milliseconds or a Retry-After differ on every try, the cause does not). The words are the ones the
 * page shows, which never carry a secret.
 */
final class Stock_Relay_Log {

	public const SOURCE = 'stock-relay';
	public const OPTION = 'stock_relay_logged'; // topic => the cause logged.

	/**
	 * The delivery state changed (update_option_stock_relay_delivery): a new error is logged, and the first success
	 * after one.
	 *
	 * @param mixed $old The state before.
	 * @param mixed $now The state saved.
	 */
	public static function delivery( $old, $now ): void {
		$error = is_array( $now ) && is_string( $now['last_error'] ?? null ) ? $now['last_error'] : '';
		if ( '' !== $error ) {
			/* translators: %s: the error, in plain words */
			self::cause( 'delivery', self::cause_of( $error ), 'error', sprintf( __( 'Sending stock changes to the relay failed: %s', 'stock-relay' ), $error ) );
			return;
		}
		if ( is_array( $now ) && (int) ( $now['last_success'] ?? 0 ) > ( is_array( $old ) ? (int) ( $old['last_success'] ?? 0 ) : 0 ) ) {
			self::gone( 'delivery', __( 'Stock changes reach the relay again.', 'stock-relay' ) );
		}
	}

	/**
	 * Log the alerts that are new or changed, and the end of those that are gone.
	 *
	 * @param array<int, array<string, mixed>> $alerts Stock_Relay_Alerts::current().
	 */
	public static function alerts( array $alerts ): void {
		$now    = time();
		$topics = array();
		foreach ( $alerts as $alert ) {
			$topic            = 'alert:' . $alert['code'] . ':' . (string) $alert['channel'];
			$topics[ $topic ] = true;
			self::cause( $topic, (string) $alert['key'], 'error' === $alert['level'] ? 'error' : 'warning', Stock_Relay_Alert_Text::sentence( $alert, $now ) );
		}
		foreach ( array_keys( self::logged() ) as $topic ) {
			if ( 0 === strpos( $topic, 'alert:' ) && ! isset( $topics[ $topic ] ) ) {
				list( , $code, $channel ) = array_pad( explode( ':', $topic, 3 ), 3, '' );
				self::gone(
					$topic,
					'' !== $channel
						/* translators: 1: the alert's code, such as deliveries_failing, 2: channel name */
						? sprintf( __( 'Resolved: %1$s on %2$s.', 'stock-relay' ), $code, $channel )
						/* translators: %s: the alert's code, such as outbox_old */
						: sprintf( __( 'Resolved: %s.', 'stock-relay' ), $code )
				);
			}
		}
	}

	/**
	 * The delivery state written for the first time (add_option_stock_relay_delivery): as a change from nothing.
	 *
	 * @param string $option The option's name.
	 * @param mixed  $value  The state saved.
	 */
	public static function delivery_added( string $option, $value ): void {
		self::delivery( array(), $value );
	}

	/** An error text as a cause: the same words with other numbers are the same cause. */
	public static function cause_of( string $error ): string {
		return (string) preg_replace( '/\d+/', '#', $error );
	}

	/** Write $message unless $topic's logged cause is already $cause. */
	private static function cause( string $topic, string $cause, string $level, string $message ): void {
		$logged = self::logged();
		if ( ( $logged[ $topic ] ?? null ) === $cause ) {
			return;
		}
		$logged[ $topic ] = $cause;
		self::save( $logged );
		self::write( $level, $message );
	}

	/** The topic's cause is gone: one info line, if a cause was logged. */
	private static function gone( string $topic, string $message ): void {
		$logged = self::logged();
		if ( ! isset( $logged[ $topic ] ) ) {
			return;
		}
		unset( $logged[ $topic ] );
		self::save( $logged );
		self::write( 'info', $message );
	}

	/**
	 * The causes logged, by topic.
	 *
	 * @return array<string, string>
	 */
	private static function logged(): array {
		$logged = get_option( self::OPTION, array() );
		return is_array( $logged ) ? $logged : array();
	}

	/**
	 * Keep the causes logged (not autoloaded: only failures read it).
	 *
	 * @param array<string, string> $logged By topic.
	 */
	private static function save( array $logged ): void {
		if ( false === get_option( self::OPTION, false ) ) {
			add_option( self::OPTION, $logged, '', false );
		} else {
			update_option( self::OPTION, $logged, false );
		}
	}

	/** One line in WooCommerce's log (nothing without WooCommerce). */
	private static function write( string $level, string $message ): void {
		if ( function_exists( 'wc_get_logger' ) ) {
			wc_get_logger()->log( $level, $message, array( 'source' => self::SOURCE ) );
		}
	}
}
