<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * A paused channel in the "Channels" table: who paused it, when and why, instead of the sending state.
 */
final class StatusViewPausedTest extends TestCase {

	public function test_a_paused_channel_says_who_when_and_why_and_a_running_one_its_sending_state(): void {
		$now      = 1796180400; // 2026-12-02T03:00:00Z
		$channels = array(
			array( 'name' => 'amazon', 'circuit' => 'closed', 'paused' => array( 'reason' => 'Fixing <b>listings</b>', 'actor' => 'shopadmin', 'paused_at' => $now - 300.5, 'paused_at_iso' => '2026-12-02T02:54:59.500Z' ) ),
			array( 'name' => 'ebay', 'circuit' => 'closed', 'paused' => null ),
		);
		$rows     = Stock_Relay_Status_View::rows( 200, array( 'channels' => $channels ), $now );
		$this->assertSame( 'Paused by shopadmin since 2026-12-02 02:54 UTC (5 min ago): Fixing <b>listings</b>', $rows[0][4], 'plain text: the page escapes it' );
		$this->assertSame( 'Sending normally', $rows[1][4] );
	}

	public function test_a_pause_with_missing_fields_still_reads(): void {
		$this->assertSame( 'Paused by — since —: —', Stock_Relay_Status_View::paused( array(), 1796180400 ) );
	}
}
