"""prometheus-client multiprocess mode: values from several processes add up in one scrape."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector.commands.observability import prepare_multiprocess_dir

CHILD = textwrap.dedent(
    """
    import os, sys
    from prometheus_client import multiprocess
    from detector.metrics import Metrics
    m = Metrics.create()
    assert m.multiprocess == ("PROMETHEUS_MULTIPROC_DIR" in os.environ), "wrong mode"
    n, lag, dead = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "dead"
    for _ in range(n):
        m.decisions.labels(action="decline", path="sync").inc()
        m.decision_latency.labels(path="sync").observe(0.002)
    m.consumer_lag.labels(topic="orders", partition="0").set(lag)
    m.build.info({"version": "0.1.0", "model": "v0001", "ruleset": "r1"})
    if dead:
        multiprocess.mark_process_dead(os.getpid())
    """
)

SCRAPE = textwrap.dedent(
    """
    from prometheus_client import generate_latest
    from detector.metrics import Metrics
    print(generate_latest(Metrics.create().registry).decode())
    """
)


def run(code: str, *args: str, env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    return r.stdout


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_and_gauges_combine_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run(CHILD, "3", "10", "live", env=env)
    run(CHILD, "4", "25", "live", env=env)
    run(CHILD, "5", "99", "dead", env=env)
    got = samples(run(SCRAPE, env=env))
    # Counters and histograms sum over every process, dead ones included (their work happened).
    assert got[("riskwire_decisions_total", (("action", "decline"), ("path", "sync")))] == 12
    assert got[("riskwire_decision_latency_seconds_count", (("path", "sync"),))] == 12
    # Live gauges: the maximum over processes still alive; the dead one's 99 is gone.
    assert got[("riskwire_consumer_lag_messages", (("partition", "0"), ("topic", "orders")))] == 25
    assert got[("riskwire_build_info", (("model", "v0001"), ("ruleset", "r1"), ("version", "0.1.0")))] == 1
    # No per-process collectors in this mode (they cannot be summed).
    assert not any(name.startswith("process_") for name, _ in got)


def test_without_the_env_a_scrape_sees_only_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    run(CHILD, "3", "10", "live", env=env)
    got = samples(run(SCRAPE, env=env))
    assert got[("riskwire_decisions_total", (("action", "decline"), ("path", "sync")))] == 0


def test_prepare_dir_clears_stale_files(tmp_path: Path) -> None:
    # A context-managed MonkeyPatch: prepare_multiprocess_dir writes os.environ itself.
    with pytest.MonkeyPatch.context() as mp:
        (tmp_path / "counter_1.db").write_bytes(b"stale")
        (tmp_path / "keep.txt").write_text("not ours")
        mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        directory, temporary = prepare_multiprocess_dir()
        assert directory == tmp_path and not temporary
        assert not (tmp_path / "counter_1.db").exists() and (tmp_path / "keep.txt").exists()
        mp.delenv("PROMETHEUS_MULTIPROC_DIR")
        directory, temporary = prepare_multiprocess_dir()
        assert temporary and directory.is_dir() and os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
        directory.rmdir()
