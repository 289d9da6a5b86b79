<?php
/**
 * Silence is golden: no directory listing of the translations folder.
 *
 * @package StockRelay
 */

defined( 'ABSPATH' ) || exit;
