"""Objectives as code against promtool: the rules generated from the example objectives and from a
file with every kind and selector pass `promtool check rules`, and the tests generated beside them
pass `promtool test rules` (a budget burning at each workbook rate fires that pair's alert and none
of the other severity; a healthy flow fires none; a sparse flow does what docs/objectives.md says).
The generated cases can fail: a rule that burns at the wrong rate is caught.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import need

from exporter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "example": ROOT / "deploy" / "objectives.example.yaml",
    "every kind and selector": Path(__file__).resolve().parent / "objectives-every-kind.yaml",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([need("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def generate(objectives: Path, out: Path, *extra: str) -> None:
    assert main(["rules", "--objectives", str(objectives), "--out", str(out), *extra]) == 0


@pytest.mark.parametrize("name", list(FILES))
def test_generated_rules_pass_promtool_check_and_their_generated_tests(name, tmp_path):
    need("promtool")
    generate(FILES[name], tmp_path)
    check = promtool("check", "rules", "objectives.rules.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = yaml.safe_load((tmp_path / "objectives.tests.yml").read_text())["tests"]
    objectives = {o["name"] for o in yaml.safe_load(FILES[name].read_text())["objectives"]}
    assert {t["name"].split(":")[0] for t in tests} == objectives  # every objective has its cases
    run = promtool("test", "rules", "objectives.tests.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "SUCCESS" in run.stdout


def test_the_generated_tests_catch_a_rule_that_burns_at_the_wrong_rate(tmp_path):
    need("promtool")
    generate(FILES["example"], tmp_path, "--exporter-url", "https://exporter.example.com")
    tests = yaml.safe_load((tmp_path / "objectives.tests.yml").read_text())
    page = next(t for t in tests["tests"] if t["name"].startswith("crm-runs: healthy for"))
    (tmp_path / "one.tests.yml").write_text(yaml.safe_dump(dict(tests, tests=[page]), allow_unicode=True))
    assert promtool("test", "rules", "one.tests.yml", cwd=tmp_path).returncode == 0
    rules = tmp_path / "objectives.rules.yml"
    text = rules.read_text()
    assert text.count("> 0.144\n") >= 1
    rules.write_text(text.replace("> 0.144\n", "> 0.5\n"))  # the 14.4x page, made a 50x one
    failed = promtool("test", "rules", "one.tests.yml", cwd=tmp_path)
    assert failed.returncode != 0 and "AepObjectiveFastBurn" in failed.stdout + failed.stderr
