"""Query-target DSNs: only allowed hosts (QUERYOPT_ALLOWED_HOSTS, checked when saved and again
when connecting), only host, port, dbname, user, password and sslmode (no unix sockets, no
parameter that reads a file), and one message for every failed connection."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from queryopt import services, targets
from queryopt.models import QueryTarget
from tests.conftest import closed_port
from tests.queryopt.fakepg import FakePostgres
from tests.queryopt.targets.conftest import PASSWORD, server_dsn

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> Iterator[FakePostgres]:
    with FakePostgres() as server:
        yield server


REFUSED = [
    ("host=/var/run/postgresql dbname=postgres user=postgres", "host"),
    ("postgresql:///postgres?host=/tmp", "host"),
    ("dbname=postgres user=postgres", "host"),
    ("host=127.0.0.1,localhost dbname=postgres", "host"),
    ("host=db.example.com dbname=shop user=tuner", "QUERYOPT_ALLOWED_HOSTS"),
    ("host=127.0.0.1 hostaddr=10.0.0.1 dbname=shop", "hostaddr"),
    ("host=127.0.0.1 port=99999 dbname=shop", "port"),
    ("host=127.0.0.1 service=prod", "service"),
    ("host=127.0.0.1 dbname=shop passfile=/etc/passwd", "passfile"),
    ("host=127.0.0.1 dbname=shop sslrootcert=/etc/ssl/private/key.pem", "sslrootcert"),
    ("host=127.0.0.1 dbname=shop sslcert=/tmp/c sslkey=/tmp/k", "sslcert"),
    ("host=127.0.0.1 dbname=shop sslcrl=/tmp/crl", "sslcrl"),
    ("postgresql://u@127.0.0.1/shop?options=-c%20log_statement%3Dall", "options"),
    ("host=127.0.0.1 dbname=shop sslmode=sometimes", "sslmode"),
]


@pytest.mark.parametrize(("dsn", "named"), REFUSED)
def test_it_refuses_a_dsn_outside_the_rules_naming_the_parameter(dsn: str, named: str) -> None:
    with pytest.raises(services.TargetProblem) as refused:
        services.add_target("scratch", dsn)
    message = str(refused.value)
    assert message.startswith("dsn: ") and "\n" not in message
    assert named in message
    assert not QueryTarget.objects.exists()


def test_the_admin_form_and_the_cli_refuse_it_too(admin_client: Any) -> None:
    dsn = "host=127.0.0.1 dbname=shop passfile=/etc/passwd"
    data = {"name": "x", "dsn": dsn, "slow_threshold_ms": "1", "polling_interval_s": "60"}
    response = admin_client.post(reverse("admin:queryopt_querytarget_add"), data)
    assert response.status_code == 200
    assert any("passfile" in e for e in response.context["adminform"].form.errors["dsn"])
    with pytest.raises(CommandError, match="passfile"):
        call_command("queryopt", "target", "add", "x", "--dsn", dsn)
    assert not QueryTarget.objects.exists()


def test_it_accepts_an_allowed_host_with_the_plain_parameters(settings: Any) -> None:
    settings.QUERYOPT_ALLOWED_HOSTS = ["db.internal"]
    dsn = "postgresql://tuner:pw@DB.internal:6432/shop?sslmode=require"
    target, created = services.add_target("shop", dsn)
    assert created and target.dsn == dsn


def test_it_checks_the_host_again_when_connecting(settings: Any, fake: FakePostgres) -> None:
    # Stored while it was allowed (or written around the form): refused at connect time all the
    # same, before any packet leaves.
    dsn = f"host=localhost port={fake.port} dbname=shop user=tuner password={PASSWORD}"
    target = QueryTarget.objects.create(name="old", dsn=dsn)
    settings.QUERYOPT_ALLOWED_HOSTS = ["db.internal"]
    with pytest.raises(targets.TargetError, match="QUERYOPT_ALLOWED_HOSTS"):
        targets.connect(target.dsn)
    assert services.check_target(target)
    assert fake.connections == 0


def test_it_allows_the_apps_own_database_host_and_dsn(settings: Any) -> None:
    settings.QUERYOPT_ALLOWED_HOSTS = []
    call_command("queryopt", "target", "add", "emissions", "--from-database-url")
    target = QueryTarget.objects.get(name="emissions")
    assert target.own_database
    with targets.connect(target.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_every_failed_connection_looks_the_same_and_the_cause_goes_to_the_log(
    fake: FakePostgres, caplog: Any
) -> None:
    silent_port = closed_port()
    dsns = {
        "refused": f"host=127.0.0.1 port={silent_port} dbname=shop user=u password={PASSWORD}",
        "wrong password": f"host=127.0.0.1 port={fake.port} dbname=shop user=u password=no",
        "no such database": server_dsn("offgridperf_no_such_db", password=PASSWORD),
    }
    seen = {}
    with caplog.at_level(logging.WARNING, logger="queryopt.targets"):
        for cause, dsn in dsns.items():
            with pytest.raises(targets.TargetError) as failed:
                targets.connect(dsn)
            seen[cause] = str(failed.value)
    assert len(set(seen.values())) == 1, seen
    assert seen["refused"] == targets.CONNECT_FAILED
    logged = caplog.text
    assert "refused" in logged.lower() and "offgridperf_no_such_db" in logged
    assert PASSWORD not in logged


def test_every_target_connection_gets_the_same_short_timeout() -> None:
    assert targets.CONNECT_TIMEOUT_S <= 3


def test_every_target_connection_goes_through_the_one_checked_function() -> None:
    # Only queryopt.targets.connect opens connections from a stored DSN; other modules call it.
    import ast
    from pathlib import Path

    import queryopt

    connects = {"psycopg.connect", "psycopg.Connection.connect", "connect"}
    offenders = []
    for path in Path(queryopt.__file__).parent.rglob("*.py"):
        if path.name == "targets.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in connects:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
