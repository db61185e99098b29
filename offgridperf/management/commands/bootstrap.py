"""Prepare a database for use: create it (PostgreSQL), migrate, collect static files, create
the documented groups (viewers, engineers, admins) and the first admin."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from offgridperf import access
from offgridperf.database import DatabaseSetupError, ensure_postgres_database

ADMIN_USERNAME = "admin"
PASSWORD_ENV = "OFFGRIDPERF_ADMIN_PASSWORD"  # noqa: S105 - the variable name, not a value


class Command(BaseCommand):
    help = (
        "Migrate, collect static files, create the viewers, engineers and admins groups and the "
        "admin user. Safe to run repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-static", action="store_true", help="skip collectstatic")
        parser.add_argument(
            "--reset-admin-password",
            action="store_true",
            help=f"set the admin password again (from {PASSWORD_ENV}, or a new generated one)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor == "postgresql":
            self._ensure_database(connection.settings_dict)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database: migrated")
        if not options["no_static"]:
            call_command("collectstatic", interactive=False, verbosity=0)
            self.stdout.write("static files: collected")
        self._ensure_groups()
        self._ensure_admin(reset=options["reset_admin_password"])

    def _ensure_groups(self) -> None:
        gained = access.ensure_groups()
        figures = ", ".join(f"{name} +{count}" for name, count in gained.items())
        self.stdout.write(f"groups: {figures} permissions")

    def _ensure_database(self, settings_dict: dict[str, Any]) -> None:
        name = settings_dict["NAME"]
        try:
            created = ensure_postgres_database(
                name,
                host=settings_dict["HOST"],
                port=settings_dict["PORT"],
                user=settings_dict["USER"],
                password=settings_dict["PASSWORD"],
            )
        except DatabaseSetupError as exc:
            raise CommandError(str(exc)) from None
        if created:
            self.stdout.write(f"database: created {name!r}")

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
