<?php
/**
 * The pause and resume controls of the "Channels" table (a Pause form with its reason per running channel, Resume per
 * paused one, and Pause all / Resume all under the table), and the sentences that report what the relay did.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The controls are forms read by assets/pause.js, which posts them to the plugin's REST routes (Stock_Relay_Pause_Route)
 * with the page's `wp_rest` nonce; they are part of the status panel, which only the script shows, so they carry no
 * nonce of their own. Everything here is escaped; the relay's words (channel names, reasons, logins) are data.
 */
final class Stock_Relay_Pause_Controls {

	/**
	 * One cell of HTML per channel row of Stock_Relay_Status_View::rows(), in the same order (it skips the same entries).
	 *
	 * @param array<string, mixed> $body The relay's status answer.
	 * @return string[]
	 */
	public static function cells( array $body ): array {
		$cells = array();
		foreach ( is_array( $body['channels'] ?? null ) ? $body['channels'] : array() as $name => $channel ) {
			if ( ! is_array( $channel ) ) {
				continue;
			}
			$name    = is_scalar( $channel['name'] ?? null ) ? (string) $channel['name'] : (string) $name;
			$cells[] = is_array( $channel['paused'] ?? null ) ? self::resume_form( $name ) : self::pause_form( $name );
		}
		return $cells;
	}

	/**
	 * Pause all (asks first) and, when a channel is paused, Resume all: under the table.
	 *
	 * @param array<string, mixed> $body The relay's status answer.
	 */
	public static function all( array $body ): string {
		$channels = array_filter( is_array( $body['channels'] ?? null ) ? $body['channels'] : array(), 'is_array' );
		if ( ! $channels ) {
			return '';
		}
		$paused = array_filter( $channels, static fn( array $channel ): bool => is_array( $channel['paused'] ?? null ) );
		$html   = '<div id="stock-relay-pause-all" style="margin:1em 0">';
		if ( count( $paused ) < count( $channels ) ) {
			$html .= self::pause_form( '', __( 'Pause sending to every channel? Changes are kept and sent when you resume.', 'stock-relay' ) );
		}
		if ( $paused ) {
			$html .= self::resume_form( '' );
		}
		return $html . '</div>';
	}

	/** A Pause form: the reason (required) and the button; for every channel when $channel is '' (with a question). */
	private static function pause_form( string $channel, string $confirm = '' ): string {
		$id    = 'stock-relay-reason-' . substr( md5( $channel ), 0, 8 );
		$label = '' === $channel
			? __( 'Why pause every channel', 'stock-relay' )
			/* translators: %s: channel name */
			: sprintf( __( 'Why pause %s', 'stock-relay' ), $channel );
		return '<form class="stock-relay-pause" data-stock-relay-pause="pause" data-channel="' . esc_attr( $channel ) . '"'
			. ( '' !== $confirm ? ' data-confirm="' . esc_attr( $confirm ) . '"' : '' ) . ' style="display:inline-block;margin:0 1em .3em 0">'
			. '<label class="screen-reader-text" for="' . esc_attr( $id ) . '">' . esc_html( $label ) . '</label>'
			. '<input type="text" id="' . esc_attr( $id ) . '" name="reason" required maxlength="' . esc_attr( (string) Stock_Relay_Pause_Route::MAX_REASON ) . '" placeholder="' . esc_attr__( 'Reason (shown to everyone)', 'stock-relay' ) . '"> '
			. '<button type="submit" class="button">' . ( '' === $channel ? esc_html__( 'Pause all channels', 'stock-relay' ) : esc_html__( 'Pause', 'stock-relay' ) ) . '</button></form>';
	}

	/** A Resume button; for every paused channel when $channel is ''. */
	private static function resume_form( string $channel ): string {
		return '<form class="stock-relay-pause" data-stock-relay-pause="resume" data-channel="' . esc_attr( $channel ) . '" style="display:inline-block;margin:0 1em .3em 0">'
			. '<button type="submit" class="button">' . ( '' === $channel ? esc_html__( 'Resume all paused channels', 'stock-relay' ) : esc_html__( 'Resume', 'stock-relay' ) ) . '</button></form>';
	}

	/**
	 * What a channel.pause answer means, in a sentence: what was paused now, and what already was (with its first
	 * reason and who, which a second pause does not change).
	 *
	 * @param array<string, mixed> $body The relay's answer (`paused`, `already_paused`).
	 */
	public static function paused_message( array $body ): string {
		$now   = time();
		$names = self::names( $body['paused'] ?? null );
		$text  = $names
			/* translators: %s: channel names */
			? sprintf( __( 'Paused: %s. Changes wait at the relay and are sent when you resume.', 'stock-relay' ), implode( ', ', $names ) )
			: __( 'Nothing new was paused.', 'stock-relay' );
		foreach ( is_array( $body['already_paused'] ?? null ) ? $body['already_paused'] : array() as $pause ) {
			if ( is_array( $pause ) ) {
				/* translators: 1: channel name, 2: "Paused by alice since ...: reason" */
				$text .= ' ' . sprintf( __( '%1$s was already paused (%2$s).', 'stock-relay' ), self::name( $pause ), Stock_Relay_Status_View::paused( $pause, $now ) );
			}
		}
		return $text;
	}

	/**
	 * What a channel.resume answer means, in a sentence.
	 *
	 * @param array<string, mixed> $body The relay's answer (`resumed`).
	 */
	public static function resumed_message( array $body ): string {
		$names = self::names( $body['resumed'] ?? null );
		return $names
			/* translators: %s: channel names */
			? sprintf( __( 'Resumed: %s. What waited is being sent now, each product\'s newest quantity once.', 'stock-relay' ), implode( ', ', $names ) )
			: __( 'No channel was paused: nothing to resume.', 'stock-relay' );
	}

	/**
	 * The channel names of a list of pauses.
	 *
	 * @param mixed $pauses The answer's list.
	 * @return string[]
	 */
	private static function names( $pauses ): array {
		return array_map( array( self::class, 'name' ), array_values( array_filter( is_array( $pauses ) ? $pauses : array(), 'is_array' ) ) );
	}

	/**
	 * One pause's channel name.
	 *
	 * @param array<string, mixed> $pause A pause of the answer.
	 */
	private static function name( array $pause ): string {
		return is_scalar( $pause['channel'] ?? null ) ? (string) $pause['channel'] : '?';
	}
}
