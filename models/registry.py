"""Versioned model artifacts on disk, verified before they load; current and challenger.

Layout under the registry directory::

    state.json                 {"current", "challenger", "previous": [...], "manifests": {version: sha256}}
    versions/v0001/
        manifest.json          version, kind, feature names, schema digest, training window,
                               metrics, library versions, created_at, sha256 of every file
        model.json             the bundle's parameters and scalars (JSON)
        arrays.npz             the fitted arrays (numpy, loaded with allow_pickle=False)
        lightgbm.txt           LightGBM's text model (supervised bundles only)

Loading checks, in order: the manifest's own sha256 against ``state.json``, every
file's sha256 against the manifest, and the manifest's feature-schema digest against
the digest the caller expects. Nothing is unpickled, ever: arrays are ``.npz`` read
with ``allow_pickle=False``, the rest is JSON and LightGBM text.

A *challenger* is a saved version that scores in shadow: the engine records its
decisions but never acts on them. Promoting it makes it current; ``rollback`` returns
to the version that was current before the last promotion.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from contracts.errors import ConfigError
from contracts.schema import FeatureSchema
from models.bundle import RiskBundle

__all__ = ["ModelRegistry", "library_versions"]

_VERSION_RE = re.compile(r"^v\d{4,}$")
_FILES = ("model.json", "arrays.npz", "lightgbm.txt")


def library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "scikit-learn": sklearn.__version__, "lightgbm": lightgbm.__version__}
    try:
        from importlib.metadata import version

        out["pyod"] = version("pyod")
    except Exception:
        out["pyod"] = "unknown"
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRegistry:
    """A directory of verified model versions with a current and a challenger pointer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._versions = self.path / "versions"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (two `riskwire train` runs, a promote during a save)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+b") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: best effort, no lock
                yield
                return
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- state ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        p = self.path / "state.json"
        if not p.exists():
            return {"current": None, "challenger": None, "previous": [], "manifests": {}}
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable registry state {p}: {exc}") from None

    def _write_state(self, state: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path / "state.json", json.dumps(state, indent=2).encode())

    # -- writing --------------------------------------------------------------------
    def save(self, bundle: RiskBundle, *, metadata: Mapping[str, Any] | None = None,
             promote: bool | None = None, challenger: bool = False) -> str:
        """Write a new version; optionally make it current or the challenger.

        ``promote=None`` (default) makes it current only when there is no current
        version yet (a fresh registry serves its first model); ``challenger=True`` makes
        it the shadow challenger instead. ``metadata`` may carry ``schema_digest`` (``FeatureSchema.digest``),
        ``training_window`` ([start, end] ISO strings), ``metrics`` and anything else
        JSON-able; it is stored in the manifest.
        """
        if promote and challenger:
            raise ConfigError("a version is either promoted or a challenger, not both")
        meta, arrays, model_text = bundle.get_state()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files: dict[str, bytes] = {
            "model.json": json.dumps(meta, sort_keys=True).encode(),
            "arrays.npz": buf.getvalue(),
        }
        if model_text is not None:
            files["lightgbm.txt"] = model_text.encode()

        with self._locked():
            return self._save_locked(bundle, files, metadata, promote=promote,
                                     challenger=challenger)

    def _save_locked(self, bundle: RiskBundle, files: dict[str, bytes],
                     metadata: Mapping[str, Any] | None, *, promote: bool | None,
                     challenger: bool) -> str:
        self._versions.mkdir(parents=True, exist_ok=True)
        state = self._state()
        existing = [int(p.name[1:]) for p in self._versions.iterdir()
                    if _VERSION_RE.match(p.name)]
        version = f"v{(max(existing) + 1) if existing else 1:04d}"
        md = dict(metadata or {})
        manifest = {
            "version": version,
            "kind": bundle.kind,
            "fingerprint": bundle.fingerprint(),
            "feature_names": list(bundle.feature_names),
            "schema_digest": md.pop("schema_digest", None),
            "training_window": md.pop("training_window", None),
            "metrics": md.pop("metrics", {}) or bundle.metadata.get("supervised", {}),
            "training": bundle.metadata,
            "libraries": library_versions(),
            "created_at": datetime.now(UTC).isoformat(),
            "files": {name: _sha256(data) for name, data in files.items()},
            "extra": md,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        staging = Path(tempfile.mkdtemp(dir=self._versions, prefix=f".{version}."))
        try:
            for name, data in files.items():
                (staging / name).write_bytes(data)
            (staging / "manifest.json").write_bytes(manifest_bytes)
            os.rename(staging, self._versions / version)
        except BaseException:
            for p in staging.glob("*"):
                p.unlink()
            staging.rmdir()
            raise
        state["manifests"][version] = _sha256(manifest_bytes)
        if promote is None:
            promote = not challenger and not state.get("current")
        if promote:
            self._promote_in(state, version)
        if challenger:
            state["challenger"] = version
        self._write_state(state)
        return version

    @staticmethod
    def _promote_in(state: dict[str, Any], version: str) -> None:
        if state.get("current") and state["current"] != version:
            state.setdefault("previous", []).append(state["current"])
        state["current"] = version
        if state.get("challenger") == version:
            state["challenger"] = None

    def promote(self, version: str) -> None:
        """Make ``version`` current (a challenger that is promoted stops being one)."""
        with self._locked():
            state = self._state()
            self._manifest(version, state)  # exists and verifies
            self._promote_in(state, version)
            self._write_state(state)

    def rollback(self) -> str:
        """Return to the version current before the last promotion; returns it."""
        with self._locked():
            state = self._state()
            previous = state.get("previous") or []
            if not previous:
                raise ConfigError("nothing to roll back to")
            state["current"] = previous.pop()
            state["previous"] = previous
            self._write_state(state)
            return state["current"]

    def set_challenger(self, version: str | None) -> None:
        """Score ``version`` in shadow (None clears the challenger)."""
        with self._locked():
            state = self._state()
            if version is not None:
                self._manifest(version, state)
            state["challenger"] = version
            self._write_state(state)

    # -- reading --------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        return self._state().get("current")

    @property
    def challenger(self) -> str | None:
        return self._state().get("challenger")

    def list(self) -> list[dict[str, Any]]:
        """Every version's manifest summary, oldest first, with its role."""
        state = self._state()
        out = []
        for version in sorted(state.get("manifests", {})):
            try:
                m = self._manifest(version, state)
            except ConfigError as exc:
                out.append({"version": version, "role": "corrupt", "error": str(exc)})
                continue
            role = ("current" if version == state.get("current")
                    else "challenger" if version == state.get("challenger") else "")
            out.append({
                "version": version, "role": role, "kind": m["kind"],
                "created_at": m["created_at"], "schema_digest": m.get("schema_digest"),
                "training_window": m.get("training_window"), "metrics": m.get("metrics", {}),
                "features": len(m["feature_names"]),
            })
        return out

    def manifest(self, version: str) -> dict[str, Any]:
        return self._manifest(version, self._state())

    def _manifest(self, version: str, state: Mapping[str, Any]) -> dict[str, Any]:
        if not _VERSION_RE.match(version):
            raise ConfigError(f"not a version name: {version!r}")
        expected = state.get("manifests", {}).get(version)
        if expected is None:
            raise ConfigError(f"unknown model version {version}")
        path = self._versions / version / "manifest.json"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if _sha256(data) != expected:
            raise ConfigError(f"manifest checksum mismatch for {version}")
        return json.loads(data)

    def has_current(self) -> bool:
        return self.current is not None

    def load(self, version: str, *, schema: FeatureSchema | None = None,
             schema_digest: str | None = None) -> RiskBundle:
        """Load a version after verifying every checksum and the schema digest.

        With ``schema`` (or just its ``digest``) the artifact must have been trained on
        that feature schema, and with ``schema`` every model input must be in it.
        """
        if schema is not None:
            schema_digest = schema.digest
        manifest = self._manifest(version, self._state())
        if schema_digest is not None and manifest.get("schema_digest") != schema_digest:
            raise ConfigError(
                f"model {version} was trained on feature schema "
                f"{manifest.get('schema_digest')}, the engine has {schema_digest}")
        blobs: dict[str, bytes] = {}
        for name, digest in manifest["files"].items():
            if name not in _FILES:
                raise ConfigError(f"unexpected file {name!r} in manifest of {version}")
            data = (self._versions / version / name).read_bytes()
            if _sha256(data) != digest:
                raise ConfigError(f"checksum mismatch for {version}/{name}")
            blobs[name] = data
        # verified above; allow_pickle=False keeps even a verified file from running code
        with np.load(io.BytesIO(blobs["arrays.npz"]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(blobs["model.json"])
        text = blobs["lightgbm.txt"].decode() if "lightgbm.txt" in blobs else None
        bundle = RiskBundle.from_state(version=version, meta=meta, arrays=arrays,
                                       model_text=text, metadata=manifest)
        if bundle.feature_names != tuple(manifest["feature_names"]):
            raise ConfigError(f"feature names of {version} disagree with its manifest")
        if schema is not None:
            missing = [n for n in bundle.feature_names if n not in schema]
            if missing:
                raise ConfigError(f"model {version} needs features the schema lacks: {missing[:5]}")
        return bundle

    def load_current(self, *, schema: FeatureSchema | None = None,
                     schema_digest: str | None = None) -> RiskBundle:
        version = self.current
        if version is None:
            raise ConfigError(f"no current model in {self.path}")
        return self.load(version, schema=schema, schema_digest=schema_digest)

    def load_challenger(self, *, schema: FeatureSchema | None = None,
                        schema_digest: str | None = None) -> RiskBundle | None:
        """The shadow challenger, or None when there is none."""
        version = self.challenger
        if version is None:
            return None
        return self.load(version, schema=schema, schema_digest=schema_digest)
