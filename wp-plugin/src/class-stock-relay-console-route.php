<?php
/**
 * The console's REST routes (issue 17 items 2 and 3): the Products list's Sync column and the product box
 * (stock-relay/v1/products), a product's lineage (/lineage), the dead-letter list (/dead) and its retry
 * (/dead/retry). The screens render without asking the relay; assets/console.js calls these and shows a loading
 * state meanwhile, so no admin page waits for the relay.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Same guard as the status route: the logged-in user's cookie with a `wp_rest` nonce (X-WP-Nonce), and
 * manage_woocommerce. Every answer's `html` is escaped here; the script inserts it as is.
 */
final class Stock_Relay_Console_Route {

	/** A page of the dead-letter list. */
	public const DEAD_PAGE = 50;

	/** Register the routes (rest_api_init). */
	public static function register(): void {
		$routes = array(
			'/products'   => array(
				'GET',
				'products',
				array(
					'ids' => array(
						'type'     => 'string',
						'required' => true,
					),
				),
			),
			'/lineage'    => array(
				'GET',
				'lineage',
				array(
					'product' => array(
						'type'     => 'integer',
						'required' => true,
					),
				),
			),
			'/dead'       => array(
				'GET',
				'dead',
				array(
					'channel' => array(
						'type'    => 'string',
						'default' => '',
					),
					'cursor'  => array(
						'type'    => 'integer',
						'default' => 0,
					),
				),
			),
			'/dead/retry' => array(
				'POST',
				'dead_retry',
				array(
					'items' => array(
						'type'     => 'array',
						'required' => true,
					),
				),
			),
		);
		foreach ( $routes as $path => list( $method, $callback, $args ) ) {
			register_rest_route(
				Stock_Relay_Status_Route::NS,
				$path,
				array(
					'methods'             => $method,
					'callback'            => array( self::class, $callback ),
					'permission_callback' => array( Stock_Relay_Status_Route::class, 'allowed' ),
					'args'                => $args,
				)
			);
		}
	}

	/**
	 * The Sync cell (`columns`: product id => html) and, for one product, the box (`box`: html) of the products named
	 * by `ids` (comma-separated): one product.query for every SKU of the page, never one per row.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function products( WP_REST_Request $request ): WP_REST_Response {
		$ids = array_slice( array_values( array_unique( array_filter( array_map( 'intval', explode( ',', (string) $request->get_param( 'ids' ) ) ) ) ) ), 0, Stock_Relay_Product_Screen::MAX_SKUS );
		if ( ! $ids ) {
			return new WP_REST_Response( array( 'message' => __( 'Name at least one product.', 'stock-relay' ) ), 400 );
		}
		$items = Stock_Relay_Product_Screen::items( $ids );
		$skus  = array();
		foreach ( $items as $list ) {
			foreach ( $list as $item ) {
				if ( '' !== $item['sku'] ) {
					$skus[] = $item['sku'];
				}
			}
		}
		$skus     = array_slice( array_values( array_unique( $skus ) ), 0, Stock_Relay_Product_Screen::MAX_SKUS );
		$settings = Stock_Relay_Plugin::settings();
		$answer   = null;
		$error    = '';
		if ( ! Stock_Relay_Admin::configured( $settings ) ) {
			$error = __( 'Stock Relay is not set up yet.', 'stock-relay' );
		} elseif ( $skus ) {
			$answer = Stock_Relay_Delivery::post(
				$settings,
				'products',
				(string) stock_relay_json(
					array(
						'type' => 'product.query',
						'site' => $settings['site'],
						'skus' => $skus,
					)
				)
			);
			if ( 200 !== $answer['status'] ) {
				$error = ( 404 === $answer['status'] && 'unknown_site' !== $answer['code'] ) || 405 === $answer['status']
					? __( 'This relay does not report products yet; update the relay to see it here.', 'stock-relay' )
					: Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false );
			}
		}
		$by_sku = array();
		if ( '' === $error && null !== $answer ) {
			foreach ( (array) ( $answer['body']['products'] ?? array() ) as $product ) {
				if ( is_array( $product ) && is_string( $product['sku'] ?? null ) ) {
					$by_sku[ $product['sku'] ] = $product;
				}
			}
		}
		$columns = array();
		foreach ( $items as $id => $list ) {
			ob_start();
			Stock_Relay_Product_Screen::render_cell( $list, $by_sku, $error );
			$columns[ $id ] = (string) ob_get_clean();
		}
		$out = array(
			'ok'      => '' === $error,
			'columns' => $columns,
		);
		if ( 1 === count( $ids ) ) {
			ob_start();
			Stock_Relay_Product_Screen::render_box_table( $items[ $ids[0] ] ?? array(), $by_sku, $error );
			$out['box'] = (string) ob_get_clean();
		}
		return new WP_REST_Response( $out );
	}

	/**
	 * A product's lineage (every SKU of it: the product and its variations) as `html`.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function lineage( WP_REST_Request $request ): WP_REST_Response {
		$id       = (int) $request->get_param( 'product' );
		$items    = Stock_Relay_Product_Screen::items( array( $id ) )[ $id ] ?? array();
		$settings = Stock_Relay_Plugin::settings();
		ob_start();
		if ( ! $items ) {
			echo '<p>' . esc_html__( 'No such product.', 'stock-relay' ) . '</p>';
		} elseif ( ! Stock_Relay_Admin::configured( $settings ) ) {
			echo '<p>' . esc_html__( 'Stock Relay is not set up yet.', 'stock-relay' ) . '</p>';
		}
		$shown = 0;
		foreach ( Stock_Relay_Admin::configured( $settings ) ? $items : array() as $item ) {
			if ( '' === $item['sku'] || $shown >= Stock_Relay_Product_Screen::MAX_LINEAGES ) {
				continue;
			}
			++$shown;
			$answer = Stock_Relay_Delivery::post(
				$settings,
				'lineage',
				(string) stock_relay_json(
					array(
						'type' => 'lineage.query',
						'site' => $settings['site'],
						'sku'  => $item['sku'],
					)
				)
			);
			Stock_Relay_Product_Screen::render_lineage( $item, $answer );
		}
		if ( $items && Stock_Relay_Admin::configured( $settings ) && 0 === $shown ) {
			echo '<p>' . esc_html__( 'This product has no SKU: the relay traces products by SKU.', 'stock-relay' ) . '</p>';
		}
		return new WP_REST_Response( array( 'html' => (string) ob_get_clean() ) );
	}

	/**
	 * One page of a channel's dead letters as `html` (tabs per channel, the rows with their checkboxes, paging).
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function dead( WP_REST_Request $request ): WP_REST_Response {
		$settings = Stock_Relay_Plugin::settings();
		if ( ! Stock_Relay_Admin::configured( $settings ) ) {
			return new WP_REST_Response(
				array(
					'ok'   => false,
					'html' => '<p>' . esc_html__( 'Stock Relay is not set up yet.', 'stock-relay' ) . '</p>',
				)
			);
		}
		$channel = sanitize_text_field( (string) $request->get_param( 'channel' ) );
		$cursor  = max( 0, (int) $request->get_param( 'cursor' ) );
		$query   = array(
			'type'  => 'dead.query',
			'site'  => $settings['site'],
			'limit' => self::DEAD_PAGE,
		);
		if ( '' !== $channel ) {
			$query['channel'] = $channel;
		}
		if ( $cursor > 0 ) {
			$query['cursor'] = $cursor;
		}
		$answer = Stock_Relay_Delivery::post( $settings, 'dead', (string) stock_relay_json( $query ) );
		ob_start();
		Stock_Relay_Dead_Letters_Page::render_list( $channel, $cursor, $answer, self::channels( $settings ) );
		return new WP_REST_Response(
			array(
				'ok'   => 200 === $answer['status'],
				'html' => (string) ob_get_clean(),
			)
		);
	}

	/**
	 * Retry the chosen dead letters (dead.retry, with the WordPress user's login as actor): `type` and `message`.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public static function dead_retry( WP_REST_Request $request ): WP_REST_Response {
		$items = array();
		foreach ( (array) $request->get_param( 'items' ) as $item ) {
			if ( is_array( $item ) && is_string( $item['channel'] ?? null ) && is_string( $item['sku'] ?? null ) && '' !== $item['channel'] && '' !== $item['sku'] ) {
				$items[] = array(
					'channel' => $item['channel'],
					'sku'     => $item['sku'],
				);
			}
		}
		if ( ! $items || count( $items ) > self::DEAD_PAGE ) {
			return new WP_REST_Response(
				array(
					'type'    => 'error',
					/* translators: %d: the most dead letters one retry takes */
					'message' => sprintf( __( 'Choose 1 to %d dead letters to retry.', 'stock-relay' ), self::DEAD_PAGE ),
				),
				400
			);
		}
		$settings = Stock_Relay_Plugin::settings();
		if ( ! Stock_Relay_Admin::configured( $settings ) ) {
			return new WP_REST_Response(
				array(
					'type'    => 'warning',
					'message' => __( 'Enter the relay URL, the site id and the secret first.', 'stock-relay' ),
				)
			);
		}
		$user   = wp_get_current_user();
		$body   = array(
			'type'  => 'dead.retry',
			'site'  => $settings['site'],
			'items' => $items,
			'actor' => (string) $user->user_login,
		);
		$answer = Stock_Relay_Delivery::post( $settings, 'dead/retry', (string) stock_relay_json( $body ) );
		if ( 200 !== $answer['status'] ) {
			return new WP_REST_Response(
				array(
					'type'    => 'error',
					/* translators: %s: why the relay did not do it */
					'message' => sprintf( __( 'Nothing was retried: %s', 'stock-relay' ), Stock_Relay_Retry_Policy::explain( $answer['status'], $answer['code'], $answer['message'], false ) ),
				)
			);
		}
		Stock_Relay_Status_Route::forget(); // The status counts dead letters: they changed.
		return new WP_REST_Response( Stock_Relay_Console_View::retry_outcome( $answer['body'] ) );
	}

	/**
	 * The site's channels and their open dead letters, from the status page's cached answer or a fresh status.query
	 * (cached the same way): name => count, or an empty list when the relay does not say.
	 *
	 * @param array<string, mixed> $settings Settings.
	 * @return array<string, int>
	 */
	private static function channels( array $settings ): array {
		$cached = get_transient( Stock_Relay_Status_Route::CACHE );
		if ( ! is_array( $cached ) || ! isset( $cached['answer'], $cached['at'] ) ) {
			$cached = array(
				'answer' => Stock_Relay_Delivery::status( $settings ),
				'at'     => time(),
			);
			set_transient( Stock_Relay_Status_Route::CACHE, $cached, Stock_Relay_Status_Route::CACHE_TTL );
		}
		$out = array();
		if ( 200 === ( $cached['answer']['status'] ?? 0 ) ) {
			foreach ( (array) ( $cached['answer']['body']['channels'] ?? array() ) as $channel ) {
				if ( is_array( $channel ) && is_scalar( $channel['name'] ?? null ) ) {
					$out[ (string) $channel['name'] ] = (int) ( $channel['dead_letters'] ?? 0 );
				}
			}
		}
		return $out;
	}
}
