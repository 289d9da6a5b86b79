<?php
/**
 * The settings and status page under WooCommerce, and its actions. Every action checks the
 * capability and a nonce on its first line.
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * WooCommerce › Stock Relay.
 */
final class Stock_Relay_Admin {

	public const CAP   = 'manage_woocommerce';
	public const SLUG  = 'stock-relay';
	public const GROUP = 'stock_relay';

	/** Hook in (admin requests only). */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
		add_action( 'admin_init', array( self::class, 'settings' ) );
		// options.php asks for manage_options unless the group says otherwise: shop managers may configure this.
		add_filter( 'option_page_capability_' . self::GROUP, array( self::class, 'capability' ) );
		foreach ( array( 'ping', 'resend', 'replay_dead', 'retry_rejected', 'clear_rejected' ) as $action ) {
			add_action( 'admin_post_stock_relay_' . $action, array( self::class, 'handle_' . $action ) );
		}
		add_action( 'wp_ajax_stock_relay_resend_step', array( self::class, 'ajax_resend_step' ) );
		Stock_Relay_Oversold_Notice::register();
	}

	/** The capability the settings group needs. */
	public static function capability(): string {
		return self::CAP;
	}

	/** The menu entry. */
	public static function menu(): void {
		add_submenu_page( 'woocommerce', __( 'Stock Relay', 'stock-relay' ), __( 'Stock Relay', 'stock-relay' ), self::CAP, self::SLUG, array( self::class, 'render' ) );
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
	 * Sanitize the relay URL; on error keep the saved value and say why.
	 *
	 * @param mixed $value Raw.
	 */
	public static function sanitize_url( $value ): string {
		list( $url, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( is_string( $value ) ? sanitize_text_field( $value ) : '' );
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_url', 'stock_relay_url', $error );
			return (string) get_option( 'stock_relay_url', '' );
		}
		return $url;
	}

	/**
	 * Sanitize the site id; on error keep the saved value and say why.
	 *
	 * @param mixed $value Raw.
	 */
	public static function sanitize_site( $value ): string {
		list( $site, $error ) = Stock_Relay_Settings_Sanitizer::site_id( is_string( $value ) ? sanitize_text_field( $value ) : '' );
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_site', 'stock_relay_site', $error );
			return (string) get_option( 'stock_relay_site', '' );
		}
		return $site;
	}

	/**
	 * Sanitize the secret: empty keeps the saved one (it is never sent back to the browser), a
	 * wp-config.php constant makes the field read-only, and the option is never autoloaded.
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
		if ( '' !== $error ) {
			add_settings_error( 'stock_relay_secret', 'stock_relay_secret', $error );
		}
		return null === $secret ? $saved : $secret;
	}

	/** Test connection: a signed ping; shows the relay version, clock difference and channels. */
	public static function handle_ping(): void {
		self::guard( 'stock_relay_ping' );
		$settings = Stock_Relay_Plugin::settings();
		if ( '' === $settings['url'] || '' === $settings['site'] || '' === $settings['secret'] ) {
			self::back( __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ) );
		}
		$sent   = microtime( true );
		$answer = Stock_Relay_Delivery::post( $settings, 'ping', (string) stock_relay_json( array( 'type' => 'ping', 'site' => $settings['site'] ) ) );
		$back   = microtime( true );
		if ( 200 === $answer['status'] ) {
			$server   = isset( $answer['body']['server_time'] ) ? strtotime( (string) $answer['body']['server_time'] ) : false;
			$skew     = false === $server ? null : (int) round( $server - ( $sent + $back ) / 2 );
			$channels = array();
			foreach ( (array) ( $answer['body']['channels'] ?? array() ) as $channel ) {
				$channels[] = is_array( $channel ) ? (string) ( $channel['name'] ?? '' ) . ( isset( $channel['type'] ) ? ' (' . (string) $channel['type'] . ')' : '' ) : (string) $channel;
			}
			$notice = sprintf(
				/* translators: 1: relay version, 2: clock difference, 3: channel names */
				__( 'Connected. Relay version %1$s; clock difference %2$s; channels: %3$s.', 'stock-relay' ),
				(string) ( $answer['body']['relay_version'] ?? '?' ),
				null === $skew ? '?' : sprintf( '%+d s', $skew ),
				$channels ? implode( ', ', $channels ) : __( 'none yet', 'stock-relay' )
			);
		} else {
			$notice = Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
		}
		self::back( $notice );
	}

	/** Resend everything: start; the page then drives the chunks (and a background chain does too). */
	public static function handle_resend(): void {
		self::guard( 'stock_relay_resend' );
		Stock_Relay_Resend::start();
		self::back( __( 'Resending the current state of every product with a SKU: progress is shown below.', 'stock-relay' ) );
	}

	/** Replay dead letters: the relay sends every channel's dead letters again, with the shop's current quantity. */
	public static function handle_replay_dead(): void {
		self::guard( 'stock_relay_replay_dead' );
		self::back( self::replay_dead( Stock_Relay_Plugin::settings() ) );
	}

	/**
	 * Ask the relay (signed replay.request, scope dead) and say what it did, in plain words.
	 *
	 * @param array<string, mixed> $settings Settings.
	 */
	public static function replay_dead( array $settings ): string {
		if ( '' === $settings['url'] || '' === $settings['site'] || '' === $settings['secret'] ) {
			return __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' );
		}
		$body   = (string) stock_relay_json( array( 'type' => 'replay.request', 'site' => $settings['site'], 'scope' => 'dead' ) );
		$answer = Stock_Relay_Delivery::post( $settings, 'replay', $body );
		if ( 200 !== $answer['status'] || ! isset( $answer['body']['scheduled'] ) ) {
			return Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
		}
		$count = (int) $answer['body']['scheduled'];
		/* translators: %d: number of deliveries */
		return sprintf( _n( 'The relay is sending %d dead letter again, with the current quantity.', 'The relay is sending %d dead letters again, with the current quantity.', $count, 'stock-relay' ), $count );
	}

	/** Put refused changes back in the queue. */
	public static function handle_retry_rejected(): void {
		self::guard( 'stock_relay_retry_rejected' );
		$count = Stock_Relay_Outbox::retry_rejected();
		Stock_Relay_Kick::request_drain();
		/* translators: %d: number of changes */
		self::back( sprintf( _n( '%d refused change queued again.', '%d refused changes queued again.', $count, 'stock-relay' ), $count ) );
	}

	/** Drop refused changes. */
	public static function handle_clear_rejected(): void {
		self::guard( 'stock_relay_clear_rejected' );
		$count = Stock_Relay_Outbox::clear_rejected();
		/* translators: %d: number of changes */
		self::back( sprintf( _n( '%d refused change removed.', '%d refused changes removed.', $count, 'stock-relay' ), $count ) );
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
	 */
	private static function back( string $notice ): void {
		set_transient( 'stock_relay_notice_' . get_current_user_id(), $notice, 60 );
		wp_safe_redirect( admin_url( 'admin.php?page=' . self::SLUG ) );
		exit;
	}

	/** The page: settings, status panel, actions. */
	public static function render(): void {
		if ( ! current_user_can( self::CAP ) ) {
			return;
		}
		$settings = Stock_Relay_Plugin::settings();
		$notice   = get_transient( 'stock_relay_notice_' . get_current_user_id() );
		delete_transient( 'stock_relay_notice_' . get_current_user_id() );
		echo '<div class="wrap"><h1>' . esc_html__( 'Stock Relay', 'stock-relay' ) . '</h1>';
		if ( is_string( $notice ) && '' !== $notice ) {
			echo '<div class="notice notice-info"><p>' . esc_html( $notice ) . '</p></div>';
		}
		settings_errors( 'stock_relay_url' );
		settings_errors( 'stock_relay_site' );
		settings_errors( 'stock_relay_secret' );
		self::render_form( $settings );
		self::render_status();
		self::render_relay_status( $settings );
		self::render_rejected();
		self::render_actions();
		echo '</div>';
	}

	/**
	 * The settings form (Settings API: options.php checks the nonce and, through our filter, manage_woocommerce).
	 *
	 * @param array<string, mixed> $settings Settings.
	 */
	private static function render_form( array $settings ): void {
		echo '<form method="post" action="' . esc_url( admin_url( 'options.php' ) ) . '">';
		settings_fields( self::GROUP );
		echo '<table class="form-table" role="presentation">';
		echo '<tr><th scope="row"><label for="stock_relay_url">' . esc_html__( 'Relay URL', 'stock-relay' ) . '</label></th><td><input class="regular-text" type="url" id="stock_relay_url" name="stock_relay_url" value="' . esc_attr( (string) $settings['url'] ) . '" placeholder="https://relay.example.com"></td></tr>';
		echo '<tr><th scope="row"><label for="stock_relay_site">' . esc_html__( 'Site id', 'stock-relay' ) . '</label></th><td><input type="text" id="stock_relay_site" name="stock_relay_site" value="' . esc_attr( (string) $settings['site'] ) . '" pattern="[a-z0-9\-]{1,64}" maxlength="64"><p class="description">' . esc_html__( 'As in the relay configuration: a-z, 0-9 and "-".', 'stock-relay' ) . '</p></td></tr>';
		echo '<tr><th scope="row"><label for="stock_relay_secret">' . esc_html__( 'Secret', 'stock-relay' ) . '</label></th><td>';
		if ( $settings['secret_from_constant'] ) {
			echo '<input type="text" class="regular-text" id="stock_relay_secret" value="' . esc_attr__( 'Set in wp-config.php', 'stock-relay' ) . '" readonly disabled><p class="description">' . esc_html__( 'STOCK_RELAY_SECRET is defined in wp-config.php; change it there.', 'stock-relay' ) . '</p>';
		} else {
			$hint = '' !== $settings['secret'] ? __( 'A secret is saved (it is never shown). Leave empty to keep it.', 'stock-relay' ) : __( 'Paste the whsec_ secret from the relay (stock-relay keygen).', 'stock-relay' );
			echo '<input class="regular-text" type="password" id="stock_relay_secret" name="stock_relay_secret" value="" autocomplete="new-password"><p class="description">' . esc_html( $hint ) . '</p>';
		}
		echo '</td></tr></table>';
		submit_button( __( 'Save settings', 'stock-relay' ) );
		echo '</form>';
	}

	/** The plugin's own status: outbox depth and age, last success, last error, resend progress. */
	private static function render_status(): void {
		$stats  = Stock_Relay_Outbox::stats();
		$state  = Stock_Relay_Delivery::state();
		$resend = Stock_Relay_Resend::progress();
		$ago    = static function ( int $time ): string {
			/* translators: %s: a duration such as "5 mins" */
			return sprintf( __( '%s ago', 'stock-relay' ), human_time_diff( $time ) );
		};
		$rows   = array(
			__( 'Changes waiting to be sent', 'stock-relay' ) => (string) $stats['pending'],
			__( 'Oldest waiting change', 'stock-relay' )      => null === $stats['oldest'] ? '—' : $ago( $stats['oldest'] ),
			__( 'Last successful delivery', 'stock-relay' )   => $state['last_success'] ? $ago( (int) $state['last_success'] ) : __( 'never', 'stock-relay' ),
			__( 'Last error', 'stock-relay' )                 => '' !== $state['last_error'] ? $state['last_error'] . ' (' . $ago( (int) $state['last_error_at'] ) . ')' : '—',
			__( 'Next retry', 'stock-relay' )                 => (int) $state['next_attempt_at'] > time() ? human_time_diff( (int) $state['next_attempt_at'] ) : '—',
			__( 'Changes the relay refused', 'stock-relay' )  => (string) $stats['rejected'],
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

	/**
	 * The relay's own view (signed status.query): per-channel health and dead letters. Until the
	 * relay offers it (404), the panel says so instead of failing.
	 *
	 * @param array<string, mixed> $settings Settings.
	 */
	private static function render_relay_status( array $settings ): void {
		if ( '' === $settings['url'] || '' === $settings['site'] || '' === $settings['secret'] ) {
			return;
		}
		echo '<h2>' . esc_html__( 'Channels (as the relay reports them)', 'stock-relay' ) . '</h2>';
		$answer = Stock_Relay_Delivery::post( $settings, 'status', (string) stock_relay_json( array( 'type' => 'status.query', 'site' => $settings['site'] ) ) );
		$view   = Stock_Relay_Status_View::rows( $answer['status'], $answer['body'] );
		Stock_Relay_Oversold_Notice::remember( $answer['status'], $answer['body'] );
		if ( null === $view ) {
			$text = ( 404 === $answer['status'] && 'unknown_site' !== $answer['code'] ) || 405 === $answer['status']
				? __( 'This relay does not report channel health yet; update the relay to see it here.', 'stock-relay' )
				: Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
			echo '<p>' . esc_html( $text ) . '</p>';
			return;
		}
		echo '<table class="widefat striped" style="max-width:60em"><thead><tr>';
		foreach ( array( __( 'Channel', 'stock-relay' ), __( 'Pending', 'stock-relay' ), __( 'Oldest pending', 'stock-relay' ), __( 'Dead letters', 'stock-relay' ), __( 'Circuit', 'stock-relay' ), __( 'Last success', 'stock-relay' ), __( 'Drift (shop vs channel)', 'stock-relay' ) ) as $head ) {
			echo '<th>' . esc_html( $head ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $view as $row ) {
			echo '<tr>';
			foreach ( $row as $cell ) {
				// A list of lines (drift: the count, then examples), each escaped on its own.
				echo '<td>' . implode( '<br>', array_map( 'esc_html', (array) $cell ) ) . '</td>';
			}
			echo '</tr>';
		}
		echo '</tbody></table>';
		self::render_sales( $answer['body'] );
		self::render_oversold( $settings, $answer['body'] );
	}

	/**
	 * "Sales from marketplaces": what other systems reported, as the relay counts it (nothing from an older relay).
	 *
	 * @param array<string, mixed> $body The relay's status answer.
	 */
	private static function render_sales( array $body ): void {
		$sales = Stock_Relay_Status_View::sales( $body );
		if ( null === $sales ) {
			return;
		}
		echo '<h2>' . esc_html__( 'Sales from marketplaces', 'stock-relay' ) . '</h2><table class="widefat striped" style="max-width:60em"><tbody>';
		foreach ( $sales['rows'] as $row ) {
			echo '<tr><th scope="row">' . esc_html( $row[0] ) . '</th><td>' . esc_html( $row[1] ) . '</td></tr>';
		}
		echo '</tbody></table>';
		if ( $sales['refused'] ) {
			echo '<p>' . esc_html__( 'Refused by the shop (the newest):', 'stock-relay' ) . '</p><ul style="list-style:disc;margin-left:2em">';
			foreach ( $sales['refused'] as $line ) {
				echo '<li>' . esc_html( $line ) . '</li>';
			}
			echo '</ul>';
		}
	}

	/**
	 * "Oversold": the last days' incidents, newest first, with the shop's quantity now and what to do. When the
	 * relay counts more than one, its audit log (audit.query, action oversold) lists them; else the newest alone.
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @param array<string, mixed> $body     The relay's status answer.
	 */
	private static function render_oversold( array $settings, array $body ): void {
		$oversold = $body['oversold'] ?? null;
		if ( ! is_array( $oversold ) ) {
			return;
		}
		$entries = null;
		if ( is_numeric( $oversold['incidents'] ?? null ) && (int) $oversold['incidents'] > 1 ) {
			$days  = is_numeric( $oversold['days'] ?? null ) ? (int) $oversold['days'] : 7;
			$query = array( 'type' => 'audit.query', 'site' => $settings['site'], 'action' => 'oversold', 'since' => time() - 86400 * $days, 'limit' => 50 );
			$audit = Stock_Relay_Delivery::post( $settings, 'audit', (string) stock_relay_json( $query ) );
			$entries = 200 === $audit['status'] && is_array( $audit['body']['entries'] ?? null ) ? $audit['body']['entries'] : null;
		}
		$stock = array();
		foreach ( array_merge( (array) ( $entries ?? array() ), array( $oversold['newest'] ?? null ) ) as $incident ) {
			$sku = is_array( $incident ) && is_string( $incident['sku'] ?? null ) ? $incident['sku'] : '';
			if ( '' !== $sku && ! array_key_exists( $sku, $stock ) && function_exists( 'wc_get_product_id_by_sku' ) ) {
				$product       = wc_get_product( wc_get_product_id_by_sku( $sku ) );
				$stock[ $sku ] = $product && $product->managing_stock() ? (int) $product->get_stock_quantity() : null;
			}
		}
		$view = Stock_Relay_Status_View::oversold( $body, $entries, $stock );
		if ( null === $view ) {
			return;
		}
		echo '<h2 id="stock-relay-oversold">' . esc_html__( 'Oversold', 'stock-relay' ) . '</h2><p>' . esc_html( $view['summary'] ) . '</p>';
		if ( ! $view['rows'] ) {
			return;
		}
		echo '<table class="widefat striped" style="max-width:60em"><thead><tr>';
		foreach ( array( __( 'When', 'stock-relay' ), __( 'SKU', 'stock-relay' ), __( 'Channels and orders', 'stock-relay' ), __( 'Shop stock now', 'stock-relay' ) ) as $head ) {
			echo '<th>' . esc_html( $head ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $view['rows'] as $row ) {
			echo '<tr>';
			foreach ( $row as $cell ) {
				echo '<td>' . implode( '<br>', array_map( 'esc_html', (array) $cell ) ) . '</td>';
			}
			echo '</tr>';
		}
		echo '</tbody></table><p>' . esc_html( $view['advice'] ) . '</p>';
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

	/** Buttons: test connection, resend everything, replay dead letters, retry or clear refused changes. */
	private static function render_actions(): void {
		echo '<p>';
		$actions = array(
			'ping'           => __( 'Test connection', 'stock-relay' ),
			'resend'         => __( 'Resend everything', 'stock-relay' ),
			'replay_dead'    => __( 'Replay dead letters', 'stock-relay' ),
			'retry_rejected' => __( 'Queue refused changes again', 'stock-relay' ),
			'clear_rejected' => __( 'Remove refused changes', 'stock-relay' ),
		);
		foreach ( $actions as $action => $label ) {
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:1em"><input type="hidden" name="action" value="' . esc_attr( 'stock_relay_' . $action ) . '">';
			wp_nonce_field( 'stock_relay_' . $action );
			submit_button( $label, 'secondary', 'submit', false );
			echo '</form>';
		}
		echo '</p>';
	}
}
