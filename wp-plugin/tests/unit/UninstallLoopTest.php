<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Uninstall on a network cleans every site inside that site, and always switches back. (The integration suite's
 * WordPress is a single site, so the cleaning itself is tested there and the network loop here, with the calls
 * switch_to_blog/restore_current_blog would get.)
 */
final class UninstallLoopTest extends TestCase {

	public function test_each_site_is_cleaned_inside_it_and_left(): void {
		$log = array();
		Stock_Relay_Uninstall::each_site(
			array( 1, 2, 5 ),
			static function ( int $id ) use ( &$log ): void {
				$log[] = "clean $id";
			},
			true,
			static function ( int $id ) use ( &$log ): void {
				$log[] = "enter $id";
			},
			static function () use ( &$log ): void {
				$log[] = 'leave';
			}
		);
		$this->assertSame( array( 'enter 1', 'clean 1', 'leave', 'enter 2', 'clean 2', 'leave', 'enter 5', 'clean 5', 'leave' ), $log );
	}

	public function test_a_failing_site_does_not_stop_the_others_and_the_error_comes_last(): void {
		$log = array();
		try {
			Stock_Relay_Uninstall::each_site(
				array( 1, 2, 3 ),
				static function ( int $id ) use ( &$log ): void {
					if ( 2 === $id ) {
						throw new RuntimeException( 'site 2 failed' );
					}
					$log[] = "clean $id";
				},
				true,
				static function ( int $id ) use ( &$log ): void {
					$log[] = "enter $id";
				},
				static function () use ( &$log ): void {
					$log[] = 'leave';
				}
			);
			$this->fail( 'the error was swallowed' );
		} catch ( RuntimeException $e ) {
			$this->assertSame( 'site 2 failed', $e->getMessage() );
		}
		$this->assertSame( array( 'enter 1', 'clean 1', 'leave', 'enter 2', 'leave', 'enter 3', 'clean 3', 'leave' ), $log );
	}

	public function test_a_single_site_is_not_switched(): void {
		$log = array();
		Stock_Relay_Uninstall::each_site(
			array( 1 ),
			static function ( int $id ) use ( &$log ): void {
				$log[] = "clean $id";
			},
			false,
			static function (): void {
				throw new LogicException( 'switched on a single site' );
			},
			static function (): void {
				throw new LogicException( 'switched on a single site' );
			}
		);
		$this->assertSame( array( 'clean 1' ), $log );
	}
}
