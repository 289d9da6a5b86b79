<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Every PHP file the release zip ships exits at once when it is requested by URL (or included) without WordPress:
 * no output, no error that would disclose a path, no class or hook left behind.
 */
final class DirectAccessTest extends TestCase {

	/**
	 * The shipped PHP files: the plugin's root and src/ (tests/ and bin/ are export-ignored).
	 *
	 * @return array<string, array{0: string}>
	 */
	public function shipped_files(): array {
		$root  = dirname( __DIR__, 2 );
		$files = array_merge( glob( $root . '/*.php' ), glob( $root . '/src/*.php' ), glob( $root . '/languages/*.php' ) ?: array() );
		$cases = array();
		foreach ( $files as $file ) {
			$cases[ substr( $file, strlen( $root ) + 1 ) ] = array( $file );
		}
		return $cases;
	}

	/**
	 * @dataProvider shipped_files
	 */
	public function test_a_file_alone_does_nothing( string $file ): void {
		// A fresh PHP without WordPress, as a web server would run the file; REACHED shows execution went on.
		$code    = 'include ' . var_export( $file, true ) . '; echo "REACHED";';
		$command = escapeshellarg( PHP_BINARY ) . ' -n -d display_errors=1 -d error_reporting=-1 -r ' . escapeshellarg( $code ) . ' 2>&1';
		$output  = shell_exec( $command );
		$this->assertSame( '', (string) $output, basename( $file ) . ' must exit without WordPress' );
	}
}
