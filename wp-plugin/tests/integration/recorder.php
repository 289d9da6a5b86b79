<?php
/**
 * A recording relay for the integration test (router script for `php -S`). It appends every request
 * (path, the webhook-* headers, raw body) to $RECORDER_DIR/requests.jsonl and answers the way
 * $RECORDER_DIR/mode.json says: {"status": 202, "reject_skus": [...], "retry_after": N, "max_events": N,
 * "status_body": {...} (the 200 answer to status.query), "audit_body": {...} (to audit.query), "replay_scheduled": N (what a replay.request answers),
 * "products": {sku: {newest_event, channels}} (product.query), "dead_letters": [...] (dead.query pages them; dead.retry
 * takes the retried ones out of this file), "lineage": {sku: {...}} (lineage.query)}.
 * channel.pause and channel.resume are answered as the relay does, with the pauses kept in $RECORDER_DIR/pauses.json
 * and shown in the status answer (recorder-pauses.php).
 * It verifies nothing itself: the test checks the signatures with its own few lines of HMAC.
 *
 * @package StockRelay
 */

$dir  = (string) getenv( 'RECORDER_DIR' );
$mode = is_file( $dir . '/mode.json' ) ? (array) json_decode( (string) file_get_contents( $dir . '/mode.json' ), true ) : array();
$body = (string) file_get_contents( 'php://input' );
$path = (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
$line = array(
	'path'    => $path,
	'headers' => array(
		'webhook-id'        => $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
		'webhook-timestamp' => $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
		'webhook-signature' => $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
		'content-type'      => $_SERVER['CONTENT_TYPE'] ?? '',
	),
	'body'    => $body,
	'at'      => microtime( true ),
);
$fh = fopen( $dir . '/requests.jsonl', 'ab' );
flock( $fh, LOCK_EX );
fwrite( $fh, json_encode( $line, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ) . "\n" );
flock( $fh, LOCK_UN );
fclose( $fh );

if ( isset( $mode['delay_ms'] ) ) {
	usleep( 1000 * (int) $mode['delay_ms'] );
}
header( 'Content-Type: application/json' );
$doc = json_decode( $body, true );
if ( preg_match( '#/ping$#', $path ) ) {
	echo json_encode( array( 'type' => 'pong', 'relay_version' => '9.9.9-recorder', 'server_time' => gmdate( 'Y-m-d\TH:i:s\Z' ), 'channels' => array( array( 'name' => 'sandbox', 'type' => 'sandbox' ) ) ) );
	return;
}
if ( preg_match( '#/replay$#', $path ) && ! isset( $mode['status'] ) ) { // The relay's answer to a replay.request (relay/http/operator_api.py).
	echo json_encode( array( 'type' => 'replay', 'scope' => $doc['scope'] ?? null, 'scheduled' => (int) ( $mode['replay_scheduled'] ?? 0 ), 'unknown_skus' => array() ) );
	return;
}
if ( preg_match( '#/audit$#', $path ) && isset( $mode['audit_body'] ) ) { // The 200 answer to audit.query.
	echo json_encode( $mode['audit_body'] );
	return;
}
if ( preg_match( '#/(pause|resume)$#', $path ) ) { // channel.pause / channel.resume, as relay/http/operator_api.py answers.
	require_once __DIR__ . '/recorder-pauses.php';
	srt_recorder_pause_or_resume( $mode, $doc, $path, $dir );
	return;
}
if ( preg_match( '#/products$#', $path ) && isset( $mode['products'] ) ) { // product.query: the scripted SKUs asked for, in order; the rest unknown_skus (relay/storage/products.py).
	$found   = array();
	$unknown = array();
	foreach ( array_unique( (array) ( $doc['skus'] ?? array() ) ) as $sku ) {
		if ( isset( $mode['products'][ $sku ] ) ) {
			$found[] = array( 'sku' => $sku ) + (array) $mode['products'][ $sku ];
		} else {
			$unknown[] = $sku;
		}
	}
	echo json_encode( array( 'type' => 'products', 'site' => $doc['site'] ?? '', 'products' => $found, 'unknown_skus' => $unknown ) );
	return;
}
if ( preg_match( '#/dead/retry$#', $path ) && isset( $mode['dead_letters'] ) ) { // dead.retry: scheduled while dead on that channel (it leaves the list), else not_dead.
	$open = array();
	foreach ( $mode['dead_letters'] as $i => $letter ) {
		$open[ $letter['channel'] . "\0" . $letter['sku'] ] = $i;
	}
	$results = array();
	foreach ( (array) ( $doc['items'] ?? array() ) as $item ) {
		$key       = $item['channel'] . "\0" . $item['sku'];
		$results[] = array( 'channel' => $item['channel'], 'sku' => $item['sku'], 'result' => isset( $open[ $key ] ) ? 'scheduled' : 'not_dead' );
		if ( isset( $open[ $key ] ) ) {
			unset( $mode['dead_letters'][ $open[ $key ] ], $open[ $key ] );
		}
	}
	$mode['dead_letters'] = array_values( $mode['dead_letters'] );
	file_put_contents( $dir . '/mode.json', json_encode( $mode ) );
	echo json_encode( array( 'type' => 'dead_retry', 'scheduled' => count( array_filter( $results, static fn( $r ) => 'scheduled' === $r['result'] ) ), 'items' => $results ) );
	return;
}
if ( preg_match( '#/dead$#', $path ) && isset( $mode['dead_letters'] ) ) { // dead.query: newest (highest id) first, per channel, `limit` pages before `cursor`.
	$letters = array_values( array_filter( $mode['dead_letters'], static fn( $l ) => ! isset( $doc['channel'] ) || $doc['channel'] === $l['channel'] ) );
	usort( $letters, static fn( $a, $b ) => $b['id'] <=> $a['id'] );
	$total = count( $letters );
	if ( isset( $doc['cursor'] ) ) {
		$letters = array_values( array_filter( $letters, static fn( $l ) => $l['id'] < $doc['cursor'] ) );
	}
	$more    = isset( $doc['limit'] ) && count( $letters ) > $doc['limit'];
	$letters = $more ? array_slice( $letters, 0, (int) $doc['limit'] ) : $letters;
	echo json_encode( array( 'type' => 'dead_letters', 'total' => $total, 'dead_letters' => $letters, 'next_cursor' => $more ? end( $letters )['id'] : null ) );
	return;
}
if ( preg_match( '#/lineage$#', $path ) && isset( $mode['lineage'] ) ) { // lineage.query: the scripted chain of that SKU, or none.
	echo json_encode( array( 'type' => 'lineage' ) + ( $mode['lineage'][ $doc['sku'] ?? '' ] ?? array( 'site' => $doc['site'] ?? '', 'sku' => $doc['sku'] ?? '', 'channels' => array(), 'events' => array() ) ) );
	return;
}
if ( preg_match( '#/status$#', $path ) && isset( $mode['status_body'] ) ) {
	require_once __DIR__ . '/recorder-pauses.php';
	echo json_encode( srt_recorder_with_pauses( $mode['status_body'], $dir ) ); // Each channel's `paused`, as the relay keeps it.
	return;
}
if ( preg_match( '#/status$#', $path ) ) {
	http_response_code( 404 );
	echo json_encode( array( 'error' => array( 'code' => 'not_found', 'message' => 'No such route.' ) ) );
	return;
}
$status = (int) ( $mode['status'] ?? 202 );
$events = is_array( $doc['events'] ?? null ) ? $doc['events'] : array();
if ( isset( $mode['max_events'] ) && count( $events ) > (int) $mode['max_events'] ) {
	$status = 413;
}
if ( 202 !== $status ) {
	http_response_code( $status );
	if ( isset( $mode['retry_after'] ) ) {
		header( 'Retry-After: ' . (int) $mode['retry_after'] );
	}
	$codes = array( 400 => 'malformed_json', 401 => 'signature_invalid', 404 => 'unknown_site', 413 => 'body_too_large', 429 => 'rate_limited', 503 => 'storage_unavailable' );
	echo json_encode( array( 'error' => array( 'code' => $codes[ $status ] ?? 'error', 'message' => 'Scripted answer.' ) ) );
	return;
}
$rejected = array();
foreach ( $events as $event ) {
	if ( in_array( $event['sku'] ?? null, (array) ( $mode['reject_skus'] ?? array() ), true ) ) {
		$rejected[] = array( 'id' => $event['id'], 'code' => 'invalid_sku', 'message' => 'Scripted rejection.' );
	}
}
http_response_code( 202 );
echo json_encode( array( 'accepted' => count( $events ) - count( $rejected ), 'duplicates' => 0, 'stale' => 0, 'rejected' => $rejected ) );
