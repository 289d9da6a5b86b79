"""``stock-relay pause CHANNEL --reason TEXT`` and ``stock-relay resume CHANNEL`` (or ``--all``): the operator's switch.

On the local file the pause is written through a Store of this command's own, beside a running relay (SQLite's locks
serialise the two, as for replay): that relay's next claim finds the pause, and a resume is found at its next idle
poll (``dispatch.idle_poll_seconds``). With ``--remote`` the signed API does the same, and the relay acts on it at once.
Who paused is the ``--actor`` given, else the login of whoever runs the command (``sudo``'s caller, not root).
"""

from __future__ import annotations

import argparse
import getpass
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError
from ..storage import pauses, views
from ..storage.dbapi import Conn
from ..storage.store import existing, open_store

if TYPE_CHECKING:
    from .operator import Backend

T = TypeVar("T")
COMMANDS = ("pause", "resume")


def add_arguments(pause: argparse.ArgumentParser, resume: argparse.ArgumentParser) -> None:
    for parser, verb in ((pause, "pause"), (resume, "resume")):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("channel", nargs="?", help=f"the channel to {verb}")
        which.add_argument("--all", action="store_true", dest="every", help=f"{verb} every channel of the site")
        parser.add_argument("--actor", help="who does it, for status and the audit log (default: your login)")
    pause.add_argument("--reason", required=True, help="why, in one line: shown in status and in WordPress")


def actor_of(args: argparse.Namespace) -> str:
    actor = args.actor or os.environ.get("SUDO_USER") or getpass.getuser()
    if not 0 < len(actor.strip()) <= pauses.MAX_ACTOR:
        raise ConfigError("--actor", f"give 1 to {pauses.MAX_ACTOR} characters")
    return actor.strip()


async def run(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    """Pause or resume as the arguments say, on the file or over the API; returns the API's answer."""
    from .operator import Local  # here: operator imports this module

    actor = actor_of(args)
    if args.command == "pause" and not (0 < len(args.reason.strip()) <= pauses.MAX_REASON):
        raise ConfigError("--reason", f"give 1 to {pauses.MAX_REASON} characters")
    if not isinstance(backend, Local):
        fields: dict[str, Any] = {"actor": actor, **({"channel": args.channel} if args.channel else {})}
        if args.command == "pause":
            return dict(await backend.call("pause", "channel.pause", reason=args.reason, **fields))
        return dict(await backend.call("resume", "channel.resume", **fields))
    names = [c.name for c in backend.site.channels]
    if args.channel and args.channel not in names:
        raise ConfigError("channel", f"site {backend.site.id} has no channel {args.channel!r} ({', '.join(names)})")
    channels = [args.channel] if args.channel else names
    site, now = backend.site.id, time.time()
    if args.command == "pause":
        reason = " ".join(args.reason.split())
        done, already = await _write(backend, lambda conn: pauses.pause(conn, site, channels, reason, actor, now))
        answer = {"type": "paused", "paused": _listed(done), "already_paused": _listed(already)}
    else:
        lifted = await _write(backend, lambda conn: pauses.resume(conn, site, channels, actor, now))
        answer = {"type": "resumed", "resumed": _listed(lifted)}
    return views.with_iso(answer)


def _listed(found: list[pauses.Pause]) -> list[dict[str, Any]]:
    return [{"channel": p.channel, **p.as_dict()} for p in found]


async def _write(backend: Any, job: Callable[[Conn], T]) -> T:
    store = open_store(existing(backend.cfg.store_location))
    try:
        await store.open(check=False)
        return await store.write(job)
    finally:
        await store.close()


def format_answer(answer: dict[str, Any]) -> str:
    if answer["type"] == "paused":
        lines = [f"paused {p['channel']}: {p['reason']} (by {p['actor']})" for p in answer["paused"]]
        lines += [
            f"{p['channel']} was already paused since {p['paused_at_iso']} by {p['actor']}: {p['reason']}"
            for p in answer["already_paused"]
        ]
        return "\n".join(lines + ["changes keep queuing; stock-relay resume CHANNEL sends them"])
    if not answer["resumed"]:
        return "nothing to resume: no such channel was paused"
    return "\n".join(
        f"resumed {p['channel']} (paused since {p['paused_at_iso']} by {p['actor']}); its queue is being sent"
        for p in answer["resumed"]
    )
