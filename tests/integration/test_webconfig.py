"""--web.config.file: real TLS certificates made here, bcrypt basic auth, client certificates."""

from __future__ import annotations

import base64
import ssl

import aiohttp
import bcrypt
import pytest
import trustme
from conftest import ExporterProcess, config_yaml, eventually, run_cli

from exporter.simulator import SEED_FLOW_ID


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    return ca


def client_ctx(ca: trustme.CA, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if with_cert:
        ca.issue_cert("prometheus@example.com").configure_cert(ctx)
    return ctx


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def get(url: str, ctx: ssl.SSLContext | None, auth: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=ctx, headers=auth or {}) as r:
            await r.read()
            return r.status


async def test_tls_with_client_certificates_and_basic_auth(sim, pki, tmp_path):
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    (tmp_path / "c.yaml").write_text(config_yaml(sim))
    async with ExporterProcess(
        "--config.file", str(tmp_path / "c.yaml"), "--web.config.file", str(tmp_path / "web.yml"), cwd=str(tmp_path)
    ) as exp:
        assert exp.url.startswith("https://")
        good = client_ctx(pki, with_cert=True)
        right = basic("prometheus", "scrape-pass")
        assert await get(exp.base + "/healthz", good) == 200  # liveness probes carry no credentials
        flow = f"/flows/{SEED_FLOW_ID}"
        for path in ("/metrics", "/", "/ready", flow, "/api/v1/flows", "/api/v1" + flow):
            assert await get(exp.base + path, good) == 401
        assert await get(exp.url, good, basic("prometheus", "wrong")) == 401
        assert await get(exp.url, good, basic("someone", "scrape-pass")) == 401
        for _ in range(3):  # the second and third are served from the verified cache
            assert await get(exp.url, good, right) == 200
        await eventually(lambda: _ready(exp.base, good, right), what="/ready over TLS")
        for path in (flow, "/api/v1/flows", "/api/v1" + flow):  # the flow pages, with credentials
            assert await get(exp.base + path, good, right) == 200
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            await get(exp.url, client_ctx(pki, with_cert=False), right)  # no client certificate
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            await get(exp.url.replace("https://", "http://"), None, right)  # plain HTTP


async def _ready(base: str, ctx, auth) -> bool:
    return await get(base + "/ready", ctx, auth) == 200


async def test_tls_min_version_is_enforced(sim, pki, tmp_path):
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
    )
    (tmp_path / "c.yaml").write_text(config_yaml(sim))
    async with ExporterProcess(
        "--config.file", str(tmp_path / "c.yaml"), "--web.config.file", str(tmp_path / "web.yml"), cwd=str(tmp_path)
    ) as exp:
        modern = client_ctx(pki, with_cert=False)
        assert await get(exp.url, modern) == 200
        old = client_ctx(pki, with_cert=False)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            await get(exp.url, old)


@pytest.mark.parametrize(
    "text, message",
    [
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "cannot load the certificate"),
        ("tls_server_config:\n  cert_file: server.crt\n", "tls_server_config.key_file: required"),
        ("basic_auth_users:\n  me: plaintext\n", "basic_auth_users.me: expected a bcrypt hash"),
        ("tls_config: {}\n", "tls_config: unknown key"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            "client_auth_type",
        ),
    ],
)
async def test_bad_web_config_exits_2(sim, pki, tmp_path, text, message):
    (tmp_path / "web.yml").write_text(text)
    (tmp_path / "c.yaml").write_text(config_yaml(sim))
    result = await run_cli(
        "--config.file",
        str(tmp_path / "c.yaml"),
        "--web.config.file",
        str(tmp_path / "web.yml"),
        env={"TEST_AEP_SECRET": "x"},
    )
    assert result.code == 2
    assert message in result.err and "Traceback" not in result.err
