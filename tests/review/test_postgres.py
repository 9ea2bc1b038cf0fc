"""The case store on a real PostgreSQL: migrations up and down, claim-next under concurrency."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from detector.review import CaseStore, create_db_engine
from tests.review.conftest import make_decision

TABLES = {"rw_users", "rw_cases", "rw_audit", "rw_snoozes", "rw_labels", "rw_orders"}


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema, dropped afterwards (tests never collide)."""
    schema = f"rw_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"rw_alembic_version"}


@pytest.mark.integration
def test_migrations_go_up_and_down(schema_url: str):
    store = CaseStore.from_url(schema_url, upgrade=False)
    assert _tables(store.engine) == set()
    store.upgrade()
    assert store.current_revision() == "0001"
    assert _tables(store.engine) == TABLES
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("rw_cases")}
    assert "ix_rw_cases_state_priority" in indexes
    # The migrated schema is exactly what the code's tables declare.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from detector.review.tables import metadata

    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": "rw_alembic_version"})
        assert compare_metadata(ctx, metadata) == []
    store.downgrade("base")
    assert store.current_revision() is None
    assert _tables(store.engine) == set()
    store.upgrade()  # and up again on the emptied schema
    assert _tables(store.engine) == TABLES
    store.engine.dispose()


def _fill(store: CaseStore, factory, n: int) -> None:
    orders = [factory(order_id=f"o-{i}", payment={"amount": f"{10 + i}.00"}) for i in range(n)]
    store.record_decisions([make_decision(o, score=70 + i % 30) for i, o in enumerate(orders)],
                           {o.order_id: o for o in orders})


def _race(store: CaseStore, threads: int, work) -> list[int]:
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(i: int) -> None:
        try:
            start.wait()
            while True:
                case_id = work(f"analyst-{i}")
                if case_id is None:
                    return
                with lock:
                    got.append(case_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not errors, errors[:3]
    return got


@pytest.mark.integration
def test_claim_next_never_hands_a_case_out_twice_under_16_threads(schema_url: str, order_factory):
    store = CaseStore(create_db_engine(schema_url))
    store.upgrade()
    _fill(store, order_factory, 240)

    def claim_only(actor: str) -> int | None:
        case = store.claim_next(actor=actor, resume=False)
        return None if case is None else case["id"]

    got = _race(store, 16, claim_only)
    dupes = [cid for cid, n in Counter(got).items() if n > 1]
    assert dupes == []
    assert len(got) == 240
    assert store.stats()["depth"]["claimed"] == 240
    store.engine.dispose()


@pytest.mark.integration
def test_claim_then_verdict_workflow_under_concurrency(schema_url: str, order_factory):
    store = CaseStore(create_db_engine(schema_url))
    store.upgrade()
    _fill(store, order_factory, 120)

    def claim_and_decide(actor: str) -> int | None:
        case = store.claim_next(actor=actor)
        if case is None:
            return None
        store.verdict(case["id"], actor=actor, verdict="legit")
        return case["id"]

    got = _race(store, 12, claim_and_decide)
    assert sorted(got) == sorted(set(got)) and len(got) == 120
    assert len(store.iter_labels()) == 120
    claims = [h for h in store.audit_log(limit=1000) if h["action"] == "claim"]
    assert len(claims) == 120
    store.engine.dispose()


def test_sqlite_file_claims_are_atomic_across_threads(tmp_path, order_factory):
    store = CaseStore.from_url(f"sqlite:///{tmp_path}/race.db")
    _fill(store, order_factory, 60)

    def claim_only(actor: str) -> int | None:
        case = store.claim_next(actor=actor, resume=False)
        return None if case is None else case["id"]

    got = _race(store, 8, claim_only)
    assert len(got) == 60 and len(set(got)) == 60
    store.engine.dispose()
