<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * The snapshot.page request checks and page format (PROTOCOL.md §3), outside WordPress.
 */
final class SnapshotTest extends TestCase {

	private const SECRET = 'whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
	private const NOW    = 1796180400; // 2026-12-02T03:00:00Z

	/** @return array<string, string> */
	private function signed( string $body, int $timestamp = self::NOW, string $secret = self::SECRET ): array {
		$key = base64_decode( substr( $secret, 6 ) );
		return array(
			'webhook-id'        => 'msg_1',
			'webhook-timestamp' => (string) $timestamp,
			'webhook-signature' => 'v1,' . base64_encode( hash_hmac( 'sha256', 'msg_1.' . $timestamp . '.' . $body, $key, true ) ),
		);
	}

	private function code( ?array $error ): string {
		return null === $error ? 'ok' : $error['status'] . ' ' . $error['code'];
	}

	/** @return array<string, mixed> */
	private function parse( string $body, string $type = 'application/json' ): array {
		return Stock_Relay_Snapshot::parse_request( $type, $body, 'main' );
	}

	public function test_authenticate_accepts_a_valid_signature_and_orders_its_refusals(): void {
		$body = '{"type":"snapshot.page","site":"main"}';
		$this->assertSame( 'ok', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $body ), $body, self::NOW ) ) );
		$this->assertSame( '404 unknown_site', $this->code( Stock_Relay_Snapshot::authenticate( '', self::SECRET, $this->signed( $body ), $body, self::NOW ) ) );
		$this->assertSame( '404 unknown_site', $this->code( Stock_Relay_Snapshot::authenticate( 'main', '', $this->signed( $body ), $body, self::NOW ) ) );
		$this->assertSame( '404 unknown_site', $this->code( Stock_Relay_Snapshot::authenticate( 'main', 'whsec_short', $this->signed( $body ), $body, self::NOW ) ) );
		$big = str_repeat( ' ', 65537 );
		$this->assertSame( '413 body_too_large', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $big ), $big, self::NOW ) ) );
		$edge = str_repeat( ' ', 65536 );
		$this->assertSame( 'ok', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $edge ), $edge, self::NOW ) ), '64 KiB exactly is allowed' );
		$headers = $this->signed( $body );
		unset( $headers['webhook-signature'] );
		$this->assertSame( '401 signature_missing', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $headers + array( 'webhook-signature' => '' ), $body, self::NOW ) ) );
		$this->assertSame( '401 signature_invalid', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $body . ' ' ), $body, self::NOW ) ) );
		$other = 'whsec_' . base64_encode( str_repeat( 'k', 32 ) );
		$this->assertSame( '401 signature_invalid', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $body, self::NOW, $other ), $body, self::NOW ) ) );
		$this->assertSame( '401 timestamp_out_of_tolerance', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $body, self::NOW - 301 ), $body, self::NOW ) ) );
		$this->assertSame( 'ok', $this->code( Stock_Relay_Snapshot::authenticate( 'main', self::SECRET, $this->signed( $body, self::NOW + 300 ), $body, self::NOW ) ) );
	}

	public function test_error_messages_never_contain_the_secret(): void {
		$error = Stock_Relay_Snapshot::authenticate( 'main', 'whsec_short', array(), '', self::NOW );
		$this->assertStringNotContainsString( 'short', $error['message'] );
	}

	public function test_parse_defaults_and_fields(): void {
		$this->assertSame( array( 'after_id' => 0, 'limit' => 500, 'modified_after' => null ), $this->parse( '{"type":"snapshot.page","site":"main"}' ) );
		$this->assertSame( array( 'after_id' => 42, 'limit' => 2, 'modified_after' => 1796180400000000 ), $this->parse( '{"type":"snapshot.page","site":"main","after_id":42,"limit":2,"modified_after":"2026-12-02T03:00:00Z"}' ) );
		$this->assertSame( array( 'after_id' => 0, 'limit' => 500, 'modified_after' => null ), $this->parse( '{"type":"snapshot.page","site":"main","modified_after":null}', 'Application/JSON; charset=utf-8' ), 'media type parameters and case ignored; null modified_after is absent' );
	}

	/** @return array<string, array{0: string, 1: string, 2: string, 3?: string}> */
	public static function bad_requests(): array {
		$j = 'application/json';
		return array(
			'form body'          => array( '{"type":"snapshot.page","site":"main"}', '415 unsupported_media_type', 'application/x-www-form-urlencoded' ),
			'no content type'    => array( '{"type":"snapshot.page","site":"main"}', '415 unsupported_media_type', '' ),
			'not json'           => array( 'type=snapshot.page', '400 malformed_json', $j ),
			'json list'          => array( '[]', '400 malformed_json', $j ),
			'json string'        => array( '"snapshot.page"', '400 malformed_json', $j ),
			'other type'         => array( '{"type":"stock.batch","site":"main"}', '400 type_mismatch', $j ),
			'no type'            => array( '{"site":"main"}', '400 type_mismatch', $j ),
			'type not a string'  => array( '{"type":1,"site":"main"}', '400 malformed_json', $j, 'type' ),
			'site not a string'  => array( '{"type":"snapshot.page","site":["main"]}', '400 malformed_json', $j, 'site' ),
			'other site'         => array( '{"type":"snapshot.page","site":"other"}', '400 type_mismatch', $j ),
			'no site'            => array( '{"type":"snapshot.page"}', '400 type_mismatch', $j ),
			'after_id string'    => array( '{"type":"snapshot.page","site":"main","after_id":"5"}', '400 malformed_json', $j, 'after_id' ),
			'after_id float'     => array( '{"type":"snapshot.page","site":"main","after_id":5.0}', '400 malformed_json', $j, 'after_id' ),
			'after_id negative'  => array( '{"type":"snapshot.page","site":"main","after_id":-1}', '400 malformed_json', $j, 'after_id' ),
			'limit zero'         => array( '{"type":"snapshot.page","site":"main","limit":0}', '400 malformed_json', $j, 'limit' ),
			'limit bool'         => array( '{"type":"snapshot.page","site":"main","limit":true}', '400 malformed_json', $j, 'limit' ),
			'limit 501'          => array( '{"type":"snapshot.page","site":"main","limit":501}', '400 batch_too_large', $j ),
			'modified_after int' => array( '{"type":"snapshot.page","site":"main","modified_after":1796180400}', '400 malformed_json', $j, 'modified_after' ),
			'modified_after bad' => array( '{"type":"snapshot.page","site":"main","modified_after":"2026-12-02 03:00:00"}', '400 malformed_json', $j, 'modified_after' ),
			'modified_after day' => array( '{"type":"snapshot.page","site":"main","modified_after":"2026-02-30T03:00:00Z"}', '400 malformed_json', $j, 'modified_after' ),
		);
	}

	/** @dataProvider bad_requests */
	public function test_bad_requests_are_refused_with_the_protocol_code( string $body, string $expected, string $type, string $field = '' ): void {
		$result = $this->parse( $body, $type );
		$this->assertSame( $expected, isset( $result['status'] ) ? $result['status'] . ' ' . $result['code'] : 'ok' );
		if ( '' !== $field ) {
			$this->assertStringContainsString( "field {$field} ", $result['message'], 'the message names the field' );
		}
	}

	public function test_parse_time_handles_fractions_and_offsets(): void {
		$this->assertSame( 1796180400000000, Stock_Relay_Snapshot::parse_time( '2026-12-02T03:00:00Z' ) );
		$this->assertSame( 1796180400123456, Stock_Relay_Snapshot::parse_time( '2026-12-02T03:00:00.123456789Z' ) );
		$this->assertSame( 1796180400500000, Stock_Relay_Snapshot::parse_time( '2026-12-02T03:00:00.5Z' ) );
		$this->assertSame( 1796180400000000, Stock_Relay_Snapshot::parse_time( '2026-12-02T05:00:00+02:00' ) );
		$this->assertSame( 1796180400000000, Stock_Relay_Snapshot::parse_time( '2026-12-01T22:30:00-04:30' ) );
		$this->assertNull( Stock_Relay_Snapshot::parse_time( '2026-12-02T03:00:00' ) );
		$this->assertNull( Stock_Relay_Snapshot::parse_time( '2026-12-02T24:00:00Z' ) );
	}

	public function test_page_matches_the_contract(): void {
		$states = array(
			42 => Stock_Relay_Payload::state_from_meta( 42, 0, array( '_sku' => 'TS', '_manage_stock' => 'yes', '_stock' => '7', '_stock_status' => 'instock', '_backorders' => 'no' ), array(), true ) + array( 'post_status' => 'publish' ),
			43 => Stock_Relay_Payload::state_from_meta( 43, 42, array( '_sku' => 'TS-RED-M', '_manage_stock' => 'no', '_stock_status' => 'instock' ), array( '_manage_stock' => 'yes', '_stock' => '7', '_backorders' => 'notify' ), true ) + array( 'post_status' => 'publish' ),
			50 => Stock_Relay_Payload::state_from_meta( 50, 0, array( '_sku' => 'OLD', '_manage_stock' => 'yes', '_stock' => '3', '_stock_status' => 'instock' ), array(), true ) + array( 'post_status' => 'trash' ),
		);
		$page   = Stock_Relay_Snapshot::page( 'main', 4, array( 42, 43, 44, 50 ), $states, array( 42 => 1187, 43 => 5 ), self::NOW );
		$this->assertSame(
			array(
				'type'          => 'snapshot.page',
				'site'          => 'main',
				'server_time'   => '2026-12-02T03:00:00Z',
				'items'         => array(
					array( 'item_id' => 42, 'kind' => 'stock', 'product_id' => 42, 'variation_id' => null, 'parent_id' => null, 'sku' => 'TS', 'manage_stock' => true, 'stock_quantity' => 7, 'stock_status' => 'instock', 'backorders' => 'no', 'version' => 1187 ),
					array( 'item_id' => 43, 'kind' => 'stock', 'product_id' => 42, 'variation_id' => 43, 'parent_id' => 42, 'sku' => 'TS-RED-M', 'manage_stock' => true, 'stock_quantity' => 7, 'stock_status' => 'instock', 'backorders' => 'notify', 'version' => 1187 ),
					array( 'item_id' => 50, 'kind' => 'deleted', 'product_id' => 50, 'variation_id' => null, 'parent_id' => null, 'sku' => 'OLD', 'manage_stock' => true, 'stock_quantity' => 3, 'stock_status' => 'instock', 'backorders' => 'no', 'version' => 0 ),
				),
				'next_after_id' => 50,
			),
			$page,
			'an inheriting variation carries the owner\'s version (not its own row); 44 vanished between reads; 50 has no version row'
		);
		$this->assertNull( Stock_Relay_Snapshot::page( 'main', 5, array( 42, 43, 44, 50 ), $states, array(), self::NOW )['next_after_id'], 'fewer than limit: last page' );
		$this->assertNull( Stock_Relay_Snapshot::page( 'main', 5, array(), array(), array(), self::NOW )['next_after_id'] );
		$dup = Stock_Relay_Snapshot::page( 'main', 4, array( 42, 42, 43, 50 ), $states, array(), self::NOW );
		$this->assertSame( array( array( 42, 43, 50 ), 50 ), array( array_column( $dup['items'], 'item_id' ), $dup['next_after_id'] ), 'a post listed twice (two _sku rows) is shown once, and the page still counts as full' );
		$this->assertSame( '{"type":"snapshot.page","site":"main","server_time":"2026-12-02T03:00:00Z","items":[],"next_after_id":null}', stock_relay_json( Stock_Relay_Snapshot::page( 'main', 5, array(), array(), array(), self::NOW ) ) );
	}

	public function test_owner_candidates_are_items_and_variation_parents(): void {
		$posts = array(
			array( 'ID' => '42', 'post_type' => 'product', 'post_parent' => '0' ),
			array( 'ID' => '43', 'post_type' => 'product_variation', 'post_parent' => '42' ),
			array( 'ID' => '60', 'post_type' => 'product_variation', 'post_parent' => '59' ),
		);
		$this->assertSame( array( 42, 43, 60, 59 ), Stock_Relay_Snapshot::owner_candidates( $posts ) );
	}

	public function test_error_body_adds_the_shop_clock_to_401s_only(): void {
		$this->assertSame( array( 'error' => array( 'code' => 'signature_invalid', 'message' => 'x', 'server_time' => '2026-12-02T03:00:00Z' ) ), Stock_Relay_Snapshot::error_body( Stock_Relay_Snapshot::error( 401, 'signature_invalid', 'x' ), self::NOW ) );
		$this->assertSame( array( 'error' => array( 'code' => 'type_mismatch', 'message' => 'y' ) ), Stock_Relay_Snapshot::error_body( Stock_Relay_Snapshot::error( 400, 'type_mismatch', 'y' ), self::NOW ) );
	}
}
