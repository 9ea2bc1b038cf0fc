"""AST -> checked, compiled ruleset: type checks at load time, closures at run time.

Load time (``compile_ruleset``): parse, then check every attribute against the feature
schema, every ``@list`` against the loaded lists and every operator against its operand
types. All problems are collected with line and column and raised together as one
:class:`RuleCompileError`; a ruleset that loads cannot fail at checkout.

Run time (``CompiledRuleset.evaluate``): each rule's condition was turned once into a
tree of small Python closures (no ``eval``/``exec``). Per order, the attributes the
ruleset reads are fetched and coerced once into a flat list of slots; closures read
slots by index. A micro-batch's features (``evaluate_frame``) are read column-wise: only
the columns the ruleset names, numbers straight from the frame's float matrix. ``and``/``or`` operands are ordered cheapest first and short-circuit;
expensive subexpressions that occur in several rules (list lookups, substring tests,
arithmetic) are computed at most once per order through memo slots.

Semantics (also in rules/README.md):

- A missing attribute (absent, ``None``, NaN, or a value of the wrong type) makes every
  comparison, membership or string test that reads it **false**; ``not`` then flips it
  as usual. A bare boolean attribute that is missing is false.
- Arithmetic on a missing value, division or modulo by zero, and results that are not
  a number (``inf - inf``) give "missing"; an overflow is ``inf``, still a number.
- Evaluation never raises.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any

from contracts.events import RuleHit
from contracts.frame import FeatureFrame
from contracts.results import RulesOutcome
from contracts.schema import FeatureSchema, FeatureSpec
from rules.ast import (
    And,
    Arith,
    Attr,
    Bool,
    Compare,
    Expr,
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
    format_expr,
)
from rules.errors import CompileIssue, RuleCompileError
from rules.lists import ListStore, NamedList
from rules.parser import parse_ruleset

__all__ = [
    "CompiledRule",
    "CompiledRuleset",
    "RuleTrace",
    "TraceNode",
    "coerce",
    "compile_ruleset",
    "compile_source",
]

Slots = list[Any]
Fn = Callable[[Slots], Any]
_UNSET: Any = object()

# -- coercion: attribute values -> the declared type, or None (missing) ------------------


#: How a missing number sits in a slot: NaN makes every ordering comparison false
#: without a branch, and propagates through arithmetic.
NAN = float("nan")


def _slot_number(x: Any) -> float:
    if type(x) is float:
        return x
    if x is None or isinstance(x, str | bytes):
        return NAN
    try:
        return float(x)
    except Exception:  # any odd object is simply "missing"
        return NAN


def _as_number(x: Any) -> float | None:
    f = _slot_number(x)
    return f if f == f else None


def _as_bool(x: Any) -> bool | None:
    if x is True or x is False:
        return x
    # Numbers (0/1 from vectorised features, numpy scalars) count; anything else is
    # the wrong type and reads as missing.
    if isinstance(x, int | float | Decimal) or type(x).__module__ == "numpy":
        try:
            return None if x != x else bool(x)
        except (TypeError, ValueError, ArithmeticError):
            return None
    return None


def _as_string(x: Any) -> str | None:
    if type(x) is str:
        return x
    return str(x) if isinstance(x, str) else None


def _as_string_list(x: Any) -> frozenset[str] | None:
    # Only real containers: iterating an arbitrary object could be endless or raise.
    if isinstance(x, Mapping):
        x = x.keys()
    elif not isinstance(x, list | tuple | set | frozenset):
        return None
    return frozenset(i for i in x if isinstance(i, str))


_COERCE: dict[str, Callable[[Any], Any]] = {
    "number": _as_number,
    "bool": _as_bool,
    "string": _as_string,
    "string_list": _as_string_list,
}
#: What the compiled closures read: like ``_COERCE`` but a missing number is NaN.
_SLOT: dict[str, Callable[[Any], Any]] = {
    "number": _slot_number,
    "bool": _as_bool,
    "string": _as_string,
    "string_list": _as_string_list,
}


def coerce(value: Any, type_: str) -> Any:
    """An attribute value as the rules see it (``None`` = missing); never raises."""
    try:
        return _COERCE[type_](value)
    except Exception:
        return None


# -- primitive semantics, shared by the closures and the tracer ---------------------------

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _arith(op: str, a: float | None, b: float | None) -> float | None:
    """The tracer's arithmetic; the closures compute the same with NaN for missing."""
    if a is None or b is None:
        return None
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif b == 0:
        return None
    elif op == "/":
        r = a / b
    else:
        r = a % b
    return r if r == r else None


def _strop(op: str, left_is_list: bool, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if op == "contains":
        return b in a
    if op == "starts_with":
        return a.startswith(b)
    return a.endswith(b)


# -- type checking --------------------------------------------------------------------------

_TYPE_WORDS = {
    "number": "a number",
    "bool": "a boolean",
    "string": "a string",
    "string_list": "a list of strings",
}


class _Checker:
    def __init__(self, schema: FeatureSchema, lists: Mapping[str, NamedList]) -> None:
        self.schema = schema
        self.lists = lists
        self.issues: list[CompileIssue] = []
        self.used_lists: set[str] = set()

    def err(self, node: Any, message: str) -> None:
        self.issues.append(CompileIssue(getattr(node, "line", 0), getattr(node, "column", 0), message))

    def expect(self, node: Expr, want: str, context: str) -> None:
        got = self.type_of(node)
        if got is not None and got != want:
            self.err(node, f"{context} needs {_TYPE_WORDS[want]}, but {format_expr(node)} is {_TYPE_WORDS[got]}")

    def type_of(self, node: Expr) -> str | None:
        match node:
            case Attr(name=name):
                spec = self.schema.get(name)
                if spec is None:
                    close = _closest(name, [s.name for s in self.schema])
                    hint = f"; did you mean :{close}:?" if close else ""
                    self.err(node, f"unknown attribute :{name}:{hint}")
                    return None
                return spec.type
            case Num():
                return "number"
            case Str():
                return "string"
            case Bool():
                return "bool"
            case Neg(operand=o):
                self.expect(o, "number", "'-'")
                return "number"
            case Arith(op=op, left=a, right=b):
                self.expect(a, "number", f"'{op}'")
                self.expect(b, "number", f"'{op}'")
                return "number"
            case Compare(op=op, left=a, right=b):
                ta, tb = self.type_of(a), self.type_of(b)
                if op in ("<", "<=", ">", ">="):
                    for side, t in ((a, ta), (b, tb)):
                        if t is not None and t != "number":
                            self.err(side, f"'{op}' compares numbers, but {format_expr(side)} is {_TYPE_WORDS[t]}")
                elif ta is not None and tb is not None:
                    if "string_list" in (ta, tb):
                        self.err(node, f"'{op}' cannot compare a list of strings; use contains")
                    elif ta != tb:
                        self.err(node, f"'{op}' compares {_TYPE_WORDS[ta]} with {_TYPE_WORDS[tb]}")
                return "bool"
            case Member(left=a, container=c):
                ta = self.type_of(a)
                if isinstance(c, ListRef):
                    if c.name not in self.lists:
                        known = ", ".join(f"@{n}" for n in sorted(self.lists)) or "none loaded"
                        self.err(c, f"unknown list @{c.name} (lists: {known})")
                    else:
                        self.used_lists.add(c.name)
                    if ta is not None and ta != "string":
                        self.err(a, f"'in @list' needs a string, but {format_expr(a)} is {_TYPE_WORDS[ta]}")
                else:
                    kinds = {type(i) for i in c.items}
                    if len(kinds) > 1:
                        self.err(c, "a [set] must hold only numbers or only strings")
                    elif ta is not None:
                        want = "number" if kinds == {Num} else "string"
                        if ta != want:
                            self.err(a, f"'in [...]' of {want}s, but {format_expr(a)} is {_TYPE_WORDS[ta]}")
                return "bool"
            case StrOp(op=op, left=a, right=b):
                ta = self.type_of(a)
                self.expect(b, "string", f"'{op}'")
                if ta is not None:
                    if op == "contains" and ta not in ("string", "string_list"):
                        self.err(a, f"'contains' needs a string or a list of strings, but {format_expr(a)} is {_TYPE_WORDS[ta]}")
                    elif op != "contains" and ta != "string":
                        self.err(a, f"'{op}' needs a string, but {format_expr(a)} is {_TYPE_WORDS[ta]}")
                return "bool"
            case Not(operand=o):
                self.expect_condition(o, "'not'")
                return "bool"
            case And(items=items) | Or(items=items):
                word = "'and'" if isinstance(node, And) else "'or'"
                for item in items:
                    self.expect_condition(item, word)
                return "bool"
        self.err(node, "unsupported expression")
        return None

    def expect_condition(self, node: Expr, context: str) -> None:
        t = self.type_of(node)
        if t is not None and t != "bool":
            self.err(
                node,
                f"{context} needs a condition, but {format_expr(node)} is {_TYPE_WORDS[t]}"
                " (compare it with something)",
            )


def _closest(name: str, candidates: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return found[0] if found else None


# -- cost model and closure building --------------------------------------------------------


def _cost(node: Expr, lists: Mapping[str, NamedList]) -> float:
    match node:
        case Attr() | Num() | Str() | Bool():
            return 0.0
        case Neg(operand=o):
            return 1.0 + _cost(o, lists)
        case Arith(left=a, right=b):
            return 2.0 + _cost(a, lists) + _cost(b, lists)
        case Compare(op=op, left=a, right=b):
            # "!=" usually holds, so in an "and" it rarely ends the evaluation: later.
            return (1.5 if op == "!=" else 1.0) + _cost(a, lists) + _cost(b, lists)
        case Member(left=a, container=c):
            base = 1.5
            if isinstance(c, ListRef):
                lst = lists.get(c.name)
                base = 8.0 if lst is not None and lst.kind == "ip" else 3.0
            return base + _cost(a, lists)
        case StrOp(left=a, right=b):
            return 2.5 + _cost(a, lists) + _cost(b, lists)
        case Not(operand=o):
            # A negated test usually holds (most orders are not on a block list): later.
            return 1.0 + _cost(o, lists)
        case And(items=items) | Or(items=items):
            return sum(_cost(i, lists) for i in items)
    return 1.0


#: Subexpressions at least this costly are computed once per order when shared.
_MEMO_MIN_COST = 2.5


class _Builder:
    def __init__(
        self,
        schema: FeatureSchema,
        lists: Mapping[str, NamedList],
        slots: dict[str, int],
        uses: Counter[Expr],
    ) -> None:
        self.schema = schema
        self.lists = lists
        self.slots = slots
        self.uses = uses
        self.cache: dict[Expr, Fn] = {}
        self.memo_count = 0
        self.matchers: dict[str, Callable[[str], bool]] = {
            name: lst.matcher() for name, lst in lists.items()
        }

    def type(self, node: Expr) -> str:
        if isinstance(node, Attr):
            spec = self.schema.get(node.name)
            return spec.type if spec is not None else "missing"
        if isinstance(node, Num | Neg | Arith):
            return "number"
        if isinstance(node, Str):
            return "string"
        return "bool"

    def build(self, node: Expr) -> Fn:
        fn = self.cache.get(node)
        if fn is not None:
            return fn
        fn = self._build(node)
        if self.uses[node] > 1 and _cost(node, self.lists) >= _MEMO_MIN_COST:
            fn = self._memo(fn)
        self.cache[node] = fn
        return fn

    def _memo(self, inner: Fn) -> Fn:
        k = len(self.slots) + self.memo_count
        self.memo_count += 1

        def memo(v: Slots) -> Any:
            r = v[k]
            if r is _UNSET:
                r = v[k] = inner(v)
            return r

        return memo

    def _build(self, node: Expr) -> Fn:
        match node:
            case Attr(name=name):
                i = self.slots[name]
                return lambda v: v[i]
            case Num(value=c) | Str(value=c) | Bool(value=c):
                return lambda v: c
            case Neg(operand=o):
                f = self.build(o)
                return lambda v: -f(v)
            case Arith(op=op, left=a, right=b):
                # Numbers are floats with NaN for missing, so + - * need no checks; a
                # zero (or missing) divisor gives NaN.
                if isinstance(a, Attr) and isinstance(b, Num) and op in "+-*":
                    # The common ":x: * 2" shape reads its slot directly.
                    i, c = self.slots[a.name], b.value
                    if op == "+":
                        return lambda v: v[i] + c
                    if op == "-":
                        return lambda v: v[i] - c
                    return lambda v: v[i] * c
                if isinstance(a, Attr) and isinstance(b, Attr) and op in "+-*":
                    i, j = self.slots[a.name], self.slots[b.name]
                    if op == "+":
                        return lambda v: v[i] + v[j]
                    if op == "-":
                        return lambda v: v[i] - v[j]
                    return lambda v: v[i] * v[j]
                fa, fb = self.build(a), self.build(b)
                if op == "+":
                    return lambda v: fa(v) + fb(v)
                if op == "-":
                    return lambda v: fa(v) - fb(v)
                if op == "*":
                    return lambda v: fa(v) * fb(v)
                if op == "/":
                    return lambda v: fa(v) / d if (d := fb(v)) else NAN
                return lambda v: fa(v) % d if (d := fb(v)) and d == d else NAN
            case Compare(op=op, left=a, right=b):
                return self._compare(op, a, b)
            case Member(left=a, container=c, negated=negated):
                fa = self.build(a)
                if isinstance(c, ListRef):
                    match = self.matchers[c.name]
                    if negated:
                        return lambda v: (x := fa(v)) is not None and not match(x)
                    return lambda v: (x := fa(v)) is not None and match(x)
                values = frozenset(i.value for i in c.items)
                # None and NaN are in no set; "not in" must still be false for them.
                if isinstance(a, Attr):
                    i = self.slots[a.name]
                    if negated:
                        return lambda v: (x := v[i]) is not None and x == x and x not in values
                    return lambda v: v[i] in values
                if negated:
                    return lambda v: (x := fa(v)) is not None and x == x and x not in values
                return lambda v: fa(v) in values
            case StrOp(op=op, left=a, right=b):
                fa, fb = self.build(a), self.build(b)
                if op == "contains" and isinstance(a, Attr) and isinstance(b, Str):
                    i, s = self.slots[a.name], b.value
                    return lambda v: (x := v[i]) is not None and s in x
                is_list = self.type(a) == "string_list"
                return lambda v: _strop(op, is_list, fa(v), fb(v))
            case Not(operand=o):
                f = self.build(o)
                return lambda v: not f(v)
            # Conditions return truthy/falsy values (a missing boolean is None), which
            # is all ``and``/``or``/``not`` and the rule loop need: no bool() calls.
            case And(items=items) | Or(items=items):
                ordered = sorted(items, key=lambda n: _cost(n, self.lists))
                is_and = isinstance(node, And)
                rest = self._chain(ordered[1:], is_and)
                return self._guarded(ordered[0], rest, is_and)
        raise TypeError(f"cannot compile {node!r}")

    def _chain(self, items: list[Expr], is_and: bool) -> Fn:
        """``a and (b and (c ...))`` with each operand inlined into its own link."""
        if len(items) == 1:
            return self.build(items[0])
        if len(items) > 8:
            # Long operand lists loop instead of nesting closures (bounded call depth).
            fs = [self.build(i) for i in items]
            if is_and:
                return lambda v: all(f(v) for f in fs)
            return lambda v: any(f(v) for f in fs)
        return self._guarded(items[0], self._chain(items[1:], is_and), is_and)

    def _guarded(self, first: Expr, rest: Fn, is_and: bool) -> Fn:
        """``first and rest`` (or ``or``) with the cheapest operand inlined.

        Most rules fail on their first, cheapest clause, so inlining it saves a call per
        rule per order. Shared (memoised) subexpressions keep their memo closure.
        """
        if self.uses[first] > 1 and _cost(first, self.lists) >= _MEMO_MIN_COST:
            f0 = self.build(first)
            return (lambda v: f0(v) and rest(v)) if is_and else (lambda v: f0(v) or rest(v))
        if isinstance(first, Attr) and self.type(first) == "bool":
            i = self.slots[first.name]
            return (lambda v: v[i] and rest(v)) if is_and else (lambda v: v[i] or rest(v))
        if isinstance(first, Not) and isinstance(first.operand, Attr) and self.type(first.operand) == "bool":
            i = self.slots[first.operand.name]
            return (lambda v: not v[i] and rest(v)) if is_and else (lambda v: not v[i] or rest(v))
        if (
            isinstance(first, Compare)
            and isinstance(first.left, Attr)
            and isinstance(first.right, Num)
            and first.op in ("<", "<=", ">", ">=")
        ):
            i, c = self.slots[first.left.name], first.right.value
            if is_and:
                match first.op:
                    case ">":
                        return lambda v: v[i] > c and rest(v)
                    case ">=":
                        return lambda v: v[i] >= c and rest(v)
                    case "<":
                        return lambda v: v[i] < c and rest(v)
                    case _:
                        return lambda v: v[i] <= c and rest(v)
            match first.op:
                case ">":
                    return lambda v: v[i] > c or rest(v)
                case ">=":
                    return lambda v: v[i] >= c or rest(v)
                case "<":
                    return lambda v: v[i] < c or rest(v)
                case _:
                    return lambda v: v[i] <= c or rest(v)
        if (
            is_and
            and isinstance(first, Compare)
            and first.op == "!="
            and isinstance(first.left, Attr)
            and isinstance(first.right, Attr)
            and self.type(first.left) == "string"
        ):
            i, j = self.slots[first.left.name], self.slots[first.right.name]
            return lambda v: (x := v[i]) is not None and (y := v[j]) is not None and x != y and rest(v)
        if (
            is_and
            and isinstance(first, Member)
            and not first.negated
            and isinstance(first.left, Attr)
            and isinstance(first.container, SetLit)
        ):
            i, values = self.slots[first.left.name], frozenset(x.value for x in first.container.items)
            return lambda v: v[i] in values and rest(v)
        f0 = self.build(first)
        return (lambda v: f0(v) and rest(v)) if is_and else (lambda v: f0(v) or rest(v))

    def _compare(self, op: str, a: Expr, b: Expr) -> Fn:
        numeric = self.type(a) == "number"
        # Specialised shapes: ``:attr: OP constant`` costs one slot read and one
        # comparison, with no nested call. Missing numbers are NaN, for which every
        # comparison is false except ``!=``, which checks ``x == x`` first.
        if isinstance(a, Attr) and isinstance(b, Num | Str | Bool):
            i, c = self.slots[a.name], b.value
            match op:
                case ">":
                    return lambda v: v[i] > c
                case ">=":
                    return lambda v: v[i] >= c
                case "<":
                    return lambda v: v[i] < c
                case "<=":
                    return lambda v: v[i] <= c
                case "==":
                    return lambda v: v[i] == c
                case _:
                    if numeric:
                        return lambda v: (x := v[i]) == x and x != c
                    return lambda v: (x := v[i]) is not None and x != c
        cmp = _CMP[op]
        if isinstance(a, Attr) and isinstance(b, Attr):
            i, j = self.slots[a.name], self.slots[b.name]
            if numeric and op != "!=":
                return lambda v: cmp(v[i], v[j])
            if op == "!=":
                return lambda v: (x := v[i]) is not None and x == x and (y := v[j]) is not None and y == y and x != y
            return lambda v: (x := v[i]) is not None and (y := v[j]) is not None and cmp(x, y)
        fa, fb = self.build(a), self.build(b)
        if numeric:
            if op == "!=":
                return lambda v: (x := fa(v)) == x and (y := fb(v)) == y and x != y
            return lambda v: cmp(fa(v), fb(v))
        return lambda v: (x := fa(v)) is not None and (y := fb(v)) is not None and cmp(x, y)


# -- the compiled ruleset ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceNode:
    """One subexpression in an evaluation trace: its text, its value and why."""

    text: str
    value: Any
    note: str | None = None
    children: tuple[TraceNode, ...] = ()
    literal: bool = False

    def render(self, indent: int = 0) -> list[str]:
        """Indented lines, one per subexpression; literals are left out as noise."""
        shown = _show(self.value)
        line = f"{'  ' * indent}{self.text} => {shown}"
        if self.note:
            line += f"  [{self.note}]"
        out = [line]
        for child in self.children:
            if not child.literal:
                out.extend(child.render(indent + 1))
        return out


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule_id: str
    action: str
    shadow: bool
    hit: bool
    root: TraceNode

    def render(self) -> str:
        head = f"rule {self.rule_id}{' (shadow)' if self.shadow else ''} -> {self.action}: {'HIT' if self.hit else 'no hit'}"
        return "\n".join([head, *self.root.render(1)])


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    if isinstance(value, frozenset):
        return "[" + ", ".join(repr(s) for s in sorted(value)) + "]"
    return repr(value)


#: Attributes whose string values are personal data: details and traces mask them.
_PII_HINTS = ("email", "ip", "address", "card", "phone", "name", "customer", "device",
              "fingerprint", "user_agent", "note", "message", "postal", "line1", "line2")


def _is_pii(attr: str) -> bool:
    name = attr.lower()
    if name.endswith(("_country", "_currency", "_bin")):
        return False
    parts = name.split("_")
    return any(h in parts or name.startswith(h) for h in _PII_HINTS)


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    hit: RuleHit
    #: Attributes the condition reads, in first-use order (for analyst details).
    attributes: tuple[str, ...]
    cost: float
    fn: Fn


def _attrs_in(node: Expr) -> list[str]:
    out: list[str] = []

    def walk(n: Any) -> None:
        if isinstance(n, Attr):
            if n.name not in out:
                out.append(n.name)
            return
        for name in ("operand", "left", "right"):
            child = getattr(n, name, None)
            if child is not None:
                walk(child)
        for child in getattr(n, "items", ()) if isinstance(n, And | Or) else ():
            walk(child)

    walk(node)
    return out


def _subexpressions(node: Expr) -> list[Expr]:
    out: list[Expr] = [node]
    match node:
        case Neg(operand=o) | Not(operand=o):
            out.extend(_subexpressions(o))
        case Arith(left=a, right=b) | Compare(left=a, right=b) | StrOp(left=a, right=b):
            out.extend(_subexpressions(a))
            out.extend(_subexpressions(b))
        case Member(left=a):
            out.extend(_subexpressions(a))
        case And(items=items) | Or(items=items):
            for i in items:
                out.extend(_subexpressions(i))
    return out


class CompiledRuleset:
    """An immutable, checked ruleset; ``evaluate`` is pure and safe across threads."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        source: RulesetSource,
        text: str,
        schema: FeatureSchema,
        lists: Mapping[str, NamedList],
        rules: tuple[CompiledRule, ...],
        fetchers: tuple[tuple[str, Callable[[Any], Any]], ...],
        memo_slots: int,
    ) -> None:
        self.name = name
        self.version = version
        self.source = source
        self.text = text
        self.schema = schema
        self.lists = dict(lists)
        self.rules = rules
        self._fetchers = fetchers
        self._slot_of = {name: i for i, (name, _) in enumerate(fetchers)}
        self._types = tuple((n, (schema.get(n) or _STRING_SPEC).type) for n, _ in fetchers)
        self._memo_init: list[Any] = [_UNSET] * memo_slots
        self._plan = tuple((r.fn, r.hit) for r in rules)
        self._by_id = {r.rule.id: r for r in rules}

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"CompiledRuleset({self.version!r}, {len(self.rules)} rules)"

    @property
    def list_versions(self) -> dict[str, str]:
        return {name: lst.version for name, lst in sorted(self.lists.items())}

    def evaluate(self, attributes: Mapping[str, Any]) -> RulesOutcome:
        """Hits (shadow ones flagged) and an analyst-readable detail per hit; never raises.

        ``details`` is computed lazily, from the values this evaluation read, for the
        hits someone looks at (the policy reads the acting ones).
        """
        try:
            get = attributes.get
            v = [c(get(name)) for name, c in self._fetchers]
        except Exception:
            # Defensive only: closures are built not to raise; a surprise (an exotic
            # Mapping, say) must still not fail a checkout.
            v = [_safe_slot(_safe_get(attributes, name), t) for name, t in self._types]
        return self._outcome(v)

    def evaluate_frame(self, frame: FeatureFrame) -> list[RulesOutcome]:
        """:meth:`evaluate` for every row of a frame, reading only the columns the rules name."""
        n = len(frame)
        numbers = [name for name, t in self._types if t == "number"]
        # A number slot holds a float, NaN when missing: exactly the frame's float matrix.
        matrix = iter(frame.numbers(numbers).T.tolist()) if numbers else iter(())
        columns = [next(matrix) if t == "number" else [_safe_slot(x, t) for x in frame.column(name)]
                   for name, t in self._types]
        per_row = zip(*columns, strict=True) if columns else repeat((), n)
        return [self._outcome(list(slots)) for slots in per_row]

    def _outcome(self, v: Slots) -> RulesOutcome:
        v.extend(self._memo_init)
        try:
            hits = [hit for fn, hit in self._plan if fn(v)]
        except Exception:
            # Defensive only, as in evaluate: a rule that cannot run does not hit.
            del v[len(self._fetchers):]
            v.extend(self._memo_init)
            hits = self._hits_guarded(v)
        if not hits:
            return _EMPTY
        return RulesOutcome(hits=tuple(hits), details=_Details(self, v, tuple(h.rule_id for h in hits)))

    def _hits_guarded(self, v: Slots) -> list[RuleHit]:
        hits: list[RuleHit] = []
        for fn, hit in self._plan:
            try:
                if fn(v):
                    hits.append(hit)
            except Exception:  # noqa: S112 - a rule that cannot run does not hit
                continue
        return hits

    def detail(self, rule_id: str, v: Slots) -> str:
        """``description (attr=value, ...)`` with personal data redacted."""
        compiled = self._by_id[rule_id]
        rule = compiled.rule
        shown = []
        for name in compiled.attributes:
            value = v[self._slot_of[name]]
            if isinstance(value, float) and value != value:
                value = None
            if isinstance(value, str | frozenset) and _is_pii(name):
                text = "<redacted>"
            else:
                text = _show(value)
            shown.append(f"{name}={text}")
        head = rule.description or f"rule {rule.id}"
        return f"{head} ({', '.join(shown)})"[:512] if shown else head[:512]

    def trace(self, attributes: Mapping[str, Any], *, rule_ids: tuple[str, ...] | None = None) -> list[RuleTrace]:
        """Every rule (or those named), with which subexpressions held and their values.

        The tracer evaluates every operand (no short-circuit) so an analyst sees all of
        them; its verdict is the same as :meth:`evaluate`'s.
        """
        values = {name: coerce(_safe_get(attributes, name), t) for name, t in self._types}
        tracer = _Tracer(values, {n: lst.matcher() for n, lst in self.lists.items()}, self.schema)
        out = []
        for compiled in self.rules:
            rule = compiled.rule
            if rule_ids is not None and rule.id not in rule_ids:
                continue
            value, node = tracer.trace(rule.condition)
            out.append(RuleTrace(rule.id, rule.action, rule.shadow, bool(value), node))
        return out


_EMPTY = RulesOutcome()
_STRING_SPEC = FeatureSpec("_", "string", "", "")


class _Details(Mapping[str, str]):
    """Rule id -> detail, built on first access from the evaluation's own values."""

    __slots__ = ("_cache", "_ids", "_ruleset", "_v")

    def __init__(self, ruleset: CompiledRuleset, v: Slots, ids: tuple[str, ...]) -> None:
        self._ruleset = ruleset
        self._v = v
        self._ids = ids
        self._cache: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        text = self._cache.get(key)
        if text is None:
            if key not in self._ids:
                raise KeyError(key)
            text = self._cache[key] = self._ruleset.detail(key, self._v)
        return text

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return repr(dict(self))


def _safe_slot(value: Any, type_: str) -> Any:
    try:
        return _SLOT[type_](value)
    except Exception:
        return NAN if type_ == "number" else None


def _safe_get(attributes: Mapping[str, Any], name: str) -> Any:
    try:
        return attributes.get(name)
    except Exception:
        return None


class _Tracer:
    def __init__(self, values: dict[str, Any], matchers: dict[str, Callable[[str], bool]], schema: FeatureSchema) -> None:
        self.values = values
        self.matchers = matchers
        self.schema = schema

    def trace(self, node: Expr) -> tuple[Any, TraceNode]:
        text = format_expr(node)
        match node:
            case Attr(name=name):
                value = self.values.get(name)
                shown = value
                if isinstance(value, str | frozenset) and _is_pii(name):
                    shown = "<redacted>"
                spec = self.schema.get(name)
                if spec is not None and spec.type == "bool":
                    return value, TraceNode(text, bool(value), "missing" if value is None else None)
                return value, TraceNode(text, shown, None)
            case Num(value=c) | Str(value=c) | Bool(value=c):
                return c, TraceNode(text, c, literal=True)
            case Neg(operand=o):
                x, child = self.trace(o)
                r = None if x is None else -x
                return r, TraceNode(text, r, _missing_note([child]), (child,))
            case Arith(op=op, left=a, right=b):
                x, ca = self.trace(a)
                y, cb = self.trace(b)
                r = _arith(op, x, y)
                note = _missing_note([ca, cb])
                if note is None and r is None:
                    note = "division by zero" if op in "/%" and y == 0 else "not a finite number"
                return r, TraceNode(text, r, note, (ca, cb))
            case Compare(op=op, left=a, right=b):
                x, ca = self.trace(a)
                y, cb = self.trace(b)
                if x is None or y is None:
                    return False, TraceNode(text, False, _missing_note([ca, cb]), (ca, cb))
                r = bool(_CMP[op](x, y))
                return r, TraceNode(text, r, _cmp_note(ca, op, cb), (ca, cb))
            case Member(left=a, container=c, negated=negated):
                x, ca = self.trace(a)
                if x is None:
                    return False, TraceNode(text, False, _missing_note([ca]), (ca,))
                if isinstance(c, ListRef):
                    inside = self.matchers[c.name](x)
                    note = f"{'in' if inside else 'not in'} @{c.name}"
                else:
                    inside = x in frozenset(i.value for i in c.items)
                    note = "in the set" if inside else "not in the set"
                r = (not inside) if negated else inside
                return r, TraceNode(text, r, note, (ca,))
            case StrOp(op=op, left=a, right=b):
                x, ca = self.trace(a)
                y, cb = self.trace(b)
                if x is None or y is None:
                    return False, TraceNode(text, False, _missing_note([ca, cb]), (ca, cb))
                r = _strop(op, isinstance(x, frozenset), x, y)
                return r, TraceNode(text, r, None, (ca, cb))
            case Not(operand=o):
                x, child = self.trace(o)
                r = not x
                return r, TraceNode(text, r, None, (child,))
            case And(items=items) | Or(items=items):
                results = [self.trace(i) for i in items]
                flags = [bool(x) for x, _ in results]
                r = all(flags) if isinstance(node, And) else any(flags)
                return r, TraceNode(text, r, None, tuple(c for _, c in results))
        return False, TraceNode(text, False, "unsupported")


def _cmp_note(ca: TraceNode, op: str, cb: TraceNode) -> str:
    return f"{_show(ca.value)} {op} {_show(cb.value)}"


def _missing_note(children: list[TraceNode]) -> str | None:
    missing = [c.text for c in children if c.value is None or (c.note or "").startswith("missing")]
    return f"missing {', '.join(missing)}" if missing else None


# -- entry points ----------------------------------------------------------------------

_REASON_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: Deeper conditions are rejected at load time (the checker and tracer recurse).
MAX_DEPTH = 64


def _children(node: Any) -> tuple[Any, ...]:
    if isinstance(node, And | Or):
        return node.items
    if isinstance(node, Neg | Not):
        return (node.operand,)
    if isinstance(node, Arith | Compare | StrOp):
        return (node.left, node.right)
    if isinstance(node, Member):
        return (node.left,)
    return ()


def _depth(root: Expr) -> int:
    """Nesting depth, computed without recursion (the input may be hostile)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        stack.extend((c, d + 1) for c in _children(node))
    return deepest



def compile_source(
    source: RulesetSource,
    *,
    text: str,
    schema: FeatureSchema,
    lists: ListStore,
    name: str = "ruleset",
    origin: str = "<string>",
) -> CompiledRuleset:
    """Check and compile an already parsed ruleset (see :func:`compile_ruleset`)."""
    snapshot = lists.snapshot()
    checker = _Checker(schema, snapshot)
    seen: dict[str, Rule] = {}
    for rule in source.rules:
        if _depth(rule.condition) > MAX_DEPTH:
            checker.err(rule, f"rule {rule.id}: condition nested more than {MAX_DEPTH} levels deep")
    if checker.issues:
        raise RuleCompileError(checker.issues, source=origin)
    for rule in source.rules:
        if rule.id in seen:
            first = seen[rule.id]
            checker.err(rule, f"duplicate rule id {rule.id!r} (first defined on line {first.line})")
        else:
            seen[rule.id] = rule
        if not _REASON_CODE.match(rule.reason):
            checker.issues.append(CompileIssue(
                rule.reason_line, rule.reason_column,
                f"reason code {rule.reason!r} must be UPPER_SNAKE_CASE (A-Z, 0-9, _)",
            ))
        checker.expect_condition(rule.condition, f"rule {rule.id}")
    if checker.issues:
        raise RuleCompileError(checker.issues, source=origin)

    used = {name: snapshot[name] for name in sorted(checker.used_lists)}
    attrs: list[str] = []
    uses: Counter[Expr] = Counter()
    for rule in source.rules:
        for a in _attrs_in(rule.condition):
            if a not in attrs:
                attrs.append(a)
        # Count each distinct subexpression once per rule: sharing is across rules.
        uses.update(set(_subexpressions(rule.condition)))
    slots = {a: i for i, a in enumerate(attrs)}
    builder = _Builder(schema, used, slots, uses)
    compiled: list[CompiledRule] = []
    for rule in source.rules:
        compiled.append(
            CompiledRule(
                rule=rule,
                hit=RuleHit(rule_id=rule.id, action=rule.action, reason_code=rule.reason, shadow=rule.shadow),
                attributes=tuple(_attrs_in(rule.condition)),
                cost=_cost(rule.condition, used),
                fn=builder.build(rule.condition),
            )
        )
    fetchers = tuple((a, _SLOT[schema.get(a).type]) for a in attrs)  # type: ignore[union-attr]
    digest = hashlib.sha256(text.encode("utf-8"))
    for lname, lst in used.items():
        digest.update(f"\0@{lname}={lst.version}".encode())
    ruleset_name = source.name or name
    return CompiledRuleset(
        name=ruleset_name,
        version=f"{ruleset_name}@{digest.hexdigest()[:12]}",
        source=source,
        text=text,
        schema=schema,
        lists=used,
        rules=tuple(compiled),
        fetchers=fetchers,
        memo_slots=builder.memo_count,
    )


def compile_ruleset(
    text: str,
    *,
    schema: FeatureSchema,
    lists: ListStore | None = None,
    source: str = "<string>",
) -> CompiledRuleset:
    """Parse, check against ``schema`` and ``lists``, and compile; errors carry line/column.

    The ruleset's name is its ``ruleset NAME`` header, else the file stem of ``source``.
    ``version`` is ``<name>@<sha256(text + versions of the lists it uses)[:12]>``.
    """
    lists = lists if lists is not None else ListStore()
    try:
        parsed = parse_ruleset(text, source=source)
        stem = Path(source).stem if source and not source.startswith("<") else "ruleset"
        return compile_source(parsed, text=text, schema=schema, lists=lists, name=stem, origin=source)
    except RecursionError:
        raise RuleCompileError([CompileIssue(1, 1, "expression nested too deeply")], source=source) from None
