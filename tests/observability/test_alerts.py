"""Alert rules: promtool check + unit tests, a runbook on every alert, declared metrics only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from detector.metrics import Metrics
from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing_service("promtool (apt-get install prometheus)")
    return str(path)


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def test_check_rules(promtool: str) -> None:
    r = run(promtool, "check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_unit_tests_pass(promtool: str) -> None:
    r = run(promtool, "test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unit_tests_catch_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # The tests must be able to fail: loosen one threshold and promtool must object. Only the
    # drift group of alerts_test.yml runs here (the whole file takes a while on a busy box).
    (tmp_path / "alerts.yml").write_text(
        (PROM / "alerts.yml").read_text().replace("riskwire_drift_psi) > 0.25", "riskwire_drift_psi) > 0.5")
    )
    text = (PROM / "alerts_test.yml").read_text()
    head, _, rest = text.partition("tests:\n")
    groups = re.split(r"\n(?=  # )", rest)
    drift = [g for g in groups if "RiskwireDriftHigh" in g]
    assert len(drift) == 1
    (tmp_path / "alerts_test.yml").write_text(head + "tests:\n" + drift[0] + "\n")
    r = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    assert "RiskwireDriftHigh" in r.stdout + r.stderr
    # And the same reduced file passes against the real rules.
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    r = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_config_is_valid(promtool: str) -> None:
    r = run(promtool, "check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    text = (PROM / "prometheus.yml").read_text()
    assert "job_name: riskwire-worker" in text and "job_name: riskwire-api" in text


def alert_blocks() -> dict[str, str]:
    text = (PROM / "alerts.yml").read_text()
    parts = re.split(r"\n\s+- alert: ", text)[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


def test_every_alert_has_a_runbook_and_is_tested() -> None:
    blocks = alert_blocks()
    required = {"RiskwireConsumerLagGrowing", "RiskwireCheckoutLatencyOverBudget", "RiskwireDeadLetterRate",
                "RiskwireLlmBreakerOpen", "RiskwireDeclineRateAnomaly", "RiskwireDriftHigh", "RiskwireNoDecisions"}
    assert required <= set(blocks)
    tests = (PROM / "alerts_test.yml").read_text()
    for name, block in blocks.items():
        assert re.search(r"\n\s+runbook: \S", block), f"{name} has no runbook annotation"
        assert re.search(r"\n\s+severity: (warning|critical)", block), f"{name} has no severity"
        # Each alert is expected to fire somewhere in the unit tests.
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests), f"{name} never fires in alerts_test.yml"


def test_rules_use_declared_metrics_only() -> None:
    known = set()
    for mf in Metrics.create(CollectorRegistry()).registry.collect():
        known.update({mf.name, mf.name + "_total", mf.name + "_bucket"})
    text = (PROM / "alerts.yml").read_text()
    # Recording rules (job:riskwire_...:rate15m) are names of our own, not exported metrics.
    for name in set(re.findall(r"(?<![:\w])(riskwire_[a-z_]+)\b(?!:)", text)):
        assert name in known, f"alerts.yml uses undeclared {name}"
