"""What persisting the run ledger costs at scale: snapshot (on the event loop) and atomic write
(in a worker thread), and the file's size.

    .venv/bin/python bench/state_file.py [--flows 5000] [--runs-per-flow 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from exporter.ledger import Ledger
from exporter.state import StateStore
from exporter.translate import ActivityFacts, RunFacts

NOW = time.time()


def facts(i: int, status: str = "success") -> RunFacts:
    return RunFacts(
        run_id=f"{i:08x}-0000-4000-8000-000000000000",
        created=NOW - i,
        status=status,
        completed=True,
        started=NOW - i,
        ended=NOW - i + 60,
        duration=60.0,
        counts={
            "input_records": 1000,
            "output_records": 990,
            "failed_records": 10,
            "input_bytes": 250_000,
            "output_bytes": 180_000,
            "input_files": 2,
            "output_files": 1,
        },
        error_codes=frozenset({"CONNECTOR-2001-500", "INGEST-1212-400", "MAPPER-3700-400"}),
        error_records=(("MAPPER-3700-400", 10),),
        window_end=NOW - i,
        activities=(
            ActivityFacts("Copy Activity", 30.0, {}),
            ActivityFacts("Promotion Activity", 30.0, {"input_records": 1000, "output_records": 990}),
        ),
    )


def build(flows: int, runs: int) -> Ledger:
    ledger = Ledger()
    for f in range(flows):
        state = ledger.flow(f"sandbox-{f % 3}", f"{f:08x}-1111-4000-8000-000000000000")
        ledger.apply_runs(state, [facts(f * 1000 + r) for r in range(runs)], NOW - 86400)
        ledger.apply_runs(state, [facts(f * 1000 + runs, "failed")], NOW - 86400)  # counted: totals non-zero
    return ledger


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--flows", type=int, default=5000)
    p.add_argument("--runs-per-flow", type=int, default=30)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    ledger = build(a.flows, a.runs_per_flow)
    with tempfile.TemporaryDirectory() as d:
        store = StateStore(os.path.join(d, "state.json"), "ORG@AdobeOrg", "https://platform.adobe.io/x")
        snaps, writes, loads = [], [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            doc = store.snapshot(ledger)
            t1 = time.perf_counter()
            store.write(doc)
            t2 = time.perf_counter()
            fresh = Ledger()
            store.load(fresh, {s for s, _ in ledger.flows})
            t3 = time.perf_counter()
            snaps.append(t1 - t0)
            writes.append(t2 - t1)
            loads.append(t3 - t2)
        size = os.path.getsize(store.path)
        assert len(json.load(open(store.path))["flows"]) == a.flows
    print(f"flows={a.flows} runs_per_flow={a.runs_per_flow} file={size / 1e6:.1f} MB")
    print(f"snapshot on the event loop: median {statistics.median(snaps) * 1000:.0f} ms")
    print(f"encode + write + fsync + rename (worker thread): median {statistics.median(writes) * 1000:.0f} ms")
    print(f"load at start: median {statistics.median(loads) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
