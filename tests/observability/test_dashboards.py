"""Dashboards as code: regeneration is byte-identical, and every query names real metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from detector.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("riskwire_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dash) for t in p.get("targets", [])]


def exported_names() -> set[str]:
    names = set()
    for mf in Metrics.create(CollectorRegistry()).registry.collect():
        names.add(mf.name)
        for s in mf.samples:
            names.add(s.name)
        if mf.type == "counter":
            names.add(mf.name + "_total")
        if mf.type == "histogram":
            names.update({mf.name + "_bucket", mf.name + "_sum", mf.name + "_count"})
    return names


def test_regenerating_gives_the_checked_in_json(tmp_path: Path) -> None:
    gen = load_generator()
    rendered = gen.render_all()
    assert set(rendered) == {p.name for p in dashboard_files()} == {"overview.json", "detection.json",
                                                                    "review-queue.json"}
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text(encoding="utf-8") == text, f"{name} is stale: run generate.py"
    # The script itself, run twice into a scratch dir, writes the same bytes both times.
    for out in (tmp_path / "a", tmp_path / "b"):
        subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--out", str(out)], check=True,
                       capture_output=True)
    for name in rendered:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes() \
            == (DASHBOARDS / name).read_bytes()


def test_check_mode_notices_a_stale_file(tmp_path: Path) -> None:
    gen = load_generator()
    gen.write_all(tmp_path)
    assert gen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "overview.json").write_text("{}")
    assert gen.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_shape(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert dash["uid"].startswith("riskwire-")
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "worker", "instance"} <= set(variables)
    assert variables["instance"]["includeAll"] and variables["worker"]["includeAll"]
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${datasource}"
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for t in p["targets"]:
            # Every query honours both filters, so picking a worker narrows every panel.
            assert 'job=~"$worker"' in t["expr"] and 'instance=~"$instance"' in t["expr"], t["expr"]


def test_dashboards_cover_the_issue() -> None:
    by_uid = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in dashboard_files()}
    overview = " ".join(exprs(by_uid["riskwire-overview"]))
    for needle in ("riskwire_decisions_total", "histogram_quantile(0.5", "histogram_quantile(0.99",
                   "riskwire_consumer_lag_messages", "riskwire_model_errors_total", "riskwire_dead_letters_total",
                   "riskwire_llm_requests_total", "riskwire_llm_breaker_open", "riskwire_llm_cache_total"):
        assert needle in overview, needle
    detection = " ".join(exprs(by_uid["riskwire-detection"]))
    for needle in ("riskwire_decision_score_bucket", 'action="decline"', 'action="review"',
                   "riskwire_rule_hits_total", "riskwire_decision_reasons_total", "riskwire_drift_psi"):
        assert needle in detection, needle
    review = " ".join(exprs(by_uid["riskwire-review-queue"]))
    for needle in ("riskwire_review_queue_depth", "riskwire_review_queue_oldest_age_seconds",
                   "riskwire_review_verdicts_total"):
        assert needle in review, needle


def test_every_metric_in_a_query_is_declared() -> None:
    known = exported_names()
    for path in dashboard_files():
        for expr in exprs(json.loads(path.read_text())):
            for name in re.findall(r"\b(riskwire_[a-z_]+)\b", expr):
                assert name in known, f"{path.name}: {name} is not declared in detector/metrics.py"


def test_provisioning_points_at_the_dashboards() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "riskwire.yml").read_text()
    assert "path: /var/lib/grafana/dashboards/riskwire" in provider
    datasource = (GRAFANA / "provisioning" / "datasources" / "riskwire.yml").read_text()
    uid = re.search(r"uid: (\S+)", datasource)
    assert uid is not None
    for path in dashboard_files():
        ds_var = next(v for v in json.loads(path.read_text())["templating"]["list"] if v["name"] == "datasource")
        assert ds_var["current"]["value"] == uid.group(1)
