<?php
/**
 * Removes everything the plugin stored, on every site of a multisite network: each site has its own tables,
 * options, transients and scheduled actions; the users (and so their meta) are the network's, shared by all.
 *
 * @package StockRelay
 */

declare(strict_types=1);

defined( 'ABSPATH' ) || exit;

/**
 * Called by uninstall.php only (WordPress defines WP_UNINSTALL_PLUGIN there).
 */
final class Stock_Relay_Uninstall {

	/** Scheduled hooks of the plugin (Stock_Relay_Kick::HOOK, ::WATCHDOG, Stock_Relay_Resend::HOOK, Stock_Relay_Digest::HOOK). */
	public const HOOKS = array( 'stock_relay_drain', 'stock_relay_watchdog', 'stock_relay_resend_chunk', 'stock_relay_digest' );

	/** Clean every site, then what the sites share. */
	public static function run(): void {
		self::each_site( self::site_ids(), array( self::class, 'clean_site' ), is_multisite() );
		global $wpdb;
		// Per-user state of the plugin (dismissed notices): every key of ours starts with stock_relay_.
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->usermeta} WHERE meta_key LIKE %s", $wpdb->esc_like( 'stock_relay_' ) . '%' ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery -- uninstall: one query for all users, nothing to cache.
		wp_cache_flush();
	}

	/**
	 * Every site of the network, of any status (an archived or deleted-flagged site still has our tables), or the
	 * one site.
	 *
	 * @return int[]
	 */
	public static function site_ids(): array {
		if ( ! is_multisite() ) {
			return array( get_current_blog_id() );
		}
		return array_map(
			'intval',
			get_sites(
				array(
					'fields' => 'ids',
					'number' => 0,
				)
			)
		);
	}

	/**
	 * Run $clean once inside each site, switched to it on a network, and always switch back (even when a site
	 * fails, the others are still cleaned, and the error is raised at the end).
	 *
	 * @param int[]    $site_ids Site ids.
	 * @param callable $clean    Called in each site with its id.
	 * @param bool     $network  A multisite network: switch to each site (a single site is already there).
	 * @param callable $enter    Switches to a site (switch_to_blog); given for the unit test of the loop.
	 * @param callable $leave    Switches back (restore_current_blog).
	 * @throws Throwable The first error of a site, after every site was tried.
	 */
	public static function each_site( array $site_ids, callable $clean, bool $network, ?callable $enter = null, ?callable $leave = null ): void {
		$enter = $enter ?? 'switch_to_blog';
		$leave = $leave ?? 'restore_current_blog';
		$first = null;
		foreach ( $site_ids as $site_id ) {
			if ( $network ) {
				$enter( $site_id );
			}
			try {
				$clean( $site_id );
			} catch ( Throwable $e ) {
				$first = $first ?? $e;
			} finally {
				if ( $network ) {
					$leave();
				}
			}
		}
		if ( null !== $first ) {
			throw $first;
		}
	}

	/** The current site's tables, options, transients and scheduled actions. */
	public static function clean_site(): void {
		global $wpdb;
		Stock_Relay_Outbox::uninstall();
		foreach ( array( 'stock_relay_', '_transient_stock_relay_', '_transient_timeout_stock_relay_' ) as $prefix ) {
			$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( $prefix ) . '%' ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery -- uninstall: every option of ours at once; the cache is flushed after.
		}
		foreach ( self::HOOKS as $hook ) {
			wp_clear_scheduled_hook( $hook );
			if ( function_exists( 'as_unschedule_all_actions' ) ) {
				as_unschedule_all_actions( $hook );
			}
		}
		wp_cache_flush();
	}
}
