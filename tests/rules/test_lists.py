"""Lists: kinds and normalisation, files, versions, atomic store updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import DEFAULT_LISTS, ListStore, NamedList, RuleCompileError, load_list_file


def test_ip_lists_match_cidr_v4_and_v6() -> None:
    lst = NamedList.build("ips", "ip", ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", " 198.51.100.0/31 "])
    match = lst.matcher()
    assert match("10.200.3.4") and match("192.0.2.1") and match("2001:db8:1::5") and match("198.51.100.1")
    assert not match("11.0.0.1") and not match("192.0.2.2") and not match("2001:db9::1") and not match("x")
    assert not match("")


def test_normalisation_by_kind() -> None:
    assert NamedList.build("e", "email", [" A@B.com "]).matcher()("a@b.COM")
    dom = NamedList.build("d", "email_domain", ["@Spam.Example"]).matcher()
    assert dom("x@spam.example") and dom("SPAM.example") and not dom("x@notspam.example")
    assert NamedList.build("c", "card", ["fp_1"]).matcher()(" fp_1")
    assert not NamedList.build("c", "card", ["fp_1"]).matcher()("FP_1")  # fingerprints are exact
    assert NamedList.build("a", "address", ["1 Main  St|1000|us"]).matcher()("1 main st|1000|US")


def test_version_is_a_content_hash() -> None:
    a = NamedList.build("x", "email", ["a@b.c", "d@e.f"])
    b = NamedList.build("x", "email", ["D@E.F", "a@b.c", ""])
    c = NamedList.build("x", "email", ["a@b.c"])
    assert a.version == b.version != c.version
    assert len(a) == 2


def test_bad_entries_name_the_line_but_not_the_value(tmp_path: Path) -> None:
    path = tmp_path / "blocked_ips.txt"
    path.write_text("# kind: ip\n10.0.0.1\n# a comment\nnot-an-ip\n10.0.0.0/33\n", encoding="utf-8")
    with pytest.raises(RuleCompileError) as info:
        load_list_file(path)
    assert info.value.lines() == [
        f"{path}:4:1: not an IP address or CIDR network",
        f"{path}:5:1: not an IP address or CIDR network",
    ]
    assert "not-an-ip" not in str(info.value)


def test_list_files_and_directory(tmp_path: Path) -> None:
    (tmp_path / "trusted_customers.txt").write_text("# kind: customer\nc-1\nc-2  # VIP since 2019\n\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("x\ny\n", encoding="utf-8")
    store = ListStore.from_dir(tmp_path)
    trusted = store.get("trusted_customers")
    assert trusted is not None and trusted.kind == "customer" and trusted.entries == frozenset({"c-1", "c-2"})
    plain = store.get("plain")
    assert plain is not None and plain.kind == "string"
    # The default lists exist (empty) unless overridden.
    assert set(DEFAULT_LISTS) <= {lst.name for lst in store}
    assert len(store.get("blocked_ips") or ()) == 0


def test_unknown_kind_and_bad_name() -> None:
    with pytest.raises(RuleCompileError, match="unknown list kind"):
        NamedList.build("x", "phone", [])
    with pytest.raises(RuleCompileError, match="list name"):
        NamedList.build("bad-name", "string", [])


def test_directory_load_is_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# kind: ip\n10.0.0.1\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("# kind: ip\nnope\n", encoding="utf-8")
    store = ListStore()
    with pytest.raises(RuleCompileError):
        store.load_dir(tmp_path)
    assert len(store) == 0


def test_store_version_changes_with_any_list() -> None:
    store = ListStore([NamedList.build("a", "string", ["1"])])
    v1 = store.version
    snapshot = store.snapshot()
    store.put(NamedList.build("a", "string", ["1", "2"]))
    assert store.version != v1
    # A snapshot taken before is untouched by the swap.
    assert snapshot["a"].entries == frozenset({"1"})
    assert store.remove("a") and not store.remove("a")
