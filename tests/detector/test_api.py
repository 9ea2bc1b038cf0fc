"""The HTTP API with the real engine behind it: valid, invalid and oversized bodies."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from detector.api import create_app
from tests.conftest import order_payload


@pytest.fixture
def client(services_factory):
    services = services_factory()
    with TestClient(create_app(services)) as c:
        yield c


def test_score_returns_a_decision(client):
    resp = client.post("/v1/score", json=order_payload(order_id="o-api-1"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["order_id"] == "o-api-1"
    assert 0 <= body["score"] <= 100
    assert body["action"] in {"approve", "review", "decline"}
    assert body["versions"]["model"] and body["versions"]["ruleset"]
    assert body["schema_version"] == 1


def test_scoring_the_same_order_twice_is_idempotent(client):
    payload = order_payload(order_id="o-api-2", payment={"amount": "2500.00"})
    first = client.post("/v1/score", json=payload).json()
    second = client.post("/v1/score", json=payload).json()
    assert first["decision_id"] == second["decision_id"]
    for key in ("score", "action", "reasons", "signals", "rule_hits", "contributions"):
        assert first[key] == second[key], key


def test_invalid_body_is_422_with_a_message_and_no_echo(client):
    payload = order_payload(order_id="o-api-3", created_at="not-a-time", ip_address="leaky-value")
    resp = client.post("/v1/score", json=payload)
    assert resp.status_code == 422
    body = resp.json()
    assert body["detail"].startswith("invalid request:")
    assert "created_at" in body["detail"] and "ip_address" in body["detail"]
    assert "leaky-value" not in resp.text


def test_broken_json_is_a_4xx_with_a_message(client):
    resp = client.post("/v1/score", content=b'{"order_id": ', headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert "invalid request" in resp.json()["detail"]


def test_oversized_body_is_413(client):
    big = order_payload(order_id="o-api-4", metadata={f"k{i}": "x" * 500 for i in range(49)})
    body = json.dumps(big).encode() + b" " * (300 * 1024)
    resp = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "exceeds" in resp.json()["detail"]


def test_oversized_chunked_body_is_413(client):
    def chunks():
        yield b'{"order_id": "o-big", "note": "'
        for _ in range(400):
            yield b"x" * 1024
        yield b'"}'

    resp = client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_health_ready_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    client.post("/v1/score", json=order_payload(order_id="o-api-5"))
    metrics = client.get("/metrics").text
    assert 'riskwire_decisions_total{action=' in metrics and 'path="sync"' in metrics
    assert client.get("/openapi.json").json()["paths"]["/v1/score"]["post"]
    assert client.get("/docs").status_code == 200


def test_readyz_reports_an_unreachable_broker(services_factory):
    from detector.broker import free_port

    services = services_factory()
    services.extras["bootstrap_servers"] = f"127.0.0.1:{free_port()}"
    with TestClient(create_app(services)) as c:
        resp = c.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["broker"] == "unreachable"
