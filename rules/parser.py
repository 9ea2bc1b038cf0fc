"""Text -> AST, with Lark's LALR(1) parser; every failure becomes a RuleCompileError.

The parser is built once per process (the grammar is in ``rules/grammar.py``).
Whatever the input, ``parse_ruleset`` either returns a :class:`RulesetSource` or raises :class:`RuleCompileError` with line and column; nothing else escapes.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

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
)
from rules.errors import CompileIssue, RuleCompileError
from rules.grammar import GRAMMAR

__all__ = ["parse_expression", "parse_ruleset"]

_ESCAPES = {"n": "\n", "t": "\t"}

# Friendly names for the terminals Lark reports as expected.
_TERMINAL_NAMES = {
    "ATTR": ":attribute:",
    "LIST_NAME": "@list",
    "NUMBER": "a number",
    "STRING": "a 'string'",
    "NAME": "a name",
    "ACTION": "allow, decline or review",
    "COMP_OP": "a comparison",
    "STR_OP": "contains, starts_with or ends_with",
    "DESCRIPTION": "description:",
    "SHADOW": "shadow",
    "RULE": "rule",
    "RULESET": "ruleset",
    "REASON": "reason",
    "IF": "if",
    "COLON": "':'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "MUL_OP": "'*', '/' or '%'",
    "AND": "and",
    "OR": "or",
    "NOT": "not",
    "IN": "in",
    "TRUE": "true",
    "FALSE": "false",
}


class _SemanticError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.issue = CompileIssue(line, column, message)


def _pos(tok: Token) -> dict[str, int]:
    return {"line": tok.line or 0, "column": tok.column or 0}


def _at(node: Any) -> dict[str, int]:
    return {"line": getattr(node, "line", 0), "column": getattr(node, "column", 0)}


def _number(tok: Token, sign: float = 1.0) -> Num:
    value = float(tok) * sign
    if not math.isfinite(value):
        raise _SemanticError(tok.line or 0, tok.column or 0, f"number out of range: {str(tok)[:32]}")
    return Num(value, **_pos(tok))


def _string(tok: Token) -> Str:
    body = str(tok)[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return Str("".join(out), **_pos(tok))


def _flatten(kind: type[And] | type[Or], left: Expr, right: Expr) -> Expr:
    items: list[Expr] = []
    for part in (left, right):
        if isinstance(part, kind):
            items.extend(part.items)
        else:
            items.append(part)
    return kind(tuple(items), **_at(left))


class _ToAst(Transformer):
    """Builds AST nodes bottom-up while Lark parses (inline transformer)."""

    def start(self, children: list[Any]) -> RulesetSource:
        name = None
        rules: list[Rule] = []
        for child in children:
            if isinstance(child, Rule):
                rules.append(child)
            else:
                name = child
        return RulesetSource(name, tuple(rules))

    def header(self, children: list[Token]) -> str:
        return str(children[0])

    def rule(self, children: list[Any]) -> Rule:
        rule_id, shadow, reason, description, action, condition = children
        desc = None
        if description is not None:
            desc = str(description).split(":", 1)[1].strip() or None
        return Rule(
            id=str(rule_id),
            action=str(action),  # type: ignore[arg-type]
            reason=str(reason),
            reason_line=reason.line or 0,
            reason_column=reason.column or 0,
            condition=condition,
            description=desc,
            shadow=shadow is not None,
            **_pos(rule_id),
        )

    def or_(self, children: list[Any]) -> Expr:
        return _flatten(Or, children[0], children[1])

    def and_(self, children: list[Any]) -> Expr:
        return _flatten(And, children[0], children[1])

    def not_(self, children: list[Any]) -> Expr:
        return Not(children[1], **_pos(children[0]))

    def compare(self, children: list[Any]) -> Expr:
        left, op, right = children
        return Compare(str(op), left, right, **_pos(op))  # type: ignore[arg-type]

    def member(self, children: list[Any]) -> Expr:
        left, op, container = children
        return Member(left, container, False, **_pos(op))

    def not_member(self, children: list[Any]) -> Expr:
        left, op, _in, container = children
        return Member(left, container, True, **_pos(op))

    def strop(self, children: list[Any]) -> Expr:
        left, op, right = children
        return StrOp(str(op), left, right, **_pos(op))  # type: ignore[arg-type]

    def listref(self, children: list[Token]) -> ListRef:
        return ListRef(str(children[0])[1:], **_pos(children[0]))

    def setlit(self, children: list[Any]) -> SetLit:
        bracket, *items = children
        return SetLit(tuple(items), **_pos(bracket))

    def lit_num(self, children: list[Token]) -> Num:
        return _number(children[0])

    def lit_neg(self, children: list[Token]) -> Num:
        return _number(children[1], -1.0)

    def lit_str(self, children: list[Token]) -> Str:
        return _string(children[0])

    def arith(self, children: list[Any]) -> Expr:
        left, op, right = children
        return Arith(str(op), left, right, **_pos(op))  # type: ignore[arg-type]

    def neg(self, children: list[Any]) -> Expr:
        minus, operand = children
        # Fold signs into literals so "-5" is one number and printing round-trips.
        if isinstance(operand, Num):
            return Num(-operand.value, **_pos(minus))
        return Neg(operand, **_pos(minus))

    def attr(self, children: list[Token]) -> Attr:
        return Attr(str(children[0])[1:-1], **_pos(children[0]))

    def num(self, children: list[Token]) -> Num:
        return _number(children[0])

    def string(self, children: list[Token]) -> Str:
        return _string(children[0])

    def true(self, children: list[Any]) -> Bool:
        return Bool(True)

    def false(self, children: list[Any]) -> Bool:
        return Bool(False)


@cache
def _parser() -> Lark:
    # The transformer runs inline with LALR, so no parse tree is ever materialised.
    return Lark(
        GRAMMAR,
        parser="lalr",
        start=["start", "expr"],
        transformer=_ToAst(),
        maybe_placeholders=True,
    )


def _expected(names: set[str] | frozenset[str]) -> str:
    shown = sorted({_TERMINAL_NAMES.get(n, n.lower()) for n in names if not n.startswith("__")})
    if not shown:
        return ""
    if len(shown) > 6:
        shown = [*shown[:6], "..."]
    return "; expected " + ", ".join(shown)


def _issue_from(exc: UnexpectedInput, text: str) -> CompileIssue:
    line = getattr(exc, "line", 0) or 0
    column = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        return CompileIssue(line, column, "unexpected end of input" + _expected(exc.expected))
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        return CompileIssue(line, column, f"unexpected character {ch!r}" + _expected(exc.allowed or set()))
    if isinstance(exc, UnexpectedToken):
        shown = str(exc.token)[:40]
        return CompileIssue(line, column, f"unexpected {shown!r}" + _expected(exc.expected))
    return CompileIssue(line, column, str(exc).splitlines()[0][:200])


def _run(text: str, start: str, source: str) -> Any:
    try:
        return _parser().parse(text, start=start)
    except _SemanticError as exc:
        raise RuleCompileError([exc.issue], source=source) from None
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, _SemanticError):
            raise RuleCompileError([inner.issue], source=source) from None
        raise RuleCompileError([CompileIssue(1, 1, f"cannot parse: {inner}")], source=source) from None
    except UnexpectedInput as exc:
        raise RuleCompileError([_issue_from(exc, text)], source=source) from None
    except LarkError as exc:
        raise RuleCompileError([CompileIssue(1, 1, f"cannot parse: {exc}")], source=source) from None
    except RecursionError:
        raise RuleCompileError([CompileIssue(1, 1, "expression nested too deeply")], source=source) from None


def parse_ruleset(text: str, *, source: str = "<string>") -> RulesetSource:
    """Parse a ruleset file's text; raises RuleCompileError with line and column."""
    if not isinstance(text, str):
        raise RuleCompileError([CompileIssue(1, 1, "ruleset text must be a string")], source=source)
    return _run(text, "start", source)


def parse_expression(text: str, *, source: str = "<expr>") -> Expr:
    """Parse one condition (what follows ``<action> if``); for tools and tests."""
    return _run(text, "expr", source)
