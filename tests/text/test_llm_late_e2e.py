"""A late LLM verdict re-decides an order: real engine, real local LLM server, real case store.

The path the worker runs (``streams.worker.Worker``): the engine decides a batch on the
stream path; the LLM call misses the stream budget and keeps running; the decision
sinks see the first decision (the late tracker and the review queue); the worker's
``poll_late()`` returns the next revision once the verdict is in the cache, and that
revision goes to the same sinks, which open a review case when it escalates.

SmolLM2-135M answers with low confidences (a few percent), so at the shipped floor
(``llm.min_confidence`` 0.5) its verdicts never change a decision. The test makes the
escalation deterministic by how it picks its input and threshold, not by faking the
model: ``min_confidence`` 0 (every label the model gives flags), and a note chosen by
asking the real model first, through a separate classifier with its own cache, for a
note that tiers 1-2 send to tier 3 without a label the default ruleset reviews and to
which the model adds one of those labels. Asserted: structure only (a second Decision
for the same order id with a higher revision, escalation, the review case, the
prompt/schema/model ids), never which label the model chose. Every wait has a deadline.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from detector.engine import decision_id_for
from detector.settings import LlmSettings
from detector.text_stage import TextInput, needs_llm
from models.text.llm import PROMPT_VERSION, RESPONSE_SCHEMA_VERSION, LlmClassifier
from tests.text.llm_fixtures import llm_base_url  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: ``rules/default.rules``: ``review if :text_labels: contains '<label>'``.
REVIEWED = ("reshipping", "payment_evasion", "prompt_injection")
#: Notes tiers 1-2 flag (abusive, contact avoidance, gibberish...) or are unsure of.
CANDIDATES = (
    "You are useless idiots",
    "You are useless idiots, the worst shop ever.",
    "Leave it anywhere, do not call me, no signature.",
    "asdfgh qwerty zxcvb",
    "Hurry up, I need it today, no excuses!",
    "Esto es una mierda, gilipollas incompetentes.",
)
CALL_TIMEOUT_S = 60.0  # one SmolLM2 call: ~0.5 s on an idle core, seconds on a busy one
LATE_DEADLINE_S = 120.0
SEVERITY = {"approve": 0, "review": 1, "decline": 2}


def _pick_note(services: Any, base_url: str) -> str:
    """The first candidate whose real LLM verdict must escalate (see the module docstring)."""
    import openai

    classifier = services.text.classifier
    probe = LlmClassifier(
        openai.OpenAI(base_url=base_url, api_key="sk-local", timeout=CALL_TIMEOUT_S, max_retries=0),
        model=services.settings.llm.model, timeout_s=CALL_TIMEOUT_S, min_confidence=0.0,
    )
    tried: dict[str, object] = {}
    try:
        for note in CANDIDATES:
            (v,) = classifier.classify([TextInput(note, "note")])
            if not needs_llm(v) or any(lab in v.labels for lab in REVIEWED):
                tried[note] = "not a tier-3 candidate"
                continue
            answer = probe.classify(v.redacted, field="note")  # exactly what the stage will send
            tried[note] = answer
            if any(answer.get(lab, 0.0) > 0.0 for lab in REVIEWED):
                return note
    finally:
        probe.close()
    pytest.fail(f"no candidate note gets a reviewed label from this model any more: {tried}")


def _until(what: str, deadline_s: float, fn: Any) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out after {deadline_s:g}s waiting for {what}")


def test_late_llm_verdict_redecides_the_order_and_opens_a_case(
    services_factory: Any, order_factory: Any, llm_base_url: str  # noqa: F811
) -> None:
    services = services_factory(llm=LlmSettings(
        enabled=True, base_url=llm_base_url, timeout_s=CALL_TIMEOUT_S, max_concurrency=1,
        # A budget no call can meet: the verdict is late by construction.
        stream_budget_s=0.001, sync_budget_s=0.0, min_confidence=0.0,
    ))
    llm, late, store = services.extras["llm"], services.extras["late_verdicts"], services.extras["case_store"]
    note = _pick_note(services, llm_base_url)
    order = order_factory(order_id="o-late-e2e", note=note)

    # The stream path: the LLM misses the budget, the order is decided by tiers 1-2.
    (first,) = services.engine.decide_batch([order], path="stream")
    assert first.order_id == order.order_id and first.revision == 1
    assert "no answer within" in {g.signal: g.reason for g in first.degraded}["text_llm"]
    assert first.action == "approve"  # no reviewed label yet: the escalation below is the LLM's
    services.after_decisions([first], {order.order_id: order})  # as the worker does after producing
    assert len(late) == 1

    # The worker's loop: poll until the verdict lands and the revision comes back.
    revisions = _until("the late re-decision", LATE_DEADLINE_S, late.poll_late)
    (rev,) = revisions
    assert rev.order_id == order.order_id
    assert rev.revision == 2 > first.revision
    assert rev.decision_id == decision_id_for(order.order_id, 2) != first.decision_id
    assert rev.event_time == first.event_time
    assert rev.score >= first.score
    assert SEVERITY[rev.action] > SEVERITY[first.action]  # escalated
    assert set(first.text_labels) < set(rev.text_labels)  # tier 3 added a label, removed none
    assert not any(g.signal == "text_llm" for g in rev.degraded)
    for d in (first, rev):
        assert d.versions.prompt == llm.prompt_version
    assert PROMPT_VERSION in rev.versions.prompt and f"schema-{RESPONSE_SCHEMA_VERSION}" in rev.versions.prompt
    assert rev.versions.prompt.endswith(f"@{services.settings.llm.model}")
    assert late.poll_late() == [] and len(late) == 0 and late.stats["emitted"] == 1

    # The sinks get the revision like any batch's decisions: the review queue opens a case.
    services.after_decisions(revisions, {})

    def case() -> dict[str, Any] | None:
        return next((c for c in store.queue(limit=1000) if c["order_id"] == order.order_id), None)

    opened = _until("the review case", 30.0, case)
    assert opened["revision"] == rev.revision and opened["action"] == "review" and opened["state"] == "open"
    assert opened["decision_id"] == rev.decision_id
