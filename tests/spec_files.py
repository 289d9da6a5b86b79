"""Where the marketplaces' own spec files are, for the tests that check what the connectors send against them.

They live in ../shared/refs/specs/ beside the repository (never copied into it; CI has them there), or wherever
STOCK_RELAY_SPECS names. Without them, as on a fresh clone, these tests SKIP with a reason that says where the
specs were looked for (pytest -ra lists it in the summary). STOCK_RELAY_REQUIRE_SPECS=1 (set by .ci/run) makes a
missing spec a failure instead, so CI cannot lose the checks in silence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
# Read at import: conftest clears every STOCK_RELAY_* variable before each test runs.
SPECS = Path(os.environ.get("STOCK_RELAY_SPECS") or ROOT.parent / "shared" / "refs" / "specs")
REQUIRED = os.environ.get("STOCK_RELAY_REQUIRE_SPECS") == "1"
HOW = "set STOCK_RELAY_SPECS=DIR, or fetch them with scripts/fetch-specs"


def spec_path(relative: str, in_ci: bool = True) -> Path:
    """The spec file ``relative`` to the specs folder; skips the test if it is missing (fails when required).

    ``in_ci=False``: a spec CI's copies in ../shared do not include (Amazon's ordersV0, eBay's Sell Fulfillment),
    which ``scripts/fetch-specs --extra`` downloads: its absence skips, and says so, even where specs are required.
    """
    path = SPECS / relative
    if path.is_file():
        return path
    if SPECS.is_dir():
        reason = f"marketplace spec {relative} not found in {SPECS} ({HOW})"
    else:
        reason = f"marketplace specs not found at {SPECS} ({HOW})"
    if not in_ci:
        pytest.skip(f"{reason}; it is not among CI's copies, run scripts/fetch-specs --extra")
    if REQUIRED:
        pytest.fail(f"STOCK_RELAY_REQUIRE_SPECS=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def load(relative: str, in_ci: bool = True) -> Any:
    return json.loads(spec_path(relative, in_ci).read_text())


def swagger_validator(relative: str, definition: str, in_ci: bool = True) -> jsonschema.protocols.Validator:
    """A validator for one ``definitions`` entry of a Swagger 2.0 file (Amazon's SP-API models)."""
    spec = load(relative, in_ci)
    return jsonschema.Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]})


def schema_validator(relative: str) -> jsonschema.protocols.Validator:
    """A validator for a JSON Schema file, in the draft it declares."""
    schema = load(relative)
    return jsonschema.validators.validator_for(schema)(schema)


def oas3_validator(spec: dict[str, Any], schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for an OpenAPI 3.0 schema fragment whose ``#/…`` $refs point into ``spec`` (already loaded,
    so a test may adapt it first), as tests/test_specs_shopify_ebay_etsy.py validates eBay Inventory bodies: Draft 4
    (OpenAPI 3.0's schemas are JSON Schema Wright-00's keywords, boolean exclusiveMaximum as in Draft 4), with
    ``nullable: true`` as ``type: [X, "null"]``."""
    registry: Registry = Registry().with_resource("spec.json", Resource.opaque(_nullable_to_types(spec)))
    return jsonschema.Draft4Validator(_rebase(_nullable_to_types(schema)), registry=registry)


def _nullable_to_types(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _nullable_to_types(v) for k, v in node.items()}
        if out.pop("nullable", False) and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_nullable_to_types(v) for v in node]
    return node


def _rebase(node: Any) -> Any:
    """The fragment's own ``#/…`` $refs, made to point into the spec registered as ``spec.json``."""
    if isinstance(node, dict):
        return {k: ("spec.json" + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node
