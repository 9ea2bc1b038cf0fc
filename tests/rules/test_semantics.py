"""Type checks at load time, and evaluation semantics (missing values, lists, shadow)."""

from __future__ import annotations

import math
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import Order
from contracts.frame import FeatureFrame
from rules import CompiledRuleset, ListStore, RuleCompileError, compile_ruleset

from .conftest import ATTRIBUTES, make_lists, make_schema


def one(condition: str, **attributes: Any) -> bool:
    """Does a single rule with ``condition`` hit these attributes? Checks the tracer agrees."""
    ruleset = compile_ruleset(f"rule r: reason: R review if {condition}", schema=make_schema(), lists=make_lists())
    hit = bool(ruleset.evaluate(attributes).hits)
    (trace,) = ruleset.trace(attributes)
    assert trace.hit is hit, trace.render()
    return hit


def errors_of(text: str, lists: ListStore | None = None) -> list[str]:
    with pytest.raises(RuleCompileError) as info:
        compile_ruleset(text, schema=make_schema(), lists=lists if lists is not None else make_lists(), source="t.rules")
    return info.value.lines()


# -- load-time checks -------------------------------------------------------------------


def test_type_errors_are_all_reported_with_positions() -> None:
    text = (
        "rule a: reason: A decline if :email_disposible: and :amount_base: > 'x'\n"
        "rule a: reason: A review if :customer_id: in @nope or :amount_base:\n"
        "rule b: reason: B review if :text_labels: == 'x' and :amount: contains 'y'\n"
        "rule c: reason: C review if :shipping_country: in [1, 2] and :amount: + 'x' > 1\n"
    )
    lines = errors_of(text)
    assert lines == [
        "t.rules:1:30: unknown attribute :email_disposible:; did you mean :email_disposable:?",
        "t.rules:1:69: '>' compares numbers, but 'x' is a string",
        "t.rules:2:6: duplicate rule id 'a' (first defined on line 1)",
        "t.rules:2:46: unknown list @nope (lists: @blocked_cards, @blocked_devices, @blocked_domains, "
        "@blocked_emails, @blocked_ips, @reshippers, @trusted_customers)",
        "t.rules:2:55: 'or' needs a condition, but :amount_base: is a number (compare it with something)",
        "t.rules:3:43: '==' cannot compare a list of strings; use contains",
        "t.rules:3:54: 'contains' needs a string or a list of strings, but :amount: is a number",
        "t.rules:4:29: 'in [...]' of numbers, but :shipping_country: is a string",
        "t.rules:4:73: '+' needs a number, but 'x' is a string",
    ]


def test_a_rule_must_be_a_condition() -> None:
    assert errors_of("rule a: reason: A review if :amount: + 1") == [
        "t.rules:1:38: rule a needs a condition, but :amount: + 1 is a number (compare it with something)"
    ]


def test_list_checked_against_loaded_lists() -> None:
    text = "rule a: reason: A decline if :ip_address: in @blocked_ips"
    assert errors_of(text, ListStore()) == ["t.rules:1:46: unknown list @blocked_ips (lists: none loaded)"]
    assert len(compile_ruleset(text, schema=make_schema(), lists=make_lists())) == 1


# -- semantics --------------------------------------------------------------------------


def test_issue_examples() -> None:
    assert one(":email_disposable: and :amount_base: > 100", email_disposable=True, amount_base=150.0)
    assert not one(":email_disposable: and :amount_base: > 100", email_disposable=True, amount_base=100)
    assert one(":shipping_country: != :ip_country: and :account_age_days: < 1",
               shipping_country="US", ip_country="PL", account_age_days=0.2)
    assert one(":customer_id: in @trusted_customers", customer_id="c-vip")
    assert one(":text_labels: contains 'reshipping'", text_labels=["urgency_pressure", "reshipping"])
    assert not one(":text_labels: contains 'reshipping'", text_labels=["urgency_pressure"])


@pytest.mark.parametrize(
    "condition",
    [
        ":amount: > 1", ":amount: < 1", ":amount: == 1", ":amount: != 1", ":amount: >= :amount_base:",
        ":shipping_country: != :ip_country:", ":shipping_country: == 'PL'", ":shipping_country: != 'PL'",
        ":customer_id: in @trusted_customers", ":customer_id: not in @trusted_customers",
        ":shipping_country: in ['PL']", ":shipping_country: not in ['PL']", ":amount: not in [1, 2]",
        ":text_labels: contains 'x'", ":email: starts_with 'a'", ":email: ends_with 'b'",
        ":email_disposable:", ":amount: / :amount_base: > 0", "-:amount: < 0",
    ],
)
def test_missing_attribute_makes_the_comparison_false(condition: str) -> None:
    assert one(condition) is False
    assert one(f"not ({condition})") is True


def test_missing_reads_as_missing_in_the_trace() -> None:
    ruleset = compile_ruleset(
        "rule r: reason: R review if :shipping_country: != :ip_country: and :amount: > 5",
        schema=make_schema(),
    )
    (trace,) = ruleset.trace({"shipping_country": "PL", "amount": 10})
    text = trace.render()
    assert ":shipping_country: != :ip_country: => false  [missing :ip_country:]" in text
    assert ":amount: > 5 => true  [10 > 5]" in text


@pytest.mark.parametrize("value", [None, float("nan"), "12", [1], {"a": 1}, object(), Decimal("NaN")])
def test_wrong_types_and_nan_are_missing(value: Any) -> None:
    assert one(":amount: > 1", amount=value) is False
    assert one(":amount: <= 1", amount=value) is False


def test_number_like_values_are_numbers() -> None:
    assert one(":amount: > 1", amount=Decimal("1.5"))
    assert one(":amount: > 1", amount=2)
    assert one(":email_disposable:", email_disposable=1)
    assert not one(":email_disposable:", email_disposable=0.0)
    assert not one(":email_disposable:", email_disposable="yes")


def test_arithmetic() -> None:
    assert one(":amount: / :item_count: > 50", amount=120, item_count=2)
    assert not one(":amount: / :item_count: > 50", amount=120, item_count=0)  # division by zero: missing
    assert one(":amount: % 100 == 0", amount=300)
    assert one("(:amount: - :amount_base:) * 2 == 10", amount=20, amount_base=15)
    assert one(":amount: * 1e300 * 1e300 > 1", amount=5)  # overflow is +inf, still a number


def test_lists_by_kind() -> None:
    assert one(":ip_address: in @blocked_ips", ip_address="203.0.113.200")
    assert one(":ip_address: in @blocked_ips", ip_address="198.51.100.7")
    assert not one(":ip_address: in @blocked_ips", ip_address="198.51.100.8")
    assert one(":ip_address: in @blocked_ips", ip_address="2001:db8::1")
    assert not one(":ip_address: in @blocked_ips", ip_address="not an ip")
    assert one(":email: in @blocked_domains", email="Someone@MAILINATOR.com")
    assert one(":email_domain: in @blocked_domains", email_domain="trash.example")
    assert one(":email: in @blocked_emails", email=" fraud@example.COM ")
    assert not one(":email: in @blocked_emails", email="fraud2@example.com")
    assert one(":card_fingerprint: in @blocked_cards", card_fingerprint="fp-stolen")
    assert one(":device_id: in @blocked_devices", device_id="d-bad")
    assert one(":shipping_address_key: in @reshippers", shipping_address_key="1250 Forwarding Way  unit 4410|19801|US")


def test_string_operators() -> None:
    assert one(":card_bin: starts_with '4242'", card_bin="424242")
    assert one(":email: ends_with '.ru'", email="a@b.ru")
    assert one(":email: contains 'test'", email="mytest@x.com")
    assert not one(":email: contains 'test'", email="a@x.com")


def test_shadow_rules_hit_but_are_flagged() -> None:
    ruleset = compile_ruleset(
        "rule live: reason: LIVE review if :amount: > 1\nrule trial shadow: reason: TRIAL decline if :amount: > 1",
        schema=make_schema(),
    )
    outcome = ruleset.evaluate({"amount": 5})
    assert [(h.rule_id, h.action, h.shadow) for h in outcome.hits] == [
        ("live", "review", False),
        ("trial", "decline", True),
    ]


def test_details_name_values_and_redact_personal_data() -> None:
    ruleset = compile_ruleset(
        "rule r:\n reason: R\n description: blocked customer on a big order\n"
        " decline if :email: in @blocked_emails and :amount_base: > 100 and :shipping_country: == 'US'",
        schema=make_schema(),
        lists=make_lists(),
    )
    outcome = ruleset.evaluate({"email": "fraud@example.com", "amount_base": 250.5, "shipping_country": "US"})
    detail = outcome.details["r"]
    assert detail == "blocked customer on a big order (email=<redacted>, amount_base=250.5, shipping_country='US')"
    assert "fraud@" not in detail


def test_version_changes_with_text_and_used_lists() -> None:
    schema, lists = make_schema(), make_lists()
    text = "ruleset shop\nrule r: reason: R decline if :device_id: in @blocked_devices"
    a = compile_ruleset(text, schema=schema, lists=lists)
    assert a.version.startswith("shop@") and len(a.version) == len("shop@") + 12
    assert compile_ruleset(text, schema=schema, lists=lists).version == a.version
    assert compile_ruleset(text + " ", schema=schema, lists=lists).version != a.version
    from rules import NamedList

    lists.put(NamedList.build("blocked_devices", "device", ["d-bad", "d-worse"]))
    b = compile_ruleset(text, schema=schema, lists=lists)
    assert b.version != a.version
    # The compiled ruleset keeps the list it was built with.
    assert not a.evaluate({"device_id": "d-worse"}).hits
    assert b.evaluate({"device_id": "d-worse"}).hits


def test_shared_subexpressions_give_the_same_answers() -> None:
    """A list lookup used by several rules is memoised per order, never across orders."""
    text = "\n".join(
        f"rule r{i}: reason: R review if :ip_address: in @blocked_ips and :amount: > {i}" for i in range(5)
    )
    ruleset = compile_ruleset(text, schema=make_schema(), lists=make_lists())
    first = ruleset.evaluate({"ip_address": "203.0.113.9", "amount": 2.5})
    assert [h.rule_id for h in first.hits] == ["r0", "r1", "r2"]
    assert not ruleset.evaluate({"ip_address": "192.0.2.1", "amount": 2.5}).hits


# -- properties ---------------------------------------------------------------------------

_RULES = """
rule r1: reason: R decline if :email_disposable: and :amount_base: > 100
rule r2: reason: R review if :shipping_country: != :ip_country: and :account_age_days: < 1
rule r3: reason: R allow if :customer_id: in @trusted_customers or :email: in @blocked_domains
rule r4 shadow: reason: R review if :text_labels: contains 'reshipping' or :card_bin: starts_with '4'
rule r5: reason: R review if (:amount: - :amount_base:) / :item_count: >= 3 or not :first_order:
rule r6: reason: R decline if :ip_address: in @blocked_ips and :shipping_country: not in ['PL', 'DE']
rule r7: reason: R review if :model_score: >= 90 and :amount: % 7 != 0 and -:account_age_days: > -3
rule r8: reason: R review if :shipping_country: in ['PL', 'US'] and :billing_country: != :card_country:
rule r9: reason: R review if :billing_country: != :ip_country: and not :email_free: and :item_count: < 3
rule r10: reason: R review if :email_free: or :amount: < 1 or :text_labels: contains 'x' or :card_bin: == '4'
"""

_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.decimals(), st.text(max_size=20),
    st.lists(st.text(max_size=5) | st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["203.0.113.5", "2001:db8::2", "a@mailinator.com", "c-vip", "PL", "reshipping"]),
    st.tuples(st.text(max_size=3)), st.binary(max_size=4),
)
_names = st.sampled_from([n for n, _ in ATTRIBUTES] + ["unknown_attribute"])


@pytest.fixture(scope="module")
def ruleset() -> CompiledRuleset:
    return compile_ruleset(_RULES, schema=make_schema(), lists=make_lists())


@settings(max_examples=200, deadline=None)
@given(attributes=st.dictionaries(_names, _values, max_size=12))
def test_evaluation_never_raises_and_trace_agrees(ruleset: CompiledRuleset, attributes: dict[str, Any]) -> None:
    outcome = ruleset.evaluate(attributes)
    hit_ids = {h.rule_id for h in outcome.hits}
    for rule_id in hit_ids:
        assert outcome.details[rule_id]
    traces = ruleset.trace(attributes)
    assert {t.rule_id for t in traces if t.hit} == hit_ids
    for t in traces:
        t.render()


def _order_attributes(order: Order) -> dict[str, Any]:
    """A plain mapping of an Order onto attribute names, as a featuriser would."""
    ship = order.shipping_address
    bill = order.billing_address
    amount = order.payment.amount
    return {
        "amount": amount,
        "amount_base": None if amount is None else float(amount) / 4,
        "account_age_days": (
            None if order.customer.account_created_at is None
            else (order.created_at - order.customer.account_created_at).total_seconds() / 86400
        ),
        "item_count": sum(i.quantity for i in order.items),
        "shipping_country": ship.country if ship else None,
        "billing_country": bill.country if bill else None,
        "card_country": order.payment.card_country,
        "customer_id": order.customer.customer_id,
        "email": order.customer.email,
        "ip_address": order.ip_address,
        "device_id": order.device_id,
        "card_bin": order.payment.card_bin,
        "card_fingerprint": order.payment.card_fingerprint,
        "shipping_address_key": ship.line1 if ship else None,
        "first_order": order.metadata.get("first_order"),
        "text_labels": [w for w in (order.note or "").split() if w.isalpha()],
    }


_opt_text = st.none() | st.text(max_size=30)
_country = st.none() | st.sampled_from(["PL", "DE", "US", "GB", "NG", "pl"])
_address = st.none() | st.fixed_dictionaries({"line1": _opt_text, "country": _country})
_orders = st.fixed_dictionaries(
    {
        "order_id": st.text(min_size=1, max_size=8),
        "created_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        "customer": st.fixed_dictionaries(
            {
                "customer_id": st.none() | st.sampled_from(["c-vip", "c-1"]),
                "email": st.none() | st.emails() | st.text(max_size=20),
                "account_created_at": st.none() | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
            }
        ),
        "payment": st.fixed_dictionaries(
            {
                "amount": st.none() | st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False),
                "card_bin": st.none() | st.from_regex(r"[0-9]{6}", fullmatch=True),
                "card_country": _country,
            }
        ),
        "shipping_address": _address,
        "billing_address": _address,
        "ip_address": st.none() | st.ip_addresses().map(str),
        "device_id": st.none() | st.text(min_size=1, max_size=8),
        "items": st.lists(st.fixed_dictionaries({"sku": st.text(min_size=1, max_size=5), "quantity": st.integers(1, 100)}), max_size=3),
        "note": _opt_text,
        "metadata": st.dictionaries(st.sampled_from(["first_order", "x"]), st.none() | st.booleans() | st.integers() | st.text(max_size=5), max_size=2),
    }
)


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(st.dictionaries(_names, _values, max_size=12), max_size=6))
def test_a_frame_is_evaluated_as_its_rows_are(ruleset: CompiledRuleset, batch: list[dict[str, Any]]) -> None:
    """The column-wise path (the engine's) gives each row the hits and details of ``evaluate``."""
    got = ruleset.evaluate_frame(FeatureFrame.from_rows(batch))
    want = [ruleset.evaluate(attributes) for attributes in batch]
    assert [o.hits for o in got] == [o.hits for o in want]
    assert [dict(o.details) for o in got] == [dict(o.details) for o in want]


@settings(max_examples=100, deadline=None)
@given(payload=_orders)
def test_evaluation_never_raises_on_any_order(ruleset: CompiledRuleset, payload: dict[str, Any]) -> None:
    try:
        order = Order.model_validate(payload)
    except ValidationError:
        assume(False)
        return
    attributes = _order_attributes(order)
    outcome = ruleset.evaluate(attributes)
    assert {t.rule_id for t in ruleset.trace(attributes) if t.hit} == {h.rule_id for h in outcome.hits}


def test_nan_and_infinity_edges(ruleset: CompiledRuleset) -> None:
    outcome = ruleset.evaluate({"amount_base": math.inf, "email_disposable": True, "amount": math.nan, "item_count": 0})
    # r5: not :first_order: (missing) holds.
    assert [h.rule_id for h in outcome.hits] == ["r1", "r5"]


def test_wide_conditions_compile_and_evaluate() -> None:
    """Thousands of operands in one "and"/"or" are fine (width is not depth)."""
    wide_and = " and ".join(f":amount: > {i}" for i in range(2000))
    wide_or = " or ".join(f":amount: == {i}" for i in range(2000))
    ruleset = compile_ruleset(
        f"rule a: reason: A review if {wide_and}\nrule o: reason: O review if {wide_or}", schema=make_schema()
    )
    assert [h.rule_id for h in ruleset.evaluate({"amount": 5000}).hits] == ["a"]
    assert [h.rule_id for h in ruleset.evaluate({"amount": 1999}).hits] == ["o"]
    assert [t.hit for t in ruleset.trace({"amount": 5})] == [False, True]
