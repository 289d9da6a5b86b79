"""The strict JSON reader's depth limit is exact, whichever path finds it (relay/intake/protocol.py).

Most bodies are cleared by the bracket-only scan at C speed; the rest (deeper, or brackets inside strings that
do not pair up) by the exact walk. Both must draw the line at MAX_DEPTH levels, never one off.
"""

from __future__ import annotations

import json

import pytest

from relay.errors import PayloadError
from relay.intake.protocol import MAX_DEPTH, parse_json


def nested_lists(depth: int) -> bytes:
    return b"[" * (depth - 1) + b"1" + b"]" * (depth - 1)


def nested_objects(depth: int, leaf: str) -> bytes:
    return b'{"a":' * (depth - 1) + json.dumps(leaf).encode() + b"}" * (depth - 1)


@pytest.mark.parametrize(
    "make",
    [
        nested_lists,
        lambda depth: nested_objects(depth, "plain"),
        lambda depth: nested_objects(depth, "x[{"),  # unpaired brackets in a string: the exact walk decides
        lambda depth: nested_objects(depth, "[]{}" * 20),  # paired ones: the scan clears what it can
    ],
    ids=["lists", "objects", "unpaired-brackets-in-a-string", "paired-brackets-in-a-string"],
)
@pytest.mark.parametrize("depth", [1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 5])
def test_depth_up_to_the_limit_is_read_and_beyond_it_refused(make, depth: int) -> None:
    body = make(depth)
    if depth <= MAX_DEPTH:
        assert parse_json(body) == json.loads(body)
    else:
        with pytest.raises(PayloadError, match=f"nested more than {MAX_DEPTH} levels"):
            parse_json(body)


def test_a_wide_batch_is_read_and_a_duplicate_key_is_still_named() -> None:
    events = [{"sku": f"S-{i}", "meta": {"tags": ["a", "b"]}} for i in range(500)]
    body = json.dumps({"type": "stock.batch", "events": events}).encode()
    assert parse_json(body)["events"][499]["sku"] == "S-499"
    with pytest.raises(PayloadError, match="duplicate key 'sku'"):
        parse_json(body.replace(b'"sku": "S-7"', b'"sku": "S-7", "sku": "S-8"'))
