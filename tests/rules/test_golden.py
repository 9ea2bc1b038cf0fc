"""Golden files: rule files, attribute dicts, expected hits and expected traces.

``tests/rules/golden/NAME.rules`` is compiled against the test schema and lists; each case
in ``NAME.cases.json`` states its expected hits; the rendered traces of every case must
equal ``NAME.trace.txt``. After an intended change, regenerate the traces with
``RISKWIRE_UPDATE_GOLDEN=1 pytest tests/rules/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rules import compile_ruleset

from .conftest import make_lists, make_schema

GOLDEN = Path(__file__).parent / "golden"
NAMES = sorted(p.stem for p in GOLDEN.glob("*.rules"))


def _render(name: str) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    text = (GOLDEN / f"{name}.rules").read_text(encoding="utf-8")
    ruleset = compile_ruleset(text, schema=make_schema(), lists=make_lists(), source=f"{name}.rules")
    cases = json.loads((GOLDEN / f"{name}.cases.json").read_text(encoding="utf-8"))
    blocks = []
    for case in cases:
        outcome = ruleset.evaluate(case["attributes"])
        case["got"] = [[h.rule_id, h.action, h.shadow] for h in outcome.hits]
        case["details"] = dict(outcome.details)
        traces = "\n".join(t.render() for t in ruleset.trace(case["attributes"]))
        blocks.append(f"## {case['name']}\n{traces}\n")
    return cases, "\n".join(blocks)


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str) -> None:
    cases, rendered = _render(name)
    for case in cases:
        assert case["got"] == case["hits"], case["name"]
    trace_file = GOLDEN / f"{name}.trace.txt"
    if os.environ.get("RISKWIRE_UPDATE_GOLDEN") == "1":
        trace_file.write_text(rendered, encoding="utf-8")
    assert rendered == trace_file.read_text(encoding="utf-8")


def test_golden_details_carry_values() -> None:
    cases, _ = _render("shop")
    by_name = {c["name"]: c for c in cases}
    assert by_name["disposable and big"]["details"] == {
        "disposable_big": "disposable mailbox paying over 100 (email_disposable=true, amount_base=250.5)"
    }
    assert by_name["trusted customer also in a blocked network"]["details"]["trusted"] == (
        "customer on the trusted list (customer_id=<redacted>)"
    )
