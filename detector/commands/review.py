"""Review-queue commands: ``riskwire users add|list``, ``riskwire labels export``,
``riskwire db upgrade|downgrade|current``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

users_app = typer.Typer(help="Analyst accounts and roles.", no_args_is_help=True)
labels_app = typer.Typer(help="Labels (analyst verdicts, chargebacks, refunds).", no_args_is_help=True)
db_app = typer.Typer(help="The case store's schema (Alembic migrations).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(labels_app, name="labels")
    app.add_typer(db_app, name="db")


def _store(database_url: str | None, *, upgrade: bool = True):  # type: ignore[no-untyped-def]
    from detector.review.store import CaseStore
    from detector.settings import Settings

    url = database_url or Settings().store.database_url
    return CaseStore.from_url(url, upgrade=upgrade)


DbOpt = Annotated[str | None, typer.Option("--database-url", help="Default: settings store.database_url.")]


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name (an id, not an email).")],
    role: Annotated[str, typer.Option(help="analyst, lead or admin.")] = "analyst",
    password: Annotated[
        str | None, typer.Option(help="Password (prompted when omitted and --no-password is not given).")
    ] = None,
    no_password: Annotated[bool, typer.Option("--no-password", help="Token-only account.")] = False,
    token: Annotated[bool, typer.Option("--token", help="Also issue an API token (printed once).")] = False,
    database_url: DbOpt = None,
) -> None:
    """Create a user, or replace an existing user's role and credentials."""
    from detector.review.store import ReviewError

    if password is None and not no_password:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        issued = _store(database_url).add_user(
            username, role=role, password=None if no_password else password, with_token=token or no_password
        )
    except ReviewError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"user {username} ({role}) saved", err=True)
    if issued:
        typer.echo(issued)


@users_app.command("list")
def users_list(database_url: DbOpt = None) -> None:
    """List accounts: name, role, credentials, created."""
    for u in _store(database_url).list_users():
        creds = "+".join(k for k in ("password", "token") if u[k]) or "none"
        state = " disabled" if u["disabled"] else ""
        typer.echo(f"{u['username']}\t{u['role']}\t{creds}\t{u['created_at']:%Y-%m-%d}{state}")


@labels_app.command("export")
def labels_export(
    out: Annotated[Path, typer.Argument(help="Output file: .parquet, .csv or .jsonl.")],
    fmt: Annotated[str | None, typer.Option("--format", help="parquet, csv or jsonl (default: from suffix).")] = None,
    since: Annotated[str | None, typer.Option(help="Only labels from this ISO time on.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Write training labels (order_id, label, source, time) from the case store."""
    from detector.review.store import ReviewError

    start = datetime.fromisoformat(since) if since else None
    try:
        n = _store(database_url).export_labels(out, fmt=fmt, since=start)
    except ReviewError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {n} labels to {out}", err=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head", database_url: DbOpt = None) -> None:
    """Migrate the case store up to a revision (default: head)."""
    store = _store(database_url, upgrade=False)
    store.upgrade(revision)
    typer.echo(f"case store at revision {store.current_revision()}", err=True)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops every table).")],
    database_url: DbOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Migrate the case store down (data in dropped tables is lost)."""
    if not yes:
        typer.confirm(f"downgrade the case store to {revision}?", abort=True)
    store = _store(database_url, upgrade=False)
    store.downgrade(revision)
    typer.echo(f"case store at revision {store.current_revision()}", err=True)


@db_app.command("current")
def db_current(database_url: DbOpt = None) -> None:
    """Print the case store's schema revision."""
    typer.echo(_store(database_url, upgrade=False).current_revision() or "base")
