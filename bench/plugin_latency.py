"""Stock Relay plugin: time added to a stock-changing request, and hook-to-relay latency.

Runs against a WordPress + WooCommerce site on this machine with the plugin active (for example the one
docs/plugin.md "Checking against a real WooCommerce" sets up: WP 6.5 + SQLite + WC 9.4.3, PHP's built-in
server with PHP_CLI_SERVER_WORKERS=4). It installs a probe mu-plugin (bench/plugin/), points the plugin at
a receiver started here (a real HTTP server on 127.0.0.1 that verifies every signature with relay.signing),
and measures:

1. request cost: the same stock change (wc_update_product_stock, the order path) with the plugin loaded
   and, as the baseline in the same run, with it filtered out of active_plugins; server-side time from
   the probe's load to the end of the last shutdown callback, and client-side time; alternating samples,
   each taken once the previous change has reached the receiver (its drain would share the cores).
   Server side is also given until the response was complete: the plugin sends a stock-changing response
   with its Content-Length before it kicks the drainer (servers without fastcgi_finish_request), so the
   client is done at that point, before the last shutdown callback ends.
   With --compare-ref REF, the plugin as committed at REF (git archive, installed beside it as
   stock-relay-ref and swapped in per request) is a third column of the same run: before vs after.
2. hook-to-relay latency (hook fired -> event received) in three conditions: a quiet site, steady
   traffic (page views at --traffic-rps), and DISABLE_WP_CRON with no system cron (set through
   <wp-root>/wp-config-extra.php, which the site's wp-config.php must require if present). The baseline
   is one bare page view of the same site, measured in the same run.

Usage: .venv/bin/python bench/plugin_latency.py --wp-root /tmp/realwc/site --url http://127.0.0.1:8181 [--compare-ref HEAD]
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from relay import signing  # noqa: E402
from relay.errors import SignatureError  # noqa: E402

PROBE = Path(__file__).resolve().parent / "plugin" / "stock-relay-bench.php"
SETUP = Path(__file__).resolve().parent / "plugin" / "setup.php"


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


class Receiver:
    """A relay stand-in that verifies signatures and notes when each (sku, quantity) arrived."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.arrivals: dict[tuple[str, int], float] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    signing.verify([outer.secret], headers, body, now=now)
                except SignatureError:
                    with outer.lock:
                        outer.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                doc = json.loads(body)
                with outer.lock:
                    for event in doc.get("events", []):
                        outer.arrivals.setdefault((event["sku"], event["stock_quantity"]), now)
                answer = json.dumps(
                    {"accepted": len(doc.get("events", [])), "duplicates": 0, "stale": 0, "rejected": []}
                )
                self.send_response(202)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: tuple[str, int], timeout: float) -> float | None:
        until = time.time() + timeout
        while time.time() < until:
            with self.lock:
                if key in self.arrivals:
                    return self.arrivals[key]
            time.sleep(0.005)
        return None


def get(url: str) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        doc = json.loads(response.read())
    return doc, time.perf_counter() - start


def server_times(log: Path, kind: str, column: int = 2) -> dict[str, list[float]]:
    """Column 2: until the last shutdown callback ended; 3: until the response was complete."""
    out: dict[str, list[float]] = {"on": [], "off": [], "ref": []}
    for line in log.read_text().splitlines() if log.exists() else []:
        fields = line.split()
        if fields[0] == kind:
            out[fields[1]].append(float(fields[min(column, len(fields) - 1)]))
    return out


REF_SLUG = "stock-relay-ref"


def install_ref(ref: str, plugins: Path) -> None:
    """The plugin as committed at REF, beside the installed one (as an unzipped release: no tests)."""
    target = plugins / REF_SLUG
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", f"{ref}:wp-plugin"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(target)], input=archive, check=True)
    shutil.rmtree(target / "tests", ignore_errors=True)


def request_cost(args: argparse.Namespace, receiver: Receiver, ids: list[int], log: Path) -> dict[str, Any]:
    log.unlink(missing_ok=True)
    states = ["on", "off"] + (["ref"] if args.compare_ref else [])
    client: dict[str, list[float]] = {state: [] for state in states}
    product = {"on": ids[0], "off": ids[1], "ref": ids[-1]}
    sku = {"on": "BENCH-0", "ref": f"BENCH-{len(ids) - 1}"}
    extra = {"on": "", "off": "&srb_off=1", "ref": f"&srb_plugin={REF_SLUG}"}
    qty = 5000
    for i in range(args.cost_samples):
        for state in states[i % len(states) :] + states[: i % len(states)]:  # rotated: none always goes first
            qty += 1
            _, seconds = get(f"{args.url}/?srb=change&id={product[state]}&qty={qty}{extra[state]}")
            client[state].append(seconds * 1000)
            if state in sku:
                # Let this change's delivery finish first: on two cores the drainer (after the response)
                # would otherwise slow down whichever request comes next, and that is not this one's cost.
                receiver.wait((sku[state], qty), 10.0)
                time.sleep(args.settle)  # the drainer's own bookkeeping after the relay's answer
            time.sleep(0.02)
    server = server_times(log, "change")
    complete = server_times(log, "change", 3)
    result: dict[str, Any] = {}
    for name, samples in (("server", server), ("server_until_complete", complete), ("client", client)):
        on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
        result[name] = {
            "median_on_ms": round(on, 3),
            "median_off_ms": round(off, 3),
            "added_ms": round(on - off, 3),
            "ratio_on_off": round(on / off, 4),
            # Samples k of each state come from the same round, seconds apart: the median of the
            # per-round differences cancels the machine's slower drifts (other load on 2 cores).
            "paired_added_ms": round(
                statistics.median(a - b for a, b in zip(samples["on"], samples["off"], strict=True)), 3
            ),
        }
        if args.compare_ref:
            ref = statistics.median(samples["ref"])
            result[name].update(
                {
                    "ref": args.compare_ref,
                    "median_ref_ms": round(ref, 3),
                    "ref_added_ms": round(ref - off, 3),
                    "ratio_ref_off": round(ref / off, 4),
                    "paired_ref_added_ms": round(
                        statistics.median(a - b for a, b in zip(samples["ref"], samples["off"], strict=True)), 3
                    ),
                }
            )
    return result


def latency(
    args: argparse.Namespace, receiver: Receiver, product: int, sku: str, changes: int, gap: float, start_qty: int
) -> dict[str, Any]:
    samples: list[float] = []
    lost = 0
    for i in range(changes):
        qty = start_qty + i
        doc, _ = get(f"{args.url}/?srb=change&id={product}&qty={qty}")
        arrived = receiver.wait((sku, qty), args.give_up)
        if arrived is None or doc.get("hook_at") is None:
            lost += 1
        else:
            samples.append(arrived - float(doc["hook_at"]))
        time.sleep(gap)
    return {
        "n": changes,
        "not_delivered_within_s": args.give_up if lost else None,
        "lost": lost,
        "p50_ms": round(pct(samples, 50) * 1000, 1) if samples else None,
        "p99_ms": round(pct(samples, 99) * 1000, 1) if samples else None,
        "max_ms": round(max(samples) * 1000, 1) if samples else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wp-root", type=Path, required=True, help="directory holding wp-load.php")
    parser.add_argument("--url", required=True, help="the site's URL, e.g. http://127.0.0.1:8181")
    parser.add_argument("--content-dir", type=Path, help="wp-content (default: WP_ROOT/wp-content)")
    parser.add_argument(
        "--config-extra",
        type=Path,
        help="a PHP file the site's wp-config.php requires if present (default: WP_ROOT/wp-config-extra.php)",
    )
    parser.add_argument("--cost-samples", type=int, default=100)
    parser.add_argument("--settle", type=float, default=0.25, help="seconds to wait after a change was delivered")
    parser.add_argument("--changes", type=int, default=20, help="changes per latency condition")
    parser.add_argument("--quiet-gap", type=float, default=3.0, help="seconds between changes on the quiet site")
    parser.add_argument("--traffic-rps", type=float, default=5.0)
    parser.add_argument("--give-up", type=float, default=60.0, help="seconds to wait for one event")
    parser.add_argument(
        "--compare-ref",
        metavar="REF",
        help="also measure the plugin as committed at this git ref (e.g. HEAD), in the same run",
    )
    args = parser.parse_args()
    content = args.content_dir or args.wp_root / "wp-content"
    (content / "mu-plugins").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROBE, content / "mu-plugins" / PROBE.name)
    if args.compare_ref:
        install_ref(args.compare_ref, content / "plugins")
    extra = args.config_extra or args.wp_root / "wp-config-extra.php"
    extra.unlink(missing_ok=True)

    secret = signing.new_secret()
    receiver = Receiver(secret)
    out = subprocess.run(
        ["php", str(SETUP), str(args.wp_root / "wp-load.php"), receiver.url, secret, "5" if args.compare_ref else "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    skus = [f"BENCH-{i}" for i in range(len(ids))]
    finish_request = bool(get(f"{args.url}/?srb=ping")[0].get("finish_request"))
    base = [get(f"{args.url}/?srb=ping")[1] * 1000 for _ in range(30)]
    baseline_ms = statistics.median(base)
    print(f"baseline: a bare page view of this site takes {baseline_ms:.1f} ms (median of 30)")

    cost = request_cost(args, receiver, ids, content / "srb-timings.log")
    s = cost["server"]
    print(
        f"request cost (server side): plugin on {s['median_on_ms']} ms vs off {s['median_off_ms']} ms median: "
        f"+{s['added_ms']} ms, ratio {s['ratio_on_off']}; median of per-round differences +{s['paired_added_ms']} ms "
        "(target: +2 ms or less)"
    )
    sc = cost["server_until_complete"]
    print(
        f"request cost (server side, until the response was complete): on {sc['median_on_ms']} ms vs off "
        f"{sc['median_off_ms']} ms: +{sc['added_ms']} ms, ratio {sc['ratio_on_off']}; median of per-round differences "
        f"+{sc['paired_added_ms']} ms (the plugin sends a stock-changing response with its length before it kicks the "
        "drainer, so the client is done there)"
    )
    c = cost["client"]
    print(
        f"request cost (client side): on {c['median_on_ms']} ms vs off {c['median_off_ms']} ms: +{c['added_ms']} ms, ratio {c['ratio_on_off']}; "
        f"median of per-round differences +{c['paired_added_ms']} ms"
    )
    if finish_request:
        print(
            "  (PHP-FPM: the plugin finishes the response with fastcgi_finish_request() and drains in the same "
            "process, inside the server-side time; the client side is what the shopper waits for)"
        )
    if args.compare_ref:
        for label, r in (("server side", s), ("server side, until complete", sc), ("client side", c)):
            print(
                f"request cost at {args.compare_ref} ({label}): {r['median_ref_ms']} ms: +{r['ref_added_ms']} ms, "
                f"ratio {r['ratio_ref_off']}; median of per-round differences +{r['paired_ref_added_ms']} ms"
            )

    results: dict[str, Any] = {}
    results["quiet"] = latency(args, receiver, ids[2], skus[2], args.changes, args.quiet_gap, 10000)
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                get(f"{args.url}/?srb=ping")
            stop.wait(1 / args.traffic_rps)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    results["steady_traffic"] = latency(args, receiver, ids[2], skus[2], args.changes, 1.0, 20000)
    stop.set()
    thread.join()
    extra.write_text("<?php\ndefine( 'DISABLE_WP_CRON', true );\n")
    try:
        cron_disabled = get(f"{args.url}/?srb=ping")[0].get("cron_disabled")
        results["disable_wp_cron"] = latency(args, receiver, ids[3], skus[3], args.changes, args.quiet_gap, 30000)
        results["disable_wp_cron"]["cron_disabled_confirmed"] = cron_disabled
    finally:
        extra.unlink(missing_ok=True)
    for name, r in results.items():
        p99 = r["p99_ms"]
        ratio = f"{p99 / baseline_ms:.1f}x a page view, {p99 / 1000:.3f}x the 1 s target" if p99 is not None else "n/a"
        print(f"hook-to-relay {name}: p50 {r['p50_ms']} ms, p99 {p99} ms ({ratio}), lost {r['lost']}/{r['n']}")
    figures = {
        "bench": "plugin_latency",
        "baseline_page_view_ms": round(baseline_ms, 2),
        "fastcgi_finish_request": finish_request,
        "request_cost": cost,
        "latency": results,
        "p99_over_target": {k: (r["p99_ms"] / 1000 if r["p99_ms"] is not None else None) for k, r in results.items()},
        "bad_signatures": receiver.bad_signatures,
    }
    print(json.dumps(figures, separators=(",", ":")))
    receiver.server.shutdown()
    if args.compare_ref:
        shutil.rmtree(content / "plugins" / REF_SLUG, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
