"""Prepare a database for use: create it (PostgreSQL), migrate, collect static files, create
the first admin."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

ADMIN_USERNAME = "admin"
PASSWORD_ENV = "OFFGRIDPERF_ADMIN_PASSWORD"  # noqa: S105 - the variable name, not a value


class Command(BaseCommand):
    help = "Migrate, collect static files and create the admin user. Safe to run repeatedly."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-static", action="store_true", help="skip collectstatic")
        parser.add_argument(
            "--reset-admin-password",
            action="store_true",
            help=f"set the admin password again (from {PASSWORD_ENV}, or a new generated one)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor == "postgresql":
            created = ensure_postgres_database(connection.settings_dict)
            if created:
                self.stdout.write(f"database: created {created!r}")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database: migrated")
        if not options["no_static"]:
            call_command("collectstatic", interactive=False, verbosity=0)
            self.stdout.write("static files: collected")
        self._ensure_admin(reset=options["reset_admin_password"])

    def _ensure_admin(self, *, reset: bool) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model.objects.select_for_update().get_or_create(
                username=ADMIN_USERNAME,
                defaults={"is_staff": True, "is_superuser": True, "email": ""},
            )
            if not (created or reset):
                self.stdout.write(f"admin user: {ADMIN_USERNAME!r} exists (password unchanged)")
                return
            password = os.environ.get(PASSWORD_ENV, "").strip()
            generated = not password
            if generated:
                password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save()
        verb = "created" if created else "password reset"
        if generated:
            # Shown once: only its hash is stored.
            self.stdout.write(
                self.style.WARNING(f"admin user: {ADMIN_USERNAME!r} {verb}, password: {password}")
            )
        else:
            self.stdout.write(
                f"admin user: {ADMIN_USERNAME!r} {verb} (password from {PASSWORD_ENV})"
            )


def ensure_postgres_database(settings_dict: dict[str, Any]) -> str | None:
    """Create the configured PostgreSQL database when the server lacks it; its name if created.

    Anything else that stops a connection (server down, wrong user, no right to create) is a
    CommandError naming DATABASE_URL, where it points (never its password) and the cause.
    """
    import psycopg
    from psycopg import sql

    name = settings_dict["NAME"]
    params = {
        "host": settings_dict["HOST"] or None,
        "port": settings_dict["PORT"] or None,
        "user": settings_dict["USER"] or None,
        "password": settings_dict["PASSWORD"] or None,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    where = f"{params['host'] or 'localhost'}:{params['port'] or 5432}"
    who = f" as {params['user']}" if params["user"] else ""
    try:
        psycopg.connect(dbname=name, **params).close()
        return None
    except psycopg.OperationalError as exc:
        reason = _first_line(exc)
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as maintenance:
            found = maintenance.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found:
                raise CommandError(
                    f"DATABASE_URL: cannot connect to database {name!r} on {where}{who}: {reason}"
                )
            maintenance.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise CommandError(
            f"DATABASE_URL: cannot connect to PostgreSQL on {where}{who} to use or create "
            f"database {name!r}: {_first_line(exc)} (is the server running, and may this user "
            "create databases?)"
        ) from None
    return name


CONNECT_TIMEOUT_S = 5


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
