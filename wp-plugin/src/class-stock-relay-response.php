<?php
/**
 * Finishes a stock-changing response before the drainer is kicked, on servers that cannot do it
 * themselves (PHP's built-in server, Apache mod_php, CGI).
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * Why: without a Content-Length the client reads until the connection closes, and these servers
 * close it only after the last shutdown callback. The loopback kick is one of those callbacks: a
 * free worker accepts it at once and boots WordPress, and on a busy machine that takes the CPU from
 * the shopper's request while its response is still open (measured on the bench machine, SQLite:
 * the kick used 0.24 ms of CPU but 3.2 ms of wall time, median, the drainer accepted 0.45 ms after
 * it). So, from the first stock hook on, the rest of the response is kept in an output buffer; at
 * the end of the shutdown actions — the outbox rows are written at priority 20, so the change is
 * durable first — the response is sent whole with Content-Length and flushed, and only then kicked.
 *
 * It holds only when that is safe: no response sent yet, no other output buffer below it (a page
 * cache or compression buffer could change the length; PHP's own output_buffering buffer is fine),
 * not HEAD, not WP-CLI or WP-Cron, and not under PHP-FPM or LiteSpeed, which finish the response
 * properly. The filter `stock_relay_hold_response` (bool) turns it off. Anything that flushes the
 * buffer on its own (a streaming page) simply sends as usual, and the response is left alone.
 */
final class Stock_Relay_Response {

	/** The name PHP gives the buffer's handler (ob_list_handlers()). */
	private const HANDLER = self::class . '::pass';

	/**
	 * At most this many bytes are held: a bigger response (an export, say) flushes on its own and is
	 * sent as usual, so memory stays bounded.
	 */
	private const MAX_HELD = 4194304;

	/**
	 * Whether hold() already ran in this request.
	 *
	 * @var bool
	 */
	private static bool $tried = false;

	/**
	 * The output-buffer level holding the response (0: none).
	 *
	 * @var int
	 */
	private static int $level = 0;

	/**
	 * The priority of WordPress's wp_ob_end_flush_all() on shutdown, which the hold takes over.
	 *
	 * @var int|false
	 */
	private static $flush_priority = false;

	/** A stock hook fired: hold the rest of the response, if that is safe here. */
	public static function hold(): void {
		if ( self::$tried ) {
			return;
		}
		self::$tried = true;
		if ( ! self::can_hold() || ! ob_start( array( self::class, 'pass' ), self::MAX_HELD ) ) {
			return;
		}
		self::$level = ob_get_level();
		// Core flushes every buffer at shutdown priority 1; here that happens in finish(), after the outbox write.
		self::$flush_priority = has_action( 'shutdown', 'wp_ob_end_flush_all' );
		if ( false !== self::$flush_priority ) {
			remove_action( 'shutdown', 'wp_ob_end_flush_all', self::$flush_priority );
		}
		add_action( 'shutdown', array( self::class, 'finish' ), PHP_INT_MAX ); // Before the kick (added later, at priority 20).
	}

	/** Whether the response can be held and finished with a Content-Length of our own. */
	private static function can_hold(): bool {
		if ( 'cli' === PHP_SAPI || function_exists( 'fastcgi_finish_request' ) || function_exists( 'litespeed_finish_request' ) || headers_sent() || wp_doing_cron() ) {
			return false;
		}
		if ( isset( $_SERVER['REQUEST_METHOD'] ) && 'HEAD' === $_SERVER['REQUEST_METHOD'] ) { // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- compared, never used.
			return false;
		}
		// Only PHP's own output_buffering buffer (bytes unchanged) may be below ours. This also means a stock
		// hook fired from inside another buffer's handler never gets here: ob_start() there is a fatal error.
		foreach ( ob_list_handlers() as $handler ) {
			if ( 'default output handler' !== $handler ) {
				return false;
			}
		}
		return (bool) apply_filters( 'stock_relay_hold_response', true );
	}

	/** Shutdown, last action: send the held response whole, so the client is done before the kick. */
	public static function finish(): void {
		if ( 0 === self::$level ) {
			return;
		}
		$level       = self::$level;
		self::$level = 0;
		// What wp_ob_end_flush_all() does: buffers opened after ours flow into it.
		while ( ob_get_level() > $level && ob_end_flush() ) {
			continue;
		}
		$handlers = ob_list_handlers();
		if ( ob_get_level() !== $level || self::HANDLER !== end( $handlers ) || headers_sent() ) {
			// Someone flushed or closed the buffer: the response went out as usual; finish as core does.
			if ( false !== self::$flush_priority ) {
				wp_ob_end_flush_all();
			}
			return;
		}
		$body = '';
		while ( ob_get_level() > 0 ) { // Ours, then PHP's own output_buffering buffer if there is one (nothing else, see can_hold()).
			$body = (string) ob_get_contents() . $body;
			ob_end_clean();
		}
		if ( self::may_add_length() ) {
			header( 'Content-Length: ' . strlen( $body ) );
			if ( 'cli-server' !== PHP_SAPI ) { // That one says it already.
				header( 'Connection: close' ); // A kept-alive connection would wait for this process to end before reusing it.
			}
		}
		ignore_user_abort( true ); // The client may hang up once it has everything; the kick must still go out.
		echo $body; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- the response as WordPress produced it, unchanged.
		flush();
		// Bytes printed after a complete response would be read as the start of the next one: drop them.
		ob_start( array( self::class, 'discard' ) );
	}

	/** Whether a Content-Length may be added: none set yet, not chunked by the code, a status that has a body. */
	private static function may_add_length(): bool {
		$code = http_response_code();
		if ( is_int( $code ) && ( $code < 200 || 204 === $code || 304 === $code ) ) {
			return false;
		}
		foreach ( headers_list() as $header ) {
			if ( 1 === preg_match( '/^(content-length|transfer-encoding)\s*:/i', $header ) ) {
				return false;
			}
		}
		return true;
	}

	/**
	 * The holding buffer's handler: bytes pass through unchanged whenever anyone else flushes it.
	 *
	 * @param mixed $buffer The buffered output.
	 */
	public static function pass( $buffer ): string {
		return (string) $buffer;
	}

	/**
	 * After the response is complete: output is dropped.
	 *
	 * @param mixed $buffer The buffered output.
	 */
	public static function discard( $buffer ): string {
		unset( $buffer );
		return '';
	}
}
