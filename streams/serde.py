"""Bytes <-> typed events. The only place (with the HTTP body) where bytes become objects.

Error messages name the field and the problem but never echo the input value: the
payload may hold an email, a card fingerprint or free text, and errors end up in logs
and dead-letter headers.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from contracts import Decision, InvalidEvent, Label, Order, ReturnRequest

__all__ = [
    "decode",
    "decode_label",
    "decode_order",
    "decode_return",
    "describe_validation_error",
    "encode",
]

E = TypeVar("E", bound=BaseModel)

#: Refuse absurd records before parsing them (a Kafka record may be up to 1 MB by default).
MAX_EVENT_BYTES = 512 * 1024


def describe_validation_error(exc: ValidationError) -> tuple[str, list[dict[str, object]]]:
    items: list[dict[str, object]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(body)"
        items.append({"loc": loc, "msg": err.get("msg", "invalid"), "type": err.get("type", "")})
    shown = "; ".join(f"{i['loc']}: {i['msg']}" for i in items[:5])
    more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
    return f"{exc.title} invalid: {shown}{more}", items


def decode(kind: type[E], value: bytes | None) -> E:
    """Parse JSON bytes into ``kind``; raise :class:`InvalidEvent` with a readable reason."""
    if value is None:
        raise InvalidEvent(f"{kind.__name__} invalid: empty record (tombstone)")
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"{kind.__name__} invalid: {len(value)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        return kind.model_validate_json(value)
    except ValidationError as exc:
        message, items = describe_validation_error(exc)
        raise InvalidEvent(message, errors=items) from None


def decode_order(value: bytes | None) -> Order:
    return decode(Order, value)


def decode_return(value: bytes | None) -> ReturnRequest:
    return decode(ReturnRequest, value)


def decode_label(value: bytes | None) -> Label:
    return decode(Label, value)


def encode(event: Decision | Order | ReturnRequest | Label) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()
