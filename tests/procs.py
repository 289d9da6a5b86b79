"""Running ``stock-relay`` as a real subprocess, for end-to-end and CLI tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import backend

STARTED: list[subprocess.Popen[bytes]] = []
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def relay_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "relay", *args]


def on_suite_store(config_path: Path) -> None:
    """On the PostgreSQL run, point a test's relay config at the test's schema (tests/backend.py), once."""
    if backend.current_store() is None or not config_path.is_file():
        return
    text = config_path.read_text()
    if "\nstore:" not in "\n" + text:
        config_path.write_text(backend.with_store(text, _state_dir(config_path, text)))


def _state_dir(config_path: Path, text: str) -> Path | None:
    """The config's state_dir as the relay reads it (relative to the config's folder), if it names one."""
    doc = yaml.safe_load(text) or {}
    named = doc.get("state_dir") if isinstance(doc, dict) else None
    return (config_path.parent / named) if isinstance(named, str) and named else None


def _config_argument(args: tuple[str, ...]) -> Path | None:
    for flag in ("-c", "--config"):
        if flag in args[:-1]:
            return Path(args[args.index(flag) + 1])
    return None


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    config = _config_argument(args)
    if config is not None:
        on_suite_store(config if cwd is None or config.is_absolute() else cwd / config)
    return subprocess.run(
        relay_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


class RelayProcess:
    """``stock-relay serve`` in a subprocess; ``url`` is known once it logs that it is listening.

    Every started process is remembered in ``STARTED`` so conftest can kill what a failed test left running.
    """

    def __init__(
        self, config_path: Path, env: dict[str, str], log_path: Path, command: list[str] | None = None
    ) -> None:
        self.command = command or relay_command()  # e.g. an installed console script: [".../bin/stock-relay"]
        self.config_path = config_path
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts_seen = 0  # the log is appended across restarts: count "listening" lines

    def start(self, timeout: float = 20.0) -> str:
        on_suite_store(self.config_path)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
        self.proc = subprocess.Popen(
            [*self.command, "serve", "-c", str(self.config_path)], stdout=log, stderr=log, env=self.env
        )
        log.close()
        STARTED.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            matches = LISTENING.findall(text)
            if len(matches) >= self.starts_seen + 1:
                host, port = matches[self.starts_seen]
                self.starts_seen += 1
                self.url = f"http://{host}:{port}"
                return self.url
            if self.proc.poll() is not None:
                raise RuntimeError(f"stock-relay exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"stock-relay did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
