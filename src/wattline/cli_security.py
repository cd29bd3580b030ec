"""``wattline tokens`` and ``wattline users``: API tokens and dashboard users.

Secrets are printed once (a new token) or never (passwords, token hashes).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattline.security.roles import ROLES, RoleError, validate_role

tokens_app = typer.Typer(help="API tokens for the REST API.", no_args_is_help=True)
users_app = typer.Typer(help="Dashboard users.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)
ROLE_HELP = " | ".join(reversed(ROLES))


@contextmanager
def _main_db():
    """A transaction on the writable main database, closing the context afterwards."""
    from wattline.context import open_context

    ctx = open_context()
    try:
        with ctx.dbs.main.begin() as conn:
            yield conn
    finally:
        ctx.close()


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@tokens_app.command("create")
def tokens_create(
    role: str = typer.Option(..., help=ROLE_HELP),
    name: Optional[str] = typer.Option(None, help="a label to recognise the token by (default: ROLE-token)"),
    organization_id: Optional[int] = typer.Option(None, "--organization-id", help="restrict to one organization"),
) -> None:
    """Create an API token and print it once."""
    from wattline.security.tokens import TokenError, create_token

    try:
        with _main_db() as conn:
            token = create_token(conn, name or f"{role}-token", role, organization_id)
    except (RoleError, TokenError) as exc:
        _fail(str(exc))
    # plain echo: Rich could wrap or restyle the one line a user must copy exactly
    typer.echo(token)
    err.print("Store this token now: it will not be shown again (only its hash is kept).")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (name, role, created); never the token or its hash."""
    from wattline.security.tokens import list_tokens

    with _main_db() as conn:
        rows = list_tokens(conn)
    table = Table("id", "name", "role", "organization", "created")
    for r in rows:
        created = r["created_at"].isoformat(timespec="seconds") if r["created_at"] else ""
        table.add_row(str(r["id"]), r["name"], r["role"], str(r["organization_id"] or ""), created)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="the id shown by `tokens list`")) -> None:
    """Delete a token; requests using it are refused from now on."""
    from wattline.security.tokens import revoke_token

    with _main_db() as conn:
        found = revoke_token(conn, token_id)
    if not found:
        _fail(f"no token with id {token_id}", 1)
    console.print(f"token {token_id} revoked")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(
    username: str,
    role: str = typer.Option(..., help=ROLE_HELP),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from one line of stdin"),
    organization_id: Optional[int] = typer.Option(None, "--organization-id", help="the user's organization"),
) -> None:
    """Create a dashboard user (the password is prompted for twice, hidden)."""
    from wattline.security.users import UserError, check_password_policy, create_user

    try:
        validate_role(role)  # before asking for a password
        password = _read_password(password_stdin)
        check_password_policy(password)  # before opening the databases: fail fast
        with _main_db() as conn:
            user_id = create_user(conn, username, password, role, organization_id)
    except (RoleError, UserError) as exc:
        _fail(str(exc))
    console.print(f"user {username.strip()!r} created (id {user_id}, role {role})", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List users (name, role, organization, created); never a password hash."""
    from wattline.security.users import list_users

    with _main_db() as conn:
        rows = list_users(conn)
    table = Table("id", "username", "role", "organization", "created")
    for r in rows:
        created = r["created_at"].isoformat(timespec="seconds") if r["created_at"] else ""
        table.add_row(str(r["id"]), escape(r["username"]), r["role"], str(r["organization_id"] or ""), created)
    console.print(table)


@users_app.command("delete")
def users_delete(username: str) -> None:
    """Delete a user; their open dashboard sessions stop working at once."""
    from wattline.security.users import UserError, delete_user

    try:
        with _main_db() as conn:
            found = delete_user(conn, username)
    except UserError as exc:
        _fail(str(exc))
    if not found:
        _fail(f"no user {username.strip()!r}", 1)
    console.print(f"user {username.strip()!r} deleted", highlight=False)


@users_app.command("passwd")
def users_passwd(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from one line of stdin"),
) -> None:
    """Set a user's password (prompted for twice, hidden); sessions opened with the old
    one stop working."""
    from wattline.security.users import UserError, check_password_policy, set_password

    try:
        password = _read_password(password_stdin)
        check_password_policy(password)
        with _main_db() as conn:
            found = set_password(conn, username, password)
    except UserError as exc:
        _fail(str(exc))
    if not found:
        _fail(f"no user {username.strip()!r}", 1)
    console.print(f"password of {username.strip()!r} changed; its open sessions are ended", highlight=False)
