<?php
/**
 * The recording relay's channel.pause and channel.resume (required by recorder.php): the relay's checks and answers
 * (relay/http/operator_api.py handle_pause and handle_resume, relay/storage/pauses.py), the pauses kept in
 * $RECORDER_DIR/pauses.json and put into each channel's `paused` of the status answer. The site's channels are the
 * names in mode.json's status_body.
 *
 * @package StockRelay
 */

/**
 * The status answer with each channel's `paused` as the kept pauses say.
 *
 * @param array<string, mixed> $status The scripted status answer.
 * @return array<string, mixed>
 */
function srt_recorder_with_pauses( array $status, string $dir ): array {
	$pauses = srt_recorder_pauses( $dir );
	foreach ( (array) ( $status['channels'] ?? array() ) as $i => $channel ) {
		if ( is_array( $channel ) && isset( $channel['name'] ) && ! array_key_exists( 'paused', $channel ) ) {
			$status['channels'][ $i ]['paused'] = $pauses[ $channel['name'] ] ?? null;
		}
	}
	return $status;
}

/** @return array<string, array<string, mixed>> The kept pauses by channel. */
function srt_recorder_pauses( string $dir ): array {
	return is_file( $dir . '/pauses.json' ) ? (array) json_decode( (string) file_get_contents( $dir . '/pauses.json' ), true ) : array();
}

/** A 400 with the relay's error body. */
function srt_recorder_refuse( string $code, string $message ): void {
	http_response_code( 400 );
	echo json_encode( array( 'error' => array( 'code' => $code, 'message' => $message ) ) );
}

/** One line a person typed, 1 to $max characters (operator_api._words); null when valid, else the refusal sent. */
function srt_recorder_words( array $doc, string $name, int $max ): ?string {
	$value = $doc[ $name ] ?? null;
	if ( null === $value ) {
		srt_recorder_refuse( 'missing_field', "Say '$name' (text of 1 to $max characters)." );
		return null;
	}
	if ( ! is_string( $value ) || '' === trim( $value ) || mb_strlen( trim( $value ) ) > $max || preg_match( '/[\x00-\x1f\x7f]/', $value ) ) {
		srt_recorder_refuse( 'invalid_field', "'$name' must be text of 1 to $max characters." );
		return null;
	}
	return trim( $value );
}

/**
 * Answer channel.pause (or channel.resume) as the relay does.
 *
 * @param array<string, mixed> $mode mode.json.
 * @param mixed                $doc  The decoded request body.
 */
function srt_recorder_pause_or_resume( array $mode, $doc, string $path, string $dir ): void {
	if ( isset( $mode['status'] ) ) { // A scripted failure answers these too.
		http_response_code( (int) $mode['status'] );
		echo json_encode( array( 'error' => array( 'code' => 'scripted', 'message' => 'Scripted answer.' ) ) );
		return;
	}
	$srt_names   = array_column( (array) ( $mode['status_body']['channels'] ?? array() ), 'name' );
	$srt_channel = $doc['channel'] ?? null;
	if ( null !== $srt_channel && ! in_array( $srt_channel, $srt_names, true ) ) {
		srt_recorder_refuse( 'invalid_field', 'This site has no channel ' . var_export( (string) $srt_channel, true ) . '.' ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions -- the relay's repr().
		return;
	}
	$srt_pause = (bool) preg_match( '#/pause$#', $path );
	$srt_reason = $srt_pause ? srt_recorder_words( (array) $doc, 'reason', 500 ) : '';
	if ( null === $srt_reason ) {
		return;
	}
	$srt_actor = srt_recorder_words( (array) $doc, 'actor', 191 );
	if ( null === $srt_actor ) {
		return;
	}
	$srt_pauses = srt_recorder_pauses( $dir );
	$srt_now    = microtime( true );
	$srt_iso    = static fn( float $at ): string => gmdate( 'Y-m-d\TH:i:s', (int) $at ) . sprintf( '.%03dZ', (int) ( 1000 * ( $at - floor( $at ) ) ) );
	$srt_done   = array();
	$srt_kept   = array();
	foreach ( null === $srt_channel ? $srt_names : array( $srt_channel ) as $srt_name ) {
		$srt_found = $srt_pauses[ $srt_name ] ?? null;
		if ( $srt_pause && null !== $srt_found ) {
			$srt_kept[] = array( 'channel' => $srt_name ) + $srt_found; // A pause keeps its first reason, actor and time.
		} elseif ( $srt_pause ) {
			$srt_pauses[ $srt_name ] = array( 'reason' => $srt_reason, 'actor' => $srt_actor, 'paused_at' => $srt_now, 'paused_at_iso' => $srt_iso( $srt_now ) );
			$srt_done[]              = array( 'channel' => $srt_name ) + $srt_pauses[ $srt_name ];
		} elseif ( null !== $srt_found ) {
			unset( $srt_pauses[ $srt_name ] );
			$srt_done[] = array( 'channel' => $srt_name ) + $srt_found;
		}
	}
	file_put_contents( $dir . '/pauses.json', json_encode( (object) $srt_pauses ) );
	echo json_encode( $srt_pause ? array( 'type' => 'paused', 'paused' => $srt_done, 'already_paused' => $srt_kept ) : array( 'type' => 'resumed', 'resumed' => $srt_done ) );
}
