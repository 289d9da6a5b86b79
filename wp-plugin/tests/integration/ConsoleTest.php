<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Issue 17 items 2 and 3 against the real WordPress: the Products list's Sync column, the product box, the lineage
 * page, Sync this product now (row action and bulk action) and the dead-letter list with its retry. Screens render
 * without a relay request; their script's REST routes ask the recording relay (recorder.php) once per screen, signed.
 */
final class ConsoleTest extends TestCase {

	private static string $cookies = '';

	protected function setUp(): void {
		global $wpdb;
		SRT::mode( array() );
		usleep( 300000 ); // Let drains from the previous test finish.
		SRT::clear_requests();
		$wpdb->query( 'DELETE FROM ' . Stock_Relay_Outbox::table() );
		delete_option( Stock_Relay_Delivery::STATE );
		Stock_Relay_Status_Route::forget();
		if ( '' === self::$cookies ) {
			self::$cookies = $this->login( 'admin', 'admin-password' );
		}
	}

	/** Log in through wp-login.php; returns the cookie file. */
	private function login( string $login, string $password ): string {
		$cookies = (string) tempnam( (string) getenv( 'SRT_WORK' ), 'cookies' );
		file_put_contents( $cookies, "127.0.0.1\tFALSE\t/\tFALSE\t0\twordpress_test_cookie\tWP%20Cookie%20check\n" );
		$this->assertSame( 302, $this->http( $cookies, 'POST', '/wp-login.php', array( 'log' => $login, 'pwd' => $password, 'wp-submit' => 'Log In', 'testcookie' => '1' ) )['status'] );
		return $cookies;
	}

	/**
	 * One browser request.
	 *
	 * @param array<string, mixed>|string $fields  Form fields, or a raw (JSON) body.
	 * @param string[]                    $headers Extra headers.
	 * @return array{status: int, body: string, location: string}
	 */
	private function http( string $cookies, string $method, string $path, $fields = array(), array $headers = array() ): array {
		$location = '';
		$ch       = curl_init( ( 0 === strpos( $path, 'http' ) ? '' : getenv( 'SRT_WP_URL' ) ) . $path );
		curl_setopt_array(
			$ch,
			array(
				CURLOPT_COOKIEFILE     => $cookies,
				CURLOPT_COOKIEJAR      => $cookies,
				CURLOPT_RETURNTRANSFER => true,
				CURLOPT_TIMEOUT        => 30,
				CURLOPT_HTTPHEADER     => $headers,
				CURLOPT_HEADERFUNCTION => static function ( $ch, string $line ) use ( &$location ): int {
					if ( 0 === stripos( $line, 'Location:' ) ) {
						$location = trim( substr( $line, 9 ) );
					}
					return strlen( $line );
				},
			)
		);
		if ( 'POST' === $method ) {
			curl_setopt_array( $ch, array( CURLOPT_POST => true, CURLOPT_POSTFIELDS => is_string( $fields ) ? $fields : http_build_query( $fields ) ) );
		}
		$body   = (string) curl_exec( $ch );
		$status = (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE );
		curl_close( $ch );
		return array( 'status' => $status, 'body' => $body, 'location' => $location );
	}

	/** The console script's config from a screen's HTML. @return array<string, mixed> */
	private function config( string $html ): array {
		$this->assertSame( 1, preg_match( '#var stockRelayConsole = (\{.*?\});#', $html, $m ), 'the console script is configured on this screen' );
		$this->assertStringContainsString( 'stock-relay/assets/console.js', $html );
		return (array) json_decode( $m[1], true );
	}

	/** A GET of one of the console's REST routes with the screen's nonce; the decoded answer. @return array<string, mixed> */
	private function rest( array $config, string $route, string $method = 'GET', ?array $json = null, int $expect = 200 ): array {
		$headers = array( 'X-WP-Nonce: ' . $config['nonce'] );
		if ( null !== $json ) {
			$headers[] = 'Content-Type: application/json';
		}
		$answer = $this->http( self::$cookies, $method, $config['root'] . $route, null === $json ? array() : (string) json_encode( $json ), $headers );
		$this->assertSame( $expect, $answer['status'], $answer['body'] );
		return (array) json_decode( $answer['body'], true );
	}

	/** A channel entry as relay/storage/products.py answers it. @return array<string, mixed> */
	private static function entry( string $channel, array $over = array() ): array {
		return $over + array(
			'channel'            => $channel,
			'state'              => 'delivered',
			'paused'             => false,
			'confirmed_quantity' => 5,
			'confirmed_at'       => time() - 60,
			'confirmed_event_id' => 'evt_1',
			'confirmed_version'  => 1,
			'pending_quantity'   => null,
			'pending_since'      => null,
			'next_attempt_at'    => null,
			'attempts'           => 0,
			'failing_since'      => null,
			'last_error'         => null,
			'dead_letter'        => null,
			'newest_event_id'    => 'evt_1',
		);
	}

	/** @return array<string, mixed> */
	private static function products_mode(): array {
		$newest = array( 'event_id' => 'evt_1', 'version' => 1, 'quantity' => 5, 'product_id' => 1, 'parent_id' => null, 'received_at' => time() - 90 );
		return array(
			'CON-A'     => array(
				'newest_event' => $newest,
				'channels'     => array(
					self::entry( 'amazon' ),
					self::entry( 'ebay', array( 'state' => 'dead', 'dead_letter' => array( 'id' => 3, 'since' => time() - 3600, 'quantity' => 5, 'http_status' => 404, 'answer' => '<img src=x onerror=alert(1)>', 'message' => 'listing not found; answered HTTP 404 <img src=x onerror=alert(1)>' ) ) ),
				),
			),
			'CON-V-RED' => array(
				'newest_event' => $newest,
				'channels'     => array( self::entry( 'amazon', array( 'state' => 'pending', 'pending_quantity' => 2, 'pending_since' => time() - 30, 'failing_since' => time() - 30, 'attempts' => 2, 'next_attempt_at' => time() + 30, 'last_error' => 'HTTP 503 from Amazon' ) ) ),
			),
		);
	}

	public function test_the_products_list_shows_a_sync_column_from_one_relay_request_for_the_page(): void {
		$a    = SRT::product( array( 'sku' => 'CON-A', 'qty' => 5 ) );
		$v    = SRT::product( array( 'sku' => 'CON-V', 'qty' => 9, 'variable' => true ) );
		$red  = SRT::product( array( 'sku' => 'CON-V-RED', 'qty' => 2, 'parent' => $v ) );
		$none = SRT::product( array( 'sku' => 'CON-NEW', 'qty' => 1 ) );
		SRT::mode( array( 'products' => self::products_mode() ) );
		$list = $this->http( self::$cookies, 'GET', '/wp-admin/edit.php?post_type=product' );
		$this->assertSame( 200, $list['status'] );
		foreach ( array( $a, $v, $none ) as $id ) {
			$this->assertStringContainsString( 'class="stock-relay-sync" data-product="' . $id . '"', $list['body'], 'a loading cell per product' );
		}
		$this->assertStringContainsString( 'Loading…', $list['body'] );
		$this->assertStringContainsString( '<option value="stock_relay_sync">Sync with Stock Relay</option>', $list['body'] );
		$this->assertStringContainsString( 'Sync this product now', $list['body'] );
		$this->assertSame( array(), SRT::requests( '' ), 'the list asked the relay nothing' );
		$config = $this->config( $list['body'] );
		$this->assertStringNotContainsString( substr( SRT::SECRET, 6, 20 ), $list['body'] );

		$answer = $this->rest( $config, 'products?ids=' . implode( ',', array( $a, $v, $none ) ) );
		$asked  = SRT::requests( '/products' );
		$this->assertCount( 1, $asked, 'one relay request for the whole page' );
		$this->assertTrue( SRT::signature_ok( $asked[0]['headers'], $asked[0]['body'] ) );
		$doc = json_decode( $asked[0]['body'], true );
		$this->assertSame( array( 'product.query', SRT::SITE, array( 'CON-A', 'CON-V', 'CON-V-RED', 'CON-NEW' ) ), array( $doc['type'], $doc['site'], $doc['skus'] ) );
		$cell = $answer['columns'][ (string) $a ];
		$this->assertStringContainsString( '&lt;img src=x onerror=alert(1)&gt;', $cell, 'the channel\'s words, escaped' );
		$this->assertStringNotContainsString( '<img', $cell );
		$this->assertLessThan( strpos( $cell, '<strong>amazon</strong>' ), strpos( $cell, '<strong>ebay</strong>' ), 'errors first' );
		$this->assertStringContainsString( 'stock-relay-level-error', $cell );
		$this->assertStringContainsString( 'CON-V-RED: <strong>amazon</strong>: Failing: retrying', $answer['columns'][ (string) $v ], 'a variable product shows its variations' );
		$this->assertStringContainsString( 'Not received by the relay yet', $answer['columns'][ (string) $none ] );

		// Guarded like the status route: no nonce is logged out, another role is refused, and neither asks the relay.
		$this->assertSame( 401, $this->http( self::$cookies, 'GET', $config['root'] . 'products?ids=' . $a )['status'] );
		$login  = 'editor-' . wp_rand();
		wp_insert_user( array( 'user_login' => $login, 'user_pass' => 'pw-' . $login, 'role' => 'editor' ) );
		$editor = $this->login( $login, 'pw-' . $login );
		$nonce  = $this->http( $editor, 'GET', '/wp-admin/admin-ajax.php?action=rest-nonce' )['body'];
		$this->assertSame( 403, $this->http( $editor, 'GET', $config['root'] . 'products?ids=' . $a, array(), array( 'X-WP-Nonce: ' . $nonce ) )['status'] );
		$this->assertStringNotContainsString( 'stock-relay-sync', $this->http( $editor, 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'no column without manage_woocommerce' );
		$this->assertCount( 1, SRT::requests( '/products' ) );

		// The relay down: each cell says so, and the list itself was never slowed.
		SRT::stop_recorder();
		try {
			$down = $this->rest( $config, 'products?ids=' . $a );
			$this->assertFalse( $down['ok'] );
			$this->assertStringContainsString( 'could not be reached', $down['columns'][ (string) $a ] );
		} finally {
			SRT::start_recorder();
		}
	}

	public function test_the_product_box_lists_each_variation_per_channel_and_the_lineage_page_tells_the_chain(): void {
		$v   = SRT::product( array( 'sku' => 'CON-V', 'qty' => 9, 'variable' => true ) );
		$red = SRT::product( array( 'sku' => 'CON-V-RED', 'qty' => 2, 'parent' => $v ) );
		$now = time();
		SRT::mode(
			array(
				'products' => self::products_mode(),
				'lineage'  => array(
					'CON-V-RED' => array(
						'site'     => SRT::SITE,
						'sku'      => 'CON-V-RED',
						'channels' => array( array( 'channel' => 'amazon', 'state' => 'delivered', 'shows' => 2, 'delivered_event' => array( 'event_id' => 'evt_9', 'version' => 4, 'cause' => 'order', 'order_id' => 77 ), 'newest_event' => array( 'event_id' => 'evt_9', 'version' => 4, 'quantity' => 2 ) ) ),
						'events'   => array( array( 'event_id' => 'evt_9', 'version' => 4, 'kind' => 'stock', 'quantity' => 2, 'cause' => 'order', 'order_id' => 77, 'received_at' => $now - 50, 'outcome' => 'accepted', 'channels' => array( 'amazon' => array( array( 'action' => 'attempt', 'outcome' => 'ok', 'quantity' => 2, 'http_status' => 200, 'at' => $now - 40 ) ) ) ) ),
					),
				),
			)
		);
		$edit = $this->http( self::$cookies, 'GET', '/wp-admin/post.php?post=' . $v . '&action=edit' );
		$this->assertSame( 200, $edit['status'] );
		$this->assertStringContainsString( 'class="stock-relay-box" data-product="' . $v . '"', $edit['body'] );
		$this->assertStringContainsString( 'Asking the relay…', $edit['body'] );
		$this->assertStringContainsString( 'id="stock-relay-sync-now"', $edit['body'] );
		$this->assertSame( array(), SRT::requests( '' ), 'the edit screen asked the relay nothing' );
		$config = $this->config( $edit['body'] );
		$box    = $this->rest( $config, 'products?ids=' . $v )['box'];
		$this->assertStringContainsString( 'Variation CON-V-RED (SKU CON-V-RED)', $box );
		$this->assertStringContainsString( '<td>amazon</td><td>Failing: retrying</td>', $box );
		$this->assertStringContainsString( 'Last error: HTTP 503 from Amazon', $box );
		$this->assertStringContainsString( 'The relay has not received this SKU yet', $box, 'the parent CON-V is unknown to the relay' );

		$log  = (string) getenv( 'SRT_WORK' ) . '/debug.log';
		$size = is_file( $log ) ? filesize( $log ) : 0;
		$page = $this->http( self::$cookies, 'GET', '/wp-admin/admin.php?page=stock-relay-lineage&product=' . $v );
		$this->assertSame( 200, $page['status'] );
		$this->assertStringContainsString( '<title>Stock Relay lineage', $page['body'] );
		$this->assertStringContainsString( 'id="stock-relay-lineage" data-product="' . $v . '"', $page['body'] );
		$this->assertSame( array(), SRT::requests( '/lineage' ), 'the page asked the relay nothing' );
		clearstatcache();
		$new = is_file( $log ) ? (string) file_get_contents( $log, false, null, $size ) : '';
		$this->assertDoesNotMatchRegularExpression( '#admin-header\.php|stock-relay#', $new, 'no PHP notice from a page without a menu entry (WordPress 6.1\'s own deprecations on PHP 8.2 aside)' );
		$html = $this->rest( $this->config( $page['body'] ), 'lineage?product=' . $v )['html'];
		$this->assertCount( 2, SRT::requests( '/lineage' ), 'one lineage.query per SKU of the product' );
		$this->assertStringContainsString( 'amazon shows 2, from the shop&#039;s change version 4 (an order, order #77).', $html );
		$this->assertStringContainsString( 'Version 4: the shop set 2 (an order, order #77)', $html );
		$this->assertStringContainsString( 'amazon: sent 2, confirmed HTTP 200', $html );
		$this->assertStringContainsString( 'The relay has no record of this SKU yet.', $html, 'CON-V' );
	}

	public function test_sync_this_product_now_and_the_bulk_action_resend_the_current_stock_through_the_outbox(): void {
		$a    = SRT::product( array( 'sku' => 'CON-S', 'qty' => 5 ) );
		$v    = SRT::product( array( 'sku' => 'CON-SV', 'qty' => 9, 'variable' => true ) );
		$blue = SRT::product( array( 'sku' => 'CON-SV-BLUE', 'qty' => 3, 'parent' => $v ) );
		$list = $this->http( self::$cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'];
		$this->assertSame( 1, preg_match( '#href="([^"]*action=stock_relay_sync_product&(?:amp;|\#038;)product=' . $a . '&[^"]*)"#', $list, $m ), 'the row action' );
		$link = html_entity_decode( str_replace( '#038;', 'amp;', $m[1] ) );

		$forged = $this->http( self::$cookies, 'GET', preg_replace( '/_wpnonce=\w+/', '_wpnonce=0123456789', $link ), array(), array( 'Referer: ' . getenv( 'SRT_WP_URL' ) . '/wp-admin/edit.php?post_type=product' ) );
		$this->assertSame( 403, $forged['status'], 'a forged nonce' );
		$this->assertSame( array(), SRT::outbox(), 'nothing queued' );

		$sync = $this->http( self::$cookies, 'GET', $link, array(), array( 'Referer: ' . getenv( 'SRT_WP_URL' ) . '/wp-admin/edit.php?post_type=product' ) );
		$this->assertSame( 302, $sync['status'] );
		$this->assertStringContainsString( 'edit.php?post_type=product', $sync['location'], 'back to the list' );
		SRT::wait( static fn() => count( SRT::events() ) >= 1, 10.0, 'the synced product at the relay' );
		$event = SRT::events()[0];
		$this->assertSame( array( 'CON-S', 5, $a ), array( $event['sku'], $event['stock_quantity'], $event['product_id'] ) );
		$this->assertTrue( SRT::signature_ok( SRT::requests()[0]['headers'], SRT::requests()[0]['body'] ) );
		$this->assertStringContainsString( 'Syncing 1 product with Stock Relay', $this->http( self::$cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'], 'the outcome, once' );
		$this->assertStringNotContainsString( 'Syncing 1 product', $this->http( self::$cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'] );

		// Bulk: the list's own form and bulk-posts nonce, the selection, the variations with their product.
		$this->assertSame( 1, preg_match( '#<form id="posts-filter".*?name="_wpnonce" value="([^"]+)"#s', $list, $n ) );
		$bulk = $this->http( self::$cookies, 'POST', '/wp-admin/edit.php', array( 'post_type' => 'product', '_wpnonce' => $n[1], 'action' => 'stock_relay_sync', 'post' => array( $a, $v ) ), array( 'Referer: ' . getenv( 'SRT_WP_URL' ) . '/wp-admin/edit.php?post_type=product' ) );
		$this->assertSame( 302, $bulk['status'], $bulk['body'] );
		SRT::wait( static fn() => count( SRT::events() ) >= 4, 10.0, 'the selection at the relay' );
		$skus = array_column( array_slice( SRT::events(), 1 ), 'sku' );
		sort( $skus );
		$this->assertSame( array( 'CON-S', 'CON-SV', 'CON-SV-BLUE' ), $skus );
		$this->assertStringContainsString( 'Syncing 2 products with Stock Relay (3 with their variations)', $this->http( self::$cookies, 'GET', '/wp-admin/edit.php?post_type=product' )['body'] );

		// The relay down: the sync is kept in the outbox, not lost.
		SRT::stop_recorder();
		try {
			SRT::clear_requests();
			$this->assertSame( 302, $this->http( self::$cookies, 'GET', $link )['status'] );
			SRT::wait( static fn() => (int) SRT::delivery_state()['attempts'] >= 1, 10.0, 'a failed attempt' );
			$this->assertSame( array( 'pending' ), array_column( SRT::outbox(), 'status' ) );
		} finally {
			SRT::start_recorder();
		}
	}

	public function test_dead_letters_are_listed_per_channel_in_pages_and_retried_per_item_or_selection(): void {
		$v       = SRT::product( array( 'sku' => 'DL-V', 'qty' => 9, 'variable' => true ) );
		$red     = SRT::product( array( 'sku' => 'DL-RED', 'qty' => 2, 'parent' => $v ) );
		$letters = array();
		for ( $i = 1; $i <= Stock_Relay_Console_Route::DEAD_PAGE + 2; $i++ ) {
			$letters[] = array( 'id' => $i, 'channel' => 'ebay', 'sku' => 'DL-' . $i, 'quantity' => 1, 'reason' => 'listing not found', 'created_at' => time() - 600, 'shop_quantity' => 3, 'http_status' => 404, 'answer' => 'no such listing', 'product_id' => 0, 'parent_id' => null, 'message' => 'listing not found; answered HTTP 404 no such listing' );
		}
		$letters[] = array( 'id' => 100, 'channel' => 'amazon', 'sku' => 'DL-RED', 'quantity' => 2, 'reason' => 'invalid', 'created_at' => time() - 60, 'shop_quantity' => 2, 'http_status' => 400, 'answer' => '<script>x()</script>', 'product_id' => $red, 'parent_id' => $v, 'message' => 'invalid; answered HTTP 400 <script>x()</script>' );
		$status = array( 'type' => 'status', 'channels' => array( array( 'name' => 'ebay', 'dead_letters' => count( $letters ) - 1 ), array( 'name' => 'amazon', 'dead_letters' => 1 ) ) );
		SRT::mode( array( 'dead_letters' => $letters, 'status_body' => $status ) );

		$page = $this->http( self::$cookies, 'GET', '/wp-admin/admin.php?page=stock-relay-dead-letters' );
		$this->assertSame( 200, $page['status'] );
		$this->assertStringContainsString( 'id="stock-relay-dead"', $page['body'] );
		$this->assertStringContainsString( 'Asking the relay…', $page['body'] );
		$this->assertSame( array(), SRT::requests( '' ), 'the page asked the relay nothing' );
		$config = $this->config( $page['body'] );

		$all = $this->rest( $config, 'dead' )['html'];
		$this->assertStringContainsString( 'data-channel="ebay"', $all );
		$this->assertStringContainsString( 'ebay (52)', $all, 'a tab per channel with its count' );
		$this->assertStringContainsString( '&lt;script&gt;x()&lt;/script&gt;', $all, 'the channel\'s answer, escaped' );
		$this->assertStringNotContainsString( '<script>x()', $all );
		$this->assertStringContainsString( 'post.php?post=' . $v . '&#038;action=edit', $all, 'a variation links to its product' );

		$first = $this->rest( $config, 'dead?channel=ebay' )['html'];
		$query = json_decode( SRT::requests( '/dead' )[1]['body'], true );
		$this->assertSame( array( 'dead.query', 'ebay', Stock_Relay_Console_Route::DEAD_PAGE ), array( $query['type'], $query['channel'], $query['limit'] ) );
		$this->assertTrue( SRT::signature_ok( SRT::requests( '/dead' )[1]['headers'], SRT::requests( '/dead' )[1]['body'] ) );
		$this->assertSame( Stock_Relay_Console_Route::DEAD_PAGE, substr_count( $first, 'class="button stock-relay-dead-retry"' ) );
		$this->assertStringContainsString( '52 dead letters, newest first.', $first );
		$this->assertStringContainsString( 'not in the shop', $first );
		$this->assertSame( 1, preg_match( '#stock-relay-dead-page" data-cursor="(\d+)">Older#', $first, $m ) );
		$older = $this->rest( $config, 'dead?channel=ebay&cursor=' . $m[1] )['html'];
		$this->assertSame( 2, substr_count( $older, 'class="button stock-relay-dead-retry"' ) );
		$this->assertStringContainsString( '>DL-2<', $older );
		$this->assertStringNotContainsString( 'Older', $older, 'the last page' );

		// Retry one delivered meanwhile and two still dead: the outcome says which, with the user as actor.
		$done = $this->rest(
			$config,
			'dead/retry',
			'POST',
			array(
				'items' => array(
					array( 'channel' => 'ebay', 'sku' => 'DL-52' ),
					array( 'channel' => 'amazon', 'sku' => 'DL-RED' ),
					array( 'channel' => 'amazon', 'sku' => 'DL-1' ),
				),
			)
		);
		$this->assertSame( 'success', $done['type'] );
		$this->assertSame( '2 dead letters will be sent again with the shop\'s current quantity. 1 was no longer a dead letter (delivered or retried meanwhile): nothing was done for it.', $done['message'] );
		$sent = SRT::requests( '/dead/retry' );
		$this->assertCount( 1, $sent );
		$this->assertTrue( SRT::signature_ok( $sent[0]['headers'], $sent[0]['body'] ) );
		$retry = json_decode( $sent[0]['body'], true );
		$this->assertSame( array( 'dead.retry', 'admin', 3 ), array( $retry['type'], $retry['actor'], count( $retry['items'] ) ) );
		$this->assertStringNotContainsString( '>DL-52<', $this->rest( $config, 'dead?channel=ebay' )['html'], 'retried: gone from the list' );

		$this->assertSame( 'error', $this->rest( $config, 'dead/retry', 'POST', array( 'items' => array() ), 400 )['type'], 'nothing chosen' );
		$this->assertCount( 1, SRT::requests( '/dead/retry' ), 'bad input asks the relay nothing' );
		$this->assertSame( 401, $this->http( self::$cookies, 'POST', $config['root'] . 'dead/retry', (string) json_encode( array( 'items' => array( array( 'channel' => 'ebay', 'sku' => 'DL-1' ) ) ) ), array( 'Content-Type: application/json' ) )['status'], 'no nonce' );
	}
}
