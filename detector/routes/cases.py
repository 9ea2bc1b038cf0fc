"""JSON API of the review queue: ``/v1/cases`` (analysts), bulk and audit (leads), users (admins).

Every endpoint checks its role; a checkout token gets 403 here. Calls made with the UI's
session cookie must send ``X-CSRF-Token`` on POST.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from detector.auth import Principal, require_role
from detector.review.store import CaseConflict, CaseNotFound, CaseStore, QueueFilter, ReviewError
from detector.review.tables import ENTITY_KINDS

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["review"])

Analyst = Annotated[Principal, Depends(require_role("analyst"))]
Lead = Annotated[Principal, Depends(require_role("lead"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]

_HIDDEN = {f"{k}_key" for k in ENTITY_KINDS} | {"priority", "priority_base", "case_key"}


def get_store(request: Request) -> CaseStore:
    store = request.app.state.services.extras.get("case_store")
    if store is None:
        raise HTTPException(503, "the review queue is not configured (no case store)")
    return store  # type: ignore[no-any-return]


StoreDep = Annotated[CaseStore, Depends(get_store)]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CaseNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except CaseConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except ReviewError as exc:
        raise HTTPException(400, str(exc)) from None


def _public(case: dict[str, Any], *, full: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in case.items() if k not in _HIDDEN}
    if not full:
        out.pop("decision_json", None)
        out.pop("order_json", None)
    else:
        out["decision"] = out.pop("decision_json", None)
        out["order"] = out.pop("order_json", None)
    return out


class Filters(BaseModel):
    reason: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=2)
    merchant: str | None = Field(default=None, max_length=128)
    shadow: bool | None = None

    def to_filter(self) -> QueueFilter:
        return QueueFilter(reason=self.reason or None, country=self.country or None,
                           merchant=self.merchant or None, shadow=self.shadow)


class VerdictIn(BaseModel):
    verdict: Literal["fraud", "abuse", "legit"]
    note: str = Field(default="", max_length=4000)


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=4000)


class SnoozeIn(BaseModel):
    kind: Literal["email", "card", "device", "ip", "address", "customer"]
    hours: float = Field(gt=0, le=90 * 24)
    note: str = Field(default="", max_length=4000)


class EntitySnoozeIn(SnoozeIn):
    value: str = Field(min_length=1, max_length=256)


class BulkIn(BaseModel):
    filters: Filters
    verdict: Literal["fraud", "abuse", "legit"]
    note: str = Field(default="", max_length=4000)


@router.get("/cases")
def list_cases(
    user: Analyst, store: StoreDep,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    merchant: Annotated[str | None, Query(max_length=128)] = None,
    shadow: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Open and escalated cases, highest priority first."""
    f = QueueFilter(reason=reason, country=country, merchant=merchant, shadow=shadow)
    return {"cases": [_public(c) for c in store.queue(filters=f, limit=limit)], "total": store.count(filters=f)}


@router.get("/cases/stats")
def case_stats(user: Analyst, store: StoreDep) -> dict[str, Any]:
    """Queue health: depth by state, oldest open case, verdict mix."""
    return store.stats()


@router.post("/cases/next")
def claim_next(user: Analyst, store: StoreDep, filters: Filters | None = None) -> dict[str, Any]:
    """Atomically claim the highest-priority case (your own open claim first)."""
    case = store.claim_next(actor=user.subject, role=user.role, filters=(filters or Filters()).to_filter())
    if case is None:
        raise HTTPException(404, "no claimable case")
    return _public(case)


@router.get("/cases/{case_id}")
def get_case(case_id: int, user: Analyst, store: StoreDep) -> dict[str, Any]:
    """A case with its order, decision, linked orders and history."""
    with _errors():
        case = _public(store.get_case(case_id), full=True)
        case["linked"] = [_public(o) for o in store.linked_orders(case_id)]
        case["history"] = store.case_history(case_id)
    return case


@router.post("/cases/{case_id}/claim")
def claim(case_id: int, user: Analyst, store: StoreDep) -> dict[str, Any]:
    with _errors():
        return _public(store.claim(case_id, actor=user.subject, role=user.role))


@router.post("/cases/{case_id}/release")
def release(case_id: int, user: Analyst, store: StoreDep) -> dict[str, str]:
    with _errors():
        store.release(case_id, actor=user.subject, role=user.role)
    return {"status": "released"}


@router.post("/cases/{case_id}/verdict")
def verdict(case_id: int, body: VerdictIn, user: Analyst, store: StoreDep, request: Request) -> dict[str, Any]:
    """Close the case with fraud/abuse/legit; the Label goes to the labels topic when wired."""
    from detector.review.sink import apply_verdict

    services = request.app.state.services
    with _errors():
        label, published = apply_verdict(
            store, case_id, actor=user.subject, role=user.role, verdict=body.verdict, note=body.note,
            publish=services.publish_label, metrics=services.metrics,
        )
    return {"label": label.model_dump(mode="json"), "published": published}


@router.post("/cases/{case_id}/escalate")
def escalate(case_id: int, body: NoteIn, user: Analyst, store: StoreDep) -> dict[str, str]:
    with _errors():
        store.escalate(case_id, actor=user.subject, role=user.role, note=body.note)
    return {"status": "escalated"}


@router.post("/cases/{case_id}/snooze")
def snooze_case(case_id: int, body: SnoozeIn, user: Analyst, store: StoreDep) -> dict[str, int]:
    """Snooze the case's entity (its email, card, ...) for some hours."""
    with _errors():
        n = store.snooze(actor=user.subject, kind=body.kind, seconds=body.hours * 3600, case_id=case_id, note=body.note)
    return {"snoozed_cases": n}


@router.post("/snoozes")
def snooze_entity(body: EntitySnoozeIn, user: Lead, store: StoreDep) -> dict[str, int]:
    """Snooze an entity given by value (a lead's action)."""
    with _errors():
        n = store.snooze(actor=user.subject, kind=body.kind, seconds=body.hours * 3600, value=body.value, note=body.note)
    return {"snoozed_cases": n}


@router.post("/cases/bulk")
def bulk(body: BulkIn, user: Lead, store: StoreDep, request: Request) -> dict[str, Any]:
    """Close every open case matching the filters with one verdict (leads)."""
    from detector.review.sink import apply_bulk_verdict

    services = request.app.state.services
    with _errors():
        labels = apply_bulk_verdict(
            store, actor=user.subject, role=user.role, filters=body.filters.to_filter(), verdict=body.verdict,
            note=body.note, publish=services.publish_label, metrics=services.metrics,
        )
    return {"closed": len(labels), "published": services.publish_label is not None}


@router.get("/audit")
def audit_log(user: Lead, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The latest audit entries (who, when, what, before/after)."""
    return store.audit_log(limit=limit)


@router.get("/users")
def list_users(user: Admin, store: StoreDep) -> list[dict[str, Any]]:
    """Accounts and roles (never hashes)."""
    return store.list_users()
