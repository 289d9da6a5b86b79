<?php
/**
 * Sends the outbox to the relay: signed, blocking, short timeout, outside the shopper's request.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * One drainer at a time (an option used as a lock with an expiry), rows in id order, batches of at
 * most 500 events and 1 MiB, backoff kept in an option, never disabled.
 */
final class Stock_Relay_Delivery {

	public const HOOK    = 'stock_relay_drain';
	public const STATE   = 'stock_relay_delivery';
	public const LOCK    = 'stock_relay_drain_lock';
	public const TIMEOUT = 5;

	/**
	 * The delivery state (not autoloaded).
	 *
	 * @return array<string, mixed>
	 */
	public static function state(): array {
		$state = get_option( self::STATE, array() );
		return array_merge(
			array(
				'attempts'        => 0,
				'next_attempt_at' => 0,
				'last_success'    => 0,
				'last_error'      => '',
				'last_error_at'   => 0,
				'max_events'      => Stock_Relay_Payload::MAX_EVENTS,
				'batch'           => array(),
			),
			is_array( $state ) ? $state : array()
		);
	}

	/**
	 * Save the delivery state.
	 *
	 * @param array<string, mixed> $state State.
	 */
	private static function save( array $state ): void {
		update_option( self::STATE, $state, false );
	}

	/** Ask for a drain soon: Action Scheduler when WooCommerce has it, WP-Cron otherwise. */
	public static function schedule( int $delay = 0 ): void {
		if ( function_exists( 'as_schedule_single_action' ) ) {
			if ( ! as_next_scheduled_action( self::HOOK, array(), 'stock-relay' ) ) {
				as_schedule_single_action( time() + $delay, self::HOOK, array(), 'stock-relay', true );
			}
			return;
		}
		if ( ! wp_next_scheduled( self::HOOK ) ) {
			wp_schedule_single_event( time() + $delay, self::HOOK );
		}
	}

	/** Send what is due, for at most $budget seconds. */
	public static function drain( int $budget = 20 ): void {
		if ( ! self::lock() ) {
			return;
		}
		try {
			$settings = Stock_Relay_Plugin::settings();
			if ( '' === $settings['url'] || '' === $settings['site'] || '' === $settings['secret'] ) {
				return;
			}
			$state = self::state();
			if ( time() < (int) $state['next_attempt_at'] ) {
				self::schedule( (int) $state['next_attempt_at'] - time() );
				return;
			}
			$until = time() + $budget;
			while ( time() < $until ) {
				$rows = Stock_Relay_Outbox::pending( (int) $state['max_events'] );
				if ( ! $rows ) {
					break;
				}
				$state = self::send( $rows, $state, $settings );
				self::save( $state );
				if ( (int) $state['next_attempt_at'] > time() ) {
					self::schedule( (int) $state['next_attempt_at'] - time() );
					return;
				}
			}
			if ( Stock_Relay_Outbox::pending( 1 ) ) {
				self::schedule( 0 );
			}
		} finally {
			delete_option( self::LOCK );
		}
	}

	/** Take the drain lock; a lock older than a minute belongs to a dead drainer and is broken. */
	private static function lock(): bool {
		if ( add_option( self::LOCK, (string) ( time() + 60 ), '', false ) ) {
			return true;
		}
		if ( (int) get_option( self::LOCK ) < time() ) {
			delete_option( self::LOCK );
			return add_option( self::LOCK, (string) ( time() + 60 ), '', false );
		}
		return false;
	}

	/**
	 * Send one batch (the oldest rows) and return the new state.
	 *
	 * @param array<int, array<string, mixed>> $rows     Rows in id order.
	 * @param array<string, mixed>             $state    Delivery state.
	 * @param array<string, string>            $settings Settings.
	 * @return array<string, mixed>
	 */
	private static function send( array $rows, array $state, array $settings ): array {
		$events = array_column( $rows, 'event' );
		$batch  = Stock_Relay_Payload::split( $events, (int) $state['max_events'] )[0];
		$rows   = array_slice( $rows, 0, count( $batch ) );
		$ids    = array_column( $rows, 'id' );
		// A resend of the same batch reuses its webhook-id, so the relay answers it idempotently.
		$key = $ids[0] . ':' . count( $ids );
		if ( ( $state['batch']['key'] ?? '' ) !== $key ) {
			$state['batch'] = array(
				'key'    => $key,
				'msg_id' => Stock_Relay_Signer::new_id(),
			);
		}
		$body   = Stock_Relay_Payload::batch_body( $settings['site'], $batch, time() );
		$answer = self::post( $settings, 'events', $body, $state['batch']['msg_id'] );
		$action = Stock_Relay_Retry_Policy::classify( $answer['status'], $answer['code'] );
		if ( Stock_Relay_Retry_Policy::ACK === $action ) {
			$rejected = array();
			$by_event = array_combine( array_column( $batch, 'id' ), $ids );
			foreach ( (array) ( $answer['body']['rejected'] ?? array() ) as $item ) {
				if ( isset( $item['id'], $by_event[ $item['id'] ] ) ) {
					$rejected[ $by_event[ $item['id'] ] ] = ( $item['code'] ?? '' ) . ': ' . ( $item['message'] ?? '' );
				}
			}
			Stock_Relay_Outbox::reject( $rejected );
			Stock_Relay_Outbox::remove( array_values( array_diff( $ids, array_keys( $rejected ) ) ) );
			$state['attempts']     = 0;
			$state['last_success'] = time();
			$state['max_events']   = Stock_Relay_Payload::MAX_EVENTS;
			$state['batch']        = array();
			return $state;
		}
		if ( Stock_Relay_Retry_Policy::SPLIT === $action && count( $ids ) > 1 ) {
			$state['max_events'] = max( 1, intdiv( count( $ids ), 2 ) );
			return $state;
		}
		$reason = Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
		$state['last_error']    = $reason;
		$state['last_error_at'] = time();
		if ( Stock_Relay_Retry_Policy::REJECT === $action || Stock_Relay_Retry_Policy::SPLIT === $action ) {
			Stock_Relay_Outbox::reject( array_fill_keys( $ids, $reason ) );
			return $state;
		}
		$state['attempts']        = (int) $state['attempts'] + 1;
		$state['next_attempt_at'] = time() + Stock_Relay_Retry_Policy::delay( $state['attempts'], $answer['retry_after'], wp_rand( 0, 1000 ) / 1001 );
		return $state;
	}

	/**
	 * A signed POST to the relay.
	 *
	 * @param array<string, string> $settings Settings.
	 * @return array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null}
	 */
	public static function post( array $settings, string $operation, string $body, ?string $msg_id = null ): array {
		$url      = $settings['url'] . '/v1/sites/' . rawurlencode( $settings['site'] ) . '/' . $operation;
		$headers  = Stock_Relay_Signer::headers( $settings['secret'], $msg_id ?? Stock_Relay_Signer::new_id(), time(), $body );
		$response = wp_remote_post(
			$url,
			array(
				'timeout'     => self::TIMEOUT,
				'blocking'    => true,
				'redirection' => 0,
				'headers'     => $headers + array( 'Content-Type' => 'application/json' ),
				'body'        => $body,
				'user-agent'  => 'stock-relay-wp/' . STOCK_RELAY_VERSION,
			)
		);
		if ( is_wp_error( $response ) ) {
			return array(
				'status'      => 0,
				'code'        => '',
				'message'     => $response->get_error_message(),
				'body'        => array(),
				'retry_after' => null,
			);
		}
		$decoded = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		$decoded = is_array( $decoded ) ? $decoded : array();
		$retry   = wp_remote_retrieve_header( $response, 'retry-after' );
		return array(
			'status'      => (int) wp_remote_retrieve_response_code( $response ),
			'code'        => (string) ( $decoded['error']['code'] ?? '' ),
			'message'     => (string) ( $decoded['error']['message'] ?? '' ),
			'body'        => $decoded,
			'retry_after' => is_string( $retry ) && ctype_digit( $retry ) ? (int) $retry : null,
		);
	}
}
