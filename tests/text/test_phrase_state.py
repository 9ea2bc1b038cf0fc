"""The in-process phrase tables answer exactly what the generic bundles answer.

``PhraseClusterer`` on a ``MemoryState`` keeps its state in compact tables
(``features.text.phrase_state``); on any other store it goes through the generic
``features.state`` bundles (as on Redis). The same traffic through both must give the
same ``PhraseStats``, call by call: out-of-order and very late events, re-deliveries
(in the same batch, later, and after their record expired), gaps longer than the time
to live, distinct sets past their cap, the share-of-all-texts damping, empty texts, and
a store whose watermark another component pushes ahead.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from features.state import MemoryState, WindowedCounter
from features.text.phrasing import DAY, PhraseClusterer, PhraseItem

T0 = 1_795_000_000.0


class GenericMemory:
    """``MemoryState`` behind the generic path (not an instance of it)."""

    backend = "memory"

    def __init__(self) -> None:
        self.inner = MemoryState()

    def transact(self, keys, fn):
        return self.inner.transact(keys, fn)

    def close(self) -> None:
        self.inner.close()


def _traffic(seed: int, n: int, dim: int = 512):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    protos = nrng.standard_normal((12, dim)).astype(np.float32)
    t = T0
    events: list[PhraseItem] = []
    batches: list[list[PhraseItem]] = []
    batch: list[PhraseItem] = []
    for k in range(n):
        r = rng.random()
        if r < 0.02:
            t += rng.choice([9 * DAY, 2 * DAY, 7 * DAY + 30])  # past the ttl, or across the window
        elif r < 0.05:
            pass  # same second
        else:
            t += rng.expovariate(1 / 240)
        at = t
        if rng.random() < 0.05:
            at = t - rng.choice([90, 3600, 1.5 * DAY, 8.5 * DAY])  # out of order, or very late
        if rng.random() < 0.03:
            emb = np.zeros(dim, dtype=np.float32)
        else:
            p = protos[rng.randrange(len(protos))] if rng.random() < 0.8 else nrng.standard_normal(dim)
            emb = (p + nrng.standard_normal(dim) * rng.choice([0.05, 0.2, 0.6])).astype(np.float32)
            emb /= np.linalg.norm(emb)
        account = None if rng.random() < 0.05 else f"acc-{rng.randrange(300)}"
        item = PhraseItem(embedding=emb, account=account, event_id=f"e-{k}", at=at)
        if events and rng.random() < 0.06:
            item = rng.choice(events[-200:] if rng.random() < 0.8 else events)  # a re-delivery
        events.append(item)
        batch.append(item)
        if rng.random() < 0.05 or len(batch) >= 64:
            batches.append(batch)
            batch = []
    batches.append(batch)
    return batches, protos


@pytest.mark.parametrize(
    ("seed", "kw"),
    [
        (1, {}),
        (2, {"bits": 4, "cap_accounts": 12, "min_total": 40, "max_share": 0.2}),
        (3, {"bands": 3, "bits": 3, "cap_accounts": 5}),
        (4, {"bands": 1, "bits": 5}),
    ],
)
def test_tables_answer_what_the_bundles_answer(seed, kw):
    batches, protos = _traffic(seed, 3000)
    # Near one of the frequent phrasings (common), and unrelated vectors.
    baseline = np.vstack([protos[:1], np.random.default_rng(99).standard_normal((4, 512))]).astype(np.float32)
    baseline /= np.linalg.norm(baseline, axis=1, keepdims=True)
    memory, generic = MemoryState(), GenericMemory()
    fast = PhraseClusterer(memory, baseline=baseline, **kw)
    slow = PhraseClusterer(generic, baseline=baseline, **kw)
    # Another component on the same stores pushes the watermark ahead now and then.
    ahead = [WindowedCounter(s, namespace="other", windows_s=(3600,)) for s in (memory, generic.inner)]
    rng = random.Random(seed)
    n_items = 0
    for batch in batches:
        assert fast.observe(batch) == slow.observe(batch)
        n_items += len(batch)
        if batch and rng.random() < 0.03:
            t = max(float(it.at) for it in batch) + rng.choice([600, 1.2 * DAY])  # type: ignore[arg-type]
            for counter in ahead:
                counter.observe([("k", t, 1.0)])
    assert n_items >= 3000


def test_stats_stay_in_one_store_bundle_and_close_clears_them():
    state = MemoryState()
    pc = PhraseClusterer(state)
    e = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    [a] = pc.observe([PhraseItem(embedding=e, account="a", event_id="x", at=T0)])
    assert len(state) == 1  # the tables, not a dozen bundles per text
    [b] = pc.observe([PhraseItem(embedding=e, account="b", event_id="y", at=T0 + 60)])
    assert (a.size_7d, b.size_7d, b.accounts_7d) == (1, 2, 2)
    # A second clusterer on the same store shares the state, as it did through the bundles.
    [c] = PhraseClusterer(state).observe([PhraseItem(embedding=e, account="c", event_id="z", at=T0 + 120)])
    assert (c.size_7d, c.accounts_7d, c.cluster_id) == (3, 3, a.cluster_id)
    state.close()
    [d] = pc.observe([PhraseItem(embedding=e, account="d", event_id="w", at=T0 + 180)])
    assert d.size_7d == 1
