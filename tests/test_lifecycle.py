"""The daemon's life and death as a service manager sees it: a poll loop that dies takes the
process down with a non-zero status (so systemd's Restart=on-failure brings it back)."""

from __future__ import annotations

import asyncio
import os
import sys

from conftest import config_yaml

# The exporter's own entry point, with Exporter.after_cycle made to fail after the first cycle: the
# kind of bug (outside the per-flow error handling) that ends the poll task.
RUNNER = """
import sys
from exporter import runtime
from exporter.cli import main

real = runtime.Exporter.after_cycle
calls = []

async def after_cycle(self):
    calls.append(1)
    if len(calls) >= 2:
        raise RuntimeError("after_cycle exploded")
    await real(self)

runtime.Exporter.after_cycle = after_cycle
sys.exit(main())
"""


async def run_cli(tmp_path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "TEST_AEP_SECRET": "demo-secret-not-for-production"}
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
        tmp_path, "--config.file", str(config), "--web.listen-address", "127.0.0.1:0", "--log.format", "json"
    )
    assert out.startswith("Serving metrics at ")
    assert code == 1, err[-3000:]
    assert '"msg": "poll loop died' in err and "after_cycle exploded" in err
    assert (tmp_path / "state.json").exists()  # what the ledger holds is still saved on the way out
