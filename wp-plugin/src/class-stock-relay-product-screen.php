<?php
/**
 * Per product (issue 17 item 2): the "Sync" column of Products › All Products, the "Stock Relay" box of the product
 * edit screen (the product and each of its variations), "Sync this product now" as a row action, a box button and a
 * bulk action, with a notice of the outcome. The relay's data loads afterwards through Stock_Relay_Console_Route.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Syncing a product resends its current stock (and its variations') through the outbox, like Resend everything for
 * a few ids: durable, signed and in order with every other change, whether or not the relay answers right now.
 */
final class Stock_Relay_Product_Screen {

	public const COLUMN       = 'stock_relay';
	public const SYNC_ACTION  = 'stock_relay_sync_product';
	public const BULK_ACTION  = 'stock_relay_sync';
	public const NOTICE       = 'stock_relay_sync_notice_'; // + user id: the outcome of the last sync, shown once.
	public const SCRIPT       = 'stock-relay-console';
	public const MAX_SKUS     = 100; // product.query's limit: one relay request per page of the list.
	public const MAX_LINEAGES = 10;  // Lineage asks once per SKU: a variable product's first ten.

	/** Hook in (admin requests only). */
	public static function register(): void {
		add_filter( 'manage_edit-product_columns', array( self::class, 'columns' ), 20 );
		add_action( 'manage_product_posts_custom_column', array( self::class, 'column' ), 10, 2 );
		add_filter( 'post_row_actions', array( self::class, 'row_actions' ), 10, 2 );
		add_filter( 'bulk_actions-edit-product', array( self::class, 'bulk_actions' ) );
		add_filter( 'handle_bulk_actions-edit-product', array( self::class, 'handle_bulk' ), 10, 3 );
		add_action( 'admin_post_' . self::SYNC_ACTION, array( self::class, 'handle_sync' ) );
		add_action( 'add_meta_boxes_product', array( self::class, 'meta_box' ), 10, 0 );
		add_action( 'admin_notices', array( self::class, 'notice' ) );
		add_action( 'admin_enqueue_scripts', array( self::class, 'enqueue' ) );
	}

	/** May this user see and use the console. */
	private static function allowed(): bool {
		return current_user_can( Stock_Relay_Admin::CAP );
	}

	/**
	 * The "Sync" column.
	 *
	 * @param array<string, string> $columns The list's columns.
	 * @return array<string, string>
	 */
	public static function columns( array $columns ): array {
		if ( self::allowed() ) {
			$columns[ self::COLUMN ] = __( 'Sync', 'stock-relay' );
		}
		return $columns;
	}

	/**
	 * A cell: a loading state the page's script replaces (one request for the whole page).
	 *
	 * @param string $column  Column name.
	 * @param int    $post_id Product id.
	 */
	public static function column( string $column, int $post_id ): void {
		if ( self::COLUMN !== $column ) {
			return;
		}
		echo '<div class="stock-relay-sync" data-product="' . esc_attr( (string) $post_id ) . '" aria-live="polite"><span class="spinner is-active" style="float:none;margin:0 .3em 0 0"></span>' . esc_html__( 'Loading…', 'stock-relay' ) . '</div>';
	}

	/**
	 * "Sync this product now" and "Lineage" under a product's name.
	 *
	 * @param array<string, string> $actions The row's actions.
	 * @param WP_Post               $post    The product.
	 * @return array<string, string>
	 */
	public static function row_actions( array $actions, $post ): array {
		if ( ! $post instanceof WP_Post || 'product' !== $post->post_type || 'trash' === $post->post_status || ! self::allowed() ) {
			return $actions;
		}
		$actions['stock_relay_sync']    = '<a href="' . esc_url( self::sync_url( $post->ID ) ) . '">' . esc_html__( 'Sync this product now', 'stock-relay' ) . '</a>';
		$actions['stock_relay_lineage'] = '<a href="' . esc_url( Stock_Relay_Lineage_Page::url( $post->ID ) ) . '">' . esc_html__( 'Lineage', 'stock-relay' ) . '</a>';
		return $actions;
	}

	/**
	 * The signed-in link that syncs one product (admin-post, with a nonce for this product).
	 *
	 * @param int $product_id Product id.
	 */
	public static function sync_url( int $product_id ): string {
		return wp_nonce_url( admin_url( 'admin-post.php?action=' . self::SYNC_ACTION . '&product=' . $product_id ), self::SYNC_ACTION . '_' . $product_id );
	}

	/**
	 * "Sync with Stock Relay" in the list's bulk actions.
	 *
	 * @param array<string, string> $actions Bulk actions.
	 * @return array<string, string>
	 */
	public static function bulk_actions( array $actions ): array {
		if ( self::allowed() ) {
			$actions[ self::BULK_ACTION ] = __( 'Sync with Stock Relay', 'stock-relay' );
		}
		return $actions;
	}

	/**
	 * The bulk action (edit.php has checked its bulk-posts nonce): sync the selection, back to the list.
	 *
	 * @param string $redirect Where the list goes next.
	 * @param string $action   The chosen bulk action.
	 * @param int[]  $post_ids The selection.
	 */
	public static function handle_bulk( $redirect, string $action, array $post_ids ): string {
		if ( self::BULK_ACTION !== $action ) {
			return (string) $redirect;
		}
		if ( ! self::allowed() ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), '', array( 'response' => 403 ) );
		}
		self::remember( self::sync( array_map( 'intval', $post_ids ) ) );
		return (string) $redirect;
	}

	/** "Sync this product now" (row action and box button): capability and this product's nonce first. */
	public static function handle_sync(): void {
		$product_id = isset( $_GET['product'] ) ? absint( wp_unslash( $_GET['product'] ) ) : 0; // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- the nonce names the product: checked next.
		if ( ! self::allowed() ) {
			wp_die( esc_html__( 'You are not allowed to manage Stock Relay.', 'stock-relay' ), '', array( 'response' => 403 ) );
		}
		check_admin_referer( self::SYNC_ACTION . '_' . $product_id );
		self::remember( self::sync( array( $product_id ) ) );
		wp_safe_redirect( wp_get_referer() ? wp_get_referer() : admin_url( 'edit.php?post_type=product' ) );
		exit;
	}

	/**
	 * Queue the current stock of these products and their variations in the outbox and wake the drain.
	 *
	 * @param int[] $product_ids Products (a variation is synced with its product).
	 * @return array{type: string, message: string}
	 */
	public static function sync( array $product_ids ): array {
		$ids = array();
		foreach ( self::items( $product_ids ) as $list ) {
			foreach ( $list as $item ) {
				$ids[] = $item['id'];
			}
		}
		if ( ! $ids ) {
			return array(
				'type'    => 'error',
				'message' => __( 'Nothing was synced: the chosen products no longer exist.', 'stock-relay' ),
			);
		}
		Stock_Relay_Resend::queue( $ids );
		Stock_Relay_Kick::request_drain();
		if ( ! Stock_Relay_Admin::configured( Stock_Relay_Plugin::settings() ) ) {
			return array(
				'type'    => 'warning',
				'message' => __( 'The current stock is queued, but Stock Relay is not set up yet: it is sent once the relay URL, the site id and the secret are saved.', 'stock-relay' ),
			);
		}
		$products = count( array_unique( array_filter( $product_ids ) ) );
		return array(
			'type'    => 'success',
			'message' => sprintf(
				/* translators: 1: number of products, 2: number of products and variations */
				_n( 'Syncing %1$d product with Stock Relay (%2$d with its variations): its current stock is queued and is being sent now.', 'Syncing %1$d products with Stock Relay (%2$d with their variations): their current stock is queued and is being sent now.', $products, 'stock-relay' ),
				$products,
				count( $ids )
			),
		);
	}

	/**
	 * Keep a sync's outcome for the next screen this user sees.
	 *
	 * @param array{type: string, message: string} $outcome The outcome.
	 */
	private static function remember( array $outcome ): void {
		set_transient( self::NOTICE . get_current_user_id(), $outcome, 300 );
	}

	/** The outcome of the last sync, once, on the Products list or a product screen. */
	public static function notice(): void {
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( ! $screen || 'product' !== $screen->post_type || ! self::allowed() ) {
			return;
		}
		$outcome = get_transient( self::NOTICE . get_current_user_id() );
		if ( ! is_array( $outcome ) || ! is_string( $outcome['message'] ?? null ) ) {
			return;
		}
		delete_transient( self::NOTICE . get_current_user_id() );
		$type = in_array( $outcome['type'] ?? '', array( 'success', 'warning', 'error' ), true ) ? $outcome['type'] : 'info';
		echo '<div class="' . esc_attr( 'notice is-dismissible notice-' . $type ) . '" id="stock-relay-sync-notice"><p>' . esc_html( $outcome['message'] ) . '</p></div>';
	}

	/** The box on the product edit screen (the hook's post is not needed: render_box() gets it). */
	public static function meta_box(): void {
		if ( self::allowed() ) {
			add_meta_box( 'stock-relay-product', __( 'Stock Relay', 'stock-relay' ), array( self::class, 'render_box' ), 'product', 'normal', 'default' );
		}
	}

	/**
	 * The box: a loading state the script replaces, and the actions (links: this box is inside the post's form).
	 *
	 * @param WP_Post $post The product.
	 */
	public static function render_box( $post ): void {
		$id = (int) $post->ID;
		echo '<div class="stock-relay-box" data-product="' . esc_attr( (string) $id ) . '" aria-live="polite" aria-busy="true"><p><span class="spinner is-active" style="float:none;margin:0 .5em 0 0"></span>' . esc_html__( 'Asking the relay…', 'stock-relay' ) . '</p>'
			. '<noscript><p>' . esc_html__( 'The relay\'s view of this product is loaded with JavaScript; turn it on to see it here.', 'stock-relay' ) . '</p></noscript></div>';
		if ( 'auto-draft' !== $post->post_status ) {
			echo '<p><a class="button" id="stock-relay-sync-now" href="' . esc_url( self::sync_url( $id ) ) . '">' . esc_html__( 'Sync this product now', 'stock-relay' ) . '</a> <a href="' . esc_url( Stock_Relay_Lineage_Page::url( $id ) ) . '">' . esc_html__( 'Lineage: from the shop\'s change to each channel\'s answer', 'stock-relay' ) . '</a></p>';
		}
	}

	/**
	 * The items of each product: the product, then its variations (not trashed), each with its own SKU ('edit' value,
	 * as the plugin sends it) and a label. Two queries for a whole page.
	 *
	 * @param int[] $product_ids Product ids.
	 * @return array<int, array<int, array{id: int, sku: string, label: string, variation: bool}>> product id => items.
	 */
	public static function items( array $product_ids ): array {
		global $wpdb;
		$product_ids = array_values( array_unique( array_filter( array_map( 'intval', $product_ids ) ) ) );
		if ( ! $product_ids ) {
			return array();
		}
		$in = implode( ',', $product_ids );
		// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared, WordPress.DB.DirectDatabaseQuery -- ids cast to int; one query for a page instead of a product object per row.
		$posts = (array) $wpdb->get_results(
			"SELECT p.ID, p.post_parent, p.post_type, p.post_title, m.meta_value AS sku FROM {$wpdb->posts} p LEFT JOIN {$wpdb->postmeta} m ON m.post_id = p.ID AND m.meta_key = '_sku'
			 WHERE ( p.ID IN ({$in}) AND p.post_type = 'product' ) OR ( p.post_parent IN ({$in}) AND p.post_type = 'product_variation' AND p.post_status NOT IN ('trash', 'auto-draft') )
			 ORDER BY p.ID",
			ARRAY_A
		);
		// phpcs:enable
		$out = array();
		foreach ( $posts as $post ) {
			if ( 'product' === $post['post_type'] ) {
				$out[ (int) $post['ID'] ] = array(
					array(
						'id'        => (int) $post['ID'],
						'sku'       => (string) $post['sku'],
						'label'     => (string) $post['post_title'],
						'variation' => false,
					),
				);
			}
		}
		foreach ( $posts as $post ) {
			if ( 'product_variation' === $post['post_type'] && isset( $out[ (int) $post['post_parent'] ] ) ) {
				$out[ (int) $post['post_parent'] ][] = array(
					'id'        => (int) $post['ID'],
					'sku'       => (string) $post['sku'],
					'label'     => (string) $post['post_title'],
					'variation' => true,
				);
			}
		}
		return $out;
	}

	/**
	 * The Sync cell of one product: per SKU (its variations' too), a line per channel, errors first.
	 *
	 * @param array<int, array{id: int, sku: string, label: string, variation: bool}> $items  The product's items.
	 * @param array<string, array<string, mixed>>                                     $by_sku product.query's entries by SKU.
	 * @param string                                                                  $error  Why the relay did not answer, or ''.
	 */
	public static function render_cell( array $items, array $by_sku, string $error ): void {
		if ( '' !== $error ) {
			echo '<span class="stock-relay-level-error">' . esc_html( $error ) . '</span>';
			return;
		}
		$shown = 0;
		foreach ( $items as $item ) {
			if ( '' === $item['sku'] && $item['variation'] ) {
				continue; // A variation without its own SKU is sent with none: nothing to look up.
			}
			if ( $shown >= 5 ) {
				/* translators: %d: a count */
				echo '<div>' . esc_html( sprintf( __( 'and %d more: see the product', 'stock-relay' ), count( $items ) - $shown ) ) . '</div>';
				break;
			}
			++$shown;
			$prefix = count( $items ) > 1 ? $item['sku'] . ': ' : '';
			if ( '' === $item['sku'] ) {
				echo '<div>' . esc_html( $prefix . __( 'No SKU: the relay keys products by SKU.', 'stock-relay' ) ) . '</div>';
				continue;
			}
			if ( ! isset( $by_sku[ $item['sku'] ] ) ) {
				echo '<div>' . esc_html( $prefix . __( 'Not received by the relay yet', 'stock-relay' ) ) . '</div>';
				continue;
			}
			foreach ( Stock_Relay_Console_View::product_lines( $by_sku[ $item['sku'] ], time() ) as $line ) {
				$extra = 'error' === $line['level'] && $line['detail'] ? ' — ' . $line['detail'][0] : '';
				echo '<div class="' . esc_attr( 'stock-relay-level-' . $line['level'] ) . '">' . esc_html( $prefix ) . '<strong>' . esc_html( $line['channel'] ) . '</strong>: ' . esc_html( $line['state'] . $extra ) . '</div>';
			}
		}
		if ( 0 === $shown ) {
			echo '<div>' . esc_html__( 'No SKU: the relay keys products by SKU.', 'stock-relay' ) . '</div>';
		}
	}

	/**
	 * The box's tables: per SKU, each channel with what was confirmed, when, what waits and any error, errors first.
	 *
	 * @param array<int, array{id: int, sku: string, label: string, variation: bool}> $items  The product's items.
	 * @param array<string, array<string, mixed>>                                     $by_sku product.query's entries by SKU.
	 * @param string                                                                  $error  Why the relay did not answer, or ''.
	 */
	public static function render_box_table( array $items, array $by_sku, string $error ): void {
		if ( '' !== $error ) {
			echo '<div class="notice notice-error inline"><p>' . esc_html( $error ) . '</p></div>';
			return;
		}
		foreach ( $items as $item ) {
			$title = $item['variation']
				/* translators: 1: variation name, 2: SKU */
				? sprintf( __( 'Variation %1$s (SKU %2$s)', 'stock-relay' ), $item['label'], '' !== $item['sku'] ? $item['sku'] : '—' )
				/* translators: %s: SKU */
				: sprintf( __( 'SKU %s', 'stock-relay' ), '' !== $item['sku'] ? $item['sku'] : '—' );
			echo '<h4 style="margin:1em 0 .3em">' . esc_html( $title ) . '</h4>';
			if ( '' === $item['sku'] ) {
				echo '<p>' . esc_html__( 'No SKU: the relay keys products by SKU, so it cannot show this one per channel.', 'stock-relay' ) . '</p>';
				continue;
			}
			if ( ! isset( $by_sku[ $item['sku'] ] ) ) {
				echo '<p>' . esc_html__( 'The relay has not received this SKU yet: no change of it reached the relay. "Sync this product now" sends it.', 'stock-relay' ) . '</p>';
				continue;
			}
			$lines = Stock_Relay_Console_View::product_lines( $by_sku[ $item['sku'] ], time() );
			if ( ! $lines ) {
				echo '<p>' . esc_html__( 'The relay has no channel for this site.', 'stock-relay' ) . '</p>';
				continue;
			}
			echo '<table class="widefat striped"><thead><tr><th>' . esc_html__( 'Channel', 'stock-relay' ) . '</th><th>' . esc_html__( 'State', 'stock-relay' ) . '</th><th>' . esc_html__( 'Details', 'stock-relay' ) . '</th></tr></thead><tbody>';
			foreach ( $lines as $line ) {
				echo '<tr class="' . esc_attr( 'stock-relay-level-' . $line['level'] ) . '"><td>' . esc_html( $line['channel'] ) . '</td><td>' . esc_html( $line['state'] ) . '</td><td>' . implode( '<br>', array_map( 'esc_html', $line['detail'] ) ) . '</td></tr>';
			}
			echo '</tbody></table>';
		}
	}

	/**
	 * The lineage of one SKU, as the lineage page shows it.
	 *
	 * @param array{id: int, sku: string, label: string, variation: bool}                                          $item   The item.
	 * @param array{status: int, code: string, message: string, body: array<string, mixed>, retry_after: int|null} $answer The relay's answer.
	 */
	public static function render_lineage( array $item, array $answer ): void {
		/* translators: %s: SKU */
		echo '<h2>' . esc_html( sprintf( __( 'SKU %s', 'stock-relay' ), $item['sku'] ) ) . '</h2>';
		if ( 200 !== $answer['status'] ) {
			echo '<div class="notice notice-error inline"><p>' . esc_html( Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ) ) . '</p></div>';
			return;
		}
		$view = Stock_Relay_Console_View::lineage( $answer['body'], time() );
		if ( ! $view['now'] && ! $view['events'] ) {
			echo '<p>' . esc_html__( 'The relay has no record of this SKU yet.', 'stock-relay' ) . '</p>';
			return;
		}
		echo '<h3>' . esc_html__( 'Where each channel stands', 'stock-relay' ) . '</h3><ul style="list-style:disc;margin-left:2em">';
		foreach ( $view['now'] as $line ) {
			echo '<li>' . esc_html( $line ) . '</li>';
		}
		echo '</ul><h3>' . esc_html__( 'The shop\'s changes, newest first', 'stock-relay' ) . '</h3><ol class="stock-relay-lineage-events">';
		foreach ( $view['events'] as $event ) {
			echo '<li><strong>' . esc_html( $event['title'] ) . '</strong>';
			if ( $event['steps'] ) {
				echo '<ul style="list-style:circle;margin-left:2em">';
				foreach ( $event['steps'] as $step ) {
					echo '<li>' . esc_html( $step ) . '</li>';
				}
				echo '</ul>';
			}
			echo '</li>';
		}
		echo '</ol>';
	}

	/**
	 * The console script, on the Products list, the product screens and the console's own pages only.
	 *
	 * @param string $hook_suffix The current admin screen.
	 */
	public static function enqueue( string $hook_suffix ): void {
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		$ours   = $screen && 'product' === $screen->post_type && in_array( $screen->base, array( 'edit', 'post' ), true );
		if ( ! self::allowed() || ! ( $ours || in_array( $hook_suffix, array( Stock_Relay_Dead_Letters_Page::$hook, Stock_Relay_Lineage_Page::$hook ), true ) ) ) {
			return;
		}
		wp_enqueue_script( self::SCRIPT, plugins_url( 'assets/console.js', STOCK_RELAY_FILE ), array(), STOCK_RELAY_VERSION, true );
		$config = array(
			'root'  => esc_url_raw( rest_url( Stock_Relay_Status_Route::NS . '/' ) ),
			'nonce' => wp_create_nonce( 'wp_rest' ),
			'text'  => array(
				'loading'  => __( 'Asking the relay…', 'stock-relay' ),
				/* translators: %s: the reason, such as "HTTP 403" or a network error */
				'failed'   => __( 'Could not be loaded from this site (%s). Reload the page to try again.', 'stock-relay' ),
				'retrying' => __( 'Asking the relay to retry…', 'stock-relay' ),
				'none'     => __( 'Tick at least one dead letter first.', 'stock-relay' ),
			),
		);
		wp_add_inline_script( self::SCRIPT, 'var stockRelayConsole = ' . wp_json_encode( $config ) . ';', 'before' );
	}
}
