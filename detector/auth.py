"""Access control: checkout tokens, analyst accounts, roles, signed sessions and CSRF.

Who may do what:

- **checkout** (a token from ``api.score_tokens``): ``POST /v1/score`` and nothing else.
- **analyst**: read the queue and cases, claim, verdict, escalate, snooze.
- **lead**: an analyst who may also run bulk actions and change lists and rules.
- **admin**: everything.

Users live in the case store (``riskwire users add``) with scrypt password hashes and
optional API tokens (stored as SHA-256). The UI keeps a session in a cookie signed with
``api.session_secret`` (itsdangerous); every UI form carries the session's CSRF token,
and JSON calls authenticated by that cookie must send it as ``X-CSRF-Token``. Bearer
tokens are not sent by browsers on their own, so they need no CSRF token.

``/v1/score`` when **no** checkout token is configured is open to loopback clients only
(the embedded demo); any configured token list is enforced for every client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status

__all__ = [
    "CSRF_HEADER",
    "LOOPBACK_HOSTS",
    "ROLES",
    "SESSION_COOKIE",
    "Principal",
    "SessionCodec",
    "check_csrf",
    "current_principal",
    "hash_password",
    "hash_token",
    "new_token",
    "require_role",
    "require_scorer",
    "role_at_least",
    "verify_password",
]

ROLES = ("analyst", "lead", "admin")
_RANK = {"analyst": 1, "lead": 2, "admin": 3}
SESSION_COOKIE = "rw_session"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE_S = 12 * 3600
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# scrypt cost: about 50 ms and 16 MiB per check on these machines.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        got = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(digest))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, digest)


def new_token() -> str:
    return "rw_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_at_least(role: str, needed: str) -> bool:
    return _RANK.get(role, 0) >= _RANK[needed]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user id (never an email or name), a role, and how they proved it."""

    subject: str
    role: str  # "checkout" or one of ROLES
    via: str  # "token", "session", "checkout-token" or "loopback"
    csrf: str | None = None


class SessionCodec:
    """Signs and checks the session cookie (timestamped, so it expires server-side too)."""

    def __init__(self, secret: str, *, max_age_s: int = SESSION_MAX_AGE_S) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self._s = URLSafeTimedSerializer(secret, salt="riskwire-session")
        self.max_age_s = max_age_s

    def dumps(self, data: dict[str, Any]) -> str:
        return self._s.dumps(data)

    def loads(self, value: str) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        try:
            data = self._s.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None


def _services(request: Request) -> Any:
    return request.app.state.services


def session_codec(request: Request) -> SessionCodec:
    app_state = request.app.state
    codec = getattr(app_state, "session_codec", None)
    if codec is None:
        secret = _services(request).settings.api.session_secret.get_secret_value()
        codec = SessionCodec(secret)
        app_state.session_codec = codec
    return codec


def case_store(request: Request) -> Any:
    return _services(request).extras.get("case_store")


def _checkout_tokens(request: Request) -> list[str]:
    return [t.get_secret_value() for t in _services(request).settings.api.score_tokens]


def current_principal(request: Request) -> Principal | None:
    """The caller from a bearer token or the session cookie; None when anonymous."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    principal = _resolve(request)
    request.state.principal = principal
    return principal


def _resolve(request: Request) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        for known in _checkout_tokens(request):
            if hmac.compare_digest(token.encode(), known.encode()):
                return Principal(subject="checkout", role="checkout", via="checkout-token")
        store = case_store(request)
        user = store.user_for_token(token) if store is not None and token else None
        if user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        return Principal(subject=user["username"], role=user["role"], via="token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        data = session_codec(request).loads(cookie)
        store = case_store(request)
        if data and store is not None:
            user = store.get_user(str(data.get("u", "")))
            # Re-read the account: a disabled user or a changed role takes effect at once.
            if user is not None and not user["disabled"]:
                return Principal(subject=user["username"], role=user["role"], via="session", csrf=data.get("c"))
    return None


def check_csrf(request: Request, principal: Principal, submitted: str | None) -> None:
    """Reject an unsafe request made with the session cookie but without its CSRF token."""
    if principal.via != "session":
        return
    if not submitted or not principal.csrf or not hmac.compare_digest(submitted, principal.csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")


def require_role(role: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller must hold ``role`` (or higher); checkout never does."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required",
                                headers={"WWW-Authenticate": "Bearer"})
        if not role_at_least(principal.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role")
        if request.method in _UNSAFE:
            check_csrf(request, principal, request.headers.get(CSRF_HEADER))
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def require_scorer(request: Request) -> Principal:
    """``/v1/score``: a checkout token (or an admin); open on loopback when none is configured."""
    tokens = _checkout_tokens(request)
    if not tokens:
        host = request.client.host if request.client else ""
        if host in LOOPBACK_HOSTS:
            return Principal(subject="loopback", role="checkout", via="loopback")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "scoring from outside loopback needs a checkout token (set RISKWIRE_API__SCORE_TOKENS)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = current_principal(request)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "checkout token required",
                            headers={"WWW-Authenticate": "Bearer"})
    if principal.role not in ("checkout", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "scoring needs a checkout token")
    return principal
