"""Sales crash loop: SIGKILL the relay during sales intake and while adjusts are in flight; every sale counts once.

A fake shop (fakes/shop.py, in this process, so it outlives every kill) holds ``--skus`` products and applies each
adjust key at most once; it holds every answer back for a random 0 to ``--shop-delay`` seconds after applying, so
kills land between the shop applying a batch and the relay settling it. A reporter, like a POS, posts signed
``sales.report`` requests of 1 to 5 lines to the channel's sales route, some lines repeated on purpose, and resends
a report with the same webhook-id until it gets a 202; only a 202 counts as acknowledged. Meanwhile the relay
(``stock-relay serve``) is SIGKILLed ``--kills`` times at random moments and restarted on the same port and database.

Afterwards, once every acknowledged sale is applied (or ``--converge-seconds`` passed): every acknowledged key must
be applied by the shop (lost: not applied), no key applied more than once, and every SKU must show its start
quantity plus the deltas of its acknowledged keys, each counted once. Prints progress on stderr and ends with one
JSON line on stdout; the exit code is 1 when a sale was lost or applied twice, or a SKU is wrong.

    python bench/sales_crashloop.py                   # 30 kills, 2,000 sales
    python bench/sales_crashloop.py --kills 3 --sales 40
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _common import ROOT, database_path  # noqa: F401 - ROOT puts the project on sys.path
from crashloop import Relay, free_port

from fakes.shop import FakeShop  # noqa: E402
from relay import signing  # noqa: E402
from relay.cli.client import SignedClient  # noqa: E402
from relay.ids import new_msg_id  # noqa: E402

SITE = "bench"
CHANNEL = "pos"
ROUTE = f"channels/{CHANNEL}/sales"
START_QUANTITY = 1_000_000  # never reaches 0: no oversold incidents to muddle the figures


class CountingShop(FakeShop):
    """The fake shop, counting per key how often it really changed stock (``applied``) and how often it said
    ``duplicate``; ``in_flight`` is how many adjust answers are held back right now."""

    def __init__(self, secret: str, rand: random.Random, max_delay: float) -> None:
        super().__init__(SITE, secret)
        self.applications: Counter[str] = Counter()
        self.duplicates_answered = 0
        self.in_flight = 0
        self.hold_adjust = _RandomDelay(self, rand, max_delay)  # type: ignore[assignment]

    def _apply(self, item: Any) -> dict[str, Any]:
        result = super()._apply(item)
        if result["result"] == "applied":
            self.applications[result["key"]] += 1
        elif result["result"] == "duplicate":
            self.duplicates_answered += 1
        return result


class _RandomDelay:
    """Stands in for ``hold_adjust``: the shop has applied the batch; its answer waits a random moment."""

    def __init__(self, shop: CountingShop, rand: random.Random, max_delay: float) -> None:
        self.shop, self.rand, self.max_delay = shop, rand, max_delay

    async def wait(self) -> None:
        self.shop.in_flight += 1
        try:
            await asyncio.sleep(self.rand.uniform(0.0, self.max_delay))
        finally:
            self.shop.in_flight -= 1


def write_config(workdir: Path, port: int, shop_url: str, site_secret: str, sales_secret: str) -> Path:
    (workdir / "site.secret").write_text(site_secret)
    (workdir / "sales.secret").write_text(sales_secret)
    doc: dict[str, Any] = {
        "state_dir": str(workdir / "state"),
        "listen": {"host": "127.0.0.1", "port": port},
        "dispatch": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "idle_poll_seconds": 0.1},
        "sites": {
            SITE: {
                "secret": f"file:{workdir / 'site.secret'}",
                "shop_url": shop_url,
                "max_requests_per_second": 0,
                "reconcile": {"incremental_minutes": 0, "full_hour": None, "readback_hours": 0},
                "channels": [{"name": CHANNEL, "type": "sandbox", "sales_secret": f"file:{workdir / 'sales.secret'}"}],
            }
        },
    }
    path = workdir / "relay.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def make_reports(rand: random.Random, sales: int, skus: int) -> list[list[dict[str, Any]]]:
    """``sales`` distinct lines (about one in ten a cancel of an earlier sale) in reports of 1 to 5 lines; about one
    report in four also repeats a line sent before, unchanged, as a reporter that is not sure does."""
    reports: list[list[dict[str, Any]]] = []
    made: list[dict[str, Any]] = []
    sold: list[dict[str, Any]] = []
    while len(made) < sales:
        lines: list[dict[str, Any]] = []
        for _ in range(min(rand.randint(1, 5), sales - len(made))):
            if sold and rand.random() < 0.1:
                item = dict(sold.pop(rand.randrange(len(sold))), kind="cancel")
            else:
                order = f"P-{len(made) + 1}"
                item = {"order": order, "line": "1", "sku": f"SKU-{rand.randint(1, skus)}", "kind": "sale"}
                item["quantity"] = rand.randint(1, 3)
                sold.append(item)
            made.append(item)
            lines.append(item)
        if made[: -len(lines)] and rand.random() < 0.25:
            lines.append(rand.choice(made[: -len(lines)]))
        reports.append(lines)
    return reports


def key_of(item: dict[str, Any]) -> str:
    key = f"{CHANNEL}:{item['order']}:{item['line']}"
    return key + ":cancel" if item["kind"] == "cancel" else key


def delta_of(item: dict[str, Any]) -> int:
    return int(item["quantity"]) * (-1 if item["kind"] == "sale" else 1)


def unsettled(workdir: Path) -> int:
    """Sales the relay has not yet recorded as applied (-1: the database cannot be read now)."""
    try:
        with sqlite3.connect(database_path(workdir), timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM sales WHERE state != 'applied'").fetchone()[0])
    except sqlite3.Error:
        return -1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rand = random.Random(args.seed)
    site_secret, sales_secret = signing.new_secret(), signing.new_secret()
    shop = await CountingShop(site_secret, random.Random(args.seed + 1), args.shop_delay).start()
    for pid in range(1, args.skus + 1):
        shop.add(pid, f"SKU-{pid}", START_QUANTITY)

    workdir = Path(tempfile.mkdtemp(prefix="sales-crashloop-"))
    port = free_port()
    relay = Relay(write_config(workdir, port, shop.url, site_secret, sales_secret), workdir)
    atexit.register(lambda: relay.proc is not None and relay.proc.poll() is None and relay.proc.kill())  # on a crash
    await relay.start()
    reports = make_reports(rand, args.sales, args.skus)
    acknowledged: dict[str, int] = {}  # key → delta, for every line of a report answered 202
    resends = reporting = 0
    kills_in_intake = kills_in_adjust = 0
    started = time.monotonic()
    # The reports are spread over the kills: by the end of the k-th uptime, k/kills of them may have been taken, so
    # each kill lands while reports are being sent and the last ones are not sent to a relay nobody kills any more.
    kills_done, window_start, window = 0, time.monotonic(), 1.0
    taken = 0

    def allowed() -> float:
        if kills_done >= args.kills:
            return 1.0
        return (kills_done + min(1.0, (time.monotonic() - window_start) / window)) / args.kills

    async def report_until_accepted(client: SignedClient, lines: list[dict[str, Any]]) -> None:
        nonlocal resends, reporting
        msg_id = new_msg_id()
        doc = {"type": "sales.report", "site": SITE, "items": lines}
        while True:  # a real reporter keeps the report and resends it with the same webhook-id until a 2xx
            reporting += 1
            try:
                status, _ = await client.post(ROUTE, doc, msg_id)
                if status == 202:
                    acknowledged.update((key_of(item), delta_of(item)) for item in lines)
                    return
            except (TimeoutError, aiohttp.ClientError, ValueError):
                pass
            finally:
                reporting -= 1
            resends += 1
            await asyncio.sleep(0.02)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = SignedClient(f"http://127.0.0.1:{port}", SITE, sales_secret, session)
        queue = iter(reports)

        async def reporter() -> None:
            nonlocal taken
            while True:
                while taken < len(reports) and (taken + 1) / len(reports) > allowed():
                    await asyncio.sleep(0.01)
                lines = next(queue, None)  # the reporters share one iterator: each report is sent by one of them
                if lines is None:
                    return
                taken += 1
                await report_until_accepted(client, lines)

        producers = [asyncio.create_task(reporter()) for _ in range(args.reporters)]
        for kill in range(1, args.kills + 1):
            window_start, window = time.monotonic(), rand.uniform(0.0, args.max_uptime)
            await asyncio.sleep(window)
            kills_in_intake += reporting > 0
            kills_in_adjust += shop.in_flight > 0
            relay.kill()  # SIGKILL: no chance to flush, release leases or answer in-flight requests
            await relay.start()
            kills_done = kill
            print(
                f"kills {kill}/{args.kills}  acknowledged {len(acknowledged)}/{args.sales}  "
                f"applied {len(shop.applications)}  shop said duplicate {shop.duplicates_answered}  resends {resends}",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.gather(*producers)
        print(f"waiting for {len(acknowledged)} acknowledged sales to be applied…", file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.converge_seconds
        while time.monotonic() < deadline and (
            not set(acknowledged) <= set(shop.applications) or unsettled(workdir) != 0
        ):
            await asyncio.sleep(0.1)
    clean_stop = relay.terminate()
    await shop.stop()

    sku_of = {key_of(item): item["sku"] for lines in reports for item in lines}
    expected: Counter[str] = Counter()
    for key, delta in acknowledged.items():
        expected[sku_of[key]] += delta
    wrong = [
        p.sku for p in shop.products.values() if p.quantity != START_QUANTITY + expected.get(p.sku, 0)
    ]  # fmt: skip
    return {
        "kills": args.kills,
        "sales_acknowledged": len(acknowledged),
        "sales_lost": len(set(acknowledged) - set(shop.applications)),
        "sales_applied_twice": sum(1 for n in shop.applications.values() if n > 1),
        "skus_wrong": len(wrong),
        "applied_not_acknowledged": len(set(shop.applications) - set(acknowledged)),
        "relay_unsettled": unsettled(workdir),
        "kills_during_intake": kills_in_intake,
        "kills_with_adjust_in_flight": kills_in_adjust,
        "shop_answered_duplicate": shop.duplicates_answered,
        "adjust_requests": len(shop.adjust_calls),
        "reports": len(reports),
        "resends_by_reporter": resends,
        "clean_stop_exit": clean_stop,
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(workdir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--sales", type=int, default=2000, help="distinct sale lines (about 1 in 10 a cancel)")
    parser.add_argument("--skus", type=int, default=50)
    parser.add_argument("--reporters", type=int, default=3, help="reports in flight at once")
    parser.add_argument("--max-uptime", type=float, default=1.0, help="seconds; each kill comes within this of a start")
    parser.add_argument("--shop-delay", type=float, default=0.3, help="seconds; the shop's answer waits up to this")
    parser.add_argument("--converge-seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(json.dumps(figures))
    bad = figures["sales_lost"] or figures["sales_applied_twice"] or figures["skus_wrong"]
    return 1 if bad or figures["relay_unsettled"] else 0


if __name__ == "__main__":
    sys.exit(main())
