"""The immutable AST of the rule language, and a printer whose output parses back to it.

Nodes are frozen dataclasses. Source positions (``line``, ``column``) ride along for
error messages but are excluded from equality and hashing, so the same text at another
place in a file gives an equal node (which is what common-subexpression sharing and the
print/parse round trip rely on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ACTIONS",
    "And",
    "Arith",
    "Attr",
    "Bool",
    "Compare",
    "Expr",
    "ListRef",
    "Member",
    "Neg",
    "Not",
    "Num",
    "Or",
    "Rule",
    "RulesetSource",
    "SetLit",
    "Str",
    "StrOp",
    "format_expr",
    "format_literal",
    "format_rule",
    "format_ruleset",
]

ActionName = Literal["allow", "decline", "review"]
#: Actions a rule may take; the policy applies them by precedence allow > decline > review.
ACTIONS: tuple[ActionName, ...] = ("allow", "decline", "review")


def _pos() -> int:
    return field(default=0, compare=False, hash=False, repr=False)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Attr:
    name: str
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class ListRef:
    name: str
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class SetLit:
    items: tuple[Num | Str, ...]
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Arith:
    op: Literal["+", "-", "*", "/", "%"]
    left: Expr
    right: Expr
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Member:
    """``left in @list`` / ``left in ['a', 'b']``, or with ``negated`` ``not in``."""

    left: Expr
    container: ListRef | SetLit
    negated: bool = False
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class StrOp:
    op: Literal["contains", "starts_with", "ends_with"]
    left: Expr
    right: Expr
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]
    line: int = _pos()
    column: int = _pos()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]
    line: int = _pos()
    column: int = _pos()


Expr = Attr | Num | Str | Bool | Neg | Arith | Compare | Member | StrOp | Not | And | Or


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    action: ActionName
    reason: str
    condition: Expr
    description: str | None = None
    shadow: bool = False
    line: int = _pos()
    column: int = _pos()
    reason_line: int = _pos()
    reason_column: int = _pos()


@dataclass(frozen=True, slots=True)
class RulesetSource:
    """A parsed ruleset file: an optional name and its rules in file order."""

    name: str | None
    rules: tuple[Rule, ...]


# -- printing ---------------------------------------------------------------------------
# Precedence levels, loosest first; a child is parenthesised when it binds looser than
# its slot allows, so printing then parsing gives the same tree.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _ATOM = range(8)


def _level(node: Expr) -> int:
    match node:
        case Or():
            return _OR
        case And():
            return _AND
        case Not():
            return _NOT
        case Compare() | Member() | StrOp():
            return _CMP
        case Arith(op="+" | "-"):
            return _ADD
        case Arith():
            return _MUL
        case Neg():
            return _UNARY
        case Num(value=v) if v < 0:
            return _UNARY
        case _:
            return _ATOM


def _wrap(node: Expr, minimum: int) -> str:
    text = format_expr(node)
    return f"({text})" if _level(node) < minimum else text


def format_literal(node: Num | Str | Bool) -> str:
    match node:
        case Bool(value=v):
            return "true" if v else "false"
        case Num(value=v):
            if not math.isfinite(v):
                raise ValueError("non-finite numbers have no literal")
            if v.is_integer() and abs(v) < 1e15:
                return str(int(v))
            return repr(v)
        case Str(value=s):
            escaped = (
                s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
            )
            return f"'{escaped}'"
    raise TypeError(f"not a literal: {node!r}")


def format_expr(node: Expr) -> str:
    """Canonical text of an expression; parsing it gives an equal node."""
    match node:
        case Attr(name=n):
            return f":{n}:"
        case Num() | Str() | Bool():
            return format_literal(node)
        case Neg(operand=o):
            return "-" + _wrap(o, _ATOM)
        case Arith(op=op, left=left, right=right):
            lvl = _level(node)
            # Left-associative: an equal-level child on the right needs parentheses.
            return f"{_wrap(left, lvl)} {op} {_wrap(right, lvl + 1)}"
        case Compare(op=op, left=left, right=right):
            return f"{_wrap(left, _ADD)} {op} {_wrap(right, _ADD)}"
        case Member(left=left, container=c, negated=neg):
            if isinstance(c, ListRef):
                target = f"@{c.name}"
            else:
                target = "[" + ", ".join(format_literal(i) for i in c.items) + "]"
            return f"{_wrap(left, _ADD)} {'not in' if neg else 'in'} {target}"
        case StrOp(op=op, left=left, right=right):
            return f"{_wrap(left, _ADD)} {op} {_wrap(right, _ADD)}"
        case Not(operand=o):
            # "not :x: in @l" already means not (x in l), but parentheses read clearer.
            return "not " + _wrap(o, _ADD)
        case And(items=items):
            return " and ".join(_wrap(i, _NOT) for i in items)
        case Or(items=items):
            return " or ".join(_wrap(i, _AND) for i in items)
    raise TypeError(f"not an expression: {node!r}")


def format_rule(rule: Rule) -> str:
    lines = [f"rule {rule.id}{' shadow' if rule.shadow else ''}:", f"    reason: {rule.reason}"]
    if rule.description:
        lines.append(f"    description: {rule.description}")
    lines.append(f"    {rule.action} if {format_expr(rule.condition)}")
    return "\n".join(lines) + "\n"


def format_ruleset(source: RulesetSource) -> str:
    parts = [f"ruleset {source.name}\n"] if source.name else []
    parts.extend(format_rule(r) for r in source.rules)
    return "\n".join(parts)
