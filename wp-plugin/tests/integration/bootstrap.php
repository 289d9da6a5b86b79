<?php
/**
 * Integration bootstrap: a real WordPress (started by wp-env.sh: MariaDB + PHP's web server), a
 * recording relay on 127.0.0.1 started here, and WordPress loaded in this process to look at the
 * database. Shop requests go over HTTP, so capture and delivery run as in production.
 *
 * @package StockRelay
 */

declare(strict_types=1);

if ( ! getenv( 'SRT_WP_CONFIG' ) || ! getenv( 'SRT_WP_URL' ) ) {
	fwrite( STDERR, "The integration suite needs the WordPress started by wp-plugin/tests/run.sh (SRT_WP_CONFIG, SRT_WP_URL).\n" );
	exit( 1 );
}

/** Helpers shared by the integration tests: the recorder, shop requests, waiting. */
final class SRT {
	public const SECRET = 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
	public const SITE   = 'test-shop';

	public static string $recorder_dir = '';
	public static int $recorder_port   = 0;
	/** @var resource|null */
	private static $recorder = null;

	public static function start_recorder(): void {
		if ( '' === self::$recorder_dir ) {
			self::$recorder_dir  = (string) getenv( 'SRT_WORK' ) . '/recorder';
			@mkdir( self::$recorder_dir, 0777, true );
			$s                   = stream_socket_server( 'tcp://127.0.0.1:0' );
			$name                = (string) stream_socket_get_name( $s, false );
			self::$recorder_port = (int) substr( $name, strrpos( $name, ':' ) + 1 );
			fclose( $s );
		}
		$cmd            = array( PHP_BINARY, '-S', '127.0.0.1:' . self::$recorder_port, __DIR__ . '/recorder.php' );
		$env            = getenv();
		unset( $env['PHP_CLI_SERVER_WORKERS'] ); // One process: stopping it really closes the port.
		$env['RECORDER_DIR'] = self::$recorder_dir;
		self::$recorder = proc_open( $cmd, array( 0 => array( 'file', '/dev/null', 'r' ), 1 => array( 'file', self::$recorder_dir . '/server.log', 'a' ), 2 => array( 'file', self::$recorder_dir . '/server.log', 'a' ) ), $pipes, null, $env );
		self::wait( static fn() => (bool) @fsockopen( '127.0.0.1', self::$recorder_port ), 5.0, 'the recorder did not start' );
	}

	public static function stop_recorder(): void {
		if ( is_resource( self::$recorder ) ) {
			$status = proc_get_status( self::$recorder );
			posix_kill( (int) $status['pid'], SIGTERM );
			proc_close( self::$recorder );
			self::$recorder = null;
		}
		self::wait( static fn() => ! @fsockopen( '127.0.0.1', self::$recorder_port ), 5.0, 'the recorder did not stop' );
	}

	/** @param array<string, mixed> $mode */
	public static function mode( array $mode ): void {
		file_put_contents( self::$recorder_dir . '/mode.json', json_encode( $mode ) );
	}

	/** @return array<int, array<string, mixed>> */
	public static function requests( string $suffix = '/events' ): array {
		$file = self::$recorder_dir . '/requests.jsonl';
		$out  = array();
		foreach ( is_file( $file ) ? file( $file, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES ) : array() as $line ) {
			$req = json_decode( $line, true );
			if ( '' === $suffix || substr( $req['path'], -strlen( $suffix ) ) === $suffix ) {
				$out[] = $req;
			}
		}
		return $out;
	}

	public static function clear_requests(): void {
		@unlink( self::$recorder_dir . '/requests.jsonl' );
	}

	/** Every event the relay received (202 or not), in arrival order. @return array<int, array<string, mixed>> */
	public static function events(): array {
		$out = array();
		foreach ( self::requests() as $req ) {
			foreach ( json_decode( $req['body'], true )['events'] as $event ) {
				$out[] = $event;
			}
		}
		return $out;
	}

	/** One shop request through the stand-ins; returns the decoded answer. @param array<int, array<int, mixed>> $ops */
	public static function shop( array $ops ): array {
		return self::shop_http( $ops )['doc'];
	}

	/**
	 * One shop request, with what the client saw: the headers (lower-case names), the body, and the
	 * seconds until curl had the whole response (which, with a Content-Length, can be before the
	 * server closes the connection). @param array<int, array<int, mixed>> $ops
	 * @return array{doc: array<string, mixed>, headers: array<string, string>, body: string, seconds: float}
	 */
	public static function shop_http( array $ops ): array {
		$headers = array();
		$ch      = curl_init( getenv( 'SRT_WP_URL' ) . '/wp-admin/admin-ajax.php' );
		curl_setopt_array(
			$ch,
			array(
				CURLOPT_POST           => true,
				CURLOPT_POSTFIELDS     => http_build_query( array( 'action' => 'srt_ops', 'ops' => json_encode( $ops ) ) ),
				CURLOPT_RETURNTRANSFER => true,
				CURLOPT_TIMEOUT        => 30,
				CURLOPT_HEADERFUNCTION => static function ( $ch, string $line ) use ( &$headers ): int {
					$parts = explode( ':', $line, 2 );
					if ( 2 === count( $parts ) ) {
						$headers[ strtolower( trim( $parts[0] ) ) ] = trim( $parts[1] );
					}
					return strlen( $line );
				},
			)
		);
		$start   = microtime( true );
		$body    = (string) curl_exec( $ch );
		$seconds = microtime( true ) - $start;
		$code    = (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE );
		curl_close( $ch );
		$doc = json_decode( $body, true );
		if ( 200 !== $code || ! is_array( $doc ) ) {
			throw new RuntimeException( "shop request failed: HTTP $code: " . substr( $body, 0, 500 ) );
		}
		return array( 'doc' => $doc, 'headers' => $headers, 'body' => $body, 'seconds' => $seconds );
	}

	public static function wait( callable $cond, float $seconds, string $what ): void {
		$until = microtime( true ) + $seconds;
		while ( microtime( true ) < $until ) {
			if ( $cond() ) {
				return;
			}
			usleep( 50000 );
		}
		throw new RuntimeException( 'Timed out: ' . $what );
	}

	/** A product (or variation) written the way WooCommerce stores it; no hooks fire. @param array<string, mixed> $p */
	public static function product( array $p ): int {
		$id = wp_insert_post(
			array(
				'post_type'   => isset( $p['parent'] ) ? 'product_variation' : 'product',
				'post_status' => 'publish',
				'post_title'  => $p['sku'] ?? 'item',
				'post_parent' => $p['parent'] ?? 0,
			)
		);
		$meta = array(
			'_sku'          => $p['sku'] ?? '',
			'_manage_stock' => ( $p['manage'] ?? true ) ? 'yes' : 'no',
			'_stock'        => isset( $p['qty'] ) ? (string) $p['qty'] : '',
			'_stock_status' => $p['status'] ?? 'instock',
			'_backorders'   => $p['backorders'] ?? 'no',
		);
		if ( ! empty( $p['variable'] ) ) {
			$meta['_srt_type'] = 'variable';
		}
		foreach ( $meta as $k => $v ) {
			update_post_meta( $id, $k, $v );
		}
		return (int) $id;
	}

	/** The delivery state as the other processes left it. @return array<string, mixed> */
	public static function delivery_state(): array {
		wp_cache_flush();
		return Stock_Relay_Delivery::state();
	}

	/** @return array<int, array<string, mixed>> */
	public static function outbox(): array {
		global $wpdb;
		return $wpdb->get_results( 'SELECT id, product_id, status, last_error, payload FROM ' . Stock_Relay_Outbox::table() . ' ORDER BY id', ARRAY_A );
	}

	/** Independent check of a Standard Webhooks v1 signature (not the plugin's signer). @param array<string, string> $headers */
	public static function signature_ok( array $headers, string $body ): bool {
		$key = base64_decode( substr( self::SECRET, 6 ) );
		$mac = 'v1,' . base64_encode( hash_hmac( 'sha256', $headers['webhook-id'] . '.' . $headers['webhook-timestamp'] . '.' . $body, $key, true ) );
		return in_array( $mac, explode( ' ', $headers['webhook-signature'] ), true ) && abs( time() - (int) $headers['webhook-timestamp'] ) <= 300;
	}
}

SRT::start_recorder();
register_shutdown_function( array( SRT::class, 'stop_recorder' ) );

$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
require getenv( 'SRT_WP_CONFIG' );

update_option( 'stock_relay_url', 'http://127.0.0.1:' . SRT::$recorder_port );
update_option( 'stock_relay_site', SRT::SITE );
update_option( 'stock_relay_secret', SRT::SECRET, false );
// The watchdog's alert refresh (a status read and a loopback probe every 5 min) stays out of the tests' request
// counts; WatchTest drives it itself (Stock_Relay_Alerts::refresh_now).
update_option( 'stock_relay_alerts_checked', time() + 86400, true );
