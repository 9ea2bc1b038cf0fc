"""Hot reload through the real engine: every decision carries one ruleset version."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest

from contracts import Order
from rules import RulesetHolder


@pytest.mark.integration
@pytest.mark.slow
def test_engine_decisions_never_mix_ruleset_versions(order_factory: Callable[..., Order]) -> None:
    features = pytest.importorskip("features")
    models = pytest.importorskip("models")
    from detector.commands.rules import attribute_schema
    from detector.engine import Engine
    from detector.metrics import Metrics
    from detector.policy import Policy, Thresholds
    from tests.conftest import T0

    featurizer = features.OrderFeaturizer()
    history = [
        order_factory(order_id=f"h-{i}", created_at=(T0 - timedelta(hours=300 - i)).isoformat(),
                      customer={"customer_id": f"c-{i % 40}"}, payment={"amount": f"{20 + i % 97}.00"})
        for i in range(300)
    ]
    rows = featurizer.featurize(history)
    names = featurizer.schema.model_inputs()
    X = np.array([[np.nan if r.get(n) is None else float(r[n]) for n in names] for r in rows])
    model = models.fit_bundle(X, names, random_state=0)

    def text(k: int) -> str:
        return (f"ruleset load\nrule a_{k}: reason: A review if :amount_base: >= 0\n"
                f"rule b_{k} shadow: reason: B decline if :model_score: >= 0\n")

    holder = RulesetHolder(schema=attribute_schema(featurizer.schema), text=text(0))
    suffix_of = {holder.current.version: "0"}
    metrics = Metrics.create()
    policy = Policy(thresholds={"unsupervised": Thresholds(review_at=99.0, decline_at=100.0)})
    engine = Engine(featurizer=featurizer, model=model, rules=holder, policy=policy, metrics=metrics)
    errors: list[BaseException] = []
    decided = [0, 0]
    stop = threading.Event()

    def hammer(n: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                batch = [order_factory(order_id=f"t{n}-{i}-{j}", created_at=(T0 + timedelta(seconds=i)).isoformat())
                         for j in range(5)]
                i += 1
                for d in engine.decide_batch(batch):
                    suffixes = {h.rule_id.split("_")[1] for h in d.rule_hits}
                    assert suffixes == {suffix_of[d.versions.ruleset]}, (suffixes, d.versions.ruleset)
                    # The shadow decline never acts; only a score at the decline threshold
                    # (the rarest 0.1% of training traffic) may decline.
                    assert d.action == "review" or d.score >= 100, (d.action, d.score)
                    decided[n] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        for k in range(1, 15):
            suffix_of[holder.validate(text(k)).version] = str(k)
            assert holder.reload(text=text(k)).ok
            stop.wait(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[0]
    assert all(decided)
    # Shadow hits are counted in metrics, by rule id, though they never act.
    shadow = sum(
        sample.value
        for metric in metrics.rule_hits.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("shadow") == "true"
    )
    assert shadow == sum(decided)
