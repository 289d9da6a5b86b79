<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Issue 17 items 4 and 5 against the real WordPress: pause and resume from the Stock Relay page, alert notices from
 * the background read of the relay's `attention`, the plugin's own alerts, Site Health, the e-mail digest and the
 * WooCommerce log. The recording relay answers channel.pause/resume as the relay does (recorder-pauses.php).
 */
final class WatchTest extends TestCase {

	private const LOG = '/uploads/wc-logs/stock-relay.log';

	protected function setUp(): void {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/template.php'; // add_settings_error(), as on an admin screen.
		SRT::mode( array() );
		SRT::clear_requests();
		@unlink( SRT::$recorder_dir . '/pauses.json' );
		@unlink( WP_CONTENT_DIR . self::LOG );
		$wpdb->query( 'DELETE FROM ' . Stock_Relay_Outbox::table() );
		foreach ( array( Stock_Relay_Alerts::OPTION, Stock_Relay_Log::OPTION, Stock_Relay_Loopback::OPTION, Stock_Relay_Digest::OPTION, Stock_Relay_Delivery::STATE ) as $option ) {
			delete_option( $option );
		}
		update_option( Stock_Relay_Alerts::CHECKED, time() + 3600, true ); // The watchdog's own reads stay out of these tests.
		update_option( Stock_Relay_Oversold_Notice::CHECKED, time() + 3600, true );
		delete_user_meta( 1, Stock_Relay_Alert_Notice::DISMISSED );
		delete_transient( Stock_Relay_Health_Checks::PING );
		Stock_Relay_Status_Route::forget();
		wp_set_current_user( 1 );
	}

	protected function tearDown(): void {
		update_option( Stock_Relay_Alerts::CHECKED, time() + 86400, true ); // As the bootstrap leaves it.
		delete_option( Stock_Relay_Oversold_Notice::CHECKED );
	}

	/** Two channels as the relay's status answers them, with the attention items given. @param array<int, array<string, mixed>> $attention @param array<string, mixed> $ebay */
	private static function status( array $attention = array(), array $ebay = array() ): array {
		return array(
			'type'      => 'status',
			'channels'  => array(
				$ebay + array( 'name' => 'ebay', 'circuit' => 'closed', 'pending' => 0, 'dead_letters' => 0 ),
				array( 'name' => 'amazon', 'circuit' => 'closed', 'pending' => 0, 'dead_letters' => 0 ),
			),
			'attention' => $attention,
		);
	}

	/** Log in through wp-login.php as $login (password pw-$login, or admin's); returns the cookie file. */
	private function login( string $login = 'admin' ): string {
		$cookies = (string) tempnam( (string) getenv( 'SRT_WORK' ), 'cookies' );
		file_put_contents( $cookies, "127.0.0.1\tFALSE\t/\tFALSE\t0\twordpress_test_cookie\tWP%20Cookie%20check\n" );
		$password = 'admin' === $login ? 'admin-password' : 'pw-' . $login;
		$this->assertSame( 302, $this->http( $cookies, 'POST', '/wp-login.php', array( 'log' => $login, 'pwd' => $password, 'wp-submit' => 'Log In', 'testcookie' => '1' ) )['status'] );
		return $cookies;
	}

	/** @param array<string, mixed>|string $body Form fields, or a JSON body. @param string[] $headers @return array{status: int, body: string, json: mixed} */
	private function http( string $cookies, string $method, string $path, $body = array(), array $headers = array() ): array {
		$ch = curl_init( ( 0 === strpos( $path, 'http' ) ? '' : getenv( 'SRT_WP_URL' ) ) . $path );
		curl_setopt_array( $ch, array( CURLOPT_COOKIEFILE => $cookies, CURLOPT_COOKIEJAR => $cookies, CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 30 ) );
		if ( 'POST' === $method ) {
			if ( is_string( $body ) ) {
				$headers[] = 'Content-Type: application/json';
			}
			curl_setopt_array( $ch, array( CURLOPT_POST => true, CURLOPT_POSTFIELDS => is_string( $body ) ? $body : http_build_query( $body ) ) );
		}
		curl_setopt( $ch, CURLOPT_HTTPHEADER, $headers );
		$out    = (string) curl_exec( $ch );
		$status = (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE );
		curl_close( $ch );
		return array( 'status' => $status, 'body' => $out, 'json' => json_decode( $out, true ) );
	}

	/** WordPress's own wp_rest nonce for the logged-in user of $cookies. */
	private function rest_nonce( string $cookies ): string {
		return $this->http( $cookies, 'GET', '/wp-admin/admin-ajax.php?action=rest-nonce' )['body'];
	}

	/** A call of the plugin's REST route $route (stock-relay/v1/...) as the user of $cookies. @param array<string, mixed> $body @return array{status: int, body: string, json: mixed} */
	private function rest( string $cookies, string $method, string $route, array $body = array(), ?string $nonce = null ): array {
		$headers = array( 'X-WP-Nonce: ' . ( $nonce ?? $this->rest_nonce( $cookies ) ) );
		return $this->http( $cookies, $method, '/?rest_route=/' . Stock_Relay_Status_Route::NS . $route, 'POST' === $method ? (string) json_encode( $body ) : array(), $headers );
	}

	/** The signed requests the relay got at $suffix, decoded. @return array<int, array<string, mixed>> */
	private function asked( string $suffix ): array {
		$out = array();
		foreach ( SRT::requests( $suffix ) as $request ) {
			$this->assertTrue( SRT::signature_ok( $request['headers'], $request['body'] ), 'signed' );
			$out[] = json_decode( $request['body'], true );
		}
		return $out;
	}

	private function log_text(): string {
		return (string) @file_get_contents( WP_CONTENT_DIR . self::LOG );
	}

	/**
	 * Item 4: the channels table has a Pause form (with a reason) per running channel and Resume per paused one; the
	 * routes ask the relay signed, with the reason and the user's login, and the table then says who paused it, when and
	 * why; pausing every channel needs the confirmation; an empty reason is refused before the relay is asked; the
	 * routes are guarded (nonce, manage_woocommerce) and a relay that does not answer is an error that claims nothing.
	 */
	public function test_pause_and_resume_a_channel_and_all_of_them_from_the_page(): void {
		SRT::mode( array( 'status_body' => self::status() ) );
		$cookies = $this->login();
		$page    = $this->http( $cookies, 'GET', '/wp-admin/admin.php?page=stock-relay' )['body'];
		$this->assertSame( 1, preg_match( '#var stockRelayPause = (\{.*?\});#', $page, $m ), 'the pause script\'s settings on the page' );
		$this->assertStringContainsString( 'stock-relay/assets/pause.js', $page );
		$this->assertStringNotContainsString( 'stockRelayPause', $this->http( $cookies, 'GET', '/wp-admin/index.php' )['body'], 'other admin pages are left alone' );
		$nonce = (string) json_decode( $m[1], true )['nonce'];

		$html = (string) $this->rest( $cookies, 'GET', '/status', array(), $nonce )['json']['html'];
		$this->assertStringContainsString( '<th>Pause</th>', $html );
		$this->assertMatchesRegularExpression( '#data-stock-relay-pause="pause" data-channel="ebay".*?name="reason" required#s', $html );
		$this->assertMatchesRegularExpression( '#data-stock-relay-pause="pause" data-channel="" data-confirm="Pause sending to every channel\?#', $html, 'Pause all asks first' );
		$this->assertStringNotContainsString( 'data-stock-relay-pause="resume"', $html, 'nothing to resume' );

		SRT::clear_requests();
		$refused = $this->rest( $cookies, 'POST', '/pause', array( 'channel' => 'ebay', 'reason' => '   ' ), $nonce );
		$this->assertSame( 400, $refused['status'] );
		$this->assertStringContainsString( 'Say why the sending is paused', $refused['json']['message'] );
		$this->assertSame( 400, $this->rest( $cookies, 'POST', '/pause', array( 'reason' => 'Stocktake' ), $nonce )['status'], 'every channel without the confirmation' );
		$this->assertSame( array(), SRT::requests( '' ), 'a refused request asks the relay nothing' );

		$paused = $this->rest( $cookies, 'POST', '/pause', array( 'channel' => 'ebay', 'reason' => 'Fixing <b>listings</b> after the import' ), $nonce );
		$this->assertSame( 200, $paused['status'], $paused['body'] );
		$this->assertSame( array( 'success', 'Paused: ebay. Changes wait at the relay and are sent when you resume.' ), array( $paused['json']['type'], $paused['json']['message'] ) );
		$asked = $this->asked( '/pause' );
		$this->assertSame( array( 'type' => 'channel.pause', 'site' => SRT::SITE, 'channel' => 'ebay', 'reason' => 'Fixing listings after the import', 'actor' => 'admin' ), $asked[0] );

		$html = (string) $this->rest( $cookies, 'GET', '/status', array(), $nonce )['json']['html'];
		$this->assertMatchesRegularExpression( '#<td>Paused by admin since \d{4}-\d\d-\d\d \d\d:\d\d \(\d+ s ago\): Fixing listings after the import</td>#', $html, 'who, when and why, in the channels table (the cache was forgotten)' );
		$this->assertStringContainsString( 'data-stock-relay-pause="resume" data-channel="ebay"', $html );
		$this->assertStringContainsString( 'data-stock-relay-pause="pause" data-channel="amazon"', $html );
		$this->assertStringContainsString( 'Resume all paused channels', $html );

		$all = $this->rest( $cookies, 'POST', '/pause', array( 'reason' => 'Stocktake', 'confirm' => true ), $nonce )['json'];
		$this->assertStringStartsWith( 'Paused: amazon.', $all['message'] );
		$this->assertStringContainsString( 'ebay was already paused (Paused by admin since', $all['message'], 'a pause keeps its first reason' );
		$this->assertArrayNotHasKey( 'channel', $this->asked( '/pause' )[1], 'every channel: no channel named' );

		$this->assertSame( 'Resumed: ebay. What waited is being sent now, each product\'s newest quantity once.', $this->rest( $cookies, 'POST', '/resume', array( 'channel' => 'ebay' ), $nonce )['json']['message'] );
		$this->assertSame( array( 'type' => 'channel.resume', 'site' => SRT::SITE, 'channel' => 'ebay', 'actor' => 'admin' ), $this->asked( '/resume' )[0] );
		$this->assertStringStartsWith( 'Resumed: amazon.', $this->rest( $cookies, 'POST', '/resume', array(), $nonce )['json']['message'] );
		$this->assertSame( 'No channel was paused: nothing to resume.', $this->rest( $cookies, 'POST', '/resume', array(), $nonce )['json']['message'] );

		$unknown = $this->rest( $cookies, 'POST', '/pause', array( 'channel' => 'etsy', 'reason' => 'x' ), $nonce )['json'];
		$this->assertSame( 'error', $unknown['type'] );
		$this->assertStringContainsString( 'The relay refused: This site has no channel', $unknown['message'] );

		// Guarded: no nonce is logged out (401), an editor has no manage_woocommerce (403); neither reaches the relay.
		SRT::clear_requests();
		$this->assertSame( 401, $this->http( $cookies, 'POST', '/?rest_route=/stock-relay/v1/pause', (string) json_encode( array( 'channel' => 'ebay', 'reason' => 'x' ) ) )['status'] );
		$editor = 'editor-' . wp_rand();
		wp_insert_user( array( 'user_login' => $editor, 'user_pass' => 'pw-' . $editor, 'role' => 'editor' ) );
		$this->assertSame( 403, $this->rest( $this->login( $editor ), 'POST', '/resume', array( 'channel' => 'ebay' ) )['status'] );
		$this->assertSame( array(), SRT::requests( '' ) );

		$url = (string) get_option( 'stock_relay_url' );
		update_option( 'stock_relay_url', 'http://127.0.0.1:1' );
		try {
			$down = $this->rest( $cookies, 'POST', '/pause', array( 'channel' => 'ebay', 'reason' => 'x' ), $nonce )['json'];
			$this->assertSame( 'error', $down['type'] );
			$this->assertStringContainsString( 'could not be reached', $down['message'] );
			$this->assertStringNotContainsString( 'resent', $down['message'], 'a one-off request is not kept' );
		} finally {
			update_option( 'stock_relay_url', $url );
		}
	}

	/**
	 * Item 5: the relay's attention list, read in the background (not on page load), becomes notices on WooCommerce's
	 * and the Products screens, worded by the plugin and escaped; each is dismissible until it changes; failures go to
	 * WooCommerce's log once per cause, and a line when resolved.
	 */
	public function test_relay_alerts_become_dismissible_notices_and_log_lines_once_per_cause(): void {
		$since   = time() - 1800;
		$failing = static fn( int $since ): array => self::status(
			array(
				array( 'code' => 'deliveries_failing', 'level' => 'error', 'channel' => 'ebay', 'since' => $since, 'message' => 'English' ),
				array( 'code' => 'dead_letters', 'level' => 'error', 'channel' => 'ebay', 'since' => $since + 60, 'message' => 'English' ),
				array( 'code' => 'oversold', 'level' => 'warning', 'channel' => null, 'since' => $since, 'message' => 'English' ),
			),
			array( 'failing' => array( 'items' => 3, 'since' => $since ), 'last_error' => array( 'message' => 'eBay said <b>Invalid token</b>', 'at' => $since ), 'dead_letters' => 2, 'newest_dead_letter' => array( 'sku' => 'DL-<i>1</i>', 'reason' => 'Listing ended', 'since' => $since + 60 ) )
		);
		SRT::mode( array( 'status_body' => $failing( $since ) ) );
		$cookies = $this->login();
		$this->assertStringNotContainsString( 'stock-relay-alert', $this->http( $cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'nothing read yet' );
		$this->assertSame( array(), SRT::requests( '' ), 'and the page asked the relay nothing' );

		Stock_Relay_Alerts::refresh_now(); // What the watchdog runs every five minutes.
		$this->assertCount( 1, $this->asked( '/status' ) );
		$products = $this->http( $cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'];
		$this->assertCount( 1, SRT::requests( '/status' ), 'showing the notices asks the relay nothing' );
		$this->assertMatchesRegularExpression( '#class="notice notice-error stock-relay-alert" data-stock-relay-alert="deliveries_failing"><p><strong>Stock Relay:</strong> Sending to ebay has been failing since [^<]* \(30 min ago\) for 3 products; the relay keeps retrying\. Last error: eBay said &lt;b&gt;Invalid token&lt;/b&gt;#', $products );
		$this->assertStringContainsString( 'ebay refused 2 changes (dead letters): they are not retried by themselves. The newest: SKU DL-&lt;i&gt;1&lt;/i&gt;', $products );
		$this->assertStringNotContainsString( 'English', $products, 'the relay\'s English message is not used' );
		$this->assertStringNotContainsString( 'data-stock-relay-alert="oversold"', $products, 'oversold has its own notice' );
		$this->assertStringContainsString( 'data-stock-relay-alert="deliveries_failing"', $this->http( $cookies, 'GET', '/wp-admin/admin.php?page=stock-relay' )['body'], 'and on our page' );
		$this->assertStringNotContainsString( 'stock-relay-alert', $this->http( $cookies, 'GET', '/wp-admin/edit.php' )['body'], 'not on the Posts screen' );

		$log = $this->log_text();
		$this->assertSame( 1, substr_count( $log, 'ERROR Sending to ebay has been failing since' ), $log );
		$this->assertSame( 1, substr_count( $log, 'ERROR ebay refused 2 changes' ) );
		Stock_Relay_Alerts::refresh_now();
		$this->assertSame( $log, $this->log_text(), 'the same causes again: no new line' );

		// Dismissed until it changes: the link (with its nonce) hides one alert; a new failure run shows it again.
		$this->assertSame( 1, preg_match( '#data-stock-relay-alert="deliveries_failing">.*?href="([^"]*action=stock_relay_dismiss_alert[^"]*)"#', $products, $m ) );
		$dismiss = (string) substr( html_entity_decode( $m[1] ), strlen( (string) getenv( 'SRT_WP_URL' ) ) );
		$this->assertSame( 403, $this->http( $cookies, 'GET', (string) preg_replace( '/_wpnonce=\w+/', '_wpnonce=bad', $dismiss ) )['status'], 'no dismissal without the nonce' );
		$this->assertSame( 302, $this->http( $cookies, 'GET', $dismiss )['status'] );
		$products = $this->http( $cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'];
		$this->assertStringNotContainsString( 'data-stock-relay-alert="deliveries_failing"', $products, 'dismissed' );
		$this->assertStringContainsString( 'data-stock-relay-alert="dead_letters"', $products, 'the other one stays' );
		SRT::mode( array( 'status_body' => $failing( $since + 600 ) ) );
		Stock_Relay_Alerts::refresh_now();
		$this->assertStringContainsString( 'data-stock-relay-alert="deliveries_failing"', $this->http( $cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'a new failure run shows it again' );
		$this->assertSame( 2, substr_count( $this->log_text(), 'ERROR Sending to ebay has been failing since' ), 'and is a new cause in the log' );

		$editor = 'editor-' . wp_rand();
		wp_insert_user( array( 'user_login' => $editor, 'user_pass' => 'pw-' . $editor, 'role' => 'editor' ) );
		$this->assertStringNotContainsString( 'stock-relay-alert', $this->http( $this->login( $editor ), 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'not without manage_woocommerce' );

		SRT::mode( array( 'status_body' => self::status() ) );
		Stock_Relay_Alerts::refresh_now();
		$this->assertStringNotContainsString( 'stock-relay-alert', $this->http( $cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'resolved: gone' );
		$this->assertStringContainsString( 'INFO Resolved: deliveries_failing on ebay.', $this->log_text() );
		$this->assertStringContainsString( 'INFO Resolved: dead_letters on ebay.', $this->log_text() );
		wp_cache_delete( 1, 'user_meta' ); // Written by the web server.
		$this->assertSame( array(), get_user_meta( 1, Stock_Relay_Alert_Notice::DISMISSED, true ), 'dismissals of gone alerts are dropped' );
	}

	/**
	 * Item 5, this site's own alerts: changes waiting too long in the outbox (with the relay's refusal as the cause), the
	 * loopback request blocked (probed in the background with the kick's URL and key), and a relay that stops answering
	 * the background read; each also once in the log.
	 */
	public function test_outbox_age_loopback_and_relay_not_answering_are_alerts_too(): void {
		global $wpdb;
		$this->assertTrue( Stock_Relay_Loopback::probe()['ok'], 'the real loopback to this WordPress answers' );
		$this->assertSame( array(), Stock_Relay_Alerts::current() );

		// A change an hour old, held by a live claim so no drainer of the web server sends it meanwhile.
		$wpdb->insert( Stock_Relay_Outbox::table(), array( 'product_id' => 1, 'event_id' => 'evt_old', 'payload' => '{}', 'status' => 'pending', 'created_at' => time() - 3600, 'claim_token' => 'held', 'claimed_until' => time() + 3600 ) );
		update_option( Stock_Relay_Delivery::STATE, array( 'last_error' => 'The relay refused the signature: check that the secret matches.', 'last_error_at' => time() ), false );
		add_filter( 'stock_relay_loopback_url', $blocked = static fn(): string => 'http://127.0.0.1:1/wp-admin/admin-ajax.php' );
		$url = (string) get_option( 'stock_relay_url' );
		update_option( 'stock_relay_url', 'http://127.0.0.1:1' );
		try {
			Stock_Relay_Alerts::refresh_now();
		} finally {
			update_option( 'stock_relay_url', $url );
			remove_filter( 'stock_relay_loopback_url', $blocked );
		}
		$codes = array_column( Stock_Relay_Alerts::current(), 'level', 'code' );
		$this->assertSame( array( 'outbox_old' => 'error', 'relay_unreachable' => 'error', 'loopback_blocked' => 'warning' ), $codes, 'errors first' );
		$page = $this->http( $this->login(), 'GET', '/wp-admin/edit.php?post_type=product' )['body'];
		$this->assertStringContainsString( '1 stock change is waiting to be sent to the relay, since', $page );
		$this->assertStringContainsString( 'The relay did not take them: The relay refused the signature', $page );
		$this->assertStringContainsString( 'This site cannot call itself', $page );
		$this->assertStringContainsString( 'The relay has not answered since', $page );
		$log = $this->log_text();
		foreach ( array( 'ERROR 1 stock change is waiting', 'WARNING This site cannot call itself', 'ERROR The relay has not answered since' ) as $line ) {
			$this->assertSame( 1, substr_count( $log, $line ), $line );
		}
		$this->assertStringNotContainsString( substr( SRT::SECRET, 6, 20 ), $log . $page );

		$wpdb->query( 'DELETE FROM ' . Stock_Relay_Outbox::table() );
		Stock_Relay_Alerts::refresh_now();
		$this->assertSame( array(), Stock_Relay_Alerts::current(), 'the loopback answers, the relay answers, nothing waits' );
	}

	/**
	 * Failures of the plugin's own sending go to WooCommerce's log once per cause (not once per retry: the numbers in a
	 * network error change on every try), and one line when changes reach the relay again; a real failed drain too.
	 */
	public function test_delivery_failures_are_logged_once_per_cause(): void {
		$state = static fn( string $error, int $success = 0 ): bool => update_option( Stock_Relay_Delivery::STATE, array( 'last_error' => $error, 'last_error_at' => time(), 'last_success' => $success, 'attempts' => 1 ), false );
		$state( 'The relay could not be reached (cURL error 28: Operation timed out after 5001 milliseconds).' );
		$state( 'The relay could not be reached (cURL error 28: Operation timed out after 5003 milliseconds).' );
		$state( 'The relay answered 503: try again later.' );
		$state( '', time() );
		$state( '', time() + 1 );
		$lines = array_values( array_filter( explode( "\n", $this->log_text() ) ) );
		$this->assertCount( 3, $lines, $this->log_text() );
		$this->assertMatchesRegularExpression( '/^\S+ ERROR Sending stock changes to the relay failed: The relay could not be reached \(cURL error 28: Operation timed out after 5001 milliseconds\)\.$/', $lines[0] );
		$this->assertStringContainsString( 'ERROR Sending stock changes to the relay failed: The relay answered 503', $lines[1] );
		$this->assertStringEndsWith( 'INFO Stock changes reach the relay again.', $lines[2] );

		@unlink( WP_CONTENT_DIR . self::LOG );
		delete_option( Stock_Relay_Delivery::STATE );
		SRT::stop_recorder();
		try {
			$id = SRT::product( array( 'sku' => 'LOG-1', 'qty' => 3 ) );
			SRT::shop( array( array( 'crud', $id, array( 'stock_quantity' => 2 ) ) ) );
			SRT::wait( fn(): bool => false !== strpos( $this->log_text(), 'ERROR Sending stock changes to the relay failed' ), 15.0, 'the failed drain in the log' );
		} finally {
			SRT::start_recorder();
		}
		// The retry, driven here rather than waited for: due now, drained in this process.
		SRT::wait( static fn(): bool => (int) SRT::delivery_state()['next_attempt_at'] > 0, 15.0, 'the failed drain backed off' );
		update_option( Stock_Relay_Delivery::STATE, array( 'next_attempt_at' => 0 ) + SRT::delivery_state(), false );
		Stock_Relay_Delivery::drain( 5 );
		$this->assertStringContainsString( 'INFO Stock changes reach the relay again.', $this->log_text() );
		$this->assertSame( 1, substr_count( $this->log_text(), 'ERROR' ), 'one line for the outage: ' . $this->log_text() );
	}

	/**
	 * Site Health: the outbox's age is a direct test; the relay and clock tests are asynchronous (the screen's script
	 * asks the plugin's REST routes), each guarded, and say what is wrong in plain words.
	 */
	public function test_site_health_has_the_outbox_relay_and_clock_tests(): void {
		$cookies = $this->login();
		$page    = $this->http( $cookies, 'GET', '/wp-admin/site-health.php' )['body'];
		$this->assertSame( 1, preg_match( '#var SiteHealth = (\{.*?\});\n#', $page, $m ) );
		$status = json_decode( $m[1], true )['site_status'];
		$direct = array_column( $status['direct'], null, 'test' );
		$this->assertSame( 'good', $direct[ Stock_Relay_Health_Checks::OUTBOX ]['status'] );
		$async = array_column( $status['async'], null, 'test' );
		$this->assertArrayHasKey( rest_url( 'stock-relay/v1/health/relay' ), $async, 'the relay test is asked for by the screen\'s script' );
		$this->assertTrue( $async[ rest_url( 'stock-relay/v1/health/clock' ) ]['has_rest'] );
		$this->assertSame( array(), SRT::requests( '' ), 'the screen itself asked the relay nothing' );

		$relay = $this->rest( $cookies, 'GET', '/health/relay' )['json'];
		$this->assertSame( array( 'good', 'Stock Relay reaches the relay' ), array( $relay['status'], $relay['label'] ) );
		$clock = $this->rest( $cookies, 'GET', '/health/clock' )['json'];
		$this->assertSame( 'good', $clock['status'] );
		$this->assertMatchesRegularExpression( '/The relay&#039;s clock is [+-]\d+ s from this site&#039;s\./', $clock['description'] );
		$this->assertCount( 1, SRT::requests( '/ping' ), 'one ping for both tests' );

		$editor = 'editor-' . wp_rand();
		wp_insert_user( array( 'user_login' => $editor, 'user_pass' => 'pw-' . $editor, 'role' => 'editor' ) );
		$this->assertSame( 403, $this->rest( $this->login( $editor ), 'GET', '/health/relay' )['status'] );
		$this->assertSame( 401, $this->http( $cookies, 'GET', '/?rest_route=/stock-relay/v1/health/relay' )['status'] );

		$url = (string) get_option( 'stock_relay_url' );
		update_option( 'stock_relay_url', 'http://127.0.0.1:1' );
		delete_transient( Stock_Relay_Health_Checks::PING );
		try {
			$down = Stock_Relay_Health_Checks::relay();
			$this->assertSame( array( 'critical', 'Stock Relay cannot reach the relay' ), array( $down['status'], $down['label'] ) );
			$this->assertStringContainsString( 'could not be reached', $down['description'] );
			$this->assertSame( 'The clock difference with the relay is unknown', Stock_Relay_Health_Checks::clock()['label'] );
		} finally {
			update_option( 'stock_relay_url', $url );
			delete_transient( Stock_Relay_Health_Checks::PING );
		}
		$ping = static fn( int $skew ): array => array( 'status' => 200, 'error' => '', 'skew' => $skew );
		$this->assertSame( 'recommended', Stock_Relay_Health_Checks::clock_result( $ping( -120 ) )['status'] );
		$this->assertSame( 'critical', Stock_Relay_Health_Checks::clock_result( $ping( 301 ) )['status'] );
		$this->assertStringContainsString( 'The relay&#039;s clock is +301 s', Stock_Relay_Health_Checks::clock_result( $ping( 301 ) )['description'] );
		$this->assertSame( 'good', Stock_Relay_Health_Checks::outbox_result( array( 'pending' => 4, 'rejected' => 0, 'oldest' => time() - 599 ), array(), time() )['status'] );
		$this->assertSame( 'recommended', Stock_Relay_Health_Checks::outbox_result( array( 'pending' => 4, 'rejected' => 0, 'oldest' => time() - 600 ), array(), time() )['status'] );
		$old = Stock_Relay_Health_Checks::outbox_result( array( 'pending' => 4, 'rejected' => 0, 'oldest' => time() - 3600 ), array( 'last_error' => 'The relay answered 503.' ), time() );
		$this->assertSame( 'critical', $old['status'] );
		$this->assertStringContainsString( '4 stock changes are waiting to be sent to the relay, the oldest since', $old['description'] );
	}

	/**
	 * The e-mail digest: off by default; an address on the page schedules a daily event that sends, through wp_mail,
	 * the alerts of the day, and nothing on a day without any; a wrong address is refused and the saved one kept.
	 */
	public function test_the_daily_digest_is_optional_and_says_something_or_nothing(): void {
		$this->assertFalse( wp_next_scheduled( Stock_Relay_Digest::HOOK ), 'off by default' );
		$page = $this->http( $this->login(), 'GET', '/wp-admin/admin.php?page=stock-relay' )['body'];
		$this->assertMatchesRegularExpression( '#<form method="post" action="[^"]*options\.php">.*id="stock_relay_digest_email" name="stock_relay_digest_email" value=""#s', $page, 'the field is in the settings form' );

		update_option( Stock_Relay_Digest::OPTION, 'owner@example.com' );
		$this->assertNotFalse( wp_next_scheduled( Stock_Relay_Digest::HOOK ), 'saved: scheduled daily' );
		$this->assertSame( 'daily', wp_get_schedule( Stock_Relay_Digest::HOOK ) );
		$this->assertSame( 'owner@example.com', Stock_Relay_Digest::sanitize( 'not an address' ), 'refused, the saved one kept' );
		$this->assertStringContainsString( 'not an e-mail address', (string) get_settings_errors( Stock_Relay_Digest::OPTION )[0]['message'] );

		$mails   = array();
		$capture = static function ( $short, array $mail ) use ( &$mails ) {
			$mails[] = $mail;
			return true; // Sent, as far as WordPress knows: the mail goes no further.
		};
		add_filter( 'pre_wp_mail', $capture, 10, 2 );
		try {
			do_action( Stock_Relay_Digest::HOOK );
			$this->assertSame( array(), $mails, 'nothing to say: no e-mail' );
			SRT::mode( array( 'status_body' => self::status( array( array( 'code' => 'paused', 'level' => 'warning', 'channel' => 'ebay', 'since' => time() - 7200, 'message' => 'English' ) ), array( 'paused' => array( 'reason' => 'Stocktake', 'actor' => 'shopadmin', 'paused_at' => time() - 7200 ), 'pending' => 5 ) ) ) );
			Stock_Relay_Alerts::refresh_now();
			do_action( Stock_Relay_Digest::HOOK );
			$this->assertCount( 1, $mails );
			$this->assertSame( 'owner@example.com', $mails[0]['to'] );
			$this->assertStringEndsWith( 'Stock Relay: 1 thing needs attention', $mails[0]['subject'] );
			$this->assertStringContainsString( '[-] ebay is paused by shopadmin since', $mails[0]['message'] );
			$this->assertStringContainsString( ': Stocktake. 5 changes wait for it and are sent when it is resumed.', $mails[0]['message'] );
			$this->assertStringContainsString( 'admin.php?page=stock-relay', $mails[0]['message'] );
		} finally {
			remove_filter( 'pre_wp_mail', $capture, 10 );
		}
		update_option( Stock_Relay_Digest::OPTION, '' );
		$this->assertFalse( wp_next_scheduled( Stock_Relay_Digest::HOOK ), 'emptied: unscheduled' );
	}
}
