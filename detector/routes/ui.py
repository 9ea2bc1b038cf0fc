"""The analysts' web UI under ``/ui/``: login, queue, case page, actions, dashboard, bulk.

Server-rendered with Jinja2 and plain forms (no external CDN, no build step); keyboard
shortcuts come from a small vendored script. Every POST form carries the session's CSRF
token. Personal data is shown to signed-in analysts and never logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from detector.auth import (
    SESSION_COOKIE,
    Principal,
    check_csrf,
    current_principal,
    role_at_least,
    session_codec,
)
from detector.review.store import (
    ROLE_RANK,
    VERDICTS,
    CaseConflict,
    CaseNotFound,
    CaseStore,
    QueueFilter,
    ReviewError,
)
from detector.review.tables import ENTITY_KINDS

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/ui", include_in_schema=False)

_REVIEW_DIR = Path(__file__).resolve().parent.parent / "review"
_STATIC = _REVIEW_DIR / "static"
templates = Jinja2Templates(directory=str(_REVIEW_DIR / "templates"))
LOGIN_CSRF_COOKIE = "rw_login_csrf"

MESSAGES = {
    "empty": "No claimable case matches these filters: the queue is clear.",
    "closed": "Verdict saved.",
    "escalated": "Case escalated to a lead.",
    "snoozed": "Entity snoozed.",
    "released": "Case released back to the queue.",
    "claimed": "Case claimed.",
    "conflict": "That case changed meanwhile (closed, escalated or claimed by someone else).",
    "bulk": "Bulk verdict applied.",
    "loggedout": "Signed out.",
    "badlogin": "Wrong username or password.",
}


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _fmt_dt(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


templates.env.filters["age"] = _fmt_age
templates.env.filters["dt"] = _fmt_dt
templates.env.filters["short"] = lambda v: _fmt_dt(v)[:16]


def _store(request: Request) -> CaseStore | None:
    return request.app.state.services.extras.get("case_store")  # type: ignore[no-any-return]


def _user(request: Request) -> Principal | None:
    try:
        principal = current_principal(request)
    except HTTPException:
        return None
    if principal is None or principal.via != "session" or principal.role not in ROLE_RANK:
        return None
    return principal


def _login_redirect(request: Request) -> RedirectResponse:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': nxt})}", status_code=303)


def _filters_from(params: Any) -> QueueFilter:
    def get(name: str) -> str | None:
        v = (params.get(name) or "").strip()
        return v or None

    shadow = get("shadow")
    return QueueFilter(
        reason=get("reason"), country=(get("country") or "").upper() or None, merchant=get("merchant"),
        shadow=None if shadow is None else shadow == "1",
    )


def _form_filters(
    reason: Annotated[str, Form(max_length=64)] = "",
    country: Annotated[str, Form(max_length=2)] = "",
    merchant: Annotated[str, Form(max_length=128)] = "",
    shadow: Annotated[str, Form(max_length=1)] = "",
) -> QueueFilter:
    """The queue filters an action form carries along, so the analyst stays in their view."""
    return _filters_from({"reason": reason, "country": country, "merchant": merchant, "shadow": shadow})


FormFilters = Annotated[QueueFilter, Depends(_form_filters)]


def _qs(filters: QueueFilter, **extra: str) -> str:
    data = {**filters.as_dict(), **extra}
    if "shadow" in data:
        data["shadow"] = "1" if data["shadow"] == "True" else "0"
    return ("?" + urlencode(data)) if data else ""


def _page(request: Request, name: str, user: Principal | None, **ctx: Any) -> HTMLResponse:
    services = request.app.state.services
    msg = request.query_params.get("msg")
    context = {
        "user": user,
        "is_lead": bool(user and role_at_least(user.role, "lead")),
        "message": MESSAGES.get(msg or ""),
        "labels_wired": services.publish_label is not None,
        **ctx,
    }
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _no_store(request: Request) -> HTMLResponse:
    return _page(request, "error.html", _user(request), status="503",
                 detail="The review queue is not configured on this server (no case store).")


# ---------------------------------------------------------------- static files
@router.get("/static/{name}")
def static(name: str) -> Response:
    path = (_STATIC / name).resolve()
    if path.parent != _STATIC.resolve() or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


# ---------------------------------------------------------------- login
@router.get("/login")
def login_form(request: Request, next: str = "/ui/") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", None, csrf=token, next=_safe_next(next), error=None)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui/login",
                        secure=request.url.scheme == "https")
    return response


def _safe_next(value: str) -> str:
    # Only same-site paths under /ui/: never an open redirect.
    return value if value.startswith("/ui/") and not value.startswith("//") else "/ui/"


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/ui/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the login page")
    store = _store(request)
    if store is None:
        return _no_store(request)
    user = store.authenticate(username, password)
    if user is None:
        log.info("failed UI login")
        token = secrets.token_urlsafe(24)
        response = _page(request, "login.html", None, csrf=token, next=_safe_next(next),
                         error=MESSAGES["badlogin"])
        response.status_code = 401
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui/login",
                            secure=request.url.scheme == "https")
        return response
    store.record_event(actor=user["username"], action="login")
    session = {"u": user["username"], "c": secrets.token_urlsafe(24)}
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_codec(request).dumps(session), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", max_age=session_codec(request).max_age_s, path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    user = _user(request)
    if user is not None:
        check_csrf(request, user, csrf_token)
    response = RedirectResponse("/ui/login?msg=loggedout", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- queue
@router.get("/")
def queue(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    store = _store(request)
    if store is None:
        return _no_store(request)
    filters = _filters_from(request.query_params)
    return _page(
        request, "queue.html", user,
        cases=store.queue(filters=filters, limit=100), total=store.count(filters=filters),
        filters=filters, qs=_qs(filters), reasons=store.reason_codes(), stats=store.stats(),
    )


@router.post("/next")
def claim_next(
    request: Request,
    filters: FormFilters,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    check_csrf(request, user, csrf_token)
    store = _store(request)
    if store is None:
        return _no_store(request)
    return _go_next(store, user, filters)


def _go_next(store: CaseStore, user: Principal, filters: QueueFilter, msg: str | None = None) -> Response:
    case = store.claim_next(actor=user.subject, role=user.role, filters=filters)
    if case is None:
        return RedirectResponse("/ui/" + _qs(filters, msg="empty"), status_code=303)
    extra = {"msg": msg} if msg else {}
    return RedirectResponse(f"/ui/cases/{case['id']}" + _qs(filters, **extra), status_code=303)


# ---------------------------------------------------------------- case page
def _segments(text: str, spans: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Split text into (piece, label-or-None) so flagged spans can be marked up."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for sp in sorted(spans, key=lambda s: (s["start"], -s["end"])):
        start, end = max(sp["start"], pos), min(sp["end"], len(text))
        if start >= end:
            continue
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], sp["label"]))
        pos = end
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def _texts(order: dict[str, Any] | None, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fields: dict[str, str] = {}
    if order:
        for name in ("note", "gift_message"):
            if order.get(name):
                fields[name] = order[name]
    out = []
    for name, text in fields.items():
        own = [s for s in spans if s.get("field") == name]
        out.append({"field": name, "segments": _segments(text, own), "count": len(own)})
    shown = set(fields)
    # Spans on a text we did not store (a return reason, say): list their masked snippets.
    orphans = [s for s in spans if s.get("field") not in shown]
    if orphans:
        out.append({"field": "other text", "segments": None, "spans": orphans, "count": len(orphans)})
    return out


@router.get("/cases/{case_id}")
def case_page(case_id: int, request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    store = _store(request)
    if store is None:
        return _no_store(request)
    try:
        case = store.get_case(case_id)
    except CaseNotFound:
        return _page(request, "error.html", user, status="404", detail=f"No case {case_id}.")
    decision = case["decision_json"] or {}
    order = case["order_json"]
    reasons = sorted(decision.get("reasons", []), key=lambda r: -abs(r.get("contribution") or 0.0))
    contributions = sorted(decision.get("contributions", []), key=lambda c: -abs(c.get("contribution") or 0.0))[:10]
    top_reason = max([abs(r.get("contribution") or 0.0) for r in reasons] or [1.0]) or 1.0
    top_contribution = max([abs(c.get("contribution") or 0.0) for c in contributions] or [1.0]) or 1.0
    filters = _filters_from(request.query_params)
    response = _page(
        request, "case.html", user,
        case=case, decision=decision, order=order, reasons=reasons, contributions=contributions, top_reason=top_reason,
        top_contribution=top_contribution,
        texts=_texts(order, decision.get("text_spans", [])), linked=store.linked_orders(case_id),
        history=store.case_history(case_id), verdicts=VERDICTS, kinds=[k for k in ENTITY_KINDS if case.get(f"{k}_key")],
        filters=filters, qs=_qs(filters), now=store.now(),
        mine=case["claimed"] and case["claimed_by"] == user.subject,
        can_act=case["state"] == "open" or (case["state"] == "escalated" and role_at_least(user.role, "lead")),
    )
    return response


def _action(request: Request, csrf_token: str) -> tuple[Principal, CaseStore] | Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    check_csrf(request, user, csrf_token)
    store = _store(request)
    if store is None:
        return _no_store(request)
    return user, store


def _back(case_id: int, filters: QueueFilter, msg: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/cases/{case_id}" + _qs(filters, msg=msg), status_code=303)


@router.post("/cases/{case_id}/verdict")
def verdict(
    case_id: int,
    request: Request,
    verdict: Annotated[str, Form(max_length=16)],
    filters: FormFilters,
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    from detector.review.sink import apply_verdict

    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    services = request.app.state.services
    try:
        apply_verdict(store, case_id, actor=user.subject, role=user.role, verdict=verdict, note=note,
                      publish=services.publish_label, metrics=services.metrics)
    except (CaseConflict, CaseNotFound):
        return _back(case_id, filters, "conflict")
    except ReviewError as exc:
        raise HTTPException(400, str(exc)) from None
    return _go_next(store, user, filters, msg="closed")


@router.post("/cases/{case_id}/claim")
def claim(case_id: int, request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    filters = _filters_from(request.query_params)
    try:
        store.claim(case_id, actor=user.subject, role=user.role)
    except (CaseConflict, CaseNotFound):
        return _back(case_id, filters, "conflict")
    return _back(case_id, filters, "claimed")


@router.post("/cases/{case_id}/release")
def release(case_id: int, request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    try:
        store.release(case_id, actor=user.subject, role=user.role)
    except (CaseConflict, CaseNotFound):
        return _back(case_id, QueueFilter(), "conflict")
    return RedirectResponse("/ui/?msg=released", status_code=303)


@router.post("/cases/{case_id}/escalate")
def escalate(
    case_id: int, request: Request,
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    try:
        store.escalate(case_id, actor=user.subject, role=user.role, note=note)
    except (CaseConflict, CaseNotFound):
        return _back(case_id, QueueFilter(), "conflict")
    return _go_next(store, user, QueueFilter(), msg="escalated")


@router.post("/cases/{case_id}/snooze")
def snooze(
    case_id: int, request: Request,
    kind: Annotated[str, Form(max_length=16)],
    hours: Annotated[float, Form(gt=0, le=2160)],
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    try:
        store.snooze(actor=user.subject, kind=kind, seconds=hours * 3600, case_id=case_id, note=note)
    except CaseNotFound:
        return _back(case_id, QueueFilter(), "conflict")
    except ReviewError as exc:
        raise HTTPException(400, str(exc)) from None
    return _go_next(store, user, QueueFilter(), msg="snoozed")


# ---------------------------------------------------------------- dashboard and bulk
@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    store = _store(request)
    if store is None:
        return _no_store(request)
    stats = store.stats()
    mix_total = sum(stats["verdicts_7d"].values()) or 1
    depth_max = max(stats["depth"].values() or [1]) or 1
    return _page(request, "dashboard.html", user, stats=stats, mix_total=mix_total, depth_max=depth_max)


@router.get("/bulk")
def bulk_form(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    if not role_at_least(user.role, "lead"):
        return _page(request, "error.html", user, status="403", detail="Bulk actions need the lead role.")
    store = _store(request)
    if store is None:
        return _no_store(request)
    filters = _filters_from(request.query_params)
    matching = store.count(filters=filters) if filters.as_dict() else 0
    return _page(request, "bulk.html", user, filters=filters, matching=matching, verdicts=VERDICTS,
                 reasons=store.reason_codes(), preview=store.queue(filters=filters, limit=20) if filters.as_dict() else [])


@router.post("/bulk")
def bulk(
    request: Request,
    verdict: Annotated[str, Form(max_length=16)],
    filters: FormFilters,
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    from detector.review.sink import apply_bulk_verdict

    got = _action(request, csrf_token)
    if isinstance(got, Response):
        return got
    user, store = got
    if not role_at_least(user.role, "lead"):
        raise HTTPException(403, "bulk actions need the lead role")
    services = request.app.state.services
    try:
        apply_bulk_verdict(store, actor=user.subject, role=user.role, filters=filters, verdict=verdict, note=note,
                           publish=services.publish_label, metrics=services.metrics)
    except ReviewError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse("/ui/?msg=bulk", status_code=303)
