"""Hot reload: atomic swaps on file change or API call; failures keep the old ruleset."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rules import NamedList, RulesetHolder

from .conftest import make_schema

RULES_V1 = "ruleset shop\nrule big: reason: BIG review if :amount: > 100\n"
RULES_V2 = "ruleset shop\nrule big: reason: BIG review if :amount: > 10\n"


def write(path: Path, text: str) -> None:
    # Write-then-rename, as an editor or deploy tool does, so the watcher never
    # reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def test_reload_from_file(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    write(path, RULES_V1)
    holder = RulesetHolder(schema=make_schema(), ruleset_path=path)
    v1 = holder.current
    assert not v1.evaluate({"amount": 50}).hits
    write(path, RULES_V2)
    result = holder.reload()
    assert result.ok and result.changed and result.version == holder.current.version != v1.version
    assert holder.current.evaluate({"amount": 50}).hits
    # The old object still answers as before: whoever holds it is unaffected.
    assert not v1.evaluate({"amount": 50}).hits


def test_failed_reload_keeps_previous_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    write(path, RULES_V1)
    holder = RulesetHolder(schema=make_schema(), ruleset_path=path)
    before = holder.current
    write(path, "rule big: reason: BIG review if :amonut: > 10\n")
    result = holder.reload()
    assert not result.ok
    assert result.errors == (f"{path}:1:33: unknown attribute :amonut:; did you mean :amount:?",)
    assert holder.current is before
    assert holder.last_error == result


def test_reload_from_api_text_and_validate() -> None:
    holder = RulesetHolder(schema=make_schema(), text=RULES_V1)
    assert holder.reload(text=RULES_V2).ok
    assert holder.current.evaluate({"amount": 50}).hits
    bad = holder.reload(text="rule x: reason: X review if")
    assert not bad.ok and bad.errors[0].startswith("<api>:1:")
    assert holder.current.evaluate({"amount": 50}).hits


def test_put_list_recompiles_over_the_new_list() -> None:
    holder = RulesetHolder(schema=make_schema(), text="rule t: reason: T allow if :customer_id: in @trusted_customers")
    assert not holder.current.evaluate({"customer_id": "c-9"}).hits
    old_version = holder.current.version
    result = holder.put_list(NamedList.build("trusted_customers", "customer", ["c-9"]))
    assert result.ok and holder.current.version != old_version
    assert holder.current.evaluate({"customer_id": "c-9"}).hits


def test_watcher_picks_up_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    lists = tmp_path / "lists"
    lists.mkdir()
    write(path, "rule t: reason: T decline if :device_id: in @blocked_devices\n")
    holder = RulesetHolder(schema=make_schema(), ruleset_path=path, lists_dir=lists)
    holder.start_watching(interval_s=0.05)
    try:
        (lists / "blocked_devices.txt").write_text("# kind: device\nd-7\n", encoding="utf-8")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not holder.current.evaluate({"device_id": "d-7"}).hits:
            time.sleep(0.05)
        assert holder.current.evaluate({"device_id": "d-7"}).hits
        write(path, RULES_V2)
        while time.monotonic() < deadline and holder.current.rules[0].rule.id != "big":
            time.sleep(0.05)
        assert holder.current.rules[0].rule.id == "big"
    finally:
        holder.stop()


@pytest.mark.integration
def test_hot_reload_under_load_never_mixes_versions() -> None:
    """Threads evaluate while another swaps rulesets and lists: no error, no mixing.

    Version k's ruleset has three rules that all hit, all named with suffix k; an
    outcome mixing versions would show two suffixes, or a suffix that is not the
    version of the ruleset object the thread took.
    """
    schema = make_schema()

    def ruleset(k: int) -> str:
        return (
            f"ruleset load\nrule a_{k}: reason: A review if :amount: >= 0\n"
            f"rule b_{k}: reason: B decline if not (:customer_id: in @trusted_customers)\n"
            f"rule c_{k} shadow: reason: C review if :amount: + {k} > -1\n"
        )

    holder = RulesetHolder(schema=schema, text=ruleset(0))
    suffix_of = {holder.current.version: "0"}
    errors: list[BaseException] = []
    counts = [0] * 3
    stop = threading.Event()

    def hammer(n: int) -> None:
        try:
            while not stop.is_set():
                current = holder.current
                outcome = current.evaluate({"amount": 5.0, "customer_id": "c-1"})
                suffixes = {h.rule_id.split("_")[1] for h in outcome.hits}
                assert len(outcome.hits) == 3, outcome
                assert suffixes == {suffix_of[current.version]}, (suffixes, current.version)
                counts[n] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(len(counts))]
    # Register a version before it can be observed: compile it first, then swap.
    for t in threads:
        t.start()
    try:
        for k in range(1, 25):
            suffix_of[holder.validate(ruleset(k)).version] = str(k)
            assert holder.reload(text=ruleset(k)).ok
            if k % 10 == 0:
                # A list swap recompiles too, with the same text: a new version.
                lst = NamedList.build("trusted_customers", "customer", [f"c-{k + 100}"])
                from rules import ListStore, compile_ruleset

                preview = ListStore(list(holder.lists))
                preview.put(lst)
                suffix_of[compile_ruleset(ruleset(k), schema=schema, lists=preview, source="<api>").version] = str(k)
                assert holder.put_list(lst).ok
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[0]
    assert all(c > 0 for c in counts)
    assert holder.current.rules[0].rule.id == "a_24"


def test_a_changed_file_takes_over_from_api_text(tmp_path: Path) -> None:
    path = tmp_path / "shop.rules"
    write(path, RULES_V1)
    holder = RulesetHolder(schema=make_schema(), ruleset_path=path)
    holder.check_files()  # nothing changed yet
    assert holder.reload(text="ruleset api\nrule x: reason: X review if :amount: > 1\n").ok
    assert holder.current.name == "api"
    assert holder.check_files() is None
    time.sleep(0.01)
    write(path, RULES_V2 + "# deployed\n")
    result = holder.check_files()
    assert result is not None and result.ok
    assert holder.current.name == "shop" and holder.current.evaluate({"amount": 50}).hits


def test_list_files_and_api_lists_on_reload(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "blocked_devices.txt").write_text("# kind: device\nd-1\n", encoding="utf-8")
    (lists / "extra.txt").write_text("x\n", encoding="utf-8")
    holder = RulesetHolder(schema=make_schema(), text="rule t: reason: T decline if :device_id: in @blocked_devices",
                           lists_dir=lists)
    assert holder.put_list(NamedList.build("api_devices", "device", ["d-api"])).ok
    (lists / "blocked_devices.txt").unlink()
    (lists / "extra.txt").unlink()
    result = holder.reload_lists()
    assert result.ok
    names = {lst.name for lst in holder.lists}
    assert "api_devices" in names  # uploaded through the API: kept
    assert "extra" not in names  # its file was deleted: unloaded
    blocked = holder.lists.get("blocked_devices")
    assert blocked is not None and len(blocked) == 0  # back to the empty default
    assert not holder.current.evaluate({"device_id": "d-1"}).hits
