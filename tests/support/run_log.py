"""When each run talked to HaloPSA, on the system-wide monotonic clock (CLOCK_MONOTONIC: one clock for every process of
this host), so a test can check that two runs of one partner never overlap, whichever processes and threads ran them.

A run's interval is the time it held its HaloPSA client: from before its first request to after its last page. The
log is a JSON-lines file every process appends to (one short line a run, written in one `write`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.store.tables import PARTNER_TABLE
from core.sync.connector import ClientFactory


class LoggedClient:
    """A client whose use is logged with the run holding the partner's lock: the real interval a run talked to
    HaloPSA, on the system-wide monotonic clock (comparable across processes)."""

    def __init__(self, client: Any, engine: Engine, partner_id: int, log: Path) -> None:
        self.client, self.engine, self.partner_id, self.log = client, engine, partner_id, log

    def __enter__(self) -> Any:
        with self.engine.connect() as conn:
            self.run_id = conn.scalar(select(PARTNER_TABLE.c.lock_run_id)
                                      .where(PARTNER_TABLE.c.id == self.partner_id))
        self.start = time.monotonic()
        return self.client.__enter__()

    def __exit__(self, *exc: Any) -> None:
        end = time.monotonic()
        self.client.__exit__(*exc)
        line = json.dumps({"run_id": self.run_id, "partner_id": self.partner_id, "start": self.start, "end": end})
        with open(self.log, "a") as out:
            out.write(line + "\n")


def logged_factory(factory: ClientFactory, engine: Engine, log: Path) -> ClientFactory:
    """`factory`, with every client it makes logged to `log` (`engine` reads which run holds the partner)."""

    def make(connection: Any, on_event: Any) -> Any:
        return LoggedClient(factory(connection, on_event), engine, connection.partner_id, log)

    return make


def intervals(log: Path) -> list[dict[str, Any]]:
    """Every logged run: run_id, partner_id, start and end (monotonic seconds)."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def overlaps(logged: list[dict[str, Any]]) -> list[str]:
    """The pairs of runs of one partner that talked to HaloPSA at the same time (none: [])."""
    found = []
    for partner in sorted({i["partner_id"] for i in logged}):
        mine = sorted((i for i in logged if i["partner_id"] == partner), key=lambda i: i["start"])
        found += [f"partner {partner}: runs {a['run_id']} and {b['run_id']} overlap"
                  for a, b in zip(mine, mine[1:], strict=False) if a["end"] > b["start"]]
    return found
