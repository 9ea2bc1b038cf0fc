"""Tier 3 against the real local LLM server: structure and call path, never the label.

SmolLM2-135M proves the plumbing (strict JSON through llama.cpp's grammar, timeouts,
late verdicts), not fraud judgement, so these tests assert the shape of what comes back.
"""

from __future__ import annotations

import time

import httpx
import pytest

from contracts import SignalUnavailable
from detector.llm_server import DEFAULT_ALIAS
from models.text.llm import LLM_LABELS, LlmClassifier
from tests.text.llm_fixtures import dead_base_url, llm_base_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


class _Obs:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.states: list[str] = []

    def request(self, outcome: str) -> None:
        self.requests.append(outcome)

    def cache(self, hit: bool) -> None:
        pass

    def breaker(self, state: str) -> None:
        self.states.append(state)


def _client(base_url: str, timeout_s: float = 30.0):
    import openai

    return openai.OpenAI(base_url=base_url, api_key="sk-local", timeout=timeout_s, max_retries=0)


def _wait_settled(llm: LlmClassifier, text: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while llm.in_flight(text) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_server_lists_the_model(llm_base_url: str) -> None:  # noqa: F811
    r = httpx.get(f"{llm_base_url}/models", timeout=5)
    assert r.status_code == 200
    assert DEFAULT_ALIAS in [m["id"] for m in r.json()["data"]]


def test_real_answer_follows_the_schema_and_is_cached(llm_base_url: str) -> None:  # noqa: F811
    obs = _Obs()
    # min_confidence 0 keeps every label the model gave, so the shape is fully visible.
    llm = LlmClassifier(_client(llm_base_url), model=DEFAULT_ALIAS, timeout_s=60.0, min_confidence=0.0, observer=obs)
    text = "Please forward the parcel to my cousin abroad, pay with gift cards."
    labels = llm.classify(text)
    assert obs.requests == ["ok"]
    assert 1 <= len(labels) <= 3
    assert set(labels) <= set(LLM_LABELS)
    assert all(0.0 <= v <= 1.0 for v in labels.values())
    assert llm.classify(text.upper()) == labels  # cache: normalised text, no second call
    assert obs.requests == ["ok"]
    llm.close()


def test_timeout_is_a_missing_signal(llm_base_url: str) -> None:  # noqa: F811
    obs = _Obs()
    llm = LlmClassifier(_client(llm_base_url), model=DEFAULT_ALIAS, timeout_s=0.001, observer=obs)
    with pytest.raises(SignalUnavailable) as err:
        llm.classify("Leave it with the neighbour, no signature please.")
    assert err.value.signal == "text_llm" and "timeout" in err.value.reason
    assert obs.requests == ["timeout"]
    llm.close()


def test_dead_endpoint_is_a_missing_signal_and_opens_the_breaker(dead_base_url: str) -> None:  # noqa: F811
    from models.text.llm_breaker import CircuitBreaker

    obs = _Obs()
    llm = LlmClassifier(
        _client(dead_base_url, 2.0), model=DEFAULT_ALIAS, timeout_s=2.0, observer=obs,
        breaker=CircuitBreaker(failure_threshold=2, reset_after_s=60.0, on_change=obs.breaker),
    )
    for text in ("first note", "second note"):
        with pytest.raises(SignalUnavailable, match="unreachable"):
            llm.review([text], budget_s=5.0)
    with pytest.raises(SignalUnavailable, match="breaker open"):
        llm.review(["third note"], budget_s=5.0)
    assert obs.requests == ["error", "error", "rejected"]
    assert "open" in obs.states
    llm.close()


def test_verdict_after_the_budget_lands_in_the_cache(llm_base_url: str) -> None:  # noqa: F811
    llm = LlmClassifier(_client(llm_base_url), model=DEFAULT_ALIAS, timeout_s=60.0, min_confidence=0.0)
    text = "Bitte nicht klingeln, Paket an meinen Freund weiterleiten."
    assert llm.review([text], budget_s=0.001) == [None]
    _wait_settled(llm, text)
    late = llm.lookup(text)
    assert late is not None and set(late) <= set(LLM_LABELS)
    assert llm.review([text], budget_s=0.0) == [late]
    llm.close()
