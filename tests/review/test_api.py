"""Access control and the JSON API of the review queue, one test per role and action."""

from __future__ import annotations

import importlib.util
import re

import pytest
from fastapi.testclient import TestClient

from contracts import Label
from detector.api import create_app
from tests.conftest import order_payload
from tests.review.conftest import CHECKOUT_TOKEN, make_decision


@pytest.fixture
def env(store, services_factory, order_factory):
    """An app with three cases and one user per role; returns (client, tokens, published)."""
    orders = [order_factory(order_id=f"o-{i}", merchant_id="m-x" if i else "m-y") for i in range(3)]
    store.record_decisions([make_decision(o, score=80 + i) for i, o in enumerate(orders)],
                           {o.order_id: o for o in orders})
    tokens = {role: store.add_user(role, role=role, password=f"{role}-pw", with_token=True)
              for role in ("analyst", "lead", "admin")}
    published: list[Label] = []
    app = create_app(services_factory(store, published=published))
    return TestClient(app), tokens, published


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_checkout_token_may_only_score(env):
    client, _, _ = env
    h = _auth(CHECKOUT_TOKEN)
    assert client.post("/v1/score", json=order_payload(), headers=h).status_code == 200
    assert client.get("/v1/cases", headers=h).status_code == 403
    assert client.get("/v1/cases/1", headers=h).status_code == 403
    assert client.post("/v1/cases/next", headers=h).status_code == 403
    assert client.get("/v1/users", headers=h).status_code == 403


def test_score_needs_a_checkout_token_once_tokens_are_configured(env):
    client, tokens, _ = env
    assert client.post("/v1/score", json=order_payload()).status_code == 401
    assert client.post("/v1/score", json=order_payload(), headers=_auth("nope")).status_code == 401
    assert client.post("/v1/score", json=order_payload(), headers=_auth(tokens["analyst"])).status_code == 403
    assert client.post("/v1/score", json=order_payload(), headers=_auth(tokens["admin"])).status_code == 200


def test_without_configured_tokens_scoring_is_open_on_loopback_only(store, services_factory):
    app = create_app(services_factory(store, tokens=()))
    assert TestClient(app, client=("127.0.0.1", 5000)).post("/v1/score", json=order_payload()).status_code == 200
    remote = TestClient(app, client=("203.0.113.9", 5000)).post("/v1/score", json=order_payload())
    assert remote.status_code == 401 and "checkout token" in remote.json()["detail"]


def test_anonymous_callers_get_401_on_every_review_endpoint(env):
    client, _, _ = env
    for method, path in [("get", "/v1/cases"), ("get", "/v1/cases/stats"), ("get", "/v1/cases/1"),
                         ("post", "/v1/cases/next"), ("post", "/v1/cases/1/verdict"), ("post", "/v1/cases/bulk"),
                         ("get", "/v1/audit"), ("get", "/v1/users")]:
        assert getattr(client, method)(path).status_code == 401, path


def test_analyst_works_cases_through_the_api(env):
    client, tokens, published = env
    h = _auth(tokens["analyst"])
    listing = client.get("/v1/cases", headers=h).json()
    assert listing["total"] == 3 and listing["cases"][0]["score"] == 82
    assert "email_key" not in listing["cases"][0]
    assert client.get("/v1/cases", params={"merchant": "m-y"}, headers=h).json()["total"] == 1
    case = client.post("/v1/cases/next", headers=h).json()
    detail = client.get(f"/v1/cases/{case['id']}", headers=h).json()
    assert detail["order"]["customer"]["email"] == "anna.nowak@example.com"
    assert detail["decision"]["reasons"][0]["code"] == "high_amount"
    assert {h_["action"] for h_ in detail["history"]} == {"opened", "claim"}
    assert len(detail["linked"]) == 2  # the other two orders share the factory's email and card
    r = client.post(f"/v1/cases/{case['id']}/verdict", json={"verdict": "fraud", "note": "ring"}, headers=h)
    assert r.status_code == 200 and r.json()["published"] is True
    assert [(lb.order_id, lb.label, lb.source, lb.actor) for lb in published] == [(case["order_id"], "fraud", "analyst", "analyst")]
    again = client.post(f"/v1/cases/{case['id']}/verdict", json={"verdict": "legit"}, headers=h)
    assert again.status_code == 409
    assert client.post("/v1/cases/999/verdict", json={"verdict": "legit"}, headers=h).status_code == 404
    assert client.post("/v1/cases/2/verdict", json={"verdict": "maybe"}, headers=h).status_code == 422
    nxt = client.post("/v1/cases/next", headers=h).json()
    assert client.post(f"/v1/cases/{nxt['id']}/snooze", json={"kind": "device", "hours": 2}, headers=h).json() == {
        "snoozed_cases": 2}
    assert client.get("/v1/cases/stats", headers=h).json()["depth"]["snoozed"] == 2


def test_escalate_and_release(env):
    client, tokens, _ = env
    h = _auth(tokens["analyst"])
    case = client.post("/v1/cases/next", headers=h).json()
    assert client.post(f"/v1/cases/{case['id']}/release", headers=h).status_code == 200
    assert client.post(f"/v1/cases/{case['id']}/escalate", json={"note": "big"}, headers=h).status_code == 200
    assert client.post(f"/v1/cases/{case['id']}/claim", headers=h).status_code == 409
    lead = _auth(tokens["lead"])
    assert client.post(f"/v1/cases/{case['id']}/claim", headers=lead).json()["state"] == "escalated"


def test_only_leads_run_bulk_actions_and_read_the_audit(env):
    client, tokens, published = env
    body = {"filters": {"merchant": "m-x"}, "verdict": "legit", "note": "merchant test traffic"}
    assert client.post("/v1/cases/bulk", json=body, headers=_auth(tokens["analyst"])).status_code == 403
    assert client.get("/v1/audit", headers=_auth(tokens["analyst"])).status_code == 403
    r = client.post("/v1/cases/bulk", json=body, headers=_auth(tokens["lead"]))
    assert r.status_code == 200 and r.json()["closed"] == 2 and len(published) == 2
    assert client.get("/v1/audit", headers=_auth(tokens["lead"])).json()[0]["action"] == "bulk"
    assert client.post("/v1/snoozes", json={"kind": "email", "value": "anna.nowak@example.com", "hours": 1},
                       headers=_auth(tokens["analyst"])).status_code == 403
    assert client.post("/v1/snoozes", json={"kind": "email", "value": "anna.nowak@example.com", "hours": 1},
                       headers=_auth(tokens["lead"])).json()["snoozed_cases"] == 1


def test_only_admins_list_users(env):
    client, tokens, _ = env
    assert client.get("/v1/users", headers=_auth(tokens["lead"])).status_code == 403
    users = client.get("/v1/users", headers=_auth(tokens["admin"])).json()
    assert {u["username"] for u in users} == {"analyst", "lead", "admin"}
    assert all("password_hash" not in u and "token_hash" not in u for u in users)


def _login(client: TestClient, user: str, password: str) -> str:
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/ui/login", data={"username": user, "password": password, "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get("/ui/")
    return re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)


def test_session_calls_to_the_json_api_need_the_csrf_header(env):
    client, _, _ = env
    csrf = _login(client, "analyst", "analyst-pw")
    assert client.get("/v1/cases").status_code == 200  # reads need no token
    assert client.post("/v1/cases/next").status_code == 403
    assert client.post("/v1/cases/next", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/v1/cases/next", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_every_other_router_checks_roles_and_analysts_cannot_change_rules(env):
    """Routes mounted from detector/routes/ (rules, lists, ...) must refuse anonymous and checkout callers."""
    client, tokens, _ = env
    app = client.app
    open_paths = {"/v1/score", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json",
                  "/docs/oauth2-redirect"}
    paths = app.openapi()["paths"]
    checked = 0
    for path, ops in paths.items():
        if path in open_paths or path.startswith("/ui"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in ops:
            anon = client.request(method.upper(), concrete, json={})
            assert anon.status_code in (401, 403), (method, path, anon.status_code)
            as_checkout = client.request(method.upper(), concrete, json={}, headers=_auth(CHECKOUT_TOKEN))
            assert as_checkout.status_code in (401, 403), (method, path, as_checkout.status_code)
            checked += 1
    assert checked >= 10
    if importlib.util.find_spec("detector.routes.rules") is None:
        pytest.skip("no rules router yet")
    rules_writes = [(m.upper(), p) for p, ops in paths.items() if p.startswith("/v1/rules") or p.startswith("/v1/lists")
                    for m in ops if m.upper() in {"PUT", "PATCH", "DELETE"} or p.endswith("/reload")]
    assert rules_writes, "the rules router exposes no write endpoint"
    for method, path in rules_writes:
        status = client.request(method, re.sub(r"\{[^}]+\}", "1", path), headers=_auth(tokens["analyst"]),
                                json={}).status_code
        assert status == 403, (method, path, status)
        as_lead = client.request(method, re.sub(r"\{[^}]+\}", "1", path), headers=_auth(tokens["lead"]), json={})
        assert as_lead.status_code not in (401, 403), (method, path, as_lead.status_code)
