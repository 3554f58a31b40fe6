"""A bad config file given to the console script, run as a user runs it (its own process): exit 2
and the error on stderr, never a traceback."""

from __future__ import annotations

import subprocess
import sys

# A config that would load but for its lookback.
BAD = """\
adobe: {client_id: my-client, client_secret: s3cret-value, org_id: 0123456789ABCDEF@AdobeOrg}
sandboxes: [{name: prod, flows: [c9cef9cb-c934-4467-8ef9-cbc934546741]}]
lookback: forever
"""


def test_bad_config_from_the_console_script_has_no_traceback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BAD)
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("aep-flow-exporter: config error: ") and "lookback" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
