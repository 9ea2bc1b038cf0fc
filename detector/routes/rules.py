"""Rules API: view the running ruleset, check, trace, hot-reload it, and manage lists.

Reading (view, check, trace) needs the ``analyst`` role; changing what runs (reload,
replace, lists) needs ``lead`` (see ``detector.auth``). A reload that fails answers 422
with ``FILE:LINE:COLUMN: message`` errors and keeps the running ruleset. List entries are
personal data: they go in, never out (only names, kinds, sizes and versions).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from detector.auth import Principal, require_role
from rules import LIST_KINDS, NamedList, ReloadResult, RuleCompileError, RulesetHolder, format_expr

__all__ = ["router"]

# Router-wide: authentication is checked before any other dependency (the holder) runs.
router = APIRouter(prefix="/v1/rules", tags=["rules"], dependencies=[Depends(require_role("analyst"))])

Analyst = Annotated[Principal, Depends(require_role("analyst"))]
Lead = Annotated[Principal, Depends(require_role("lead"))]


def get_holder(request: Request) -> RulesetHolder:
    holder = getattr(request.app.state.services, "rules", None)
    if not isinstance(holder, RulesetHolder):
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "this engine's rules cannot be managed at run time")
    return holder


HolderDep = Annotated[RulesetHolder, Depends(get_holder)]


class RulesetText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000)


class TraceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, Any] = Field(max_length=2000)
    rule_ids: list[str] | None = Field(default=None, max_length=2000)


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["email", "email_domain", "card", "ip", "device", "address", "customer", "string"]
    entries: list[Annotated[str, Field(max_length=512)]] = Field(max_length=1_000_000)


def _lists(holder: RulesetHolder) -> list[dict[str, Any]]:
    return [
        {"name": lst.name, "kind": lst.kind, "size": len(lst), "version": lst.version}
        for lst in sorted(holder.lists, key=lambda lst: lst.name)
    ]


def _result(result: ReloadResult) -> dict[str, Any]:
    body = {"ok": result.ok, "version": result.version, "changed": result.changed, "errors": list(result.errors)}
    if not result.ok:
        raise HTTPException(422, body)
    return body


@router.get("")
def view_ruleset(holder: HolderDep, _: Analyst) -> dict[str, Any]:
    """The running ruleset: version, rules, the lists it uses, the last failed reload."""
    current = holder.current
    return {
        "name": current.name,
        "version": current.version,
        "rules": [
            {
                "id": r.rule.id,
                "action": r.rule.action,
                "reason": r.rule.reason,
                "description": r.rule.description,
                "shadow": r.rule.shadow,
                "condition": format_expr(r.rule.condition),
            }
            for r in current.rules
        ],
        "lists_used": current.list_versions,
        "text": current.text,
        "reloads": holder.reloads,
        "last_error": list(holder.last_error.errors) if holder.last_error else None,
    }


@router.post("/check")
def check_ruleset(body: RulesetText, holder: HolderDep, _: Analyst) -> dict[str, Any]:
    """Compile a ruleset against the running schema and lists without swapping it in."""
    try:
        compiled = holder.validate(body.text)
    except RuleCompileError as exc:
        return {"ok": False, "errors": exc.lines()}
    return {"ok": True, "version": compiled.version, "rules": len(compiled), "errors": []}


@router.post("/trace")
def trace(body: TraceRequest, holder: HolderDep, _: Analyst) -> dict[str, Any]:
    """Which sub-expressions of each rule held for these attributes, with values."""
    current = holder.current
    ids = tuple(body.rule_ids) if body.rule_ids is not None else None
    traces = current.trace(body.attributes, rule_ids=ids)
    return {
        "version": current.version,
        "hits": [t.rule_id for t in traces if t.hit],
        "traces": {t.rule_id: t.render() for t in traces},
    }


@router.post("/reload")
def reload_ruleset(holder: HolderDep, _: Lead) -> dict[str, Any]:
    """Re-read the ruleset file and the lists directory; swap only if all of it compiles."""
    return _result(holder.reload_lists())


@router.put("")
def replace_ruleset(body: RulesetText, holder: HolderDep, _: Lead) -> dict[str, Any]:
    """Run this ruleset text from now on (until the next file reload)."""
    return _result(holder.reload(text=body.text))


@router.get("/lists")
def view_lists(holder: HolderDep, _: Analyst) -> dict[str, Any]:
    return {"kinds": list(LIST_KINDS), "lists": _lists(holder)}


@router.put("/lists/{name}")
def put_list(name: str, body: ListBody, holder: HolderDep, _: Lead) -> dict[str, Any]:
    """Replace (or create) a list and recompile the ruleset over it, atomically."""
    try:
        lst = NamedList.build(name, body.kind, body.entries)
    except RuleCompileError as exc:
        raise HTTPException(422, {"ok": False, "errors": exc.lines()}) from None
    body_out = _result(holder.put_list(lst))
    body_out["list"] = {"name": lst.name, "kind": lst.kind, "size": len(lst), "version": lst.version}
    return body_out


@router.post("/lists/reload")
def reload_lists(holder: HolderDep, _: Lead) -> dict[str, Any]:
    """Re-read the lists directory (and the ruleset file) and recompile."""
    return _result(holder.reload_lists())
