"""Small helpers shared by the tests: run the CLI in-process and read what it stored."""

from __future__ import annotations

from pathlib import Path

from wbench.cli import main
from wbench.store import Store


def compare(db: Path, *args: str, scenario: str = "miso") -> int:
    return main(["compare", "--scenario", scenario, "--db", str(db), "--format", "csv", *args])


def stored(db: Path) -> list[dict]:
    with Store(db) as s:
        return s.rows()


def by_key(rows: list[dict], *fields: str) -> dict:
    return {(r["label"], r["params"], r["instance"]): tuple(r[f] for f in fields) for r in rows}
