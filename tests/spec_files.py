"""Where the marketplaces' own spec files are, for the Amazon, Walmart and TikTok connector tests.

They live in ../shared/refs/specs/ (never copied into this repo). A missing file FAILS the test with
a message naming where it was looked for; SKIP_MARKETPLACE_SPECS=1 skips knowingly (reported by name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT.parent / "shared" / "refs" / "specs"


def spec_path(relative: str) -> Path:
    path = SPECS / relative
    if not path.is_file():
        if os.environ.get("SKIP_MARKETPLACE_SPECS") == "1":
            pytest.skip(f"SKIP_MARKETPLACE_SPECS=1: not checking against {path}")
        pytest.fail(
            f"MARKETPLACE SPEC MISSING: {path} is not there, so the request bodies cannot be checked against it."
            " Put shared/refs/specs beside the repository (CI does), or set SKIP_MARKETPLACE_SPECS=1 to skip knowingly.",
            pytrace=False,
        )
    return path


def load(relative: str) -> Any:
    return json.loads(spec_path(relative).read_text())


def swagger_validator(relative: str, definition: str) -> jsonschema.protocols.Validator:
    """A validator for one ``definitions`` entry of a Swagger 2.0 file (Amazon's SP-API models)."""
    spec = load(relative)
    return jsonschema.Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]})


def schema_validator(relative: str) -> jsonschema.protocols.Validator:
    """A validator for a JSON Schema file, in the draft it declares."""
    schema = load(relative)
    return jsonschema.validators.validator_for(schema)(schema)
