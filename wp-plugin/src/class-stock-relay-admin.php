<?php
/**
 * The settings and status page under WooCommerce, and its actions (each checks capability and nonce first).
 *
 * @package StockRelay
 */

declare(strict_types=1);

/**
 * WooCommerce › Stock Relay.
 */
final class Stock_Relay_Admin {

	public const CAP         = 'manage_woocommerce';
	public const SLUG        = 'stock-relay';
	public const RESEND_HOOK = 'stock_relay_resend_chunk';
	public const RESEND_SIZE = 500;

	/** Hook in. */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
		foreach ( array( 'save', 'ping', 'resend' ) as $action ) {
			add_action( 'admin_post_stock_relay_' . $action, array( self::class, 'handle_' . $action ) );
		}
	}

	/** The menu entry. */
	public static function menu(): void {
		add_submenu_page( 'woocommerce', __( 'Stock Relay', 'stock-relay' ), __( 'Stock Relay', 'stock-relay' ), self::CAP, self::SLUG, array( self::class, 'render' ) );
	}

	/** Save the settings. */
	public static function handle_save(): void {
		self::guard( 'stock_relay_save' );
		$errors = array();
		// phpcs:disable WordPress.Security.NonceVerification.Missing -- verified in guard().
		list( $url, $error ) = Stock_Relay_Settings_Sanitizer::relay_url( sanitize_text_field( wp_unslash( $_POST['stock_relay_url'] ?? '' ) ) );
		$errors[]            = $error;
		if ( '' === $error ) {
			update_option( 'stock_relay_url', $url, false );
		}
		list( $site, $error ) = Stock_Relay_Settings_Sanitizer::site_id( sanitize_text_field( wp_unslash( $_POST['stock_relay_site'] ?? '' ) ) );
		$errors[]             = $error;
		if ( '' === $error ) {
			update_option( 'stock_relay_site', $site, false );
		}
		if ( ! Stock_Relay_Plugin::settings()['secret_from_constant'] ) {
			list( $secret, $error ) = Stock_Relay_Settings_Sanitizer::secret( trim( wp_unslash( (string) ( $_POST['stock_relay_secret'] ?? '' ) ) ) ); // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- validated as a whsec_ secret; sanitize_text_field would alter base64.
			$errors[]               = $error;
			if ( null !== $secret ) {
				update_option( 'stock_relay_secret', $secret, false ); // Not autoloaded.
			}
		}
		// phpcs:enable
		self::back( array( 'notice' => implode( ' ', array_filter( $errors ) ) ?: __( 'Settings saved.', 'stock-relay' ) ) );
	}

	/** Test connection: a signed ping. */
	public static function handle_ping(): void {
		self::guard( 'stock_relay_ping' );
		$settings = Stock_Relay_Plugin::settings();
		$sent     = time();
		$answer   = Stock_Relay_Delivery::post( $settings, 'ping', (string) stock_relay_json( array( 'type' => 'ping', 'site' => $settings['site'] ) ) );
		if ( 200 === $answer['status'] ) {
			$skew     = isset( $answer['body']['server_time'] ) ? strtotime( (string) $answer['body']['server_time'] ) - $sent : 0;
			$channels = implode( ', ', array_map( static fn( $c ) => (string) ( $c['name'] ?? '' ), (array) ( $answer['body']['channels'] ?? array() ) ) );
			/* translators: 1: relay version, 2: clock skew in seconds, 3: channel names */
			$notice = sprintf( __( 'Connected. Relay %1$s, clock difference %2$d s, channels: %3$s.', 'stock-relay' ), (string) ( $answer['body']['relay_version'] ?? '?' ), $skew, '' !== $channels ? $channels : '—' );
		} else {
			$notice = Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
		}
		self::back( array( 'notice' => $notice ) );
	}

	/** Resend everything: queue the current state of every product with a SKU, in chunks. */
	public static function handle_resend(): void {
		self::guard( 'stock_relay_resend' );
		update_option( 'stock_relay_resend', array( 'after_id' => 0, 'queued' => 0, 'total' => self::count_with_sku(), 'started' => time() ), false );
		self::queue_resend_chunk( 0 );
		self::back( array( 'notice' => __( 'Resending: progress is shown below.', 'stock-relay' ) ) );
	}

	/** Queue the next chunk of a resend (Action Scheduler, else WP-Cron). */
	private static function queue_resend_chunk( int $after_id ): void {
		if ( function_exists( 'as_enqueue_async_action' ) ) {
			as_enqueue_async_action( self::RESEND_HOOK, array( $after_id ), 'stock-relay' );
		} else {
			wp_schedule_single_event( time(), self::RESEND_HOOK, array( $after_id ) );
		}
	}

	/** Product and variation ids with a SKU, in id order: one query, no product objects. */
	private static function ids_with_sku( int $after_id, int $limit ): array {
		global $wpdb;
		return array_map(
			'intval',
			$wpdb->get_col(
				$wpdb->prepare(
					"SELECT p.ID FROM {$wpdb->posts} p INNER JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku' AND m.meta_value <> ''
					 WHERE p.post_type IN ('product', 'product_variation') AND p.post_status NOT IN ('trash', 'auto-draft') AND p.ID > %d ORDER BY p.ID LIMIT %d",
					$after_id,
					$limit
				)
			)
		);
	}

	/** How many products a resend will cover. */
	private static function count_with_sku(): int {
		global $wpdb;
		return (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$wpdb->posts} p INNER JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku' AND m.meta_value <> '' WHERE p.post_type IN ('product', 'product_variation') AND p.post_status NOT IN ('trash', 'auto-draft')" );
	}

	/**
	 * One chunk of a resend: queue these products' current state, then the next chunk.
	 *
	 * @param mixed $after_id Last id of the previous chunk.
	 */
	public static function resend_chunk( $after_id ): void {
		$ids = self::ids_with_sku( (int) $after_id, self::RESEND_SIZE );
		foreach ( $ids as $id ) {
			$product = wc_get_product( $id );
			if ( is_object( $product ) ) {
				$state = Stock_Relay_Capture::read( $product );
				$event = Stock_Relay_Payload::event( $state, Stock_Relay_Outbox::next_version( (int) $state['product_id'] ), array( 'kind' => 'admin' ), Stock_Relay_Signer::new_id( 'evt_' ), microtime( true ) );
				Stock_Relay_Outbox::add( $event );
			}
		}
		$progress             = (array) get_option( 'stock_relay_resend', array() );
		$progress['queued']   = (int) ( $progress['queued'] ?? 0 ) + count( $ids );
		$progress['after_id'] = $ids ? end( $ids ) : (int) $after_id;
		$progress['done']     = count( $ids ) < self::RESEND_SIZE;
		update_option( 'stock_relay_resend', $progress, false );
		if ( ! $progress['done'] ) {
			self::queue_resend_chunk( (int) $progress['after_id'] );
		}
		Stock_Relay_Delivery::schedule( 0 );
	}

	/**
	 * Capability and nonce, first thing in every action.
	 *
	 * @param string $action Nonce action.
	 */
	private static function guard( string $action ): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), 403 );
		}
		check_admin_referer( $action );
	}

	/**
	 * Back to the page with a notice.
	 *
	 * @param array<string, string> $args Query args.
	 */
	private static function back( array $args ): void {
		set_transient( 'stock_relay_notice_' . get_current_user_id(), $args['notice'], 60 );
		wp_safe_redirect( admin_url( 'admin.php?page=' . self::SLUG ) );
		exit;
	}

	/** The page: settings, status panel, actions. */
	public static function render(): void {
		if ( ! current_user_can( self::CAP ) ) {
			return;
		}
		$settings = Stock_Relay_Plugin::settings();
		$stats    = Stock_Relay_Outbox::stats();
		$state    = Stock_Relay_Delivery::state();
		$notice   = get_transient( 'stock_relay_notice_' . get_current_user_id() );
		delete_transient( 'stock_relay_notice_' . get_current_user_id() );
		$resend = (array) get_option( 'stock_relay_resend', array() );
		echo '<div class="wrap"><h1>' . esc_html__( 'Stock Relay', 'stock-relay' ) . '</h1>';
		if ( $notice ) {
			echo '<div class="notice notice-info"><p>' . esc_html( (string) $notice ) . '</p></div>';
		}
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '"><input type="hidden" name="action" value="stock_relay_save">';
		wp_nonce_field( 'stock_relay_save' );
		echo '<table class="form-table">';
		echo '<tr><th><label for="stock_relay_url">' . esc_html__( 'Relay URL', 'stock-relay' ) . '</label></th><td><input class="regular-text" type="url" id="stock_relay_url" name="stock_relay_url" value="' . esc_attr( $settings['url'] ) . '" placeholder="https://relay.example.com"></td></tr>';
		echo '<tr><th><label for="stock_relay_site">' . esc_html__( 'Site id', 'stock-relay' ) . '</label></th><td><input type="text" id="stock_relay_site" name="stock_relay_site" value="' . esc_attr( $settings['site'] ) . '" pattern="[a-z0-9-]{1,64}"></td></tr>';
		echo '<tr><th><label for="stock_relay_secret">' . esc_html__( 'Secret', 'stock-relay' ) . '</label></th><td>';
		if ( $settings['secret_from_constant'] ) {
			echo '<em>' . esc_html__( 'Set in wp-config.php (STOCK_RELAY_SECRET); change it there.', 'stock-relay' ) . '</em>';
		} else {
			$hint = '' !== $settings['secret'] ? __( 'A secret is saved. Leave empty to keep it.', 'stock-relay' ) : __( 'Paste the whsec_ secret from the relay.', 'stock-relay' );
			echo '<input class="regular-text" type="password" id="stock_relay_secret" name="stock_relay_secret" value="" autocomplete="off"><p class="description">' . esc_html( $hint ) . '</p>';
		}
		echo '</td></tr></table>';
		submit_button( __( 'Save settings', 'stock-relay' ) );
		echo '</form>';

		echo '<h2>' . esc_html__( 'Status', 'stock-relay' ) . '</h2><table class="widefat striped" style="max-width:50em"><tbody>';
		$rows = array(
			__( 'Changes waiting to be sent', 'stock-relay' ) => (string) $stats['pending'],
			__( 'Oldest waiting change', 'stock-relay' )      => null === $stats['oldest'] ? '—' : human_time_diff( $stats['oldest'] ) . ' ' . __( 'ago', 'stock-relay' ),
			__( 'Last successful delivery', 'stock-relay' )   => $state['last_success'] ? human_time_diff( (int) $state['last_success'] ) . ' ' . __( 'ago', 'stock-relay' ) : __( 'never', 'stock-relay' ),
			__( 'Last error', 'stock-relay' )                 => '' !== $state['last_error'] ? $state['last_error'] : '—',
			__( 'Next retry', 'stock-relay' )                 => (int) $state['next_attempt_at'] > time() ? human_time_diff( (int) $state['next_attempt_at'] ) : '—',
			__( 'Changes the relay refused', 'stock-relay' )  => (string) $stats['rejected'],
		);
		if ( $resend ) {
			/* translators: 1: products queued, 2: products in total */
			$rows[ __( 'Resend everything', 'stock-relay' ) ] = sprintf( __( '%1$d of %2$d products queued', 'stock-relay' ), (int) ( $resend['queued'] ?? 0 ), (int) ( $resend['total'] ?? 0 ) ) . ( empty( $resend['done'] ) ? '…' : ' ✓' );
		}
		foreach ( $rows as $label => $value ) {
			echo '<tr><th>' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>';
		}
		echo '</tbody></table>';
		self::render_relay_status( $settings );
		foreach ( Stock_Relay_Outbox::rejected() as $row ) {
			echo '<p><code>' . esc_html( (string) $row['event_id'] ) . '</code> ' . esc_html( (string) $row['last_error'] ) . '</p>';
		}
		foreach ( array( 'ping' => __( 'Test connection', 'stock-relay' ), 'resend' => __( 'Resend everything', 'stock-relay' ) ) as $action => $label ) {
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline-block;margin-right:1em"><input type="hidden" name="action" value="stock_relay_' . esc_attr( $action ) . '">';
			wp_nonce_field( 'stock_relay_' . $action );
			submit_button( $label, 'secondary', 'submit', false );
			echo '</form>';
		}
		echo '</div>';
	}

	/**
	 * The relay's own view (signed status.query); degrades to a sentence while the relay has no status endpoint.
	 *
	 * @param array<string, string> $settings Settings.
	 */
	private static function render_relay_status( array $settings ): void {
		if ( '' === $settings['url'] || '' === $settings['secret'] ) {
			return;
		}
		$answer = Stock_Relay_Delivery::post( $settings, 'status', (string) stock_relay_json( array( 'type' => 'status.query', 'site' => $settings['site'] ) ) );
		echo '<h2>' . esc_html__( 'Channels (from the relay)', 'stock-relay' ) . '</h2>';
		if ( 200 !== $answer['status'] || empty( $answer['body']['channels'] ) ) {
			$text = 404 === $answer['status'] ? __( 'This relay version does not report channel health yet.', 'stock-relay' ) : Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'] );
			echo '<p>' . esc_html( $text ) . '</p>';
			return;
		}
		echo '<table class="widefat striped" style="max-width:50em"><thead><tr><th>' . esc_html__( 'Channel', 'stock-relay' ) . '</th><th>' . esc_html__( 'Pending', 'stock-relay' ) . '</th><th>' . esc_html__( 'Dead letters', 'stock-relay' ) . '</th><th>' . esc_html__( 'Circuit', 'stock-relay' ) . '</th></tr></thead><tbody>';
		foreach ( (array) $answer['body']['channels'] as $channel ) {
			echo '<tr><td>' . esc_html( (string) ( $channel['name'] ?? '' ) ) . '</td><td>' . esc_html( (string) ( $channel['pending'] ?? '' ) ) . '</td><td>' . esc_html( (string) ( $channel['dead_letters'] ?? '' ) ) . '</td><td>' . esc_html( (string) ( $channel['circuit'] ?? '' ) ) . '</td></tr>';
		}
		echo '</tbody></table>';
	}
}
