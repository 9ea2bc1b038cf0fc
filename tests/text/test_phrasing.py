"""Recurring phrasing: the same script across many accounts stands out, common phrases do not."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from features.state import MemoryState
from features.text.extract import TextExtractor
from features.text.phrasing import PhraseClusterer, PhraseItem
from tests.text.text_support import embedder, extractor

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

SCRIPT = [
    "Hello, order {n} arrived with an empty box. I demand a full refund to my card, I will not send anything back.",
    "Hello, order {n} arrived with an empty box. I demand a full refund to my card, I will not send anything back!",
    "hello order {n} arrived with an empty box, i demand a full refund to my card. I will not send anything back",
]
DOOR = ["Please leave at the door", "please leave at the door.", "Please leave it at the door", "pls leave at the door"]
_OPEN = ["Hi", "Hello", "Good morning", "Dear shop", "Hey there", ""]
_ASK = [
    "the blue one fits better so I am exchanging it", "could you add a card saying congratulations",
    "the intercom is broken, knock on the window", "my daughter will be home after school",
    "use the garage entrance on the left", "it is for my grandmother's 90th birthday",
    "the lamp shade was bent, sending photos", "please pack the glasses separately",
    "I ordered the wrong colour by accident", "the parcel box code is written on the wall",
]
_CLOSE = ["thanks {name}", "cheers", "kind regards, {name}", "see you", "best, {name}"]
BACKGROUND = [f"{o} {a}, {c}".strip() for o in _OPEN for a in _ASK for c in _CLOSE]
NAMES = ["Anna", "Jan", "Maria", "Piotr", "Lea", "Omar", "Noa", "Wei", "Luca", "Ines"]


def _items(texts_accounts, ex: TextExtractor, start: datetime, step_s: float = 60.0):
    exs = ex.extract([t for t, _ in texts_accounts])
    E = embedder().encode([e.embed_input for e in exs])
    return [
        PhraseItem(embedding=E[i], account=acc, event_id=f"ev-{uuid.uuid4().hex}", at=start + timedelta(seconds=i * step_s))
        for i, (_, acc) in enumerate(texts_accounts)
    ]


def _traffic(rng: random.Random):
    rows = []
    for i in range(200):
        rows.append((rng.choice(DOOR), f"door-{i}"))
    for i in range(120):
        rows.append((rng.choice(BACKGROUND).format(name=rng.choice(NAMES)), f"bg-{i}"))
    for i in range(30):
        rows.append((rng.choice(SCRIPT).format(n=rng.randint(10_000, 99_999)), f"fraud-{i}"))
    rng.shuffle(rows)
    return rows


def _clusterer(state=None, **kw):
    return PhraseClusterer.with_baseline(embedder().encode, state or MemoryState(), **kw)


def test_same_script_across_30_accounts_stands_out_and_common_phrase_does_not():
    rng = random.Random(7)
    rows = _traffic(rng)
    pc = _clusterer()
    stats = pc.observe(_items(rows, extractor(), T0))
    by_kind: dict[str, list] = {"door": [], "bg": [], "fraud": []}
    for (_, acc), s in zip(rows, stats, strict=True):
        by_kind[acc.split("-")[0]].append(s)
    last_fraud = by_kind["fraud"][-1]
    assert last_fraud.accounts_7d >= 25
    assert last_fraud.stands_out > 0.8
    assert not last_fraud.common
    # Every script text ends up in the same cluster.
    assert len({s.cluster_id for s in by_kind["fraud"][-10:]}) == 1
    door_last = by_kind["door"][-1]
    assert door_last.accounts_7d >= 40  # the common phrase does recur ...
    assert door_last.common and door_last.stands_out == 0.0  # ... and still does not stand out
    assert max(s.stands_out for s in by_kind["bg"]) < 0.5


def test_a_unique_note_is_alone():
    pc = _clusterer()
    [s] = pc.observe(_items([("My cat will sign for the parcel, she is very responsible", "c-1")], extractor(), T0))
    assert (s.size_7d, s.accounts_7d, s.stands_out) == (1, 1, 0.0)


def test_same_event_is_counted_once_and_answers_the_same():
    pc = _clusterer()
    ex = extractor()
    items = _items([(SCRIPT[0].format(n=1), f"a-{i}") for i in range(5)], ex, T0)
    first = pc.observe(items)
    again = pc.observe(items)
    assert first == again
    [nxt] = pc.observe(_items([(SCRIPT[0].format(n=2), "a-99")], ex, T0 + timedelta(minutes=10)))
    assert nxt.size_7d == 6 and nxt.accounts_7d == 6


def test_one_account_repeating_itself_is_not_many_accounts():
    pc = _clusterer()
    stats = pc.observe(_items([(SCRIPT[0].format(n=i), "same-account") for i in range(30)], extractor(), T0))
    assert stats[-1].size_7d == 30
    assert stats[-1].accounts_7d == 1
    assert stats[-1].stands_out == 0.0


def test_window_forgets_after_seven_days():
    pc = _clusterer()
    ex = extractor()
    pc.observe(_items([(SCRIPT[1].format(n=i), f"old-{i}") for i in range(20)], ex, T0))
    [late] = pc.observe(_items([(SCRIPT[1].format(n=5), "new-1")], ex, T0 + timedelta(days=8)))
    assert late.accounts_7d == 1


def test_a_phrase_most_of_the_population_writes_is_common_even_off_the_baseline():
    """IDF-like damping: a share of all texts above ``max_share`` is common."""
    pc = _clusterer(min_total=100, max_share=0.1)
    rng = random.Random(3)
    everyone = "Thank you so much for the quick service, will order again"
    rows = [(everyone, f"u-{i}") for i in range(120)]
    rows += [(rng.choice(BACKGROUND).format(name=rng.choice(NAMES)), f"bg-{i}") for i in range(60)]
    rows += [(SCRIPT[0].format(n=i), f"f-{i}") for i in range(12)]
    stats = pc.observe(_items(rows, extractor(), T0))
    assert stats[119].accounts_7d >= 100 and stats[119].common and stats[119].stands_out == 0.0
    # The script is rare among all texts, so it is not damped.
    assert stats[-1].accounts_7d >= 10 and not stats[-1].common and stats[-1].stands_out > 0.4


@pytest.mark.integration
def test_redis_backend_gives_the_same_clusters_as_memory(redis_url):
    from features.state import RedisState

    rng = random.Random(11)
    rows = _traffic(rng)[:150]
    items = _items(rows, extractor(), T0)
    mem = _clusterer(MemoryState()).observe(items)
    red_state = RedisState(redis_url=redis_url, key_prefix=f"rwtest-{uuid.uuid4().hex[:8]}")
    try:
        red = _clusterer(red_state).observe(items)
    finally:
        red_state.clear()
        red_state.close()
    assert mem == red
