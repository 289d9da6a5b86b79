<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/**
 * Every word a shop owner reads goes through the translation functions: under a pseudo-locale that writes the
 * English in capitals (placeholders kept), the plain classes' texts have no small letter left but in the data
 * they were given (the relay's message, a SKU, an error code).
 */
final class I18nTest extends TestCase {

	/** @var array<int, string> Domains asked for, to check every text uses the plugin's own. */
	private array $domains = array();

	protected function setUp(): void {
		$this->domains                          = array();
		$GLOBALS['stock_relay_test_translate'] = function ( string $text, string $domain ): string {
			$this->domains[] = $domain;
			// Capitals outside the sprintf placeholders (%s, %d, %1$s, %+d), which must survive translation.
			return (string) preg_replace_callback(
				'/(%(?:\d+\$)?[+\-]?[sdfu])|([^%]+|%)/',
				static fn( array $m ): string => '' !== $m[1] ? $m[1] : strtoupper( $m[2] ),
				$text
			);
		};
	}

	protected function tearDown(): void {
		unset( $GLOBALS['stock_relay_test_translate'] );
	}

	/**
	 * Asserts that $text, less the data it was given, has no untranslated (small-letter) word.
	 *
	 * @param string   $text Output of the plugin.
	 * @param string[] $data Values that came from outside and are shown as they are.
	 */
	private function assertTranslated( string $text, array $data = array(), string $label = '' ): void {
		usort( $data, static fn( string $a, string $b ): int => strlen( $b ) <=> strlen( $a ) ); // "ebay" inside "http 500 from ebay".
		$rest = str_replace( array_filter( $data, 'strlen' ), '', $text );
		$rest = str_replace( 'UTC', '', $rest ); // The unit tests' date, outside WordPress (wp_date gives the site's).
		$this->assertDoesNotMatchRegularExpression( '/[a-z]{2,}/', $rest, "untranslated words in: $text ($label)" );
		$this->assertSame( array( 'stock-relay' ), array_values( array_unique( $this->domains ) ), "text domain ($label)" );
	}

	public function test_retry_policy_explanations(): void {
		$cases = array(
			array( 0, '' ),
			array( 401, 'signature_invalid' ),
			array( 401, 'signature_missing' ),
			array( 401, 'timestamp_out_of_tolerance' ),
			array( 404, 'unknown_site' ),
			array( 503, 'storage_unavailable' ),
			array( 503, 'shutting_down' ),
			array( 429, 'rate_limited' ),
			array( 400, 'malformed_json' ),
			array( 400, 'type_mismatch' ),
			array( 400, 'missing_field' ),
			array( 415, 'unsupported_media_type' ),
			array( 413, 'body_too_large' ),
			array( 400, 'batch_too_large' ),
			array( 301, '' ),
			array( 308, '' ),
			array( 502, '' ),
			array( 504, '' ),
			array( 500, 'internal' ),
			array( 418, '' ),
		);
		foreach ( $cases as list( $status, $code ) ) {
			foreach ( array( true, false ) as $queued ) {
				foreach ( array( 'cURL error 7: failed', '' ) as $message ) {
					$this->assertTranslated( Stock_Relay_Retry_Policy::explain( $status, $code, $message, $queued ), array( $code, $message ), "$status $code" );
				}
			}
		}
	}

	public function test_signer_and_sanitizer_errors(): void {
		foreach ( array( 'nope', 'whsec_c2hvcnQ=', 'whsec_not*base64' ) as $bad ) {
			try {
				Stock_Relay_Signer::key( $bad );
				$this->fail( "accepted $bad" );
			} catch ( InvalidArgumentException $e ) {
				$this->assertTranslated( str_replace( 'WHSEC_', '', $e->getMessage() ), array(), $bad );
			}
		}
		$errors = array(
			Stock_Relay_Settings_Sanitizer::relay_url( 'ftp://x' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://u:p@x' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://x/a"b' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'https://x/v1/sites/shop' )[1],
			Stock_Relay_Settings_Sanitizer::relay_url( 'http://relay.example.com' )[1],
			Stock_Relay_Settings_Sanitizer::site_id( 'a b' )[1],
			Stock_Relay_Settings_Sanitizer::secret( 'nope' )[1],
			Stock_Relay_Settings_Sanitizer::secret( 'whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz nope' )[1],
		);
		foreach ( $errors as $error ) {
			$this->assertNotSame( '', $error );
			// The examples in the texts (addresses, suffixes, the keygen command) are not words to translate.
			$this->assertTranslated( strtolower( $error ) === $error ? $error : preg_replace( '/HTTPS?:\/\/\S*|WHSEC_\S*|STOCK-RELAY KEYGEN|\.[A-Z.]+|A-Z|\bA\b/', '', $error ), array(), $error );
		}
	}

	public function test_status_words_and_ages(): void {
		$now  = 1796180400;
		$rows = Stock_Relay_Status_View::rows(
			200,
			array(
				'channels' => array(
					array(
						'name'               => 'ebay',
						'pending'            => true,
						'oldest_pending_age' => 12,
						'dead_letters'       => false,
						'circuit'            => 'half_open',
						'last_success'       => null,
						'last_error'         => array(
							'message' => 'http 500 from ebay',
							'at'      => $now - 600,
							'sku'     => 'sku-1',
						),
						'drift'              => array(
							'differ'     => 2,
							'checked_at' => $now - 7200,
							'examples'   => array(
								array(
									'sku'      => 'sku-2',
									'expected' => 5,
									'shown'    => 7,
									'reason'   => 'channel_differs',
								),
							),
						),
					),
					array(
						'name'  => 'etsy',
						'drift' => array(
							'differ'     => 0,
							'checked_at' => null,
						),
					),
				),
			),
			$now
		);
		$cells = array();
		array_walk_recursive(
			$rows,
			static function ( $cell ) use ( &$cells ): void {
				$cells[] = (string) $cell;
			}
		);
		$this->assertTranslated( implode( ' | ', $cells ), array( 'ebay', 'etsy', 'http 500 from ebay', 'sku-1', 'sku-2' ), 'channels' );
		foreach ( array( 30, 600, 7200, 3 * 86400, -30 ) as $ago ) {
			$this->assertTranslated( Stock_Relay_Status_View::when( $now - $ago, $now ), array(), "when $ago" );
		}
		$this->assertTranslated( Stock_Relay_Status_View::when( 0, $now ), array(), 'never' );
		foreach ( Stock_Relay_Status_View::heads() as $head ) {
			$this->assertTranslated( $head, array(), 'head' );
		}
	}
}
