"""Docs stay true: every config key is documented with its default and range (checked against the one declaration,
relay/config.py), the example config loads, the README's commands exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay import config, signing
from relay.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
KEYS = {key.path: key for key in config.schema()}
DOC = (ROOT / "docs" / "configuration.md").read_text()
EXAMPLE = (ROOT / "config.example.yaml").read_text()
TYPES = "|".join(config.CHANNEL_TYPES)


def default_for(key: config.Key, kind: str) -> Any:
    return key.spec.by_type.get(kind, key.default)


def literal(text: str) -> Any:
    """A default as the docs write it (`30`, `0.2`, `null`, `v1`), read as YAML reads it."""
    return yaml.safe_load(text)


def statement_problems(key: config.Key, general: str | None, pairs: list[tuple[str, str]], words: str) -> list[str]:
    """What is wrong with a stated default: ``general`` the value for every type not named, ``pairs`` (value, type)
    for the named ones, ``words`` the whole statement (where a default is words, e.g. "none")."""
    s = key.spec
    if s.doc is not None:  # the docs table quotes values in backticks, the example's comments do not
        doc = s.doc if "`" in words else s.doc.replace("`", "")
        return [] if words.startswith(doc) else [f"not {doc!r}"]
    if key.default in ("", {}, ()) and not s.by_type:
        expected = "empty" if key.default == "" else "none"
        return [] if words.startswith(expected) else [f"not {expected!r}"]
    problems = [f"{v} for {t}, not {default_for(key, t)!r}" for v, t in pairs if literal(v) != default_for(key, t)]
    if general is not None and literal(general) != key.default:
        problems.append(f"{general}, not {key.default!r}")
    return problems


def covers_every_type(key: config.Key, general: str | None, pairs: list[tuple[str, str]], words: str) -> bool:
    """The statement says what every channel type gets (a marketplace's own defaults may be referred to)."""
    if not key.spec.by_type:
        return True
    named = {t for _, t in pairs}
    for kind in key.spec.types or config.CHANNEL_TYPES:  # a key some types use only: those types
        own = default_for(key, kind) != key.default
        if (
            kind not in named
            and (general is None or own)
            and not (kind in config.MARKETPLACE_TYPES and "marketplace" in words)
        ):
            return False
    return True


# --- docs/configuration.md: one table per section, whose rows are exactly that section's keys -------


def doc_tables() -> list[dict[str, dict[str, str]]]:
    """Each table of docs/configuration.md whose first column is `key`: key name → {column: cell}."""
    tables: list[dict[str, dict[str, str]]] = []
    header: list[str] = []
    for line in DOC.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            if header[0] == "key":
                tables.append({})
        elif header[0] == "key" and not set(cells[0]) <= {"-"}:
            tables[-1][cells[0].strip("`")] = dict(zip(header, cells, strict=True))
    return tables


def sections() -> dict[tuple[str, ...], set[str]]:
    found: dict[tuple[str, ...], set[str]] = {}
    for path in KEYS:
        parent = path[:-1][:-1] if path[-2:-1] == ("*",) else path[:-1]
        found.setdefault(parent, set()).add(path[-1])
    return found


def doc_row(path: tuple[str, ...]) -> dict[str, str]:
    parent = path[:-1][:-1] if path[-2:-1] == ("*",) else path[:-1]
    want = sections()[parent]
    table = next((t for t in doc_tables() if set(t) == want), None)
    assert table is not None, f"docs/configuration.md has no table of exactly {sorted(want)}"
    return table[path[-1]]


def test_configuration_doc_tables_are_the_schema() -> None:
    """docs/configuration.md has one table per section holding exactly its declared keys: none missing, none that
    the relay would refuse."""
    tables = [set(t) for t in doc_tables()]
    for parent, keys in sections().items():
        assert keys in tables, f"{'.'.join(parent) or 'top level'}: no table of exactly {sorted(keys)}"
    declared = list(sections().values())
    assert all(t in declared for t in tables), [sorted(t) for t in tables if t not in declared]


@pytest.mark.parametrize("path", list(KEYS), ids=".".join)
def test_configuration_doc_states_the_default(path: tuple[str, ...]) -> None:
    """Each key's default in docs/configuration.md is the declared one (every channel type's, where they differ);
    required keys and sections state none and say **Required**."""
    key, row = KEYS[path], doc_row(path)
    cell = row["default"]
    if key.spec.required or key.section or key.spec.doc == "":
        assert cell == "", f"{cell!r}: states no default"
        assert not key.spec.required or "**required" in row["meaning"].lower(), row["meaning"]
        return
    tokens = re.findall(rf"`([^`]+)`(?: for `({TYPES})`)?", cell)
    pairs = [(value, kind) for value, kind in tokens if kind]
    general = next((value for value, kind in tokens if not kind), None)
    assert not statement_problems(key, general, pairs, cell), (cell, statement_problems(key, general, pairs, cell))
    assert covers_every_type(key, general, pairs, cell), f"{cell!r}: which default does each channel type get?"


@pytest.mark.parametrize("path", [p for p, k in KEYS.items() if k.spec.whole or k.spec.number], ids=".".join)
def test_configuration_doc_states_the_range(path: tuple[str, ...]) -> None:
    """Where a table has a range column, it gives the range the relay checks ("whole number" for integer keys)."""
    key, row = KEYS[path], doc_row(path)
    if "range" not in row:
        return
    low, high = (int(x) if x == int(x) else x for x in key.spec.whole or key.spec.number or (0, 0))
    assert f"{low}–{high}" in row["range"], row["range"]
    assert ("whole number" in row["range"]) == bool(key.spec.whole), row["range"]


# --- config.example.yaml: every key where it belongs, with its default in its comment --------------


def example_keys() -> dict[tuple[str, ...], list[str]]:
    """Each key line of config.example.yaml by its path (site ids as "*", list items dropped), with the comment
    above it and beside it. A commented-out line counts as a key line when it names a declared key."""
    names = {path[-1] for path in KEYS}
    found: dict[tuple[str, ...], list[str]] = {}
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in EXAMPLE.splitlines():
        match = re.match(r"^(\s*)(#\s*)?(- )?([a-z_]+):(?:\s|$)(.*)", line)
        if not match or (match[2] and match[4] not in names):
            text = line.strip()
            comment = [*comment, text.lstrip("# ")] if text.startswith("#") else []
            continue
        column = match.start(4) - (2 if match[2] else 0)  # "# key" sits where "key" would
        while stack and stack[-1][0] >= column:
            stack.pop()
        parent = tuple("*" if i == 1 and stack[0][1] == "sites" else name for i, (_, name) in enumerate(stack))
        found.setdefault((*parent, match[4]), []).append(" ".join([*comment, match[5].partition("#")[2]]))
        stack.append((column, match[4]))
        comment = []
    return found


@pytest.mark.parametrize("path", list(KEYS), ids=".".join)
def test_example_shows_the_key_and_its_default(path: tuple[str, ...]) -> None:
    """config.example.yaml shows every key the relay accepts, where it belongs (commented out where it is
    optional), and its comment states the declared default ("Default 30."), or that it is required."""
    key = KEYS[path]
    comments = example_keys().get(path)
    assert comments, f"{'.'.join(path)} is not in config.example.yaml"
    text = " ".join(comments)
    if key.spec.required:
        assert "required" in text.lower(), text
        return
    if key.section or key.spec.doc == "":
        return
    statements = re.findall(r"Defaults?:? (.+?)(?:\.\s|\.$|$)", text)
    assert statements, f"{'.'.join(path)}: no 'Default ...' in {text!r}"
    complete = False
    for statement in statements:
        parts = [p.strip() for p in re.split(r"[,;]", statement)]
        pairs = [(m[1], m[2]) for p in parts if (m := re.match(rf"^(\S+) for ({TYPES})\b", p))]
        first = parts[0].split()[0] if parts[0] else None
        general = first if first and not re.match(r"^\S+ for ", parts[0]) else None
        assert not statement_problems(key, general, pairs, statement), (
            statement,
            statement_problems(key, general, pairs, statement),
        )
        complete = complete or covers_every_type(key, general, pairs, statement)
    assert complete, f"{statements}: which default does each channel type get?"


def test_example_config_loads(tmp_path: Path) -> None:
    """The example config is valid as shipped, given the secrets it references."""
    text = (ROOT / "config.example.yaml").read_text()
    env: dict[str, str] = {}
    for name in set(re.findall(r"env:([A-Z0-9_]+)", text)):
        env[name] = signing.new_ed25519_key()[0] if "ED25519" in name or "V1A" in name else signing.new_secret()
    cfg = config.parse(yaml.safe_load(text), env, tmp_path)
    assert cfg.sites and all(site.channels for site in cfg.sites)


def test_readme_commands_exist() -> None:
    """The README's quick start scripts exist and are executable, and .ci/run calls the test command."""
    readme = (ROOT / "README.md").read_text()
    assert "./stock-relay demo" in readme and "scripts/test" in readme
    for script in ("stock-relay", "scripts/test", ".ci/run"):
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand of the CLI appears in the README's command table."""
    with pytest.raises(SystemExit):
        main(["--help"])
    commands = re.findall(r"^    (\S+)\s", capsys.readouterr().out, re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    assert commands and all(f"stock-relay {c}" in readme for c in commands)


def test_docs_say_readback_runs_without_shop_url() -> None:
    """Read-back compares each channel with what the relay last sent it and runs with or without shop_url
    (test_reconcile::test_readback_runs_without_shop_url_and_says_so); the docs said the whole reconcile section
    was only used with shop_url, and the example that without it nothing is reconciled."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `reconcile` |"))
    assert "read-back (`readback_hours`, `readback_share`) runs with or without it" in row, row
    assert "Read-back (the last two keys) needs no `shop_url`" in doc
    example = (ROOT / "config.example.yaml").read_text()
    assert "nothing is reconciled" not in example
    assert "read-back (readback_hours below) still runs without it" in example


def test_local_links_resolve() -> None:
    """Every relative link in the README and docs/ names a file of this tree (openapi.yaml moved into the package,
    relay/openapi.yaml, so that a wheel carries it)."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"^[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
    assert not (ROOT / "docs" / "openapi.yaml").exists(), "one copy: relay/openapi.yaml"
