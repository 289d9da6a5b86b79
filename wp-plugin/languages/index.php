<?php
// Silence is golden: no directory listing of the translations folder.
defined( 'ABSPATH' ) || exit;
