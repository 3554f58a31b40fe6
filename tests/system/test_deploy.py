"""What ships under deploy/ is checked by the programs that will read it: promtool, amtool,
kustomize (kubectl), the Kubernetes schemas, systemd-analyze."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import need

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def test_promtool_check_rules_and_config():
    promtool = need("promtool")
    proc = run(promtool, "check", "rules", str(PROM / "rules.yml"), str(PROM / "alerts.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules_covers_every_alert():
    promtool = need("promtool")
    proc = run(promtool, "test", "rules", "tests.yml", cwd=PROM)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = yaml.safe_load((PROM / "tests.yml").read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        fires = [c for c in cases if c["alertname"] == name and c.get("exp_alerts")]
        quiet = [c for c in cases if c["alertname"] == name and not c.get("exp_alerts")]
        assert fires, f"{name}: no promtool case where it fires"
        assert quiet, f"{name}: no promtool case where it must not fire"
        for case in fires:
            for exp in case["exp_alerts"]:
                assert set(exp["exp_annotations"]) == {"summary", "description", "runbook_url"}, name
                assert "severity" in exp["exp_labels"], name


def test_every_alert_is_labelled_annotated_and_has_a_runbook_section():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (\S+)\s*$", runbook, re.M)}
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) >= 10
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"Aep(Flow|Exporter)[A-Za-z]+", name), name
        assert a["labels"]["severity"] in ("critical", "warning", "info"), name
        ann = a["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(ann), name
        assert "{{" not in ann["summary"], f"{name}: summary must be static"
        assert ann["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section in docs/runbook.md"
        if name.startswith("AepFlow") or name == "AepExporterFlowDown":
            assert "flow_name" in ann["description"] and "aep_flow_info" in a["expr"], name


def test_alertmanager_config():
    amtool = need("amtool")
    proc = run(amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    routes = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())["route"]["routes"]
    assert {m for r in routes for m in r["matchers"]} >= {'severity="critical"', 'severity="warning"'}


def test_compose_prometheus_config_and_mounts(tmp_path):
    promtool = need("promtool")
    compose = yaml.safe_load((DEPLOY / "docker" / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert "--demo" in compose["services"]["exporter"]["command"]
    assert compose["services"]["exporter"]["read_only"] is True
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / "docker" / source).resolve().exists(), volume
    text = (DEPLOY / "docker" / "prometheus.yml").read_text().replace("/etc/prometheus/", f"{PROM}/")
    (tmp_path / "prometheus.yml").write_text(text)
    proc = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*?/healthz", text, re.M | re.S)
    assert "PYTHONDONTWRITEBYTECODE=1" in text  # no writes to a read-only root filesystem
    assert not re.search(r"^ADD https?://", text, re.M)


def test_dashboard_json_is_the_generators_output():
    """deploy/grafana/dashboard.py (grafana-foundation-sdk) writes the shipped dashboard: after
    editing it, run it (`.venv/bin/python deploy/grafana/dashboard.py`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboard_as_code", DEPLOY / "grafana" / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = (DEPLOY / "grafana" / "aep-flow-exporter.json").read_text()
    assert shipped == module.render(), "deploy/grafana/aep-flow-exporter.json is stale: run deploy/grafana/dashboard.py"


def test_grafana_dashboard_and_provisioning():
    dash = json.loads((DEPLOY / "grafana" / "aep-flow-exporter.json").read_text())
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "sandbox", "flow"} <= variables
    titles = {p["title"] for p in dash["panels"]}
    for wanted in (
        "Flow status",
        "Records per second",
        "Bytes per second",
        "Failed-record ratio (1h)",
        "Run durations",
        "Error codes over time",
        "Runs in flight",
        "API requests by endpoint and code",
        "Throttling",
        "Poll duration",
        "Token expires in",
    ):
        assert wanted in titles, wanted
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "aep-flow-exporter.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"].endswith("aep-flow-exporter")
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["type"] == "prometheus"


def kustomize() -> list[dict]:
    kubectl = need("kubectl")
    proc = run(kubectl, "kustomize", str(DEPLOY / "kubernetes" / "base"))
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_kubernetes_manifests_validate_against_the_schemas():
    import kubernetes_validate

    docs = kustomize()
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {
        "ConfigMap",
        "Service",
        "PersistentVolumeClaim",
        "Deployment",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    }
    for d in docs:
        if d["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # CRDs: checked below
        kubernetes_validate.validate(d, "1.30", strict=True)
    broken = json.loads(json.dumps(kinds["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does check
        kubernetes_validate.validate(broken, "1.30", strict=True)

    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["requests"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/aep-flow-exporter" in mounts
    assert {"name": "STATE_DIRECTORY", "value": "/var/lib/aep-flow-exporter"} in container["env"]
    assert any(v.get("secret", {}).get("secretName") == "aep-flow-exporter-credentials" for v in pod["volumes"])
    port = kinds["Service"]["spec"]["ports"][0]["name"]
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == port
    assert (
        kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items()
        <= kinds["Service"]["metadata"]["labels"].items()
    )


def test_kubernetes_config_is_a_valid_exporter_config(tmp_path):
    from exporter.config import load_config

    secret = tmp_path / "s"
    secret.write_text("x")
    text = (
        (DEPLOY / "kubernetes" / "base" / "config.yaml")
        .read_text()
        .replace("/etc/aep-flow-exporter/secret/client-secret", str(secret))
    )
    (tmp_path / "c.yaml").write_text(text)
    assert load_config(tmp_path / "c.yaml", env={"AEP_CLIENT_ID": "id"}).sandboxes[0].discover is not None


def test_prometheusrule_is_generated_from_the_alert_files():
    sys.path.insert(0, str(DEPLOY / "kubernetes"))
    try:
        import generate_prometheusrule
    finally:
        sys.path.pop(0)
    committed = (DEPLOY / "kubernetes" / "base" / "prometheusrule.yaml").read_text()
    assert committed == generate_prometheusrule.render(), "run deploy/kubernetes/generate_prometheusrule.py"


def test_systemd_unit_verifies_and_is_hardened(tmp_path):
    analyze = need("systemd-analyze")
    text = (DEPLOY / "systemd" / "aep-flow-exporter.service").read_text()
    for directive in (
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=aep-flow-exporter",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert directive in text, directive
    exe = shutil.which("aep-flow-exporter") or str(Path(sys.executable).parent / "aep-flow-exporter")
    unit = tmp_path / "aep-flow-exporter.service"
    unit.write_text(text.replace("/opt/aep-flow-exporter/bin/aep-flow-exporter", exe))
    proc = run(analyze, "verify", str(unit))
    assert proc.returncode == 0 and proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


def test_sharded_overlay_is_a_statefulset_with_one_shard_per_replica():
    import kubernetes_validate

    kubectl = need("kubectl")
    proc = run(kubectl, "kustomize", str(DEPLOY / "kubernetes" / "overlays" / "sharded"))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = [d["kind"] for d in docs]
    assert "Deployment" not in kinds and "PersistentVolumeClaim" not in kinds
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    for d in docs:
        if not d["apiVersion"].startswith("monitoring.coreos.com"):
            kubernetes_validate.validate(d, "1.30", strict=True)
    container = sts["spec"]["template"]["spec"]["containers"][0]
    count = int(next(a for a in container["args"] if a.startswith("--shard=ordinal/")).rsplit("/", 1)[1])
    assert count == sts["spec"]["replicas"]
    assert any(e["name"] == "POD_NAME" for e in container["env"])
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    assert sts["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
