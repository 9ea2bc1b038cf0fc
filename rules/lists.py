"""Named, versioned block and allow lists that rules reference as ``@name``.

A list has a kind, which fixes how its entries and the probed value are normalised:

========== ============================================ ==================================
kind       entries                                      probe
========== ============================================ ==================================
email      ``anna@example.com`` (case-folded, trimmed)  the same normalisation
email_domain ``mailinator.com`` (a leading ``@`` is ok) the part after ``@`` if any, folded
card       card fingerprints, exact                     exact (trimmed)
ip         ``203.0.113.7``, ``198.51.100.0/24``, v4/v6  any address inside any network
device     device ids, exact                            exact (trimmed)
address    ``address_key`` values                       case-folded, spaces collapsed
customer   customer ids, exact                          exact (trimmed)
string     anything, exact                              exact
========== ============================================ ==================================

Address entries are ``address_key`` values as the featuriser computes them (street lines,
postal code and country, already normalised: ``1250 forwarding way unit 4410|19801|us``);
the list only case-folds and collapses whitespace, so keys copied from a decision match.

Lists are immutable snapshots; a :class:`ListStore` maps names to snapshots and swaps
them atomically (one reference assignment), so readers never see half a list. List files
live in one directory, one file per list: ``<name>.txt``, one entry per line, ``#`` starts
a comment, and a first-line directive ``# kind: ip`` sets the kind (default ``string``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from rules.errors import CompileIssue, RuleCompileError

__all__ = [
    "DEFAULT_LISTS",
    "LIST_KINDS",
    "ListKind",
    "ListStore",
    "NamedList",
    "load_list_file",
    "normalise_address",
]

ListKind = Literal["email", "email_domain", "card", "ip", "device", "address", "customer", "string"]
LIST_KINDS: tuple[str, ...] = get_args(ListKind)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KIND_DIRECTIVE = re.compile(r"^#\s*kind\s*:\s*([a-z_]+)\s*$")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
#: Bounds keep an uploaded list from exhausting memory.
MAX_ENTRIES = 5_000_000
MAX_ENTRY_LENGTH = 512


#: Lists the default ruleset references; they exist (empty) unless a lists directory
#: or the API provides them.
DEFAULT_LISTS: dict[str, str] = {
    "trusted_customers": "customer",
    "blocked_emails": "email",
    "blocked_email_domains": "email_domain",
    "blocked_cards": "card",
    "blocked_ips": "ip",
    "blocked_devices": "device",
    "blocked_addresses": "address",
}


def normalise_address(value: str) -> str:
    """Case-folded, whitespace collapsed: entries are ``address_key`` feature values."""
    return " ".join(value.casefold().split())


def _exact(value: str) -> str:
    return value.strip()


def _email(value: str) -> str:
    return value.strip().casefold()


def _domain(value: str) -> str:
    v = value.strip().casefold()
    return v.rsplit("@", 1)[-1] if "@" in v else v


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "email": _email,
    "email_domain": _domain,
    "card": _exact,
    "device": _exact,
    "customer": _exact,
    "string": lambda v: v,
    "address": normalise_address,
}


@dataclass(frozen=True)
class NamedList:
    """An immutable list snapshot; ``version`` is a content hash (name, kind, entries)."""

    name: str
    kind: ListKind
    entries: frozenset[str]
    #: For ``ip`` lists: prefix length -> set of network integers, per IP version.
    _networks: tuple[tuple[int, int, frozenset[int]], ...] = field(default=(), repr=False, compare=False)
    version: str = field(default="", compare=False)

    @classmethod
    def build(cls, name: str, kind: str, entries: Iterable[str]) -> NamedList:
        """Validate and normalise entries; raises RuleCompileError naming the bad line."""
        issues: list[CompileIssue] = []
        if not _NAME.match(name or ""):
            issues.append(CompileIssue(1, 1, f"list name {name!r} must be letters, digits and _"))
        if kind not in LIST_KINDS:
            issues.append(CompileIssue(1, 1, f"unknown list kind {kind!r}; one of {', '.join(LIST_KINDS)}"))
            raise RuleCompileError(issues, source=f"@{name}")
        normalised: set[str] = set()
        networks: dict[tuple[int, int], set[int]] = {}
        for n, raw in enumerate(entries, start=1):
            if not isinstance(raw, str):
                issues.append(CompileIssue(n, 1, "entries must be strings"))
                continue
            entry = raw.strip()
            if not entry:
                continue
            if len(entry) > MAX_ENTRY_LENGTH:
                issues.append(CompileIssue(n, 1, f"entry longer than {MAX_ENTRY_LENGTH} characters"))
                continue
            if kind == "ip":
                try:
                    net = ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    # Never echo the entry: lists hold personal data.
                    issues.append(CompileIssue(n, 1, "not an IP address or CIDR network"))
                    continue
                normalised.add(str(net))
                bits = net.max_prefixlen
                networks.setdefault((net.version, net.prefixlen), set()).add(
                    int(net.network_address) >> (bits - net.prefixlen)
                )
            else:
                normalised.add(_NORMALISERS[kind](entry))
            if len(normalised) > MAX_ENTRIES:
                issues.append(CompileIssue(n, 1, f"more than {MAX_ENTRIES} entries"))
                break
        if issues:
            raise RuleCompileError(issues, source=f"@{name}")
        digest = hashlib.sha256(f"{name}\0{kind}\0".encode())
        for entry in sorted(normalised):
            digest.update(entry.encode())
            digest.update(b"\n")
        nets = tuple(
            sorted((version, plen, frozenset(values)) for (version, plen), values in networks.items())
        )
        return cls(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            entries=frozenset(normalised),
            _networks=nets,
            version=digest.hexdigest()[:12],
        )

    def __len__(self) -> int:
        return len(self.entries)

    def matcher(self) -> Callable[[str], bool]:
        """A fast membership test for already-fetched string values; never raises."""
        entries = self.entries
        if self.kind == "ip":
            nets = self._networks
            ip_address = ipaddress.ip_address

            def in_networks(value: str) -> bool:
                try:
                    ip = ip_address(value.strip())
                except ValueError:
                    return False
                as_int = int(ip)
                bits = ip.max_prefixlen
                version = ip.version
                for v, plen, values in nets:
                    if v == version and (as_int >> (bits - plen)) in values:
                        return True
                return False

            return in_networks
        if self.kind == "string":
            return entries.__contains__
        norm = _NORMALISERS[self.kind]
        return lambda value: norm(value) in entries


def load_list_file(path: Path) -> NamedList:
    """Read ``<name>.txt``: optional ``# kind: K`` first line, one entry per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleCompileError([CompileIssue(1, 1, f"cannot read list: {exc}")], source=str(path)) from None
    kind = "string"
    entries: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if n == 1 and (m := _KIND_DIRECTIVE.match(stripped)):
            kind = m.group(1)
            continue
        # Keep line numbers aligned with the file for error messages.
        entries.append("" if stripped.startswith("#") else stripped.split(" #", 1)[0])
    try:
        return NamedList.build(path.stem, kind, _aligned(text, entries))
    except RuleCompileError as exc:
        raise RuleCompileError(exc.errors, source=str(path)) from None


def _aligned(text: str, entries: list[str]) -> list[str]:
    # When the first line was the kind directive it is not in ``entries``; pad it back
    # so error line numbers match the file.
    first = text.splitlines()[0].strip() if text else ""
    return ["", *entries] if _KIND_DIRECTIVE.match(first) else entries


class ListStore:
    """Name -> list snapshot, safe to read from many threads while one thread writes.

    Writers build a new dict and swap the reference, so a reader holding the mapping
    from :meth:`snapshot` sees one consistent set of lists.
    """

    def __init__(self, lists: Iterable[NamedList] = ()) -> None:
        self._lists: Mapping[str, NamedList] = {lst.name: lst for lst in lists}
        self._write = threading.Lock()

    @classmethod
    def from_dir(cls, directory: Path | None, *, defaults: bool = True) -> ListStore:
        """The default (empty) lists, overridden by every ``*.txt`` in ``directory``."""
        store = cls(NamedList.build(n, k, ()) for n, k in DEFAULT_LISTS.items()) if defaults else cls()
        if directory is not None:
            store.load_dir(directory)
        return store

    def snapshot(self) -> Mapping[str, NamedList]:
        return self._lists

    def get(self, name: str) -> NamedList | None:
        return self._lists.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._lists

    def __iter__(self) -> Iterator[NamedList]:
        return iter(self._lists.values())

    def __len__(self) -> int:
        return len(self._lists)

    @property
    def version(self) -> str:
        """Hash of every list's version; changes whenever any list changes."""
        digest = hashlib.sha256()
        for name in sorted(self._lists):
            digest.update(f"{name}={self._lists[name].version};".encode())
        return digest.hexdigest()[:12]

    def put(self, lst: NamedList) -> None:
        with self._write:
            new = dict(self._lists)
            new[lst.name] = lst
            self._lists = new

    def remove(self, name: str) -> bool:
        with self._write:
            if name not in self._lists:
                return False
            new = dict(self._lists)
            del new[name]
            self._lists = new
            return True

    def load_dir(self, directory: Path) -> list[str]:
        """Load every ``*.txt`` in ``directory`` at once; all or nothing. Returns names."""
        if not directory.is_dir():
            raise RuleCompileError([CompileIssue(1, 1, "lists directory not found")], source=str(directory))
        loaded: list[NamedList] = []
        errors: list[CompileIssue] = []
        for path in sorted(directory.glob("*.txt")):
            try:
                loaded.append(load_list_file(path))
            except RuleCompileError as exc:
                errors.extend(
                    CompileIssue(e.line, e.column, e.message, source=str(path)) for e in exc.errors
                )
        if errors:
            raise RuleCompileError(errors, source=str(directory))
        with self._write:
            new = dict(self._lists)
            new.update({lst.name: lst for lst in loaded})
            self._lists = new
        return [lst.name for lst in loaded]
