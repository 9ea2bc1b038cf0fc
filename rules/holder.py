"""Hot reload: hand out the current compiled ruleset, swap it atomically.

``RulesetHolder.current`` is a single attribute read, so a request or a batch takes one
immutable ruleset and keeps it (the engine reads ``current`` once per batch): no decision
mixes two versions and nothing waits while a new version compiles. A reload, on a file
change (a polling watcher thread) or an API call, compiles the new text and the lists
beside it first; only if that succeeds is the reference swapped. A failing load keeps the
previous ruleset and is reported in ``last_error`` (and the log), never raised at a
checkout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from contracts.schema import FeatureSchema
from rules.compiler import CompiledRuleset, compile_ruleset
from rules.errors import CompileIssue, RuleCompileError
from rules.lists import ListStore, NamedList

__all__ = [
    "DEFAULT_RULESET_PATH",
    "ReloadResult",
    "RulesetHolder",
    "load_default_ruleset",
]

log = logging.getLogger(__name__)

#: The default e-commerce ruleset shipped with riskwire (documented in rules/README.md).
DEFAULT_RULESET_PATH = Path(str(resources.files("rules").joinpath("default.rules")))


def load_default_ruleset(schema: FeatureSchema, lists: ListStore | None = None) -> CompiledRuleset:
    """The shipped default ruleset, compiled against ``schema`` and the default lists."""
    if lists is None:
        lists = ListStore.from_dir(None)
    text = DEFAULT_RULESET_PATH.read_text(encoding="utf-8")
    return compile_ruleset(text, schema=schema, lists=lists, source=str(DEFAULT_RULESET_PATH))


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str
    #: ``FILE:LINE:COLUMN: message`` lines when the load failed.
    errors: tuple[str, ...] = ()
    changed: bool = False


class RulesetHolder:
    """The current ruleset and its lists, with atomic hot reload; thread-safe."""

    def __init__(
        self,
        *,
        schema: FeatureSchema,
        ruleset_path: Path | None = None,
        lists_dir: Path | None = None,
        lists: ListStore | None = None,
        text: str | None = None,
        on_reload: Callable[[ReloadResult], None] | None = None,
    ) -> None:
        """Compile the initial ruleset; raises RuleCompileError if it does not load.

        ``ruleset_path`` None means the shipped default; ``text`` (tests, the API) wins
        over the path. The default lists exist empty; ``lists_dir`` files override them.
        """
        self.schema = schema
        self.ruleset_path = Path(ruleset_path) if ruleset_path is not None else DEFAULT_RULESET_PATH
        self.lists_dir = Path(lists_dir) if lists_dir is not None else None
        self.lists = lists if lists is not None else ListStore.from_dir(self.lists_dir)
        self._text = text
        self._on_reload = on_reload
        #: Names of the lists that came from files (so a deleted file unloads its list).
        self._from_files: set[str] = (
            {p.stem for p in self.lists_dir.glob("*.txt")} if lists is None and self.lists_dir is not None else set()
        )
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._stamp = self._file_stamp()
        self.last_error: ReloadResult | None = None
        self.reloads = 0
        self._current = self._compile(self._read_text())

    @classmethod
    def from_settings(
        cls,
        *,
        ruleset_path: Path | None,
        lists_dir: Path | None,
        schema: FeatureSchema,
        watch_interval_s: float | None = None,
    ) -> RulesetHolder:
        holder = cls(schema=schema, ruleset_path=ruleset_path, lists_dir=lists_dir)
        if watch_interval_s:
            holder.start_watching(interval_s=watch_interval_s)
        return holder

    @property
    def current(self) -> CompiledRuleset:
        return self._current

    # -- loading ---------------------------------------------------------------------

    def _read_text(self) -> str:
        if self._text is not None:
            return self._text
        try:
            return self.ruleset_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleCompileError(
                [CompileIssue(1, 1, f"cannot read ruleset: {exc.__class__.__name__}")],
                source=str(self.ruleset_path),
            ) from None

    def _source_name(self) -> str:
        return "<api>" if self._text is not None else str(self.ruleset_path)

    def _compile(self, text: str) -> CompiledRuleset:
        return compile_ruleset(text, schema=self.schema, lists=self.lists, source=self._source_name())

    def _swap(self, build: Callable[[], CompiledRuleset]) -> ReloadResult:
        with self._reload_lock:
            previous = self._current
            try:
                new = build()
            except RuleCompileError as exc:
                result = ReloadResult(False, previous.version, tuple(exc.lines()))
                self.last_error = result
                log.warning("ruleset reload failed, keeping %s: %s", previous.version, exc)
                self._notify(result)
                return result
            # The one reference assignment that readers observe.
            self._current = new
            self.last_error = None
            self.reloads += 1
            result = ReloadResult(True, new.version, (), changed=new.version != previous.version)
            if result.changed:
                log.info("ruleset %s -> %s (%d rules)", previous.version, new.version, len(new))
            self._notify(result)
            return result

    def _notify(self, result: ReloadResult) -> None:
        if self._on_reload is not None:
            try:
                self._on_reload(result)
            except Exception:  # a reporting hook must not break reloads
                log.exception("on_reload hook failed")

    def reload(self, *, text: str | None = None) -> ReloadResult:
        """Recompile from the file (or from ``text``, which then replaces the file's)."""

        def build() -> CompiledRuleset:
            source = text if text is not None else self._read_text()
            if text is not None:
                return compile_ruleset(text, schema=self.schema, lists=self.lists, source="<api>")
            return self._compile(source)

        result = self._swap(build)
        if result.ok and text is not None:
            self._text = text
        return result

    def validate(self, text: str) -> CompiledRuleset:
        """Compile ``text`` against the current schema and lists without swapping."""
        return compile_ruleset(text, schema=self.schema, lists=self.lists, source="<api>")

    def put_list(self, lst: NamedList) -> ReloadResult:
        """Add or replace a list and recompile the ruleset over it, atomically.

        If the ruleset no longer compiles (it cannot, normally: a list only adds
        entries), the list change is rolled back and the old ruleset stays.
        """
        with self._reload_lock:
            old = self.lists.get(lst.name)
            self.lists.put(lst)
        result = self._swap(lambda: self._compile(self._read_text()))
        if not result.ok:
            with self._reload_lock:
                if old is None:
                    self.lists.remove(lst.name)
                else:
                    self.lists.put(old)
        return result

    def reload_lists(self) -> ReloadResult:
        """Re-read the lists directory, then recompile; all or nothing."""

        def build() -> CompiledRuleset:
            fresh = ListStore.from_dir(None)  # the empty defaults
            from_files: set[str] = set()
            if self.lists_dir is not None:
                from_files = set(fresh.load_dir(self.lists_dir))
            # Lists uploaded through the API survive; a list whose file was deleted
            # does not (it falls back to its empty default, if it has one).
            for lst in self.lists:
                if lst.name not in from_files and lst.name not in self._from_files:
                    fresh.put(lst)
            compiled = compile_ruleset(self._read_text(), schema=self.schema, lists=fresh, source=self._source_name())
            self.lists = fresh
            self._from_files = from_files
            return compiled

        return self._swap(build)

    # -- watching --------------------------------------------------------------------

    def _file_stamp(self) -> tuple[tuple[str, float, int], ...]:
        paths = [self.ruleset_path]
        if self.lists_dir is not None and self.lists_dir.is_dir():
            paths.extend(sorted(self.lists_dir.glob("*.txt")))
        stamp = []
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue
            stamp.append((str(p), st.st_mtime, st.st_size))
        return tuple(stamp)

    def check_files(self) -> ReloadResult | None:
        """Reload if the ruleset file or a list file changed since the last look."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return None
        ruleset_file = str(self.ruleset_path)
        before = [entry for entry in self._stamp if entry[0] == ruleset_file]
        after = [entry for entry in stamp if entry[0] == ruleset_file]
        self._stamp = stamp
        if before != after:
            # A new ruleset file (a deploy) takes over from text set through the API.
            self._text = None
        # Re-reads the lists and the ruleset text together: one swap for both.
        return self.reload_lists()

    def start_watching(self, *, interval_s: float = 2.0) -> None:
        """Poll the files' mtimes in a daemon thread (no inotify dependency)."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.check_files()
                except Exception:  # the watcher must outlive any surprise
                    log.exception("ruleset watcher failed")

        self._watcher = threading.Thread(target=loop, name="riskwire-rules-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
