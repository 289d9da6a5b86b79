"""Fake marketplaces: real aiohttp servers on 127.0.0.1 that follow each marketplace's published contract.

Used by the tests (``tests/``) and the benchmarks (``bench/``); not part of the relay's wheel.
Each module holds one marketplace; ``common`` holds what they share (start/stop/url, request log,
``fail_next``, rate buckets, expiring tokens).

Real default limits, and how a benchmark scales them by one factor ``k`` (rates × k, clocks ÷ k):

- ``shopify.FakeShopify(restore_rate=100.0, bucket=1000.0, token_lifetime=86400.0)``: cost points
  (a set ≈ 10, a lookup ≈ 2 + 2 per variant); channel default 250 per call, rate 100 points/s.
  Seed with ``add_variant(sku)``; credentials ``{"client_id": fake.client_id, "client_secret": fake.client_secret}``.
- ``ebay.FakeEbay(rate=2_000_000/86400, burst=25.0, token_lifetime=7200.0, revisions_per_day=250,
  day_seconds=86400.0)``: calls; 25 SKUs per call. Seed with ``add_item(sku)``; credentials
  ``{"client_id", "client_secret", "refresh_token": fake.refresh_token}``.
- ``etsy.FakeEtsy(qps=10.0, qpd=10_000, day_seconds=86400.0, token_lifetime=3600.0)``: calls; a
  read and a write per listing changed. Seed with ``add_listing({sku: qty, ...})`` (several SKUs per
  listing model variations); credentials ``{"keystring", "shared_secret", "refresh_token"}``,
  account ``{"shop_id": str(fake.shop_id)}``. The day's quota is a rolling window of ``day_seconds``:
  ``x-remaining-today`` on every success, a 429 with the window's ``retry-after`` once it is spent
  (counted in ``day_refusals``). ``clock=`` gives both limits a test's own clock instead of ``time.monotonic``.

Each fake counts the throttle answers it sent in ``throttled`` (a benchmark's target is 0).
"""
