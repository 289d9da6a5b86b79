"""The relay as a user installs it: a wheel built from this tree and installed, not editable, into a fresh
virtual environment serves what the source tree serves.

The wheel is built without build isolation (the project venv's setuptools, bounded like the build requirement;
no download) from a copy of what a build reads, so the work tree gets no build/ folder. The fresh venv has no
pip and borrows the project venv's site-packages for the dependencies through a .pth file; pip installs the
wheel into it with ``--python``, so ``relay`` there is the wheel's copy, not the editable one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests
import yaml

from relay import signing

from .procs import RelayProcess

ROOT = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "relay")


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel, and everything the build printed (pip -v shows the backend's own warnings)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    output = run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", tmp / "dist", source)
    (wheel,) = (tmp / "dist").glob("stock_relay-*.whl")
    return wheel, output


def test_wheel_carries_openapi_and_license_and_builds_without_deprecations(built: tuple[Path, str]) -> None:
    """openapi.yaml is package data and the GPL text is the licence file; setuptools warned that the license
    table would break builds after 2027-02-18, and says nothing deprecated now."""
    wheel, output = built
    assert "deprecat" not in output.lower(), [line for line in output.splitlines() if "eprecat" in line]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert archive.read("relay/openapi.yaml") == (ROOT / "relay" / "openapi.yaml").read_bytes()
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert b"GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991" in archive.read(license_file)
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        assert "License-Expression: GPL-2.0-or-later" in archive.read(metadata).decode()
    assert not any(n.startswith(("docs/", "tests/", "fakes/")) for n in names)


def test_installed_wheel_serves_openapi_yaml(built: tuple[Path, str], tmp_path: Path) -> None:
    """``stock-relay serve`` from the wheel answers GET /openapi.yaml with the document (it was a 404: the file
    was read from docs/ beside the source tree, which no wheel has)."""
    wheel, _ = built
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel)
    where = run(python, "-c", "import relay.http.operator_api as api; print(api.__file__)", cwd=tmp_path).strip()
    assert Path(where).is_relative_to(purelib), f"relay came from {where}, not from the installed wheel"

    config = {
        "state_dir": str(tmp_path / "state"),
        "listen": {"host": "127.0.0.1", "port": 0},
        "sites": {
            "main": {
                "secret": "env:WHEEL_SITE",
                "channels": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "env:HOOK"}],
            }
        },
    }
    (tmp_path / "relay.yaml").write_text(yaml.safe_dump(config))
    env = {"WHEEL_SITE": signing.new_secret(), "HOOK": signing.new_secret()}
    process = RelayProcess(tmp_path / "relay.yaml", env, tmp_path / "relay.log", [str(venv / "bin" / "stock-relay")])
    url = process.start()
    try:
        response = requests.get(f"{url}/openapi.yaml", timeout=10)
        assert response.status_code == 200, response.text[:300]
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.text == (ROOT / "relay" / "openapi.yaml").read_text()
        assert yaml.safe_load(response.text)["openapi"].startswith("3.")
    finally:
        assert process.terminate() == 0, process.log()[-3000:]
