"""Stock Relay plugin: a full paged snapshot of 50,000 products through the real signed route.

One command, nothing to set up: boots the integration suite's throwaway WordPress (Debian's WordPress 6.1,
MariaDB on a private socket, PHP's built-in server; wp-plugin/tests/integration/wp-env.sh, the same
helpers tests/run.sh uses), inserts the products with plain SQL (bench/plugin/snapshot-setup.php), then
pages through `POST /wp-json/stock-relay/v1/snapshot` with signed requests (relay.signing), as the relay's
reconciliation does. Baselines measured in the same run, over the same pages:

- `ids`: only the route's own id query per page (bench/plugin/snapshot-baseline.php): the floor;
- `per_item`: the same page built by loading each item (get_post + get_post_meta per item and its
  parent), the way code built on product objects pays for it (wc_get_product would cost more).

Every pass is run once (no repetitions: the machine is shared). The per-item page is checked to equal the
real route's first page, so both build the same thing.

Usage: python3 bench/snapshot.py [--products 50000] [--limit 500] [--keep]
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from relay import signing  # noqa: E402

WP_ENV = ROOT / "wp-plugin" / "tests" / "integration" / "wp-env.sh"
SETUP = Path(__file__).resolve().parent / "plugin" / "snapshot-setup.php"
BASELINE = Path(__file__).resolve().parent / "plugin" / "snapshot-baseline.php"
SITE = "bench"


def wp_start(work: Path) -> dict[str, str]:
    """srt_wp_prepare + srt_wp_start from wp-env.sh; returns the SRT_* variables it exported."""
    env_file = work / "srt.env"
    script = f'set -e; . "{WP_ENV}"; srt_wp_prepare; srt_wp_start "{work}"; env | grep "^SRT_" > "{env_file}"'
    subprocess.run(["bash", "-c", script], check=True, stdin=subprocess.DEVNULL)
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def wp_stop(srt: dict[str, str]) -> None:
    """srt_wp_stop from wp-env.sh, for the processes wp_start left running."""
    env = {**os.environ, "SRT_WEB_PID": srt.get("SRT_WEB_PID", ""), "SRT_DB_PID": srt.get("SRT_DB_PID", "")}
    subprocess.run(["bash", "-c", f'. "{WP_ENV}"; srt_wp_stop'], env=env, check=False)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def full_pass(url: str, secret: str | None, limit: int) -> dict[str, Any]:
    """Page from after_id 0 until next_after_id is null; returns the time, pages and what came back."""
    after: int | None = 0
    pages = 0
    items: list[dict[str, Any]] = []
    ids: list[int] = []
    first: dict[str, Any] | None = None
    started = time.perf_counter()
    while after is not None:
        body = json.dumps({"type": "snapshot.page", "site": SITE, "after_id": after, "limit": limit}).encode()
        headers = signing.signed_headers(secret, f"msg_bench{pages}", int(time.time()), body) if secret else {}
        status, doc = post(url, body, headers)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}: {doc}")
        first = first or doc
        items.extend(doc.get("items", []))
        ids.extend(doc.get("ids", []))
        after = doc["next_after_id"]
        pages += 1
    return {"seconds": time.perf_counter() - started, "pages": pages, "items": items, "ids": ids, "first": first}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--products", type=int, default=50000)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stock-relay-snapshot-bench."))
    srt: dict[str, str] = {}
    try:
        srt = wp_start(work)
        (work / "wp-content" / "mu-plugins" / BASELINE.name).write_text(BASELINE.read_text())
        secret = signing.new_secret()
        env = {**os.environ, **srt}
        setup = subprocess.run(
            ["php", str(SETUP), SITE, secret, str(args.products)], env=env, check=True, capture_output=True, text=True
        )
        inserted = json.loads(setup.stdout.strip().splitlines()[-1])
        print(f"inserted {args.products} products with plain SQL in {inserted['insert_seconds']} s", flush=True)
        base = srt["SRT_WP_URL"] + "/wp-json"

        real = full_pass(f"{base}/stock-relay/v1/snapshot", secret, args.limit)
        item_ids = [item["item_id"] for item in real["items"]]
        if item_ids != sorted(set(item_ids)) or len(item_ids) != args.products:
            distinct = len(set(item_ids))
            raise RuntimeError(f"{len(item_ids)} items ({distinct} distinct), expected {args.products} in id order")
        deleted = sum(1 for item in real["items"] if item["kind"] == "deleted")
        print(f"snapshot: {len(item_ids)} items in {real['pages']} pages, {real['seconds']:.2f} s", flush=True)

        floor = full_pass(f"{base}/stock-relay-bench/v1/ids", None, args.limit)
        if floor["ids"] != item_ids:
            raise RuntimeError("the id-query baseline scanned different ids")
        print(f"baseline ids only: {floor['seconds']:.2f} s", flush=True)

        naive = full_pass(f"{base}/stock-relay-bench/v1/per-item", None, args.limit)
        comparable = {k: v for k, v in (naive["first"] or {}).items() if k != "server_time" and k != "site"}
        reference = {k: v for k, v in (real["first"] or {}).items() if k != "server_time" and k != "site"}
        if comparable != reference:
            raise RuntimeError("the per-item baseline built a different first page")
        print(f"baseline per-item loading: {naive['seconds']:.2f} s", flush=True)

        per_k = 1000 / args.products
        figures = {
            "bench": "snapshot",
            "products": args.products,
            "limit": args.limit,
            "pages": real["pages"],
            "deleted_items": deleted,
            "insert_seconds": inserted["insert_seconds"],
            "snapshot_seconds": round(real["seconds"], 3),
            "snapshot_ms_per_1000_skus": round(real["seconds"] * 1000 * per_k, 1),
            "ids_only_seconds": round(floor["seconds"], 3),
            "per_item_seconds": round(naive["seconds"], 3),
            "per_item_ms_per_1000_skus": round(naive["seconds"] * 1000 * per_k, 1),
            "ratio_snapshot_to_ids_only": round(real["seconds"] / floor["seconds"], 2),
            "ratio_per_item_to_snapshot": round(naive["seconds"] / real["seconds"], 2),
            "wordpress": "Debian 6.1 + MariaDB, PHP built-in server (wp-env.sh)",
        }
        print(
            f"snapshot {figures['snapshot_ms_per_1000_skus']} ms per 1,000 SKUs; "
            f"{figures['ratio_snapshot_to_ids_only']}x the bare id query; "
            f"per-item loading takes {figures['ratio_per_item_to_snapshot']}x as long"
        )
        print(json.dumps(figures))
        return 0
    finally:
        wp_stop(srt)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
