<?php
/**
 * Sends the outbox to the relay: signed, blocking, short timeout, outside the shopper's request
 * (Stock_Relay_Kick starts it).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Rows leave in id order, in batches of at most 500 events and 1 MiB, claimed with a lease so that
 * concurrent drainers never send the same rows; backoff is kept in an option; never disabled.
 */
final class Stock_Relay_Delivery {

	public const HOOK        = Stock_Relay_Kick::HOOK;
	public const WATCHDOG    = Stock_Relay_Kick::WATCHDOG;
	public const AJAX_ACTION = Stock_Relay_Kick::AJAX_ACTION;
	public const STATE       = 'stock_relay_delivery';
	public const DUE         = Stock_Relay_Kick::DUE;
	public const TIMEOUT     = 5;
	public const CHUNK       = 200; // Touched rows turned into events per step.

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

	/** Remember an error for the status panel (plain words, never a secret). */
	public static function note_error( string $message ): void {
		$state                  = self::state();
		$state['last_error']    = $message;
		$state['last_error_at'] = time();
		self::save( $state );
	}

	/** The watchdog: every minute, drain if a retry is due or rows wait (covers a lost kick). */
	public static function watchdog(): void {
		Stock_Relay_Oversold_Notice::refresh(); // At most every 15 minutes: keeps the oversold notice current.
		$due = (int) get_option( self::DUE, 0 );
		if ( $due > time() || ( 0 === $due && ! Stock_Relay_Outbox::has_pending() ) ) {
			return; // Backing off until then (a retry is scheduled), or nothing waits.
		}
		self::drain( 20 );
	}

	/**
	 * The one-minute schedule for the watchdog.
	 *
	 * @param array<string, array<string, mixed>> $schedules WP-Cron schedules.
	 * @return array<string, array<string, mixed>>
	 */
	public static function cron_schedules( array $schedules ): array {
		$schedules['stock_relay_minute'] = array(
			'interval' => 60,
			// wp_schedule_event() reads the schedules at plugins_loaded, before translations may load (WordPress 6.7+
			// warns about a text domain loaded that early): translate once init has run (lists such as WP Crontrol's).
			'display'  => did_action( 'init' ) ? __( 'Stock Relay: every minute', 'stock-relay' ) : 'Stock Relay: every minute',
		);
		return $schedules;
	}

	/** Ask for a drain in $delay seconds: Action Scheduler when WooCommerce has it, WP-Cron otherwise. */
	public static function schedule( int $delay = 0 ): void {
		if ( function_exists( 'as_enqueue_async_action' ) && function_exists( 'as_schedule_single_action' ) ) {
			if ( $delay <= 0 ) {
				as_enqueue_async_action( self::HOOK, array(), 'stock-relay', true );
			} else {
				as_schedule_single_action( time() + $delay, self::HOOK, array(), 'stock-relay', true );
			}
			return;
		}
		wp_schedule_single_event( time() + max( 0, $delay ), self::HOOK );
	}

	/**
	 * Turn what requests captured into events (even while the relay is down: that needs only the
	 * database), then send what is due, for at most $budget seconds. Safe to run in several
	 * processes at once.
	 */
	public static function drain( int $budget = 20 ): void {
		$until = microtime( true ) + $budget;
		self::materialise( $until );
		$settings = Stock_Relay_Plugin::settings();
		if ( '' === $settings['url'] || '' === $settings['site'] || '' === $settings['secret'] ) {
			return;
		}
		$state = self::state();
		if ( time() < (int) $state['next_attempt_at'] ) {
			self::schedule( (int) $state['next_attempt_at'] - time() );
			update_option( self::DUE, (int) $state['next_attempt_at'], true );
			return;
		}
		$token = Stock_Relay_Signer::new_id( 'clm_' );
		while ( microtime( true ) < $until ) {
			self::materialise( $until ); // Changes captured while the last batch was on its way.
			$rows = Stock_Relay_Outbox::claim( $token, (int) self::state()['max_events'], time() );
			if ( ! $rows ) {
				break;
			}
			$state = self::send( $rows, self::state(), $settings );
			self::save( $state );
			Stock_Relay_Outbox::release( $token );
			if ( (int) $state['next_attempt_at'] > time() ) {
				self::schedule( (int) $state['next_attempt_at'] - time() );
				update_option( self::DUE, (int) $state['next_attempt_at'], true );
				return;
			}
		}
		if ( Stock_Relay_Outbox::has_pending() ) {
			// Budget spent, or another drainer holds the head of the queue: come back soon.
			self::schedule( 0 );
			update_option( self::DUE, time() + 5, true );
		} else {
			update_option( self::DUE, 0, true );
		}
	}

	/** Turn touched rows into events until none is left or the time is up. */
	private static function materialise( float $until ): void {
		try {
			do {
				$taken = Stock_Relay_Outbox::materialise( self::CHUNK );
			} while ( $taken >= self::CHUNK && microtime( true ) < $until );
		} catch ( Throwable $e ) {
			self::note_error( $e->getMessage() );
		}
	}

	/**
	 * Send one batch (the oldest claimed rows) and return the new state.
	 *
	 * @param array<int, array<string, mixed>> $rows     Claimed rows in id order.
	 * @param array<string, mixed>             $state    Delivery state.
	 * @param array<string, mixed>             $settings Settings.
	 * @return array<string, mixed>
	 */
	private static function send( array $rows, array $state, array $settings ): array {
		$events = array_column( $rows, 'event' );
		$batch  = Stock_Relay_Payload::split( $events, (int) $state['max_events'] )[0];
		$rows   = array_slice( $rows, 0, count( $batch ) );
		$ids    = array_column( $rows, 'id' );
		// A resend of the same batch reuses its webhook-id, so the relay answers it idempotently.
		$key = $ids[0] . ':' . count( $ids ) . ':' . end( $ids );
		if ( ( $state['batch']['key'] ?? '' ) !== $key ) {
			$state['batch'] = array(
				'key'    => $key,
				'msg_id' => Stock_Relay_Signer::new_id(),
			);
		}
		$body   = Stock_Relay_Payload::batch_body( (string) $settings['site'], $batch, time() );
		$answer = self::post( $settings, 'events', $body, (string) $state['batch']['msg_id'] );
		$action = Stock_Relay_Retry_Policy::classify( $answer['status'], $answer['code'] );
		if ( Stock_Relay_Retry_Policy::ACK === $action ) {
			$rejected = Stock_Relay_Retry_Policy::rejected_rows( $answer['body'], array_combine( array_column( $batch, 'id' ), $ids ) );
			Stock_Relay_Outbox::reject( $rejected );
			Stock_Relay_Outbox::remove( array_values( array_diff( $ids, array_keys( $rejected ) ) ) );
			$state['attempts']        = 0;
			$state['next_attempt_at'] = 0;
			$state['last_success']    = time();
			// After a 413 the batch size grows back gradually (doubling per success), not in one jump.
			$state['max_events'] = min( Stock_Relay_Payload::MAX_EVENTS, 2 * max( 1, (int) $state['max_events'] ) );
			$state['batch']      = array();
			// An error from before this success is history: the status panel shows it no longer.
			$state['last_error']    = '';
			$state['last_error_at'] = 0;
			if ( $rejected ) {
				/* translators: %d: number of events */
				$state['last_error']    = sprintf( _n( 'The relay refused %d change as invalid; see the list below.', 'The relay refused %d changes as invalid; see the list below.', count( $rejected ), 'stock-relay' ), count( $rejected ) );
				$state['last_error_at'] = time();
			}
			return $state;
		}
		$reason                 = Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
		$state['last_error']    = $reason;
		$state['last_error_at'] = time();
		if ( Stock_Relay_Retry_Policy::SPLIT === $action && count( $ids ) > 1 ) {
			$state['max_events'] = max( 1, intdiv( count( $ids ), 2 ) );
			return $state;
		}
		if ( Stock_Relay_Retry_Policy::REJECT === $action || Stock_Relay_Retry_Policy::SPLIT === $action ) {
			Stock_Relay_Outbox::reject( array_fill_keys( $ids, $reason ) );
			$state['batch'] = array();
			return $state;
		}
		if ( Stock_Relay_Retry_Policy::RENEW === $action ) {
			// The relay recorded nothing of this batch; a new webhook-id makes the next try a new request.
			$state['batch'] = array();
		}
		$state['attempts']        = (int) $state['attempts'] + 1;
		$state['next_attempt_at'] = time() + Stock_Relay_Retry_Policy::delay( (int) $state['attempts'], $answer['retry_after'], wp_rand( 0, 1000 ) / 1001 );
		return $state;
	}

	/**
	 * The relay's status answer for this site (status.query): what the settings page, the notices and the watchdog
	 * all ask.
	 *
	 * @param array<string, string> $settings Settings.
	 * @return array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null}
	 */
	public static function status( array $settings ): array {
		return self::post(
			$settings,
			'status',
			(string) stock_relay_json(
				array(
					'type' => 'status.query',
					'site' => $settings['site'],
				)
			)
		);
	}

	/**
	 * A signed POST to the relay.
	 *
	 * @param array<string, string> $settings Settings.
	 * @return array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null}
	 */
	public static function post( array $settings, string $operation, string $body, ?string $msg_id = null ): array {
		$url      = (string) $settings['url'] . '/v1/sites/' . rawurlencode( $settings['site'] ) . '/' . $operation;
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
