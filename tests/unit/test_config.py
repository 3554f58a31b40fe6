"""Config: a good file loads; every kind of bad file exits 2 with one line naming the key."""

from __future__ import annotations

import os
import textwrap

import pytest

from exporter.cli.main import main
from exporter.config import DEFAULT_BASE_URL, DEFAULT_SCOPES, ConfigError, load_config, parse_duration

GOOD = textwrap.dedent("""\
    adobe:
      client_id: ${AEP_CLIENT_ID}
      client_secret: ${AEP_CLIENT_SECRET}
      org_id: 0123456789ABCDEF@AdobeOrg
    sandboxes:
      - name: prod
        flows: [c9cef9cb-c934-4467-8ef9-cbc934546741]
    poll_interval: 1h30m
    max_concurrency: 4
    request_timeout: 10
    lookback: 2d
""")
ENV = {"AEP_CLIENT_ID": "my-client", "AEP_CLIENT_SECRET": "s3cret-value"}


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), env=ENV)
    assert cfg.adobe.client_id == "my-client"
    assert cfg.adobe.client_secret.reveal() == "s3cret-value"
    assert "s3cret-value" not in repr(cfg)
    assert cfg.adobe.scopes == DEFAULT_SCOPES and cfg.adobe.base_url == DEFAULT_BASE_URL
    assert cfg.poll_interval == 5400 and cfg.request_timeout == 10 and cfg.lookback == 172800
    assert cfg.max_concurrency == 4 and cfg.metadata_refresh == 300
    assert cfg.watched_flows() == [("prod", "c9cef9cb-c934-4467-8ef9-cbc934546741")]


def test_example_config_is_valid(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "config.example.yaml")
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    text = open(example).read().replace("/run/secrets/aep-client-secret", str(secret))
    cfg = load_config(write(tmp_path, text), env={**ENV})
    assert cfg.sandboxes


def test_secret_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    text = GOOD.replace("client_secret: ${AEP_CLIENT_SECRET}", f"client_secret_file: {secret}")
    assert load_config(write(tmp_path, text), env=ENV).adobe.client_secret.reveal() == "from-a-file"


@pytest.mark.parametrize(
    "value, seconds",
    [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("1h30m", 5400), (45, 45), ("2.5", 2.5), ("250ms", 0.25)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


BAD = [
    # (what to change, the key the message must name, a word of the reason)
    (lambda t: t.replace("org_id: 0123456789ABCDEF@AdobeOrg\n", ""), "adobe.org_id", "missing"),
    (lambda t: t + "surprise: 1\n", "surprise", "unknown key"),
    (lambda t: t.replace("  org_id:", "  colour: blue\n  org_id:"), "adobe.colour", "unknown key"),
    (lambda t: t.replace("poll_interval: 1h30m", "poll_interval: soon"), "poll_interval", "not a duration"),
    (lambda t: t.replace("poll_interval: 1h30m", "poll_interval: -5"), "poll_interval", "positive"),
    (lambda t: t.replace("max_concurrency: 4", "max_concurrency: four"), "max_concurrency", "whole number"),
    (lambda t: t.replace("max_concurrency: 4", "max_concurrency: 0"), "max_concurrency", "at least 1"),
    (
        lambda t: t.replace("c9cef9cb-c934-4467-8ef9-cbc934546741", "not-a-uuid"),
        "sandboxes[0].flows[0]",
        "not a flow ID",
    ),
    (
        lambda t: t.replace(
            "[c9cef9cb-c934-4467-8ef9-cbc934546741]",
            "[c9cef9cb-c934-4467-8ef9-cbc934546741, c9cef9cb-c934-4467-8ef9-cbc934546741]",
        ),
        "sandboxes[0].flows[1]",
        "twice",
    ),
    (lambda t: t.split("sandboxes:")[0] + "sandboxes: []\n", "sandboxes", "at least one"),
    (
        lambda t: t.replace("client_secret: ${AEP_CLIENT_SECRET}", "client_secret: ${NOT_SET_ANYWHERE}"),
        "adobe.client_secret",
        "NOT_SET_ANYWHERE is not set",
    ),
    (
        lambda t: t.replace(
            "client_secret: ${AEP_CLIENT_SECRET}", "client_secret: x\n  client_secret_file: /nonexistent"
        ),
        "client_secret_file",
        "not both",
    ),
    (
        lambda t: t.replace("client_secret: ${AEP_CLIENT_SECRET}", "client_secret_file: /nonexistent/secret"),
        "adobe.client_secret_file",
        "cannot read",
    ),
    (lambda t: t.replace("  client_secret: ${AEP_CLIENT_SECRET}\n", ""), "adobe.client_secret", "missing"),
    (lambda t: t.replace("  - name: prod\n", "  - name: [prod]\n"), "sandboxes[0].name", "expected a string"),
    (lambda t: t + "adobe: {}\n", "adobe", "given twice"),
    (lambda t: t.replace("sandboxes:", "sandboxes: {"), "config.yaml", "invalid YAML"),
    (lambda t: t.replace("adobe:\n", "adobe:\n  token_url: ims.example\n"), "adobe.token_url", "URL"),
    (lambda t: "", "config.yaml", "empty"),
    (lambda t: t + "retry: {max_attempts: 0}\n", "retry.max_attempts", "at least 1"),
    (lambda t: t + "retry: {tries: 3}\n", "retry.tries", "unknown key"),
    (lambda t: t + "max_requests_per_second: -1\n", "max_requests_per_second", "negative"),
    (lambda t: t + "max_error_codes_per_flow: lots\n", "max_error_codes_per_flow", "whole number"),
    (lambda t: t + "state_file: [a]\n", "state_file", "expected a string"),
    (lambda t: t + "run_history_per_flow: -1\n", "run_history_per_flow", "0 or more"),
    (lambda t: t + "experience_flow_url: 'https://x/{flow}'\n", "experience_flow_url", "placeholders"),
    (lambda t: t + "experience_run_url: 'http://x/{run_id}'\n", "experience_run_url", "https://"),
]


def test_links_into_adobe_and_history_keys(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), env=ENV)
    assert (cfg.run_history_per_flow, cfg.experience_tenant) == (50, None)
    assert cfg.experience_flow_url.endswith("/sname:{sandbox}/platform/source/dataflows/{flow_id}/activity")
    text = GOOD + "run_history_per_flow: 0\nexperience_tenant: acme\nexperience_run_url: 'https://x/{run_id}'\n"
    cfg = load_config(write(tmp_path, text), env=ENV)
    assert (cfg.run_history_per_flow, cfg.experience_tenant, cfg.experience_run_url) == (
        0,
        "acme",
        "https://x/{run_id}",
    )


def test_reliability_keys_and_state_file_defaults(tmp_path):
    text = GOOD + "retry: {max_attempts: 3, max_time: 10s}\nmax_requests_per_second: 2.5\n"
    cfg = load_config(write(tmp_path, text), env=ENV)
    assert (cfg.retry.max_attempts, cfg.retry.max_elapsed, cfg.max_requests_per_second) == (3, 10, 2.5)
    assert cfg.state_file == "aep-flow-exporter-state.json"
    assert (
        load_config(write(tmp_path, GOOD), env={**ENV, "STATE_DIRECTORY": "/var/lib/x:/var/lib/y"}).state_file
        == "/var/lib/x/state.json"
    )
    assert load_config(write(tmp_path, GOOD + "state_file: null\n"), env=ENV).state_file is None
    assert load_config(write(tmp_path, GOOD + "max_requests_per_second: 0\n"), env=ENV).max_requests_per_second is None


@pytest.mark.parametrize("change, key, reason", BAD)
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, monkeypatch, change, key, reason):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = write(tmp_path, change(GOOD))
    assert main(["--config.file", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and key in err and reason in err, err
    assert "Traceback" not in err


def test_missing_file_and_no_config(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AEP_EXPORTER_CONFIG", raising=False)
    assert main(["--config.file", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
    assert main([]) == 2
    assert "--config.file" in capsys.readouterr().err


def test_env_var_names_the_config_file(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, GOOD + "bogus: 1\n")
    monkeypatch.setenv("AEP_EXPORTER_CONFIG", str(path))
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    assert main(["--once"]) == 2
    assert f"{path}: bogus: unknown key" in capsys.readouterr().err


def test_error_messages_never_carry_the_secret(tmp_path):
    text = GOOD.replace("client_secret: ${AEP_CLIENT_SECRET}", "client_secret: hunter2-super-secret") + "x: 1\n"
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), env=ENV)
    assert "hunter2" not in str(e.value)


def test_discovery_keys(tmp_path):
    text = (
        GOOD.replace(
            "    flows: [c9cef9cb-c934-4467-8ef9-cbc934546741]\n",
            (
                "    discover:\n      name_regex: '^crm-'\n      flow_spec_ids: [9753525b-82c7-4dce-8a9b-5ccfce2b9876]\n"
                "      source_names: 'Amazon S3|Salesforce'\n"
                "      exclude: [c9cef9cb-c934-4467-8ef9-cbc934546741]\n"
                "  - name: dev\n    discover: {}\n    include_destination_flows: true\n"
                "  - name: qa\n    discover:\n"
            ),
        )
        + "discovery_interval: 15m\n"
    )
    cfg = load_config(write(tmp_path, text), env=ENV)
    prod, dev, qa = cfg.sandboxes
    assert prod.flows == () and prod.discover.name_regex == "^crm-" and prod.discover.states == ("enabled",)
    assert prod.discover.exclude == ("c9cef9cb-c934-4467-8ef9-cbc934546741",)
    assert prod.discover.source_names == "Amazon S3|Salesforce" and dev.discover.source_names is None
    assert dev.discover.name_regex is None and dev.include_destination_flows
    assert qa.discover is not None and not qa.include_destination_flows
    assert cfg.discovery_interval == 900 and cfg.watched_flows() == []


@pytest.mark.parametrize(
    "change, key, reason",
    [
        ("    discover: {name_regex: '([a-'}\n", "sandboxes[0].discover.name_regex", "regular expression"),
        ("    discover: {source_names: '(S3'}\n", "sandboxes[0].discover.source_names", "regular expression"),
        ("    discover: {states: []}\n", "sandboxes[0].discover.states", "at least one"),
        ("    discover: {exclude: [nope]}\n", "sandboxes[0].discover.exclude[0]", "not a flow ID"),
        ("    discover: {match: x}\n", "sandboxes[0].discover.match", "unknown key"),
        ("    include_destination_flows: yes-please\n", "sandboxes[0].flows", "required"),
    ],
)
def test_bad_discovery_config(tmp_path, change, key, reason):
    text = GOOD.replace("    flows: [c9cef9cb-c934-4467-8ef9-cbc934546741]\n", change)
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), env=ENV)
    assert key in str(e.value) and reason in str(e.value), str(e.value)
