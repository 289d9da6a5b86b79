"""``stock-relay``: serve, demo, check-config, keygen."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from .. import __version__, logsetup, signing
from .. import config as config_module
from ..connectors import check as check_connectors
from ..errors import ConfigError, RelayError, StorageError
from ..http.connection_gate import Gate, GatedSite, admitted_connections, raise_open_file_limit
from ..vault import new_key as new_vault_key
from . import operator as operator_cli
from . import reconcile as reconcile_cli
from . import store_migrate as store_cli

log = logging.getLogger("stock_relay")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stock-relay", description="Durable, signed stock sync from WooCommerce to marketplaces."
    )
    parser.add_argument("--version", action="version", version=f"stock-relay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="run the relay (embedded defaults when no config is given)")
    _config_args(serve_cmd)
    serve_cmd.add_argument("--host", help="listen address (overrides listen.host)")
    serve_cmd.add_argument("--port", type=int, help="listen port, 0 for any free one (overrides listen.port)")

    demo = commands.add_parser(
        "demo", help="run the relay with synthetic shop traffic and watch every channel converge"
    )
    demo.add_argument("--state-dir", type=Path, help="where the demo keeps its database (default: .stock-relay)")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of shop traffic (default 20)")
    demo.add_argument("--products", type=int, default=24, help="how many products the synthetic shop has (default 24)")
    demo.add_argument("--rate", type=float, default=25.0, help="stock changes per second (default 25)")

    check = commands.add_parser("check-config", help="validate the config and print it with secrets redacted")
    _config_args(check)

    keygen = commands.add_parser("keygen", help="print a new whsec_ secret (or an ed25519 key pair, or a vault key)")
    kind = keygen.add_mutually_exclusive_group()
    kind.add_argument("--ed25519", action="store_true", help="print a whsk_/whpk_ pair for v1a webhook signing")
    kind.add_argument(
        "--vault", action="store_true", help="print a key for vault_key (encrypts marketplace credentials)"
    )

    operator_cli.add_commands(commands)
    reconcile_cli.add_commands(commands)
    store_cli.add_commands(commands)

    creds = commands.add_parser("credentials", help="store, list or re-encrypt marketplace credentials (encrypted)")
    _config_args(creds)
    creds_cmd = creds.add_subparsers(dest="action", required=True, metavar="ACTION")
    creds_set = creds_cmd.add_parser("set", help="store SITE/CHANNEL's credentials: a JSON object read from stdin")
    creds_set.add_argument("name", metavar="SITE/CHANNEL")
    creds_cmd.add_parser("list", help="which accounts have credentials, and when they were last written")
    creds_cmd.add_parser("rotate", help="re-encrypt everything with vault_key's first key")

    args = parser.parse_args(argv)
    logsetup.configure()
    try:
        if args.command == "keygen":
            return _keygen(args.ed25519, args.vault)
        if args.command in operator_cli.COMMANDS:
            return operator_cli.run(args)
        if args.command in reconcile_cli.COMMANDS:
            return reconcile_cli.run(args)
        if args.command in store_cli.COMMANDS:
            return store_cli.run(args)
        if args.command == "credentials":
            from .credentials import run_credentials

            return run_credentials(config_module.load(args.config), args.action, getattr(args, "name", ""))
        if args.command == "check-config":
            return _check_config(args.config)
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args.state_dir, args.duration, args.products, args.rate))
        cfg = config_module.load(args.config)
        if args.host:
            cfg = replace(cfg, host=args.host)
        if args.port is not None:
            cfg = replace(cfg, port=args.port)
        return asyncio.run(serve(cfg, embedded=not (args.config or _env_config())))
    except ConfigError as exc:
        print(f"stock-relay: configuration error: {exc}", file=sys.stderr)
        return 2
    except RelayError as exc:
        print(f"stock-relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``export ... | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", help="YAML config file (default: $STOCK_RELAY_CONFIG, else embedded defaults)"
    )


def _env_config() -> str | None:
    return os.environ.get("STOCK_RELAY_CONFIG") or None


def _keygen(ed25519: bool, vault: bool) -> int:
    if vault:
        print(new_vault_key())
    elif ed25519:
        private, public = signing.new_ed25519_key()
        print(f"private (keep on the relay): {private}")
        print(f"public (give to the receiver): {public}")
    else:
        print(signing.new_secret())
    return 0


def _check_config(path: str | None) -> int:
    cfg = config_module.load(path)
    check_connectors(cfg)
    print(json.dumps(config_module.redacted(cfg), indent=2, ensure_ascii=False))
    print("configuration OK", file=sys.stderr)
    return 0


def _tune_collector() -> None:
    """Fewer, cheaper garbage collections while serving.

    Ingest allocates a few tuples per event that reference counting frees at once, yet each 700 of them started a
    young collection and every ~0.7 s a full one (~40 ms holding the GIL): ~5.5 µs of CPU per event at 100 events
    per request (docs/performance.md). Everything built at start-up (config, connectors, the app) is frozen out of
    the collector's sight, and young collections wait for 20,000 allocations; what little cyclic garbage the relay
    makes (tracebacks of failed attempts) is still collected, later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


async def serve(cfg: config_module.Config, embedded: bool = False) -> int:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    from ..http.server import make_app
    from ..runtime import Relay

    relay = Relay(cfg)
    try:
        await relay.start()
    except StorageError as exc:
        print(f"stock-relay: cannot start: {exc}", file=sys.stderr)
        return 1
    # Handlers before anything is announced: a SIGTERM right after "listening" must still stop cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # keepalive_timeout also closes a connection whose request's headers have not all arrived (slowloris)
    runner = web.AppRunner(
        make_app(cfg, relay),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=cfg.request_timeout_seconds,
        shutdown_timeout=cfg.shutdown_grace_seconds,
    )
    await runner.setup()
    gate = Gate(
        admitted_connections(cfg.max_connections, raise_open_file_limit()), relay.metrics.connections_refused.inc
    )
    site = GatedSite(runner, cfg.host, cfg.port, gate)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await relay.stop()
        print(f"stock-relay: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}", file=sys.stderr)
        return 1
    relay.serving.set()  # now a shop woken at start-up can send its waiting changes
    _tune_collector()
    port = runner.addresses[0][1] if runner.addresses else cfg.port
    sites = ", ".join(f"{s.id} ({', '.join(c.name for c in s.channels)})" for s in cfg.sites)
    log.info(
        "stock-relay %s listening on http://%s:%s; sites: %s; database: %s",
        __version__,
        cfg.host,
        port,
        sites,
        cfg.store_location,
    )
    if embedded:
        log.info("no config given: embedded defaults, demo site secret in %s", cfg.state_dir / "demo-site.secret")
    await stop.wait()
    log.info("shutting down: refusing new events, finishing deliveries in hand")
    relay.begin_shutdown()
    await runner.cleanup()
    await relay.stop()
    log.info("stopped cleanly")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
