"""Fake marketplaces: real aiohttp servers on 127.0.0.1 that follow each marketplace's published contract.

Used by the tests (``tests/``) and the benchmarks (``bench/``); not part of the relay's wheel.
Each module holds one marketplace; ``common`` holds what they share.
"""
