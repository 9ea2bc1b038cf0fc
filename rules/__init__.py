"""Rules: a small language analysts can read, compiled once and evaluated purely.

``compile_ruleset(text, schema=..., lists=...)`` checks every attribute against the
feature schema and every ``@list`` against the loaded lists, then compiles to closures;
``RulesetHolder`` hands the engine the current ruleset and swaps it atomically on reload.
See ``rules/README.md`` for the language, the semantics and the default ruleset.
"""

from rules.ast import RulesetSource, format_expr, format_rule, format_ruleset
from rules.backtest import BacktestResult, BacktestRow, run_backtest
from rules.compiler import CompiledRule, CompiledRuleset, RuleTrace, TraceNode, compile_ruleset
from rules.errors import CompileIssue, RuleCompileError
from rules.holder import (
    DEFAULT_RULESET_PATH,
    ReloadResult,
    RulesetHolder,
    load_default_ruleset,
)
from rules.lists import DEFAULT_LISTS, LIST_KINDS, ListStore, NamedList, load_list_file
from rules.parser import parse_expression, parse_ruleset

__all__ = [
    "DEFAULT_LISTS",
    "DEFAULT_RULESET_PATH",
    "LIST_KINDS",
    "BacktestResult",
    "BacktestRow",
    "CompileIssue",
    "CompiledRule",
    "CompiledRuleset",
    "ListStore",
    "NamedList",
    "ReloadResult",
    "RuleCompileError",
    "RuleTrace",
    "RulesetHolder",
    "RulesetSource",
    "TraceNode",
    "compile_ruleset",
    "format_expr",
    "format_rule",
    "format_ruleset",
    "load_default_ruleset",
    "load_list_file",
    "parse_expression",
    "parse_ruleset",
    "run_backtest",
]
