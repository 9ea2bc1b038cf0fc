"""A fake OpenAI client for unit tests of the logic around the LLM (not of the LLM)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

__all__ = ["FakeClient", "answer"]


def answer(labels: dict[str, int], *, finish_reason: str = "stop") -> Any:
    content = json.dumps({"labels": [{"label": k, "confidence": v} for k, v in labels.items()]})
    return raw(content, finish_reason=finish_reason)


def raw(content: str | None, *, finish_reason: str = "stop") -> Any:
    return SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(content=content), finish_reason=finish_reason)]
    )


class _Completions:
    def __init__(self, owner: FakeClient) -> None:
        self._owner = owner

    def create(self, **kwargs: Any) -> Any:
        o = self._owner
        with o.lock:
            o.calls.append(kwargs)
            o.active += 1
            o.max_active = max(o.max_active, o.active)
        try:
            if o.gate is not None:
                o.gate.wait(5.0)
            if o.delay_s:
                time.sleep(o.delay_s)
            result = o.respond(kwargs)
            if isinstance(result, BaseException):
                raise result
            return result
        finally:
            with o.lock:
                o.active -= 1


class FakeClient:
    """Records every request; ``respond(kwargs)`` returns a response or an exception."""

    def __init__(
        self,
        respond: Callable[[dict[str, Any]], Any] | None = None,
        *,
        delay_s: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        self.respond = respond or (lambda _kw: answer({"benign": 90}))
        self.delay_s = delay_s
        self.gate = gate
        self.calls: list[dict[str, Any]] = []
        self.options: dict[str, Any] | None = None
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.chat = SimpleNamespace(completions=_Completions(self))

    def with_options(self, **kwargs: Any) -> FakeClient:
        self.options = kwargs
        return self

    def sent_texts(self) -> list[str]:
        return [json.loads(c["messages"][1]["content"])["text"] for c in self.calls]
