"""Parser and printer: the syntax, error positions, and print/parse round trips."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import (
    RuleCompileError,
    compile_ruleset,
    format_expr,
    format_ruleset,
    parse_expression,
    parse_ruleset,
)
from rules.ast import (
    And,
    Arith,
    Attr,
    Bool,
    Compare,
    ListRef,
    Member,
    Neg,
    Not,
    Num,
    Or,
    Rule,
    RulesetSource,
    SetLit,
    Str,
    StrOp,
)

from .conftest import make_lists, make_schema

ISSUE_EXAMPLES = [
    "decline if :email_disposable: and :amount_base: > 100",
    "review if :shipping_country: != :ip_country: and :account_age_days: < 1",
    "allow if :customer_id: in @trusted_customers",
    "review if :text_labels: contains 'reshipping'",
]


@pytest.mark.parametrize("line", ISSUE_EXAMPLES)
def test_issue_examples_compile(line: str) -> None:
    text = f"rule example:\n    reason: EXAMPLE\n    {line}\n"
    ruleset = compile_ruleset(text, schema=make_schema(), lists=make_lists())
    assert [r.rule.action for r in ruleset.rules] == [line.split()[0]]


def test_rule_block_fields() -> None:
    text = """
ruleset shop_rules   # a comment
rule geo_new shadow:
    reason: GEO_MISMATCH_NEW_ACCOUNT
    description: ships abroad from a brand-new account # kept, it is the description
    review if :shipping_country: != :ip_country:
        and :account_age_days: < 1
"""
    parsed = parse_ruleset(text)
    assert parsed.name == "shop_rules"
    (rule,) = parsed.rules
    assert rule.id == "geo_new"
    assert rule.shadow is True
    assert rule.reason == "GEO_MISMATCH_NEW_ACCOUNT"
    assert rule.description == "ships abroad from a brand-new account # kept, it is the description"
    assert rule.action == "review"
    assert rule.condition == And(
        (
            Compare("!=", Attr("shipping_country"), Attr("ip_country")),
            Compare("<", Attr("account_age_days"), Num(1.0)),
        )
    )
    assert (rule.line, rule.column) == (3, 6)


def test_precedence() -> None:
    expr = parse_expression("not :a: or :b: and :c: + 2 * 3 > -1")
    assert expr == Or(
        (
            Not(Attr("a")),
            And((Attr("b"), Compare(">", Arith("+", Attr("c"), Arith("*", Num(2.0), Num(3.0))), Num(-1.0)))),
        )
    )
    # "not" applies to the whole comparison; "not in" is one operator.
    assert parse_expression("not :x: in @l") == Not(Member(Attr("x"), ListRef("l")))
    assert parse_expression(":x: not in ['a', 'b']") == Member(Attr("x"), SetLit((Str("a"), Str("b"))), negated=True)
    # Subtraction is left-associative, and unary minus folds into literals.
    assert parse_expression("1 - 2 - 3") == Arith("-", Arith("-", Num(1.0), Num(2.0)), Num(3.0))
    assert parse_expression("-(:a:)") == Neg(Attr("a"))
    assert parse_expression("-(2)") == Num(-2.0)


def test_string_escapes() -> None:
    assert parse_expression(r"""'it\'s' == "a\"b\\c\n" """) == Compare("==", Str("it's"), Str('a"b\\c\n'))


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("rule x:\n  reason: X\n  decline if :a: >", 3, 19, "unexpected end of input"),
        ("rule x:\n  reason: X\n  decline if :a: $ 1", 3, 18, "unexpected character '$'"),
        ("rule x reason: X decline if true", 1, 8, "unexpected 'reason'"),
        ("rule x:\n  reason: X\n  block if true", 3, 3, "expected allow, decline or review"),
        ("rule x: reason: X decline if :a: > 1e999", 1, 36, "number out of range"),
    ],
)
def test_syntax_errors_have_positions(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(RuleCompileError) as info:
        parse_ruleset(text, source="shop.rules")
    (issue,) = info.value.errors
    assert (issue.line, issue.column) == (line, column)
    assert fragment in issue.message
    assert info.value.lines()[0].startswith(f"shop.rules:{line}:{column}: ")


def test_reason_code_checked_with_position() -> None:
    with pytest.raises(RuleCompileError) as info:
        compile_ruleset("rule x:\n  reason: lower\n  decline if :nope:", schema=make_schema(), source="s.rules")
    assert info.value.lines() == [
        "s.rules:2:11: reason code 'lower' must be UPPER_SNAKE_CASE (A-Z, 0-9, _)",
        "s.rules:3:14: unknown attribute :nope:",
    ]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "rule x: reason: X decline if " + "not " * 5000 + "true"
    with pytest.raises(RuleCompileError, match="nested more than"):
        compile_ruleset(deep, schema=make_schema(), lists=make_lists())
    # Parentheses alone add no node: this is just ``true``.
    parens = "rule x: reason: X decline if " + "(" * 5000 + "true" + ")" * 5000
    ruleset = compile_ruleset(parens, schema=make_schema(), lists=make_lists())
    assert [h.rule_id for h in ruleset.evaluate({}).hits] == ["x"]


# -- properties ------------------------------------------------------------------------

_grammar_bits = st.sampled_from(
    [
        "rule", "ruleset", "reason", "description:", "shadow", ":", "decline", "review", "allow",
        "if", "and", "or", "not", "in", "contains", "starts_with", "(", ")", "[", "]", ",",
        ":amount:", ":x:", "@trusted_customers", "'s'", '"t"', "1", "2.5", ">", "==", "!=",
        "+", "-", "*", "/", "%", "true", "false", "\n", " ", "#c\n", "X_1", "\\", "'",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.lists(_grammar_bits, max_size=40).map(" ".join)))
def test_parser_never_crashes(text: str) -> None:
    """Any text either compiles or raises RuleCompileError with a position."""
    try:
        compile_ruleset(text, schema=make_schema(), lists=make_lists())
    except RuleCompileError as exc:
        assert exc.errors
        for issue in exc.errors:
            assert issue.line >= 0 and issue.column >= 0 and issue.message


_names = st.text(string.ascii_letters + "_", min_size=1, max_size=6).filter(lambda s: not s[0].isdigit()) | st.text(
    string.ascii_lowercase + string.digits + "_", min_size=1, max_size=10
).map(lambda s: "a" + s)
_numbers = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12) | st.integers(
    -10**6, 10**6
).map(float)
_texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=12)

_leaf = st.one_of(
    st.builds(Attr, _names),
    st.builds(Num, _numbers),
    st.builds(Str, _texts),
    st.builds(Bool, st.booleans()),
)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    def and_or(kind: type, items: list) -> object:  # type: ignore[type-arg]
        # Canonical form, as the parser builds it: no And directly inside And.
        flat = []
        for i in items:
            flat.extend(i.items if isinstance(i, kind) else [i])
        return kind(tuple(flat))

    container = st.builds(ListRef, _names) | st.builds(
        SetLit, st.lists(st.builds(Num, _numbers) | st.builds(Str, _texts), min_size=1, max_size=3).map(tuple)
    )
    return st.one_of(
        st.builds(Neg, children.filter(lambda c: not isinstance(c, Num))),
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/", "%"]), children, children),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(Member, children, container, st.booleans()),
        st.builds(StrOp, st.sampled_from(["contains", "starts_with", "ends_with"]), children, children),
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: and_or(And, xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: and_or(Or, xs)),
    )


_exprs = st.recursive(_leaf, _extend, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_exprs)
def test_print_then_parse_gives_the_same_ast(expr: object) -> None:
    text = format_expr(expr)  # type: ignore[arg-type]
    again = parse_expression(text)
    assert again == expr, text
    assert format_expr(again) == text


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            Rule,
            id=_names,
            action=st.sampled_from(["allow", "decline", "review"]),
            reason=st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
            condition=_exprs,
            description=st.none() | _texts.map(str.strip).filter(bool),
            shadow=st.booleans(),
        ),
        max_size=4,
    ),
    st.none() | _names,
)
def test_ruleset_round_trip(rules: list[Rule], name: str | None) -> None:
    source = RulesetSource(name, tuple(rules))
    assert parse_ruleset(format_ruleset(source)) == source


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ISSUE_EXAMPLES), st.text(max_size=3))
def test_parse_of_printed_text_is_stable(line: str, noise: str) -> None:
    """print(parse(x)) re-parses to the same AST, for real rules with comment noise."""
    text = f"# {noise.replace(chr(10), ' ')}\nrule r:\n    reason: R\n    {line}\n"
    parsed = parse_ruleset(text)
    assert parse_ruleset(format_ruleset(parsed)) == parsed
