"""What persisting the run ledger costs at scale: a whole base, a journal append of what changed
(both in a worker thread), a load, and the file's size.

    .venv/bin/python bench/state_file.py [--flows 5000] [--runs-per-flow 30] [--changed 0.01] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from exporter.adobe.runfacts import ActivityFacts, RunFacts
from exporter.ledger.ledger import Ledger
from exporter.ledger.store import StateStore

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
    p.add_argument("--changed", type=float, default=0.01, help="share of flows changed between two saves")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    ledger = build(a.flows, a.runs_per_flow)
    states = list(ledger.flows.values())
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "state.json")
        store = StateStore(path, "ORG@AdobeOrg", "https://platform.adobe.io/x")
        bases, appends, loads = [], [], []
        cpu_bases, cpu_appends = [], []
        for i in range(a.repeat):
            store._generation = None  # a whole base
            t0, c0 = time.perf_counter(), time.process_time()
            store.save_now(ledger)
            bases.append(time.perf_counter() - t0)
            cpu_bases.append(time.process_time() - c0)
            for k, s in enumerate(states[: max(1, int(len(states) * a.changed))]):
                ledger.apply_runs(s, [facts(10**9 + i * 10**6 + k, "failed")], NOW - 86400, complete=False)
            t0, c0 = time.perf_counter(), time.process_time()
            store.save_now(ledger)
            appends.append(time.perf_counter() - t0)
            cpu_appends.append(time.process_time() - c0)
            t0 = time.perf_counter()
            StateStore(path, store.org_id, store.base_url).load(Ledger(), {s for s, _ in ledger.flows})
            loads.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
        assert len(json.load(open(path))["flows"]) == a.flows
    print(f"flows={a.flows} runs_per_flow={a.runs_per_flow} base={size / 1e6:.1f} MB changed/save={a.changed:.0%}")
    print(
        f"whole base (worker thread): median {statistics.median(bases) * 1000:.0f} ms, "
        f"CPU {statistics.median(cpu_bases) * 1000:.0f} ms"
    )
    print(
        f"journal append of the changed flows (worker thread): median {statistics.median(appends) * 1000:.0f} ms, "
        f"CPU {statistics.median(cpu_appends) * 1000:.0f} ms"
    )
    print(f"load at start (base + journal): median {statistics.median(loads) * 1000:.0f} ms")
    print("on the event loop: nothing (the worker thread reads the ledger, which holds still between cycles)")


if __name__ == "__main__":
    main()
