<?php
/**
 * The optional daily e-mail digest: off until an address is saved on the Stock Relay page; then once a day, through
 * wp_mail(), the alerts of that moment (Stock_Relay_Alerts) in plain words, and nothing on a day without any.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * The address is the setting `stock_relay_digest_email` (in the page's settings group, so the page's form and
 * options.php's nonce and capability check carry it). Saving an address schedules the daily WP-Cron event, emptying
 * it unschedules it. The digest reads what the background refresh kept; it asks the relay nothing itself.
 */
final class Stock_Relay_Digest {

	public const OPTION = 'stock_relay_digest_email';
	public const HOOK   = 'stock_relay_digest';

	/** The setting (admin_init). */
	public static function setting(): void {
		register_setting(
			Stock_Relay_Admin::GROUP,
			self::OPTION,
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize' ),
				'default'           => '',
				'show_in_rest'      => false,
			)
		);
	}

	/**
	 * An e-mail address, or '' (off); a wrong address is refused with a reason and the saved one kept.
	 *
	 * @param mixed $value Raw.
	 */
	public static function sanitize( $value ): string {
		$typed = is_string( $value ) ? trim( sanitize_text_field( $value ) ) : '';
		if ( '' === $typed ) {
			return '';
		}
		$email = sanitize_email( $typed );
		if ( '' === $email || ! is_email( $email ) ) {
			add_settings_error( self::OPTION, self::OPTION, __( 'The digest address is not an e-mail address; the one saved before is kept.', 'stock-relay' ) );
			return (string) get_option( self::OPTION, '' );
		}
		return $email;
	}

	/** The form's row (inside the page's settings table). */
	public static function field(): void {
		echo '<tr><th scope="row"><label for="stock_relay_digest_email">' . esc_html__( 'Daily e-mail digest', 'stock-relay' ) . '</label></th><td>'
			. '<input class="regular-text" type="email" id="stock_relay_digest_email" name="stock_relay_digest_email" value="' . esc_attr( (string) get_option( self::OPTION, '' ) ) . '" placeholder="' . esc_attr__( 'Off', 'stock-relay' ) . '">'
			. '<p class="description">' . esc_html__( 'Optional. Once a day, an e-mail to this address lists what needs attention (failing deliveries, dead letters, paused channels, changes waiting in this shop), and only on days when there is something. Leave empty for none.', 'stock-relay' ) . '</p></td></tr>';
	}

	/** Schedule or unschedule the daily event to match the setting (on its change, and from the watchdog). */
	public static function schedule(): void {
		$on   = '' !== (string) get_option( self::OPTION, '' );
		$next = wp_next_scheduled( self::HOOK );
		if ( $on && false === $next ) {
			wp_schedule_event( time() + DAY_IN_SECONDS, 'daily', self::HOOK );
		} elseif ( ! $on && false !== $next ) {
			wp_clear_scheduled_hook( self::HOOK );
		}
	}

	/**
	 * The daily event: one e-mail when there is something to say.
	 *
	 * @return bool Whether an e-mail was sent.
	 */
	public static function send(): bool {
		$to = (string) get_option( self::OPTION, '' );
		if ( '' === $to ) {
			return false;
		}
		$alerts = Stock_Relay_Alerts::current();
		if ( ! $alerts ) {
			return false; // Nothing to say: no e-mail.
		}
		$mail = self::compose( $alerts, wp_specialchars_decode( (string) get_option( 'blogname' ), ENT_QUOTES ), admin_url( 'admin.php?page=' . Stock_Relay_Admin::SLUG ), time() );
		return wp_mail( $to, $mail['subject'], $mail['body'] );
	}

	/**
	 * The e-mail: a subject with the count, one paragraph per alert, errors first, and the page's address.
	 *
	 * @param array<int, array<string, mixed>> $alerts Alerts.
	 * @return array{subject: string, body: string}
	 */
	public static function compose( array $alerts, string $site, string $page, int $now ): array {
		$lines = array();
		foreach ( $alerts as $alert ) {
			$lines[] = ( 'error' === $alert['level'] ? '[!] ' : '[-] ' ) . Stock_Relay_Alert_Text::sentence( $alert, $now );
		}
		return array(
			/* translators: 1: site name, 2: number of alerts */
			'subject' => sprintf( _n( '[%1$s] Stock Relay: %2$d thing needs attention', '[%1$s] Stock Relay: %2$d things need attention', count( $alerts ), 'stock-relay' ), $site, count( $alerts ) ),
			'body'    => implode( "\n\n", $lines ) . "\n\n"
				/* translators: %s: the Stock Relay page's address */
				. sprintf( __( 'The Stock Relay page: %s', 'stock-relay' ), $page ) . "\n"
				. __( 'You get this e-mail because this address is set as the daily digest on that page; empty the field there to stop it.', 'stock-relay' ) . "\n",
		);
	}

	/** Deactivation: the daily event goes (the setting stays). */
	public static function deactivate(): void {
		wp_clear_scheduled_hook( self::HOOK );
	}
}
