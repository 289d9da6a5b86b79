"""The relay's HTTP face: the aiohttp app (server), its connection limits, and the signed operator endpoints."""
