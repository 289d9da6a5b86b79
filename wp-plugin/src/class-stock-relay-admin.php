<?php
/**
 * The settings and status page under WooCommerce, and its actions. Every action checks the
 * capability and a nonce on its first line.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit; // Loaded by WordPress (or the unit tests' bootstrap) only, never by URL.

/**
 * WooCommerce › Stock Relay.
 */
final class Stock_Relay_Admin {

	public const CAP    = 'manage_woocommerce';
	public const SLUG   = 'stock-relay';
	public const GROUP  = 'stock_relay';
	public const TYPED  = 'stock_relay_typed_'; // + user id: what the form held when a field was refused.
	public const SCRIPT = 'stock-relay-admin';

	/**
	 * The page's hook suffix (add_submenu_page's answer): the script is enqueued on this screen only.
	 *
	 * @var string
	 */
	private static $hook = '';

	/**
	 * What each field of this request's settings save held as typed, and the fields that were refused.
	 *
	 * @var array{values: array<string, string>, invalid: string[]}|null
	 */
	private static $typed = null;

	/** Hook in (admin requests only). */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
		add_action( 'admin_init', array( self::class, 'settings' ) );
		add_action( 'admin_enqueue_scripts', array( self::class, 'enqueue' ) );
		// options.php asks for manage_options unless the group says otherwise: shop managers may configure this.
		add_filter( 'option_page_capability_' . self::GROUP, array( self::class, 'capability' ) );
		foreach ( array( 'ping', 'resend', 'replay_dead', 'retry_rejected', 'clear_rejected' ) as $action ) {
			add_action( 'admin_post_stock_relay_' . $action, array( self::class, 'handle_' . $action ) );
		}
		add_action( 'wp_ajax_stock_relay_resend_step', array( self::class, 'ajax_resend_step' ) );
		foreach ( array( 'stock_relay_url', 'stock_relay_site', 'stock_relay_secret' ) as $option ) {
			add_action( 'update_option_' . $option, array( Stock_Relay_Status_Route::class, 'forget' ) ); // The cached status was another relay's, or refused.
		}
		$basename = plugin_basename( STOCK_RELAY_FILE );
		add_filter( 'plugin_action_links_' . $basename, array( self::class, 'action_links' ) );
		add_action( 'after_plugin_row_' . $basename, array( self::class, 'plugin_row_notice' ), 10, 0 );
		add_action( 'admin_notices', array( self::class, 'woocommerce_missing_notice' ) );
		Stock_Relay_Oversold_Notice::register();
	}

	/**
	 * Are the relay URL, site id and secret all set.
	 *
	 * @param array<string, mixed> $settings Settings.
	 */
	public static function configured( array $settings ): bool {
		return '' !== $settings['url'] && '' !== $settings['site'] && '' !== $settings['secret'];
	}

	/**
	 * A "Settings" link on the Plugins screen row.
	 *
	 * @param array<string, string> $links The row's action links.
	 * @return array<string, string>
	 */
	public static function action_links( array $links ): array {
		if ( current_user_can( self::CAP ) ) {
			$links = array( 'settings' => '<a href="' . esc_url( admin_url( 'admin.php?page=' . self::SLUG ) ) . '">' . esc_html__( 'Settings', 'stock-relay' ) . '</a>' ) + $links;
		}
		return $links;
	}

	/** Under the plugin's row on the Plugins screen: say that it is not set up yet (no relay call: options only). */
	public static function plugin_row_notice(): void {
		if ( self::configured( Stock_Relay_Plugin::settings() ) || ! current_user_can( self::CAP ) ) {
			return;
		}
		global $wp_list_table;
		$columns = is_object( $wp_list_table ) && method_exists( $wp_list_table, 'get_column_count' ) ? (int) $wp_list_table->get_column_count() : 4;
		echo '<tr class="plugin-update-tr active" id="stock-relay-unconfigured-row"><td colspan="' . esc_attr( (string) $columns ) . '" class="plugin-update colspanchange"><div class="notice inline notice-warning notice-alt"><p>'
			. esc_html__( 'Stock Relay is not set up yet: no stock change is sent until the relay URL, the site id and the secret are saved.', 'stock-relay' )
			. ' <a href="' . esc_url( admin_url( 'admin.php?page=' . self::SLUG ) ) . '">' . esc_html__( 'Set it up', 'stock-relay' ) . '</a></p></div></td></tr>';
	}

	/**
	 * WordPress before 6.5 ignores the `Requires Plugins` header, so the plugin can be active without WooCommerce:
	 * say so (to those who can activate plugins), on every admin screen, as WooCommerce's own extensions do.
	 */
	public static function woocommerce_missing_notice(): void {
		if ( class_exists( 'WooCommerce' ) || ! current_user_can( 'activate_plugins' ) ) {
			return;
		}
		echo '<div class="notice notice-error" id="stock-relay-needs-woocommerce"><p>'
			. esc_html__( 'Stock Relay needs WooCommerce: install and activate WooCommerce, or deactivate Stock Relay. Until then no stock change is sent.', 'stock-relay' )
			. '</p></div>';
	}

	/**
	 * The page's script, on the page's own screen only (every other admin page is left as it was).
	 *
	 * @param string $hook_suffix The current admin screen.
	 */
	public static function enqueue( string $hook_suffix ): void {
		if ( '' === self::$hook || $hook_suffix !== self::$hook ) {
			return;
		}
		wp_enqueue_script( self::SCRIPT, plugins_url( 'assets/admin.js', STOCK_RELAY_FILE ), array(), STOCK_RELAY_VERSION, true );
		$config = array(
			'statusUrl' => esc_url_raw( rest_url( Stock_Relay_Status_Route::NS . '/status' ) ),
			'pingUrl'   => esc_url_raw( rest_url( Stock_Relay_Status_Route::NS . '/ping' ) ),
			'nonce'     => wp_create_nonce( 'wp_rest' ),
			'text'      => array(
				'loading' => __( 'Asking the relay…', 'stock-relay' ),
				'testing' => __( 'Testing the connection…', 'stock-relay' ),
				/* translators: %s: the reason, such as "HTTP 403" or a network error */
				'failed'  => __( 'The status could not be loaded from this site (%s). Reload the page to try again.', 'stock-relay' ),
				/* translators: %s: the reason, such as "HTTP 403" or a network error */
				'pingErr' => __( 'Test connection did not finish (%s). Reload the page and try again.', 'stock-relay' ),
				/* translators: %s: a time such as 12:03:45 */
				'asOf'    => __( 'As the relay reported it at %s.', 'stock-relay' ),
				'refresh' => __( 'Ask again', 'stock-relay' ),
			),
		);
		wp_add_inline_script( self::SCRIPT, 'var stockRelayAdmin = ' . wp_json_encode( $config ) . ';', 'before' );
	}

	/** The capability the settings group needs. */
	public static function capability(): string {
		return self::CAP;
	}

	/** The menu entry. */
	public static function menu(): void {
		self::$hook = (string) add_submenu_page( 'woocommerce', __( 'Stock Relay', 'stock-relay' ), __( 'Stock Relay', 'stock-relay' ), self::CAP, self::SLUG, array( self::class, 'render' ) );
	}

	/** The Settings API registration (the form posts to options.php, which checks the group nonce). */
	public static function settings(): void {
		register_setting(
			self::GROUP,
			'stock_relay_url',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_url' ),
				'default'           => '',
				'show_in_rest'      => false,
			)
		);
		register_setting(
			self::GROUP,
			'stock_relay_site',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_site' ),
				'default'           => '',
				'show_in_rest'      => false,
			)
		);
		// No 'default' for the secret: with one, update_option() finds the saved '' equal to the default,
		// takes the option for new and calls add_option( ..., 'yes' ), whose upsert makes it autoloaded.
		register_setting(
			self::GROUP,
			'stock_relay_secret',
			array(
				'type'              => 'string',
				'sanitize_callback' => array( self::class, 'sanitize_secret' ),
				'show_in_rest'      => false,
			)
		);
	}

	/**
	 * Sanitize the relay URL; on error keep the saved value and say why (what was typed is shown again).
	 *
	 * @param mixed $value Raw.
	 */
	public static function sanitize_url( $value ): string {
		$typed               = is_string( $value ) ? sanitize_text_field( $value ) : '';
		list( $url, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( $typed );
		self::keep_typed( 'url', $typed, '' !== $error );
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_url', 'stock_relay_url', $error );
			return (string) get_option( 'stock_relay_url', '' );
		}
		return $url;
	}

	/**
	 * Sanitize the site id; on error keep the saved value and say why (what was typed is shown again).
	 *
	 * @param mixed $value Raw.
	 */
	public static function sanitize_site( $value ): string {
		$typed                = is_string( $value ) ? sanitize_text_field( $value ) : '';
		list( $site, $error ) = Stock_Relay_Settings_Sanitizer::site_id( $typed );
		self::keep_typed( 'site', $typed, '' !== $error );
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_site', 'stock_relay_site', $error );
			return (string) get_option( 'stock_relay_site', '' );
		}
		return $site;
	}

	/**
	 * Sanitize the secret: empty keeps the saved one (it is never sent back to the browser) but is an error while
	 * none is saved, a wp-config.php constant makes the field read-only, and the option is never autoloaded.
	 *
	 * @param mixed $value Raw (base64 may contain + and /, so sanitize_text_field would be wrong).
	 */
	public static function sanitize_secret( $value ): string {
		if ( false === get_option( 'stock_relay_secret', false ) ) {
			add_option( 'stock_relay_secret', '', '', false ); // Exists before update_option() adds it autoloaded.
		}
		$saved = (string) get_option( 'stock_relay_secret', '' );
		if ( Stock_Relay_Plugin::settings()['secret_from_constant'] ) {
			return $saved;
		}
		list( $secret, $error ) = Stock_Relay_Settings_Sanitizer::secret( is_string( $value ) ? $value : '' );
		if ( '' === $error && null === $secret && '' === $saved ) {
			$error = __( 'Paste the secret from the relay (a whsec_ value, from stock-relay keygen): without it nothing can be sent.', 'stock-relay' );
		}
		self::keep_typed( 'secret', '', '' !== $error ); // Never the secret itself: the field stays empty.
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_secret', 'stock_relay_secret', $error );
		}
		return null === $secret ? $saved : $secret;
	}

	/**
	 * Remember what a field held in this save, for one redisplay when a field was refused: the form then shows
	 * what was typed in every field, not the saved values. Only the first call per field counts (WordPress may
	 * sanitize a value twice, the second time already clean); a short per-user transient carries it to the page.
	 */
	private static function keep_typed( string $field, string $typed, bool $invalid ): void {
		if ( null === self::$typed ) {
			self::$typed = array(
				'values'  => array(),
				'invalid' => array(),
			);
		}
		if ( array_key_exists( $field, self::$typed['values'] ) ) {
			return;
		}
		self::$typed['values'][ $field ] = $typed;
		if ( $invalid ) {
			self::$typed['invalid'][] = $field;
		}
		if ( self::$typed['invalid'] ) {
			set_transient( self::TYPED . get_current_user_id(), self::$typed, 300 );
		} else {
			delete_transient( self::TYPED . get_current_user_id() );
		}
	}

	/**
	 * Test connection: a signed ping; says the relay version, clock difference and channels, or what went wrong.
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @return array{type: string, message: string} type: success, warning or error (the notice's colour).
	 */
	public static function ping( array $settings ): array {
		if ( ! self::configured( $settings ) ) {
			return array(
				'type'    => 'warning',
				'message' => __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ),
			);
		}
		$sent   = microtime( true );
		$answer = Stock_Relay_Delivery::post(
			$settings,
			'ping',
			(string) stock_relay_json(
				array(
					'type' => 'ping',
					'site' => $settings['site'],
				)
			)
		);
		$back   = microtime( true );
		if ( 200 !== $answer['status'] ) {
			return array(
				'type'    => 'error',
				'message' => Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ),
			);
		}
		$server   = isset( $answer['body']['server_time'] ) ? strtotime( (string) $answer['body']['server_time'] ) : false;
		$skew     = false === $server ? null : (int) round( $server - ( $sent + $back ) / 2 );
		$channels = array();
		foreach ( (array) ( $answer['body']['channels'] ?? array() ) as $channel ) {
			$channels[] = is_array( $channel ) ? (string) ( $channel['name'] ?? '' ) . ( isset( $channel['type'] ) ? ' (' . (string) $channel['type'] . ')' : '' ) : (string) $channel;
		}
		$message = sprintf(
			/* translators: 1: relay version, 2: clock difference, 3: channel names */
			__( 'Connected. Relay version %1$s; clock difference %2$s; channels: %3$s.', 'stock-relay' ),
			(string) ( $answer['body']['relay_version'] ?? '?' ),
			null === $skew ? '?' : sprintf( '%+d s', $skew ),
			$channels ? implode( ', ', $channels ) : __( 'none yet', 'stock-relay' )
		);
		// Connected, but signatures are refused beyond 300 s of clock difference, and nothing is sent without a channel.
		$warn = ( null !== $skew && abs( $skew ) > 60 ) || ! $channels;
		return array(
			'type'    => $warn ? 'warning' : 'success',
			'message' => $message,
		);
	}

	/** Test connection without JavaScript (the page's script calls the REST route instead). */
	public static function handle_ping(): void {
		self::guard( 'stock_relay_ping' );
		$result = self::ping( Stock_Relay_Plugin::settings() );
		self::back( $result['message'], $result['type'] );
	}

	/** Resend everything: start, once confirmed; the page then drives the chunks (and a background chain does too). */
	public static function handle_resend(): void {
		self::guard( 'stock_relay_resend' );
		self::confirmed( 'resend', __( 'Send the current stock of every product with a SKU to the relay again? Every channel is then updated; this can take a while on a large shop.', 'stock-relay' ) );
		Stock_Relay_Resend::start();
		self::back( __( 'Resending the current state of every product with a SKU: progress is shown below.', 'stock-relay' ), 'success' );
	}

	/** Replay dead letters: the relay sends every channel's dead letters again, with the shop's current quantity. */
	public static function handle_replay_dead(): void {
		self::guard( 'stock_relay_replay_dead' );
		$result = self::replay_dead( Stock_Relay_Plugin::settings() );
		self::back( $result['message'], $result['type'] );
	}

	/**
	 * Ask the relay (signed replay.request, scope dead) and say what it did, in plain words. A replay is a one-off
	 * request: when the relay does not answer, nothing is kept or resent, and the message says so.
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @return array{type: string, message: string}
	 */
	public static function replay_dead( array $settings ): array {
		if ( ! self::configured( $settings ) ) {
			return array(
				'type'    => 'warning',
				'message' => __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ),
			);
		}
		$body   = (string) stock_relay_json(
			array(
				'type'  => 'replay.request',
				'site'  => $settings['site'],
				'scope' => 'dead',
			)
		);
		$answer = Stock_Relay_Delivery::post( $settings, 'replay', $body );
		if ( 200 !== $answer['status'] || ! isset( $answer['body']['scheduled'] ) ) {
			return array(
				'type'    => 'error',
				'message' => Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ),
			);
		}
		Stock_Relay_Status_Route::forget(); // The channels' dead letter counts change now.
		$count = (int) $answer['body']['scheduled'];
		return array(
			'type'    => 'success',
			'message' => 0 === $count
				? __( 'The relay has no dead letters to send again.', 'stock-relay' )
				/* translators: %d: number of deliveries */
				: sprintf( _n( 'The relay is sending %d dead letter again, with the current quantity.', 'The relay is sending %d dead letters again, with the current quantity.', $count, 'stock-relay' ), $count ),
		);
	}

	/** Put refused changes back in the queue. */
	public static function handle_retry_rejected(): void {
		self::guard( 'stock_relay_retry_rejected' );
		$count = Stock_Relay_Outbox::retry_rejected();
		Stock_Relay_Kick::request_drain();
		/* translators: %d: number of changes */
		self::back( sprintf( _n( '%d refused change queued again.', '%d refused changes queued again.', $count, 'stock-relay' ), $count ), 'success' );
	}

	/** Drop refused changes, once confirmed. */
	public static function handle_clear_rejected(): void {
		self::guard( 'stock_relay_clear_rejected' );
		self::confirmed( 'clear_rejected', __( 'Remove the changes the relay refused? They are not sent again; fix a product and save it to send its stock anew.', 'stock-relay' ) );
		$count = Stock_Relay_Outbox::clear_rejected();
		/* translators: %d: number of changes */
		self::back( sprintf( _n( '%d refused change removed.', '%d refused changes removed.', $count, 'stock-relay' ), $count ), 'success' );
	}

	/**
	 * Go on only when the form says it was confirmed (`confirm=1`: the page's script sets it after the browser's
	 * confirm dialog); otherwise ask here, with a form that confirms (so the action also works without JavaScript).
	 *
	 * @param string $action   Action name (stock_relay_ + this).
	 * @param string $question Plain text.
	 */
	private static function confirmed( string $action, string $question ): void {
		// The nonce was checked by guard() just before.
		if ( isset( $_POST['confirm'] ) && '1' === $_POST['confirm'] ) { // phpcs:ignore WordPress.Security.NonceVerification.Missing
			return;
		}
		$form = '<p>' . esc_html( $question ) . '</p><form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">'
			. '<input type="hidden" name="action" value="' . esc_attr( 'stock_relay_' . $action ) . '"><input type="hidden" name="confirm" value="1">'
			. wp_nonce_field( 'stock_relay_' . $action, '_wpnonce', true, false )
			. '<p><button type="submit" class="button button-primary">' . esc_html__( 'Yes, go ahead', 'stock-relay' ) . '</button> '
			. '<a class="button" href="' . esc_url( admin_url( 'admin.php?page=' . self::SLUG ) ) . '">' . esc_html__( 'Cancel', 'stock-relay' ) . '</a></p></form>';
		wp_die( $form, esc_html__( 'Stock Relay', 'stock-relay' ), array( 'response' => 200 ) ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- built from escaped parts above.
	}

	/** One AJAX step of a resend (the page calls it until done). */
	public static function ajax_resend_step(): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_send_json_error( null, 403 );
		}
		check_ajax_referer( 'stock_relay_resend_step' );
		$progress = Stock_Relay_Resend::step();
		wp_send_json_success(
			array(
				'queued' => (int) ( $progress['queued'] ?? 0 ),
				'total'  => (int) ( $progress['total'] ?? 0 ),
				'done'   => ! empty( $progress['done'] ),
			)
		);
	}

	/**
	 * Capability and nonce, first thing in every action.
	 *
	 * @param string $action Nonce action.
	 */
	private static function guard( string $action ): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( $action );
	}

	/**
	 * Back to the page with a notice.
	 *
	 * @param string $notice Plain text.
	 * @param string $type   success, warning, error or info: the notice's colour.
	 */
	private static function back( string $notice, string $type = 'info' ): void {
		set_transient(
			'stock_relay_notice_' . get_current_user_id(),
			array(
				'type'    => $type,
				'message' => $notice,
			),
			60
		);
		wp_safe_redirect( admin_url( 'admin.php?page=' . self::SLUG ) );
		exit;
	}

	/** The page: settings, status panel, actions. Nothing here asks the relay: its status loads from the script. */
	public static function render(): void {
		if ( ! current_user_can( self::CAP ) ) {
			return;
		}
		$settings = Stock_Relay_Plugin::settings();
		$notice   = get_transient( 'stock_relay_notice_' . get_current_user_id() );
		delete_transient( 'stock_relay_notice_' . get_current_user_id() );
		$typed = get_transient( self::TYPED . get_current_user_id() );
		delete_transient( self::TYPED . get_current_user_id() );
		// Only right after a save that refused a field (options.php sends back settings-updated=true).
		$typed = isset( $_GET['settings-updated'] ) && is_array( $typed ) && ! empty( $typed['invalid'] ) ? $typed : null; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only selects what to show.
		echo '<div class="wrap"><h1>' . esc_html__( 'Stock Relay', 'stock-relay' ) . '</h1>';
		if ( is_array( $notice ) && is_string( $notice['message'] ?? null ) && '' !== $notice['message'] ) {
			self::notice( (string) ( $notice['type'] ?? 'info' ), $notice['message'] );
		}
		echo '<div id="stock-relay-live" aria-live="polite"></div>';
		// options.php's "Settings saved." goes to the 'general' setting; under WooCommerce nothing prints it for us.
		settings_errors( 'general' );
		settings_errors( 'stock_relay_url' );
		settings_errors( 'stock_relay_site' );
		settings_errors( 'stock_relay_secret' );
		settings_errors( Stock_Relay_Digest::OPTION );
		if ( null !== $typed ) {
			self::notice( 'warning', __( 'What you typed is still in the form: correct the field named above and save again. The other fields were saved.', 'stock-relay' ) );
		}
		if ( ! self::configured( $settings ) ) {
			self::notice( 'warning', __( 'Stock Relay is not set up yet: enter the relay URL, the site id and the secret from the relay, then save. Until then no stock change is sent.', 'stock-relay' ), 'stock-relay-unconfigured' );
		}
		if ( count( Stock_Relay_Signer::secrets( (string) $settings['secret'] ) ) > 1 ) {
			self::notice( 'info', __( 'Several secrets are saved (a rotation under way): the plugin signs with each, and the relay accepts a request that matches any of its secrets. When the relay has only the new secret, save the new one alone here.', 'stock-relay' ) );
		}
		self::render_form( $settings, $typed );
		self::render_status();
		if ( self::configured( $settings ) ) {
			echo '<h2>' . esc_html__( 'Channels (as the relay reports them)', 'stock-relay' ) . '</h2>';
			echo '<div id="stock-relay-channels" aria-live="polite" aria-busy="true"><p class="stock-relay-loading"><span class="spinner is-active" style="float:none;margin:0 .5em 0 0"></span>' . esc_html__( 'Asking the relay…', 'stock-relay' ) . '</p>'
				. '<noscript><p>' . esc_html__( 'The relay\'s status is loaded with JavaScript; turn it on to see it here.', 'stock-relay' ) . '</p></noscript></div>';
		}
		self::render_rejected();
		self::render_actions( $settings );
		echo '</div>';
	}

	/**
	 * An admin notice (escaped here).
	 *
	 * @param string $type    success, warning, error or info.
	 * @param string $message Plain text.
	 * @param string $id      Optional element id.
	 */
	private static function notice( string $type, string $message, string $id = '' ): void {
		$type = in_array( $type, array( 'success', 'warning', 'error', 'info' ), true ) ? $type : 'info';
		echo '<div class="' . esc_attr( 'notice notice-' . $type ) . '"' . ( '' !== $id ? ' id="' . esc_attr( $id ) . '"' : '' ) . '><p>' . esc_html( $message ) . '</p></div>';
	}

	/**
	 * The settings form (Settings API: options.php checks the nonce and, through our filter, manage_woocommerce).
	 *
	 * @param array<string, mixed>                                         $settings Settings.
	 * @param array{values: array<string, string>, invalid: string[]}|null $typed    What the last save held, when a field was refused.
	 */
	private static function render_form( array $settings, ?array $typed ): void {
		$value   = static fn( string $field ): string => null !== $typed && isset( $typed['values'][ $field ] ) ? (string) $typed['values'][ $field ] : (string) $settings[ $field ];
		$invalid = static fn( string $field ): string => null !== $typed && in_array( $field, $typed['invalid'], true ) ? ' aria-invalid="true"' : '';
		echo '<form method="post" action="' . esc_url( admin_url( 'options.php' ) ) . '">';
		settings_fields( self::GROUP );
		echo '<table class="form-table" role="presentation">';
		echo '<tr><th scope="row"><label for="stock_relay_url">' . esc_html__( 'Relay URL', 'stock-relay' ) . '</label></th><td><input class="regular-text" type="url" id="stock_relay_url" name="stock_relay_url" value="' . esc_attr( $value( 'url' ) ) . '" placeholder="https://relay.example.com"' . $invalid( 'url' ) . '>' // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- a fixed attribute.
			. '<p class="description">' . esc_html__( 'The relay\'s base address, such as https://relay.example.com (without /v1/...). http:// only for a relay on this machine or a private network.', 'stock-relay' ) . '</p></td></tr>';
		$site_rule = __( '1 to 64 characters: letters a-z, digits 0-9 and "-", as in the relay configuration (capitals are saved as small letters).', 'stock-relay' );
		echo '<tr><th scope="row"><label for="stock_relay_site">' . esc_html__( 'Site id', 'stock-relay' ) . '</label></th><td><input type="text" id="stock_relay_site" name="stock_relay_site" value="' . esc_attr( $value( 'site' ) ) . '" pattern="' . esc_attr( Stock_Relay_Settings_Sanitizer::SITE_PATTERN ) . '" maxlength="64" title="' . esc_attr( $site_rule ) . '"' . $invalid( 'site' ) . '><p class="description">' . esc_html( $site_rule ) . '</p></td></tr>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- a fixed attribute.
		echo '<tr><th scope="row"><label for="stock_relay_secret">' . esc_html__( 'Secret', 'stock-relay' ) . '</label></th><td>';
		if ( $settings['secret_from_constant'] ) {
			echo '<input type="text" class="regular-text" id="stock_relay_secret" value="' . esc_attr__( 'Set in wp-config.php', 'stock-relay' ) . '" readonly disabled><p class="description">' . esc_html__( 'STOCK_RELAY_SECRET is defined in wp-config.php; change it there.', 'stock-relay' ) . '</p>';
		} else {
			$hint  = '' !== $settings['secret'] ? __( 'A secret is saved (it is never shown). Leave empty to keep it.', 'stock-relay' ) : __( 'Paste the whsec_ secret from the relay (stock-relay keygen).', 'stock-relay' );
			$hint .= ' ' . __( 'While the relay rotates its secret you may paste both, separated by a space (whsec_OLD whsec_NEW).', 'stock-relay' );
			echo '<input class="regular-text" type="password" id="stock_relay_secret" name="stock_relay_secret" value="" autocomplete="new-password"' . $invalid( 'secret' ) . '><p class="description">' . esc_html( $hint ) . '</p>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- a fixed attribute.
		}
		echo '</td></tr>';
		Stock_Relay_Digest::field();
		echo '</table>';
		submit_button( __( 'Save settings', 'stock-relay' ) );
		echo '</form>';
	}

	/** The plugin's own status: outbox depth and age, last success, last error, resend progress. */
	private static function render_status(): void {
		$stats  = Stock_Relay_Outbox::stats();
		$state  = Stock_Relay_Delivery::state();
		$resend = Stock_Relay_Resend::progress();
		$now    = time();
		$when   = static fn( int $time ): string => Stock_Relay_Status_View::when( (float) $time, $now );
		$next   = (int) $state['next_attempt_at'];
		if ( $next > $now ) {
			/* translators: %s: a date and time with its age */
			$retry = sprintf( __( 'at %s', 'stock-relay' ), (string) wp_date( 'Y-m-d H:i:s', $next ) ) . ' (' . sprintf( /* translators: %s: a duration such as "5 mins" */ __( 'in %s', 'stock-relay' ), human_time_diff( $now, $next ) ) . ')';
		} elseif ( $stats['pending'] > 0 ) {
			$retry = __( 'Waiting to be sent (no retry is scheduled: the changes go with the next delivery)', 'stock-relay' );
		} else {
			$retry = __( 'Nothing to send', 'stock-relay' );
		}
		$rows = array(
			__( 'Changes waiting to be sent', 'stock-relay' ) => (string) $stats['pending'],
			__( 'Oldest waiting change', 'stock-relay' ) => null === $stats['oldest'] ? '—' : $when( $stats['oldest'] ),
			__( 'Last successful delivery', 'stock-relay' ) => $state['last_success'] ? $when( (int) $state['last_success'] ) : __( 'never', 'stock-relay' ),
			__( 'Last error', 'stock-relay' )            => '' !== $state['last_error'] ? $state['last_error'] . ' (' . $when( (int) $state['last_error_at'] ) . ')' : '—',
			__( 'Next retry', 'stock-relay' )            => $retry,
			__( 'Changes the relay refused', 'stock-relay' ) => (string) $stats['rejected'],
		);
		echo '<h2>' . esc_html__( 'Status', 'stock-relay' ) . '</h2><table class="widefat striped" style="max-width:60em"><tbody>';
		foreach ( $rows as $label => $value ) {
			echo '<tr><th scope="row">' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>';
		}
		if ( $resend ) {
			echo '<tr><th scope="row">' . esc_html__( 'Resend everything', 'stock-relay' ) . '</th><td><progress id="stock-relay-resend" max="' . esc_attr( (string) max( 1, (int) $resend['total'] ) ) . '" value="' . esc_attr( (string) (int) $resend['queued'] ) . '"></progress> <span id="stock-relay-resend-text">' . esc_html( sprintf( /* translators: 1: queued, 2: total */ __( '%1$d of %2$d queued', 'stock-relay' ), (int) $resend['queued'], (int) $resend['total'] ) ) . '</span></td></tr>';
		}
		echo '</tbody></table>';
		if ( $resend && empty( $resend['done'] ) ) {
			$config = array(
				'url'   => admin_url( 'admin-ajax.php' ),
				'nonce' => wp_create_nonce( 'stock_relay_resend_step' ),
				'label' => __( '%1$d of %2$d queued', 'stock-relay' ), // phpcs:ignore WordPress.WP.I18n.MissingTranslatorsComment -- same string as above.
			);
			echo '<script>(function(c){function step(){var f=new FormData();f.append("action","stock_relay_resend_step");f.append("_ajax_nonce",c.nonce);'
				. 'fetch(c.url,{method:"POST",body:f,credentials:"same-origin"}).then(function(r){return r.json();}).then(function(r){if(!r.success){return;}'
				. 'var d=r.data;document.getElementById("stock-relay-resend").value=d.queued;document.getElementById("stock-relay-resend-text").textContent=c.label.replace("%1$d",d.queued).replace("%2$d",d.total);'
				. 'if(!d.done){step();}});}step();})(' . wp_json_encode( $config ) . ');</script>';
		}
	}

	/** The changes the relay refused, with its reasons. */
	private static function render_rejected(): void {
		$rows = Stock_Relay_Outbox::rejected();
		if ( ! $rows ) {
			return;
		}
		echo '<h2>' . esc_html__( 'Changes the relay refused', 'stock-relay' ) . '</h2><table class="widefat striped" style="max-width:60em"><thead><tr><th>' . esc_html__( 'Product', 'stock-relay' ) . '</th><th>' . esc_html__( 'SKU', 'stock-relay' ) . '</th><th>' . esc_html__( 'Reason', 'stock-relay' ) . '</th></tr></thead><tbody>';
		foreach ( $rows as $row ) {
			$event = json_decode( (string) $row['payload'], true );
			echo '<tr><td>' . esc_html( (string) $row['product_id'] ) . '</td><td>' . esc_html( (string) ( $event['sku'] ?? '' ) ) . '</td><td>' . esc_html( (string) $row['last_error'] ) . '</td></tr>';
		}
		echo '</tbody></table>';
	}

	/**
	 * Buttons: test connection, resend everything, replay dead letters, retry or clear refused changes. A button
	 * with nothing to act on is left out; the two that cannot be undone ask first (data-confirm, read by the
	 * page's script, and the server's own question when the form comes without confirm=1).
	 *
	 * @param array<string, mixed> $settings Settings.
	 */
	private static function render_actions( array $settings ): void {
		$rejected = Stock_Relay_Outbox::stats()['rejected'];
		$resend   = Stock_Relay_Resend::progress();
		$running  = $resend && empty( $resend['done'] );
		$actions  = array(
			'ping'           => array( __( 'Test connection', 'stock-relay' ), '', true ),
			'resend'         => array( __( 'Resend everything', 'stock-relay' ), __( 'Send the current stock of every product with a SKU to the relay again?', 'stock-relay' ), self::configured( $settings ) && ! $running && Stock_Relay_Resend::has_products() ),
			'replay_dead'    => array( __( 'Replay dead letters', 'stock-relay' ), '', self::configured( $settings ) ),
			'retry_rejected' => array( __( 'Queue refused changes again', 'stock-relay' ), '', $rejected > 0 ),
			'clear_rejected' => array( __( 'Remove refused changes', 'stock-relay' ), __( 'Remove the changes the relay refused? They are not sent again.', 'stock-relay' ), $rejected > 0 ),
		);
		echo '<p id="stock-relay-actions">';
		foreach ( $actions as $action => list( $label, $confirm, $shown ) ) {
			if ( ! $shown ) {
				continue;
			}
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:1em" data-stock-relay-action="' . esc_attr( $action ) . '"'
				. ( '' !== $confirm ? ' data-confirm="' . esc_attr( $confirm ) . '"' : '' ) . '><input type="hidden" name="action" value="' . esc_attr( 'stock_relay_' . $action ) . '">';
			if ( '' !== $confirm ) {
				echo '<input type="hidden" name="confirm" value="0">';
			}
			wp_nonce_field( 'stock_relay_' . $action );
			submit_button( $label, 'secondary', 'submit', false );
			echo '</form>';
		}
		echo '</p>';
	}
}
