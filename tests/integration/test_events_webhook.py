"""Adobe I/O Events, pushed: the webhook on the exporter's own listener. Adobe's
challenge, signed pushes counted once, and every refusal (unsigned, forged, a key path naming
another host, another recipient, not an event, too large) answered without changing a counter."""

from __future__ import annotations

import base64
import json
import ssl

import aiohttp
import bcrypt
import trustme
from aiohttp import web
from conftest import ExporterProcess, config_yaml, events_yaml, eventually, ready, scrape, value
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exporter.simulator import Simulator

HOOK = "/adobe-io-events"


def write_config(tmp_path, sim: Simulator, **settings: str) -> str:
    """Polling once an hour: after the baseline, only pushes can count a run here."""
    path = tmp_path / "config.yaml"
    text = config_yaml(sim, extra=events_yaml(sim, journal=False, **settings))
    path.write_text(text.replace("poll_interval: 1s", "poll_interval: 1h"))
    return str(path)


async def post(url: str, body: bytes, headers: dict[str, str], ssl=None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers=headers, ssl=ssl) as r:
            return r.status, await r.text()


def finished_run(sim: Simulator, outcome: str = "failed", flow_name: str = "hooked"):
    flow = next((f for f in sim.world.flows.values() if f.name == flow_name), None)
    assert flow is not None
    run = sim.world.start_run(flow.id)
    return flow, sim.world.finish_run(run.id, outcome)


def signed_by(key: rsa.RSAPrivateKey, body: bytes, path: str) -> dict[str, str]:
    sig = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {"x-adobe-digital-signature-1": sig, "x-adobe-public-key1-path": path, "Content-Type": "application/json"}


async def test_challenge_then_signed_pushes_count_each_run_once(esim, tmp_path):
    esim.world.add_flow("prod", "hooked")
    async with ExporterProcess("--config.file", write_config(tmp_path, esim, sweep_interval="1h")) as exp:
        await eventually(lambda: ready(exp), what="the baseline")
        async with aiohttp.ClientSession() as s:
            async with s.get(exp.base + HOOK, params={"challenge": "pKp0y-s0me"}) as r:
                assert (r.status, await r.text()) == (200, "pKp0y-s0me")
        flow, run = finished_run(esim, "failed")
        key = {"sandbox": "prod", "flow_id": flow.id}
        for envelope in ("legacy", "cloudevents"):
            esim.events.chaos.envelope = envelope
            body = json.dumps(esim.events.envelope(run)).encode()
            for _ in range(2):  # Adobe delivers at least once: the repeat is answered 200 and not counted
                assert (await post(exp.base + HOOK, body, esim.events.signed_headers(body)))[0] == 200

        async def counted():
            m = await scrape(exp.url)
            return value(m, "aep_flow_runs_total", status="failed", **key) == 1 and m

        m = await eventually(counted, what="the announced run on /metrics")
        assert value(m, "aep_events_received_total", source="webhook", outcome="counted") == 1
        assert value(m, "aep_events_received_total", source="webhook", outcome="duplicate") == 3
        assert value(m, "aep_events_last_received_timestamp_seconds", source="webhook") is not None
        # Adobe's own sender, batches included: one push holding two runs, one of them new.
        _, second = finished_run(esim, "success")
        batch = json.dumps([esim.events.envelope(run), esim.events.envelope(second)]).encode()
        assert (await post(exp.base + HOOK, batch, esim.events.signed_headers(batch, keys=(1, 0))))[0] == 200
        await eventually(
            lambda: _runs(exp.url, key, "success", 1), what="the batch's new run counted, the known one not"
        )
        m = await scrape(exp.url)
        assert value(m, "aep_flow_runs_total", status="failed", **key) == 1
        # No request to the Flow Service was made for any of it.
        assert not [r for r in esim.requests if r["path"].endswith("/runs") and r["clock"] > run.updated_ms / 1000]


async def _runs(url: str, key: dict[str, str], status: str, n: int) -> bool:
    return value(await scrape(url), "aep_flow_runs_total", status=status, **key) == n


async def test_refused_pushes_change_no_counter_and_fetch_no_foreign_key(esim, tmp_path):
    esim.world.add_flow("prod", "hooked")
    evil_hits: list[str] = []
    evil_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = evil_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    async def serve_key(request: web.Request) -> web.Response:
        evil_hits.append(request.path)
        return web.Response(body=pem)

    evil = web.Application()
    evil.router.add_get("/{tail:.*}", serve_key)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    evil_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with ExporterProcess("--config.file", write_config(tmp_path, esim, sweep_interval="1h")) as exp:
            await eventually(lambda: ready(exp), what="the baseline")
            flow, run = finished_run(esim, "failed")
            key = {"sandbox": "prod", "flow_id": flow.id}
            body = json.dumps(esim.events.envelope(run)).encode()
            hook = exp.base + HOOK
            foreign_paths = [
                f"http://127.0.0.1:{evil_port}/k.pem",
                f"//127.0.0.1:{evil_port}/k.pem",
                f"@127.0.0.1:{evil_port}/k.pem",
                "/../../k.pem",
                f"/k.pem@127.0.0.1:{evil_port}",
            ]
            cases: list[tuple[bytes, dict[str, str], int]] = [
                (body, {"Content-Type": "application/json"}, 401),  # unsigned
                (body, signed_by(evil_key, body, esim.events.key_paths[0]), 403),  # Adobe's key path, another key
                *[(body, signed_by(evil_key, body, p), 403) for p in foreign_paths],
                (body.replace(b'"failed"', b'"success"'), esim.events.signed_headers(body), 403),  # body altered
            ]
            other = esim.events.envelope(run)
            other["recipient_client_id" if "event_id" in other else "recipientclientid"] = "someone-else"
            other_body = json.dumps(other).encode()
            cases.append((other_body, esim.events.signed_headers(other_body), 403))
            for junk in (b"not json", b"[1, 2]", b"[]", b'"a string"'):
                cases.append((junk, esim.events.signed_headers(junk), 400))
            big = b"[" + b" " * (2 * 1024 * 1024) + b"]"
            cases.append((big, esim.events.signed_headers(big), 413))
            for payload, headers, status in cases:
                got, text = await post(hook, payload, headers)
                assert got == status, (headers.get("x-adobe-public-key1-path"), got, text)

            async def all_rejected():
                m = await scrape(exp.url)
                return value(m, "aep_events_received_total", source="webhook", outcome="rejected") == len(cases) and m

            m = await eventually(all_rejected, what="every refusal on /metrics")
            assert value(m, "aep_flow_runs_total", status="failed", **key) == 0
            assert value(m, "aep_events_received_total", source="webhook", outcome="counted") == 0
            assert evil_hits == []  # the forger's key host was never asked
            # ...and the process is well: the genuine push is counted.
            assert (await post(hook, body, esim.events.signed_headers(body)))[0] == 200
            await eventually(lambda: _runs(exp.url, key, "failed", 1), what="the genuine push counted")
    finally:
        await runner.cleanup()


async def test_webhook_is_outside_basic_auth_but_under_tls(esim, tmp_path):
    esim.world.add_flow("prod", "hooked")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  p: '{hashed}'\n"
    )
    config = write_config(tmp_path, esim)
    async with ExporterProcess("--config.file", config, "--web.config.file", str(tmp_path / "web.yml")) as exp:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        async with aiohttp.ClientSession() as s:
            async with s.get(exp.url, ssl=ctx) as r:
                assert r.status == 401  # /metrics wants the credentials
            async with s.get(exp.base + HOOK, params={"challenge": "x1"}, ssl=ctx) as r:
                assert (r.status, await r.text()) == (200, "x1")  # Adobe has none to send
        _, run = finished_run(esim)
        body = json.dumps(esim.events.envelope(run)).encode()
        assert (await post(exp.base + HOOK, body, esim.events.signed_headers(body), ssl=ctx))[0] == 200
        assert exp.base.startswith("https://")
