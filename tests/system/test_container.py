"""The container image, built and run for real, as a user runs it with `docker run`.

deploy/docker/podman-build.sh builds it with Debian's podman/buildah and a base image made with
mmdebstrap (no registry). Then the image runs under runc with a read-only root filesystem, explicit
ulimits, a state volume and a config file, against the simulator on the host's loopback (reached
from the container's own network namespace through slirp4netns' host-loopback address), and
the test checks what a user relies on: user 10001:10001, /metrics and /healthz, the image's own
HEALTHCHECK (`podman healthcheck run`: there is no systemd timer here to run it), and the state
file in the volume carrying the counters across a container restart. Without podman (or runc,
slirp4netns, mmdebstrap) it skips, and fails under CI=true (.ci/install-tools installs them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import yaml
from conftest import config_yaml, eventually, scrape, value

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/aep-flow-exporter:ci"
BASE = "localhost/aep-flow-exporter-base:bookworm"
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1 as seen from a slirp4netns network namespace
TOOLS = {"podman": "podman", "runc": "runc", "slirp4netns": "slirp4netns", "mmdebstrap": "mmdebstrap"}


def need_podman() -> str:
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if os.geteuid() != 0:
        missing.append("(root: the image is built and run by rootful podman)")
    if not missing:
        return shutil.which("podman") or "podman"
    message = f"container tests need Debian's {', '.join(missing)} (.ci/install-tools installs them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def podman(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built as the README says CI builds it (the base image is reused when present)."""
    need_podman()
    started = time.monotonic()
    had_base = podman("image", "exists", BASE, check=False).returncode == 0
    proc = subprocess.run(
        [str(ROOT / "deploy" / "docker" / "podman-build.sh"), IMAGE],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"image built in {time.monotonic() - started:.1f}s (base image {'reused' if had_base else 'made'})")
    return IMAGE


async def http_status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return 0


def run_container(name: str, volume: str, config: Path, image: str) -> str:
    """`docker run` as the README shows it, under runc; returns the base URL of the published port."""
    podman(
        "--runtime",
        "runc",
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=512:512",
        "--network",
        "slirp4netns:allow_host_loopback=true",
        "--publish",
        "127.0.0.1::7941",
        "--volume",
        f"{volume}:/var/lib/aep-flow-exporter",
        "--volume",
        f"{config}:/etc/aep-flow-exporter/config.yaml:ro",
        "--env",
        "TEST_AEP_SECRET",
        image,
    )
    port = podman("port", name, "7941/tcp").stdout.strip().rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}"


async def test_image_runs_read_only_as_10001_and_keeps_its_state(image, sim, world, tmp_path, monkeypatch):
    from exporter.simulator import SEED_FLOW_ID

    name, volume = f"aep-ci-{uuid.uuid4().hex[:8]}", f"aep-ci-state-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(config_yaml(sim).replace("127.0.0.1", HOST_LOOPBACK))
    config.chmod(0o644)
    monkeypatch.setenv("TEST_AEP_SECRET", world.client_secret)  # passed on with --env
    key = {"sandbox": "prod", "flow_id": SEED_FLOW_ID}
    try:
        base = run_container(name, volume, config, image)
        inspect = json.loads(podman("inspect", name).stdout)[0]
        assert inspect["Config"]["User"] == "10001:10001" and inspect["HostConfig"]["ReadonlyRootfs"] is True
        # The user and its group both exist with id 10001 (not a nameless gid, or the group 999).
        assert podman("exec", name, "id").stdout.strip() == "uid=10001(aep) gid=10001(aep) groups=10001(aep)"
        assert podman("exec", name, "touch", "/opt/x", check=False).returncode != 0  # read-only root
        limits = podman("exec", name, "cat", "/proc/1/limits").stdout  # the exporter's own limits
        assert re.search(r"^Max open files\s+4096\s+4096", limits, re.M), limits
        assert re.search(r"^Max processes\s+512\s+512", limits, re.M), limits

        await eventually(lambda: _is(base + "/healthz", 200), timeout=30, what="/healthz")
        await eventually(lambda: _is(base + "/ready", 200), timeout=30, what="/ready (first poll cycle)")
        assert value(await scrape(base + "/metrics"), "aep_flow_runs_total", status="success", **key) == 0
        assert podman("healthcheck", "run", name, check=False).returncode == 0

        # A run completes after the baseline: counted once, then saved to the volume.
        world.finish_run(world.start_run(SEED_FLOW_ID).id, "success")
        await eventually(lambda: _counted(base, key, 1), what="the new run counted")
        mountpoint = Path(json.loads(podman("volume", "inspect", volume).stdout)[0]["Mountpoint"])
        await eventually(lambda: _state_has(mountpoint / "state.json", SEED_FLOW_ID), what="state file in the volume")

        podman("restart", "--time", "10", name, timeout=60)  # SIGTERM: saves the state, exits 0
        base = f"http://127.0.0.1:{podman('port', name, '7941/tcp').stdout.strip().rsplit(':', 1)[1]}"
        await eventually(lambda: _is(base + "/ready", 200), timeout=30, what="/ready after the restart")
        # Without the state file the restart would be a new baseline: the counter would read 0.
        assert value(await scrape(base + "/metrics"), "aep_flow_runs_total", status="success", **key) == 1
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", volume, check=False)


async def _is(url: str, status: int) -> bool:
    return await http_status(url) == status


async def _counted(base: str, key: dict[str, str], n: int) -> bool:
    return value(await scrape(base + "/metrics"), "aep_flow_runs_total", status="success", **key) == n


async def _state_has(path: Path, flow_id: str) -> bool:
    return path.is_file() and flow_id in path.read_text(encoding="utf-8")


def test_compose_file_is_valid_for_podman_compose():
    """The compose stack needs images from a registry, so it is not started here; podman-compose
    parses and resolves it as `up` would."""
    need_podman()
    compose = ROOT / "deploy" / "docker" / "docker-compose.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "podman_compose", "-f", str(compose), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    exporter = resolved["services"]["exporter"]
    assert exporter["read_only"] is True
    assert (Path(exporter["build"]["context"]) / exporter["build"]["dockerfile"]).is_file()
