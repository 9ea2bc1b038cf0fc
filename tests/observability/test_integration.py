"""The whole loop: embedded broker, a stream worker, the API (2 uvicorn workers) and a real
Prometheus scraping both; traffic through Kafka and /v1/score; then every query of every
dashboard panel must return data, and the decision counters must equal what was scored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import order_payload

ROOT = Path(__file__).resolve().parents[2]
RISKWIRE = str(Path(sys.executable).parent / "riskwire")
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

N_ORDERS = 400  # >= the drift monitor's min_samples (300), so the PSI gauges are published
N_SYNC = 30
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


T0 = time.monotonic()


def note(what: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {what}", flush=True)


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, every: float = 0.5,
             procs: tuple[Proc, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                pytest.fail(f"{p.name} exited with {p.popen.returncode} while waiting for {what}:\n{p.tail()}")
        try:
            last = check()
            if last:
                note(what)
                return last
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(every)
    tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{tails}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        # Each process leads its own session: its uvicorn children get the signal too.
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop()


def start(procs: list[Proc], name: str, argv: list[str], *, env: dict[str, str], tmp: Path) -> Proc:
    log = tmp / f"{name}.log"
    fh = log.open("wb")
    popen = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
    fh.close()
    p = Proc(name, popen, log)
    procs.append(p)
    return p


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text) for s in fam.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, f"{panel['title']} [{target['refId']}]", target["expr"]))
    return out


def substitute(expr: str) -> str:
    # What Grafana sends with "All" selected; $__rate_interval spans several 1 s scrapes here.
    return (expr.replace("$__rate_interval", "20s").replace("$__range", "10m")
            .replace('"$worker"', '".*"').replace('"$instance"', '".*"'))


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    if body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('error')}")
    return body["data"]["result"]  # type: ignore[no-any-return]


def pretrain(tmp: Path) -> None:
    """Fit the first model on a small generated history, so the services start fast."""
    from detector.settings import ModelSettings, Settings
    from detector.wiring import build_featurizer, build_model
    from streams.generator import history

    settings = Settings(data_dir=tmp, models=ModelSettings(registry_dir=tmp / "models"))
    build_model(settings, schema=build_featurizer(settings).schema, history=lambda: history(1500, seed=1))


def test_every_panel_has_data_and_counters_match(
    prometheus_bin: str, broker: str, tmp_path: Path, procs: list[Proc]
) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RISKWIRE_") or k == "RISKWIRE_REQUIRE_SERVICES"},
        "RISKWIRE_DATA_DIR": str(tmp_path),
        "RISKWIRE_MODELS__REGISTRY_DIR": str(tmp_path / "models"),
        "RISKWIRE_STORE__DATABASE_URL": f"sqlite:///{tmp_path / 'riskwire.db'}",
        "RISKWIRE_KAFKA__BOOTSTRAP_SERVERS": broker,
        # Topics and group of our own: the session broker is shared with other tests.
        "RISKWIRE_KAFKA__ORDERS_TOPIC": f"obs-orders-{tag}",
        "RISKWIRE_KAFKA__RETURNS_TOPIC": f"obs-returns-{tag}",
        "RISKWIRE_KAFKA__LABELS_TOPIC": f"obs-labels-{tag}",
        "RISKWIRE_KAFKA__DECISIONS_TOPIC": f"obs-decisions-{tag}",
        "RISKWIRE_KAFKA__DLQ_TOPIC": f"obs-dlq-{tag}",
        "RISKWIRE_KAFKA__GROUP_ID": f"obs-{tag}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    pretrain(tmp_path)
    note("pre-trained")

    worker_port, api_port, prom_port = free_port(), free_port(), free_port()
    worker = start(procs, "worker", [RISKWIRE, "worker", "--bootstrap-servers", broker,
                                     "--metrics-port", str(worker_port), "--log-level", "WARNING"],
                   env=env, tmp=tmp_path)
    # The API runs 2 uvicorn workers; a known multiprocess dir lets us see each one's share.
    api = start(procs, "api", [RISKWIRE, "serve", "--port", str(api_port), "--workers", "2",
                               "--log-level", "WARNING"],
                env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc")}, tmp=tmp_path)

    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - alerts.yml\n"
        "scrape_configs:\n"
        f"  - job_name: riskwire-worker\n    static_configs:\n      - targets: ['127.0.0.1:{worker_port}']\n"
        f"  - job_name: riskwire-api\n    static_configs:\n      - targets: ['127.0.0.1:{api_port}']\n"
    )
    prom = start(procs, "prometheus", [
        prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
        "--log.level=warn",
    ], env=env, tmp=tmp_path)
    base = f"http://127.0.0.1:{prom_port}"

    everyone = (worker, api, prom)
    wait_for("the API", lambda: httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=2).status_code == 200,
             timeout=240, procs=everyone)
    wait_for("the worker to join its group",
             lambda: total(scrape(worker_port), "riskwire_consumer_rebalances_total", kind="assigned") >= 1,
             timeout=90, procs=everyone)
    wait_for("Prometheus", lambda: httpx.get(f"{base}/-/ready", timeout=2).status_code == 200,
             timeout=30, procs=everyone)

    # Traffic: generated orders (with labels, returns and a few malformed records) through Kafka ...
    gen = subprocess.run([RISKWIRE, "generate", "--count", str(N_ORDERS), "--seed", "5",
                          "--malformed-share", "0.03", "--bootstrap-servers", broker],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr[-2000:]
    sent = json.loads(gen.stderr.strip().splitlines()[-1])
    note(f"generated {sent}")
    # The generator may add a few orders of its own scenarios on top of --count.
    assert sent["orders"] >= N_ORDERS and sent["malformed"] > 0
    n_orders = sent["orders"]

    # ... and checkout calls on fresh connections, so both uvicorn workers get some.
    def score(i: int) -> int:
        with httpx.Client(timeout=30) as c:
            return c.post(f"http://127.0.0.1:{api_port}/v1/score",
                          json=order_payload(order_id=f"o-obs-{tag}-{i}")).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(score, range(N_SYNC)))
        # The kernel picks which uvicorn worker accepts; keep going (a little) until both
        # have served, so the summed scrape below really adds up two processes.
        while len(api_decisions_per_pid(tmp_path / "multiproc")) < 2 and len(codes) < 4 * N_SYNC:
            codes += pool.map(score, range(len(codes), len(codes) + 10))
    n_sync = len(codes)
    assert codes.count(200) == n_sync, codes
    # Malformed checkout bodies are refused (422) and never counted as decisions.
    for bad in ({"order_id": "x"}, {**order_payload(order_id="o-bad"), "created_at": "yesterday"}, {}):
        assert httpx.post(f"http://127.0.0.1:{api_port}/v1/score", json=bad, timeout=10).status_code == 422

    orders_in = sent["orders"] + sent["malformed"]

    def consumed_all() -> bool:
        m = scrape(worker_port)
        return (total(m, "riskwire_messages_in_total", topic=f"obs-orders-{tag}") >= orders_in
                and total(m, "riskwire_messages_in_total", topic=f"obs-labels-{tag}") >= sent["labels"])

    wait_for("the worker to consume everything", consumed_all, timeout=90, procs=everyone)

    # Values through Prometheus: the decision counters equal what was scored.
    def prom_value(expr: str) -> float | None:
        result = prom_query(base, expr)
        return float(result[0]["value"][1]) if result else None

    expected = {
        'sum(riskwire_decisions_total{job="riskwire-worker", path="stream"})': n_orders,
        'sum(riskwire_decisions_total{job="riskwire-api", path="sync"})': n_sync,
        'sum(riskwire_decision_score_count{job="riskwire-api", path="sync"})': n_sync,
        f'sum(riskwire_messages_decided_total{{job="riskwire-worker", topic="obs-orders-{tag}"}})': n_orders,
        'sum(riskwire_dead_letters_total{job="riskwire-worker"})': sent["malformed"],
        f'sum(riskwire_messages_in_total{{job="riskwire-worker", topic="obs-orders-{tag}"}})': orders_in,
    }
    wait_for("Prometheus to scrape the final counts",
             lambda: all(prom_value(q) == v for q, v in expected.items()), timeout=30, procs=everyone)
    for q, v in expected.items():
        assert prom_value(q) == v, q

    # Both API workers served checkout calls, and the one scrape summed them.
    per_pid = api_decisions_per_pid(tmp_path / "multiproc")
    assert sum(per_pid.values()) == n_sync
    print(f"checkout decisions per API worker: {per_pid}")

    # Every query of every dashboard panel returns data.
    queries = panel_queries()
    assert len(queries) >= 30

    deadline = time.monotonic() + 30
    while True:
        empty = [f"{dash}: {title}: {expr}" for dash, title, expr in queries
                 if not prom_query(base, substitute(expr))]
        if not empty or time.monotonic() > deadline:
            break
        note(f"{len(empty)} panel queries without data yet, e.g. {empty[0]}")
        time.sleep(2)
    assert not empty, "panels without data:\n" + "\n".join(empty)
    note(f"all {len(queries)} panel queries have data")

    # The template variables' own queries list both jobs and their instances.
    jobs = httpx.get(f"{base}/api/v1/label/job/values", params={"match[]": "riskwire_build_info"},
                     timeout=10).json()["data"]
    assert {"riskwire-worker", "riskwire-api"} <= set(jobs)
    instances = httpx.get(f"{base}/api/v1/label/instance/values",
                          params={"match[]": 'riskwire_build_info{job=~".*"}'}, timeout=10).json()["data"]
    assert {f"127.0.0.1:{worker_port}", f"127.0.0.1:{api_port}"} <= set(instances)

    # The alert rules load and evaluate without errors against live series.
    rules = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
    bad = [r["name"] for g in rules for r in g["rules"] if r.get("health") not in ("ok", "unknown")]
    assert not bad, bad


def api_decisions_per_pid(directory: Path) -> dict[str, float]:
    """Checkout decisions per uvicorn worker, read from the multiprocess files."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[str, float] = {}
    for f in directory.glob("counter_*.db"):
        n = sum(v for key, v, *_ in MmapedDict.read_all_values_from_file(str(f))
                if json.loads(key)[1] == "riskwire_decisions_total")
        if n:
            out[f.stem.split("_")[-1]] = n
    return out
