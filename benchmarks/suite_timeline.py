"""Where a test suite's time goes: each test's start and end on each pytest-xdist process, summed
by test file, and how far apart the processes finish (the tail that the order of files costs).

A pytest plugin and its report, in one file:

    PYTHONPATH=benchmarks SUITE_TIMELINE=/tmp/slow.jsonl \\
        .venv/bin/python -m pytest -p suite_timeline -n 3 --dist loadfile -m slow
    .venv/bin/python benchmarks/suite_timeline.py /tmp/slow.jsonl

Each test's line holds its process, its id and its start and end (set-up and teardown
included, so a module fixture's time is in the first test that asks for it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pytest

TIMELINE = "SUITE_TIMELINE"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.time()
    yield
    line = {"process": os.environ.get("PYTEST_XDIST_WORKER", "main"), "test": item.nodeid}
    with open(os.environ.get(TIMELINE, "suite-timeline.jsonl"), "a") as out:
        out.write(json.dumps({**line, "start": start, "end": time.time()}) + "\n")


def by_file(rows: list[dict]) -> dict[str, dict]:
    """Per test file: its process, first start, last end and number of tests."""
    files: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["start"]):
        name = row["test"].split("::")[0]
        span = files.setdefault(name, {"process": row["process"], "start": row["start"], "end": row["end"], "tests": 0})
        span["end"] = max(span["end"], row["end"])
        span["tests"] += 1
    return files


def report(rows: list[dict]) -> str:
    origin, files = min(r["start"] for r in rows), by_file(rows)
    lines = ["| process | file | tests | from, s | to, s | span, s |", "|---|---|---|---|---|---|"]
    for name, span in sorted(files.items(), key=lambda kv: (kv[1]["process"], kv[1]["start"])):
        lines.append(
            f"| {span['process']} | {name} | {span['tests']} | {span['start'] - origin:.0f} "
            f"| {span['end'] - origin:.0f} | {span['end'] - span['start']:.0f} |"
        )
    ends = {p: max(r["end"] for r in rows if r["process"] == p) - origin for p in {r["process"] for r in rows}}
    busy = sum(s["end"] - s["start"] for s in files.values())
    lines.append(
        f"\nwall {max(ends.values()):.0f} s; processes end at "
        + ", ".join(f"{p} {t:.0f} s" for p, t in sorted(ends.items()))
        + f" (tail {max(ends.values()) - min(ends.values()):.0f} s); files' spans add up to {busy:.0f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("timeline", type=Path)
    args = parser.parse_args()
    print(report([json.loads(line) for line in args.timeline.read_text().splitlines()]))


if __name__ == "__main__":
    main()
