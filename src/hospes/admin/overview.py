"""The admin capsule's front page: how the server is doing, who was refused, what admins changed.

Counters are the totals of every worker since the server started
(:class:`~hospes.admin.monitor.Monitor`); the last refusals are the newest 6x
and 44 answers of every worker, with the client's address group, the
certificate it presented and what it was told; the store's size and the
audit log (changes made here, and with the ``hospes`` command) come from the
identity store.
"""

from __future__ import annotations

import datetime as dt
import time

from ..app.listing import human_size
from ..app.request import Request
from ..gemini.protocol import Status
from ..server.refusals import RefusedRequest
from ..store import AuditEntry, Store
from .monitor import Monitor, Snapshot
from .render import changed_by, digits, link, moment, preformatted, short, shown, span

__all__ = ["AUDIT_SHOWN", "Overview"]

AUDIT_SHOWN = 10
"""Audit entries on the overview (the audit page shows more)."""
AUDIT_PAGE = 200
"""Audit entries on the audit page."""


def _status_name(status: int) -> str:
    try:
        return Status(status).name.lower().replace("_", " ")
    except ValueError:
        return "unknown"


class Overview:
    """The overview and audit pages of one admin capsule."""

    def __init__(self, monitor: Monitor | None = None) -> None:
        self.monitor = monitor

    async def __call__(self, request: Request) -> str:
        """The overview: server counters, last refusals, the store, the last changes."""
        store = request.store
        assert store is not None and request.identity is not None
        base = request.base
        identity = request.identity
        lines = [
            f"# Admin of {shown(request.hostname, 100)}",
            "",
            f"You are {shown(identity.name or '(no name)', 32)} ({short(identity.fingerprint)}).",
            "",
            link(f"{base}/accounts", "Accounts"),
            link(f"{base}/bans", "Bans"),
            link(f"{base}/lists", "Allow-lists"),
            link(f"{base}/audit", "Audit log"),
            "",
        ]
        snapshot = None if self.monitor is None else self.monitor.snapshot()
        lines += self._server(snapshot)
        lines += await self._store(store)
        lines += self._refusals(base, [] if snapshot is None else snapshot.refusals)
        lines += ["## Last changes", ""]
        entries = await store.audit_log(AUDIT_SHOWN)
        lines += [_entry(entry) for entry in entries] or ["None yet."]
        if entries:
            lines += ["", link(f"{base}/audit", "The whole audit log")]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _server(snapshot: Snapshot | None) -> list[str]:
        if snapshot is None:
            return ["## Server", "", "Its counters are not available here.", ""]
        stats = snapshot.stats
        workers = f", {snapshot.workers} workers" if snapshot.workers > 1 else ""
        requests = sum(stats.responses.values())
        rows = [("requests", str(requests))]
        rows += [
            (f"{status} {_status_name(status)}", str(count))
            for status, count in sorted(stats.responses.items())
            if count
        ]
        rows += [
            ("connections now", str(snapshot.connections)),
            ("accepted", str(stats.accepted)),
            ("refused at accept", str(sum(stats.refused.values()))),
            ("dropped", str(sum(stats.dropped.values()))),
            ("blocks", str(stats.blocks)),
        ]
        return [
            "## Server",
            "",
            f"Up {span(time.time() - snapshot.started)}, since {moment(snapshot.started)}"
            f"{workers}. Since then:",
            *preformatted(rows, "counters"),
            "",
        ]

    @staticmethod
    async def _store(store: Store) -> list[str]:
        counts = await store.counts(dt.datetime.now(dt.UTC))
        rows = [
            ("accounts", str(counts.accounts)),
            ("certificates", str(counts.certificates)),
            ("bans in force", str(counts.bans)),
            ("allow-list entries", str(counts.allow_entries)),
            ("audit entries", str(counts.audit_entries)),
        ]
        if counts.size is not None:
            rows.append(("on disk", human_size(counts.size)))
        return ["## Identity store", "", *preformatted(rows, "store"), ""]

    @staticmethod
    def _refusals(base: str, refusals: list[RefusedRequest]) -> list[str]:
        lines = ["## Last refusals", ""]
        if not refusals:
            return [*lines, "None since the server started.", ""]
        for refused in refusals:
            who = "no certificate" if refused.fingerprint is None else short(refused.fingerprint)
            lines.append(
                f"* {moment(refused.time)}, {refused.status} to {shown(refused.group, 64)} "
                f"({who}): {shown(refused.reason, 200)}"
            )
            if refused.fingerprint is not None:
                lines.append(
                    link(f"{base}/fingerprints/{digits(refused.fingerprint)}", f"About {who}")
                )
        return [*lines, ""]

    async def audit(self, request: Request) -> str:
        """The audit log's last entries, newest first."""
        store = request.store
        assert store is not None
        entries = await store.audit_log(AUDIT_PAGE)
        lines = [
            "# Audit log",
            "",
            "Changes made here or with the hospes command on the server (by cli:USER), "
            f"newest first (at most {AUDIT_PAGE}).",
            "",
        ]
        lines += [_entry(entry) for entry in entries] or ["None yet."]
        lines += ["", link(f"{request.base}/", "Overview")]
        return "\n".join(lines) + "\n"


def _entry(entry: AuditEntry) -> str:
    """One audit entry as a list item (every part escaped)."""
    reason = f": {shown(entry.reason, 200)}" if entry.reason else ""
    return (
        f"* {moment(entry.time)}, {changed_by(entry.admin)}: {shown(entry.action, 32)} "
        f"{shown(entry.target, 200)}{reason}"
    )
