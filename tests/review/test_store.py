"""The case store on SQLite: cases from decisions, queue semantics, actions, labels, evidence."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest

from contracts import Label
from contracts.events import TextSpan
from detector.metrics import Metrics
from detector.review import (
    CaseConflict,
    CaseSink,
    CaseStore,
    LabelSink,
    QueueFilter,
    ReviewError,
    apply_verdict,
)
from tests.conftest import fresh_registry
from tests.review.conftest import T0, make_decision


def _order(factory, i: int, **kw):
    base = {
        "order_id": f"o-{i}",
        "customer": {"email": f"user{i}@example.com", "customer_id": f"c-{i}"},
        "payment": {"card_fingerprint": f"fp-{i}"},
        "device_id": f"d-{i}",
        "ip_address": f"198.51.100.{i % 250 + 1}",
        "shipping_address": {"line1": f"{i} Main Street", "postal_code": f"{10000 + i}", "country": "PL"},
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return factory(**base)


def _feed(store: CaseStore, orders, **kw):
    decisions = [make_decision(o, **kw) for o in orders]
    return store.record_decisions(decisions, {o.order_id: o for o in orders})


def test_review_decision_opens_a_case_with_order_decision_and_spans(store, order_factory):
    o = _order(order_factory, 1, note="Please ship today, do not call")
    span = TextSpan(field="note", start=7, end=17, label="urgency", snippet="ship today")
    d = make_decision(o, score=88, spans=[span])
    counts = store.record_decisions([d], {o.order_id: o})
    assert counts == {"indexed": 1, "opened": 1, "updated": 0}
    [case] = store.queue()
    full = store.get_case(case["id"])
    assert full["order_id"] == "o-1" and full["score"] == 88 and full["state"] == "open"
    assert full["order_json"]["customer"]["email"] == "user1@example.com"
    assert full["decision_json"]["text_spans"][0]["label"] == "urgency"
    assert full["reasons"] == ["high_amount", "new_account"]
    assert full["country"] == "PL" and full["amount"] == pytest.approx(120.0)
    assert [h["action"] for h in store.case_history(case["id"])] == ["opened"]


def test_approve_and_decline_are_indexed_but_open_no_case(store, order_factory):
    orders = [_order(order_factory, i) for i in range(3)]
    counts = store.record_decisions(
        [make_decision(orders[0], action="approve", score=5), make_decision(orders[1], action="decline", score=99),
         make_decision(orders[2], action="review")],
        {o.order_id: o for o in orders},
    )
    assert counts == {"indexed": 3, "opened": 1, "updated": 0}
    assert [c["order_id"] for c in store.queue()] == ["o-2"]


def test_a_redecision_updates_the_open_case_instead_of_duplicating_it(store, order_factory):
    o = _order(order_factory, 1)
    _feed(store, [o], score=72)
    again = store.record_decisions([make_decision(o, score=72)], {o.order_id: o})
    assert again["opened"] == 0 and again["updated"] == 0
    newer = store.record_decisions([make_decision(o, score=93, revision=2, reasons=[("llm_scam", 30.0)])])
    assert newer == {"indexed": 1, "opened": 0, "updated": 1}
    stale = store.record_decisions([make_decision(o, score=10, revision=1)])
    assert stale["updated"] == 0
    [case] = store.queue()
    assert case["score"] == 93 and case["revision"] == 2 and case["reasons"] == ["llm_scam"]
    # The order stored with revision 1 is kept when the re-decision came without it.
    assert store.get_case(case["id"])["order_json"]["order_id"] == "o-1"
    history = store.case_history(case["id"])
    assert history[-1]["action"] == "redecided"
    assert history[-1]["before"]["score"] == 72 and history[-1]["after"]["score"] == 93


def test_a_shadow_challengers_review_opens_a_flagged_case(store, order_factory):
    o = _order(order_factory, 1)
    d = make_decision(o, action="approve", score=40, shadow={"action": "review", "score": 81, "model": "challenger"})
    assert store.record_decisions([d], {o.order_id: o})["opened"] == 1
    [case] = store.queue()
    assert case["shadow"] is True
    assert store.queue(filters=QueueFilter(shadow=False)) == []
    store.record_decisions([make_decision(o, action="review", score=85, revision=2)])
    assert store.get_case(case["id"])["shadow"] is False


def test_priority_ranks_by_score_amount_and_age(store, order_factory, clock):
    old_low = _order(order_factory, 1, payment={"amount": "50.00"})
    _feed(store, [old_low], score=70)
    clock.advance(hours=30)
    rich = _order(order_factory, 2, payment={"amount": "5000.00"})
    poor = _order(order_factory, 3, payment={"amount": "5.00"})
    store.record_decisions([make_decision(rich, score=75), make_decision(poor, score=75)],
                           {o.order_id: o for o in (rich, poor)})
    order = [c["order_id"] for c in store.queue()]
    # 30 hours of waiting outweigh 5 score points and the amount difference.
    assert order == ["o-1", "o-2", "o-3"]
    fresh_hot = _order(order_factory, 4, payment={"amount": "5000.00"})
    _feed(store, [fresh_hot], score=100)
    assert store.queue()[0]["order_id"] == "o-4"


def test_filters_by_reason_country_and_merchant(store, order_factory):
    a = _order(order_factory, 1, merchant_id="m-a", shipping_address={"country": "DE"})
    b = _order(order_factory, 2, merchant_id="m-b")
    store.record_decisions(
        [make_decision(a, reasons=[("reshipper_address", 9.0)]), make_decision(b, reasons=[("high_amount", 3.0)])],
        {o.order_id: o for o in (a, b)},
    )
    assert [c["order_id"] for c in store.queue(filters=QueueFilter(reason="reshipper_address"))] == ["o-1"]
    assert [c["order_id"] for c in store.queue(filters=QueueFilter(country="de"))] == ["o-1"]
    assert [c["order_id"] for c in store.queue(filters=QueueFilter(merchant="m-b"))] == ["o-2"]
    assert store.queue(filters=QueueFilter(reason="high_%")) == []
    assert store.count(filters=QueueFilter(country="PL")) == 1
    claimed = store.claim_next(actor="ann", filters=QueueFilter(merchant="m-b"))
    assert claimed is not None and claimed["order_id"] == "o-2"


def test_claim_next_hands_each_case_to_one_analyst(store, order_factory):
    _feed(store, [_order(order_factory, i) for i in range(5)])
    seen = []
    for i in range(5):
        case = store.claim_next(actor=f"analyst-{i}")
        assert case is not None
        seen.append(case["id"])
    assert len(set(seen)) == 5
    assert store.claim_next(actor="late") is None
    # Asking again returns one's own open claim instead of a new case.
    assert store.claim_next(actor="analyst-0")["id"] == seen[0]


def test_claims_expire(store, order_factory, clock):
    _feed(store, [_order(order_factory, 1)])
    first = store.claim_next(actor="ann")
    assert store.claim_next(actor="bob") is None
    clock.advance(seconds=store.claim_ttl.total_seconds() + 1)
    second = store.claim_next(actor="bob")
    assert second is not None and second["id"] == first["id"] and second["claimed_by"] == "bob"
    last = store.case_history(first["id"])[-1]
    assert last["before"] == {"claimed_by": "ann"} and last["after"]["claimed_by"] == "bob"


def test_verdict_closes_the_case_and_returns_an_analyst_label(store, order_factory):
    _feed(store, [_order(order_factory, 1), _order(order_factory, 2)])
    case = store.claim_next(actor="ann")
    with pytest.raises(CaseConflict):
        store.verdict(case["id"], actor="bob", verdict="legit")
    with pytest.raises(ReviewError):
        store.verdict(case["id"], actor="ann", verdict="maybe")
    label = store.verdict(case["id"], actor="ann", verdict="fraud", note="card testing")
    assert (label.order_id, label.label, label.source, label.actor, label.case_id) == (
        case["order_id"], "fraud", "analyst", "ann", str(case["id"]))
    closed = store.get_case(case["id"])
    assert closed["state"] == "closed" and closed["verdict"] == "fraud" and closed["verdict_note"] == "card testing"
    with pytest.raises(CaseConflict):
        store.verdict(case["id"], actor="ann", verdict="legit")
    assert [r["label"] for r in store.iter_labels()] == ["fraud"]
    # A lead may decide a case another analyst holds.
    other = store.claim_next(actor="bob")
    assert store.verdict(other["id"], actor="lea", role="lead", verdict="legit").label == "legit"


def test_escalated_cases_go_to_leads_only(store, order_factory):
    _feed(store, [_order(order_factory, 1)])
    case = store.claim_next(actor="ann")
    store.escalate(case["id"], actor="ann", note="looks like a ring")
    assert store.claim_next(actor="ann") is None
    with pytest.raises(CaseConflict):
        store.verdict(case["id"], actor="ann", verdict="fraud")
    lead_case = store.claim_next(actor="lea", role="lead")
    assert lead_case["id"] == case["id"] and lead_case["state"] == "escalated"
    store.verdict(case["id"], actor="lea", role="lead", verdict="abuse")
    assert store.get_case(case["id"])["verdict"] == "abuse"


def test_snooze_hides_an_entity_now_and_on_arrival_until_it_ends(store, order_factory, clock):
    shared = {"customer": {"email": "ring@example.com"}}
    a, b = _order(order_factory, 1, **shared), _order(order_factory, 2)
    _feed(store, [a, b])
    case_a = next(c for c in store.queue() if c["order_id"] == "o-1")
    assert store.snooze(actor="ann", kind="email", case_id=case_a["id"], seconds=3600, note="waiting for bank") == 1
    assert [c["order_id"] for c in store.queue()] == ["o-2"]
    later = _order(order_factory, 3, **shared)
    _feed(store, [later])
    assert [c["order_id"] for c in store.queue()] == ["o-2"]
    assert store.stats()["depth"]["snoozed"] == 2
    clock.advance(hours=1, seconds=1)
    assert sorted(c["order_id"] for c in store.queue()) == ["o-1", "o-2", "o-3"]
    with pytest.raises(ReviewError):
        store.snooze(actor="ann", kind="shoe_size", case_id=case_a["id"], seconds=60)


def test_bulk_verdict_needs_a_lead_and_a_filter_and_skips_others_claims(store, order_factory):
    orders = [_order(order_factory, i, merchant_id="m-spam" if i < 3 else "m-ok") for i in range(5)]
    _feed(store, orders)
    held = store.claim_next(actor="ann", filters=QueueFilter(merchant="m-spam"))
    with pytest.raises(CaseConflict):
        store.bulk_verdict(actor="ann", role="analyst", filters=QueueFilter(merchant="m-spam"), verdict="legit")
    with pytest.raises(ReviewError):
        store.bulk_verdict(actor="lea", role="lead", filters=QueueFilter(), verdict="legit")
    labels = store.bulk_verdict(actor="lea", role="lead", filters=QueueFilter(merchant="m-spam"), verdict="legit",
                                note="merchant test orders")
    assert len(labels) == 2 and all(lb.label == "legit" for lb in labels)
    assert held["id"] not in {int(lb.case_id) for lb in labels}
    assert sorted(c["merchant_id"] for c in store.queue()) == ["m-ok", "m-ok", "m-spam"]
    assert store.audit_log(limit=1)[0]["action"] == "bulk"


def test_every_action_is_audited_with_who_when_and_before_after(store, order_factory, clock):
    _feed(store, [_order(order_factory, 1)])
    case = store.claim_next(actor="ann")
    clock.advance(minutes=2)
    store.release(case["id"], actor="ann")
    store.claim(case["id"], actor="bob")
    store.verdict(case["id"], actor="bob", verdict="legit", note="known customer")
    history = store.case_history(case["id"])
    assert [(h["actor"], h["action"]) for h in history] == [
        ("system", "opened"), ("ann", "claim"), ("ann", "release"), ("bob", "claim"), ("bob", "verdict")]
    verdict = history[-1]
    assert verdict["before"]["state"] == "open" and verdict["before"]["claimed_by"] == "bob"
    assert verdict["after"] == {"state": "closed", "verdict": "legit", "note": "known customer"}
    assert verdict["at"] == T0 + timedelta(minutes=2)


def test_outside_labels_close_matching_cases_once(store, order_factory, clock):
    _feed(store, [_order(order_factory, 1), _order(order_factory, 2)])
    cb = Label(order_id="o-1", label="fraud", source="chargeback", created_at=T0)
    sink = LabelSink(store)
    assert sink.close_cases([cb]) == 1
    assert sink.close_cases([cb]) == 0  # redelivered: stored once, nothing left to close
    [remaining] = store.queue()
    assert remaining["order_id"] == "o-2"
    closed = store.get_case(store.case_history(1)[0]["case_id"])
    assert closed["verdict"] == "fraud" and closed["closed_by"] == "system:chargeback"
    assert [(r["order_id"], r["source"]) for r in store.iter_labels()] == [("o-1", "chargeback")]
    # Our own analyst labels coming back from the topic are not stored twice.
    assert sink.close_cases([Label(order_id="o-2", label="legit", source="analyst", created_at=T0, case_id="2")]) == 0
    assert store.queue()[0]["order_id"] == "o-2"


def test_linked_orders_share_an_entity_within_the_window(store, order_factory):
    ring_card = {"payment": {"card_fingerprint": "fp-ring"}}
    target = _order(order_factory, 1, **ring_card)
    sibling = _order(order_factory, 2, **ring_card)
    same_device = _order(order_factory, 3, device_id="d-1")
    stranger = _order(order_factory, 4)
    too_old = _order(order_factory, 5, created_at=(T0 - timedelta(days=60)).isoformat(), **ring_card)
    everyone = [target, sibling, same_device, stranger, too_old]
    store.record_decisions(
        [make_decision(target)] + [make_decision(o, action="approve", score=20) for o in everyone[1:]],
        {o.order_id: o for o in everyone},
    )
    store.record_labels([Label(order_id="o-2", label="fraud", source="chargeback", created_at=T0)])
    [case] = store.queue()
    linked = {r["order_id"]: r for r in store.linked_orders(case["id"])}
    assert set(linked) == {"o-2", "o-3"}
    assert linked["o-2"]["shared"] == ["card"] and linked["o-2"]["outcome"] == "fraud"
    assert linked["o-3"]["shared"] == ["device"] and linked["o-3"]["outcome"] == "approve"
    # The index holds hashed keys only, never the raw values.
    assert "fp-ring" not in json.dumps(linked, default=str)


def test_a_return_case_without_its_order_links_through_the_orders_index(store, order_factory):
    order = _order(order_factory, 1, payment={"card_fingerprint": "fp-ring"})
    sibling = _order(order_factory, 2, payment={"card_fingerprint": "fp-ring"})
    store.record_decisions([make_decision(order, action="approve", score=30), make_decision(sibling, action="approve")],
                           {o.order_id: o for o in (order, sibling)})
    ret = make_decision(order, score=85).model_copy(update={"subject": "return", "return_id": "r-1"})
    assert store.record_decisions([ret])["opened"] == 1
    [case] = store.queue()
    assert case["return_id"] == "r-1" and case["order_json"] is None
    assert [r["order_id"] for r in store.linked_orders(case["id"])] == ["o-2"]


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_labels_export_writes_training_data(store, order_factory, tmp_path, suffix):
    _feed(store, [_order(order_factory, 1)])
    case = store.claim_next(actor="ann")
    store.verdict(case["id"], actor="ann", verdict="abuse")
    store.record_labels([Label(order_id="o-9", label="fraud", source="refund", created_at=T0 - timedelta(days=1))])
    out = tmp_path / f"labels.{suffix}"
    assert store.export_labels(out) == 2
    if suffix == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    elif suffix == "csv":
        rows = list(csv.DictReader(out.open()))
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["order_id"], r["label"], r["source"]) for r in rows] == [("o-9", "fraud", "refund"),
                                                                         ("o-1", "abuse", "analyst")]
    assert {"order_id", "label", "source", "time"} <= set(rows[0])
    with pytest.raises(ReviewError):
        store.export_labels(tmp_path / "x.xlsx")


def test_users_passwords_and_tokens(store):
    token = store.add_user("ann", role="analyst", password="correct horse", with_token=True)
    assert token and token.startswith("rw_")
    assert store.authenticate("ann", "correct horse")["role"] == "analyst"
    assert store.authenticate("ann", "wrong") is None
    assert store.authenticate("nobody", "correct horse") is None
    assert store.user_for_token(token)["username"] == "ann"
    assert store.user_for_token(token + "x") is None
    listed = store.list_users()
    assert listed[0]["username"] == "ann" and "password_hash" not in listed[0]
    with pytest.raises(ReviewError):
        store.add_user("eve", role="root", password="x")


def test_case_sink_and_verdicts_drive_the_queue_metrics(store, order_factory, clock):
    metrics = Metrics.create(fresh_registry())
    sink = CaseSink(store, metrics=metrics, metrics_interval_s=0)
    orders = [_order(order_factory, i) for i in range(3)]
    sink([make_decision(o) for o in orders], {o.order_id: o for o in orders})
    reg = metrics.registry
    assert reg.get_sample_value("riskwire_review_queue_depth", {"state": "open"}) == 3
    clock.advance(minutes=5)
    store.refresh_metrics(metrics)
    assert reg.get_sample_value("riskwire_review_queue_oldest_age_seconds") == 300
    published: list[Label] = []
    case = store.claim_next(actor="ann")
    label, ok = apply_verdict(store, case["id"], actor="ann", role="analyst", verdict="fraud",
                              publish=published.append, metrics=metrics)
    assert ok and published == [label]
    assert reg.get_sample_value("riskwire_review_verdicts_total", {"verdict": "fraud"}) == 1
    assert reg.get_sample_value("riskwire_review_queue_depth", {"state": "open"}) == 2
    assert store.stats()["unpublished_labels"] == 0


def test_the_migrated_sqlite_schema_matches_the_declared_tables(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from detector.review.tables import metadata

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "rw_alembic_version"})
        assert compare_metadata(ctx, metadata) == []
    store.downgrade("base")
    assert store.current_revision() is None


def test_a_background_case_sink_writes_queued_batches_together(store, order_factory):
    sink = CaseSink(store, background=True)
    orders = [_order(order_factory, i) for i in range(20)]
    for o in orders:  # one decision per call, as on the checkout path
        sink([make_decision(o)], {o.order_id: o})
    sink.flush()
    assert store.count() == 20
    assert store.get_case(store.queue()[0]["id"])["order_json"] is not None


def _migrate(url: str, start: float) -> str | None:
    """In a child process: wait for the common start, then open (and migrate) the store."""
    import time as _time

    _time.sleep(max(0.0, start - _time.time()))
    try:
        store = CaseStore.from_url(url)
        store.engine.dispose()
    except Exception as exc:  # reported to the parent: the assertion names it
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def test_processes_migrating_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """`make demo` starts the worker and the API together on a fresh SQLite file: both
    migrate it. One must migrate while the others wait, not fail with 'database is locked'
    (a deferred transaction that read the version table cannot take the write lock later)."""
    import multiprocessing as mp
    import time as _time

    ctx = mp.get_context("spawn")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path}/race-{round_}.db"
        with ctx.Pool(4) as pool:
            pool.apply(int)  # children started and imported before the clock runs
            start = _time.time() + 2.0
            errors = pool.starmap(_migrate, [(url, start)] * 4)
        assert errors == [None] * 4, errors
        store = CaseStore.from_url(url, upgrade=False)
        assert store.current_revision() is not None
        store.engine.dispose()
