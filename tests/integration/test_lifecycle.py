"""The daemon's life and death as a service manager sees it: a poll loop that dies takes the
process down with a non-zero status (so systemd's Restart=on-failure brings it back)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from conftest import config_yaml

# The exporter's own entry point, with a bug planted from the second cycle on: either
# Exporter.after_cycle raises, or the state store's save raises something that is not an OSError
# (so that the shutdown's save fails the same way). Bugs like these end the poll task.
RUNNER = """
import os, sys
from exporter import runtime
from exporter.ledger import store as state
from exporter.cli.main import main

calls = []

def planted(real, error):
    async def wrapper(self, *args):
        calls.append(1)
        if len(calls) >= 2:
            raise error
        return await real(self, *args)
    return wrapper

if os.environ["PLANT"] == "after_cycle":
    runtime.Exporter.after_cycle = planted(runtime.Exporter.after_cycle, RuntimeError("after_cycle exploded"))
else:
    state.StateStore.save = planted(state.StateStore.save, ValueError("cannot encode the ledger"))
sys.exit(main())
"""


async def run_cli(tmp_path, plant: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "TEST_AEP_SECRET": "demo-secret-not-for-production", "PLANT": plant}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(runner),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"still running after {timeout}s; stderr:\n{err.decode()[-3000:]}") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_dead_poll_loop_exits_non_zero_after_logging_why(sim, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra=f"state_file: {tmp_path / 'state.json'}\n"))
    code, out, err = await run_cli(
        tmp_path,
        "after_cycle",
        "--config.file",
        str(config),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    )
    assert out.startswith("Serving metrics at ")
    assert code == 1, err[-3000:]
    assert '"msg": "poll loop died: RuntimeError: after_cycle exploded; exiting with status 1"' in err
    assert "Traceback" in err  # the traceback goes with it, for the bug report
    assert (tmp_path / "state.json").exists()  # what the ledger holds is still saved on the way out


async def test_a_state_save_that_raises_a_bug_ends_with_status_1_and_log_lines_not_a_crash(sim, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim, extra=f"state_file: {tmp_path / 'state.json'}\n"))
    code, out, err = await run_cli(
        tmp_path, "save", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0", "--log.format", "json"
    )
    assert code == 1, err[-3000:]
    lines = [json.loads(line) for line in err.splitlines()]  # every line is a log record: no bare traceback
    msgs = [line["msg"] for line in lines]
    assert "poll loop died: ValueError: cannot encode the ledger; exiting with status 1" in msgs
    assert "cannot save the state at shutdown" in msgs
