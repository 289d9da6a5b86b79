<?php
/**
 * Plugin Name: Stock Relay snapshot bench baselines (bench only, never shipped)
 * Description: Two unsigned routes on the bench's throwaway site, measured in the same run as the real
 * snapshot route: `ids` runs only the route's own id query (the floor), `per-item` builds the same page
 * the way code that loads each product does (get_post + get_post_meta per item, one meta query each).
 *
 * @package StockRelay
 */

add_action(
	'rest_api_init',
	static function (): void {
		$args = static function ( WP_REST_Request $request ): array {
			$doc = json_decode( $request->get_body(), true );
			return array( (int) ( $doc['after_id'] ?? 0 ), (int) ( $doc['limit'] ?? 500 ) );
		};
		// The route's own id query (private; called through reflection so it is exactly the same SQL).
		$scan = static function ( int $after_id, int $limit ): array {
			$method = new ReflectionMethod( Stock_Relay_Snapshot_Route::class, 'scan' );
			$method->setAccessible( true );
			return $method->invoke( null, $after_id, $limit, null );
		};
		register_rest_route(
			'stock-relay-bench/v1',
			'/ids',
			array(
				'methods'             => 'POST',
				'permission_callback' => '__return_true', // A throwaway bench site.
				'callback'            => static function ( WP_REST_Request $request ) use ( $args, $scan ) {
					list( $after_id, $limit ) = $args( $request );
					$ids                      = array_map( 'intval', array_column( $scan( $after_id, $limit ), 'ID' ) );
					return new WP_REST_Response(
						array(
							'ids'           => $ids,
							'next_after_id' => count( $ids ) < $limit ? null : end( $ids ),
						)
					);
				},
			)
		);
		register_rest_route(
			'stock-relay-bench/v1',
			'/per-item',
			array(
				'methods'             => 'POST',
				'permission_callback' => '__return_true', // A throwaway bench site.
				'callback'            => static function ( WP_REST_Request $request ) use ( $args, $scan ) {
					global $wpdb;
					list( $after_id, $limit ) = $args( $request );
					$posts                    = $scan( $after_id, $limit );
					$ids                      = array_map( 'intval', array_column( $posts, 'ID' ) );
					$versions                 = array();
					$candidates               = Stock_Relay_Snapshot::owner_candidates( $posts );
					if ( $candidates ) {
						foreach ( $wpdb->get_results( 'SELECT product_id, version FROM ' . Stock_Relay_Outbox::versions_table() . ' WHERE product_id IN (' . implode( ',', $candidates ) . ')', ARRAY_A ) as $row ) {
							$versions[ (int) $row['product_id'] ] = (int) $row['version'];
						}
					}
					$flat   = static function ( array $all ): array {
						return array_map( static fn( $values ) => (string) $values[0], $all );
					};
					$manage = 'yes' === get_option( 'woocommerce_manage_stock', 'yes' );
					$states = array();
					foreach ( $ids as $id ) {
						$post   = get_post( $id );
						$parent = 'product_variation' === $post->post_type ? (int) $post->post_parent : 0;
						$state  = Stock_Relay_Payload::state_from_meta( $id, $parent, $flat( get_post_meta( $id ) ), $parent ? $flat( get_post_meta( $parent ) ) : array(), $manage );

						$state['post_status'] = $post->post_status;
						$states[ $id ]        = $state;
					}
					return new WP_REST_Response( Stock_Relay_Snapshot::page( 'bench', $limit, $ids, $states, $versions, time() ) );
				},
			)
		);
	}
);
