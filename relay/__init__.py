"""Stock Relay: durable, signed stock sync from WooCommerce to marketplaces."""

__version__ = "0.1.0"
