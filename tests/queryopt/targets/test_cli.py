from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from queryopt.models import QueryTarget, SnapshotReason
from queryopt.targets import CONNECT_FAILED
from tests.conftest import closed_port
from tests.queryopt.targets.conftest import PASSWORD


def queryopt(*args: str) -> tuple[int, str]:
    """The exit status and everything printed (stdout, stderr and the error line)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("queryopt", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + err.getvalue() + str(exc)
    return 0, out.getvalue() + err.getvalue()


def test_it_adds_lists_and_snapshots_a_target_with_exit_0(db: Any, target_dsn: str) -> None:
    code, output = queryopt("target", "add", "shop", "--dsn", target_dsn, "--slow-ms", "250")
    assert code == 0, output
    target = QueryTarget.objects.get(name="shop")
    assert (target.dsn, target.slow_threshold_ms, target.enabled) == (target_dsn, 250, True)
    code, output = queryopt("target", "list")
    assert code == 0
    assert "shop" in output and "password=********" in output
    code, output = queryopt("snapshot", "--target", "shop")
    assert code == 0, output
    assert target.snapshots.get().reason == SnapshotReason.MANUAL


def test_it_exits_2_with_one_line_naming_the_cause(db: Any, target_dsn: str) -> None:
    assert queryopt("target", "add", "shop", "--dsn", target_dsn)[0] == 0
    code, output = queryopt("target", "add", "shop", "--dsn", target_dsn)
    assert (code, output) == (2, "name: a query target named 'shop' exists (--if-missing keeps it)")
    assert queryopt("target", "add", "shop", "--dsn", target_dsn, "--if-missing")[0] == 0
    code, output = queryopt("snapshot", "--target", "nothere")
    assert (code, output) == (2, "--target 'nothere': no such query target")
    code, output = queryopt("target", "add", "other", "--dsn", "host=x port")
    assert code == 2 and output.startswith("dsn: not a PostgreSQL DSN")
    assert QueryTarget.objects.count() == 1


def test_it_registers_its_own_database_only_when_it_is_postgresql(db: Any, settings: Any) -> None:
    code, output = queryopt("target", "add", "emissions", "--from-database-url", "--if-missing")
    assert code == 0, output
    own = QueryTarget.objects.get(name="emissions")
    assert f"dbname={settings.DATABASES['default']['NAME']}" in own.dsn
    assert queryopt("target", "add", "emissions", "--from-database-url", "--if-missing")[0] == 0
    assert QueryTarget.objects.count() == 1
    settings.DATABASE_IS_POSTGRES = False
    code, output = queryopt("target", "add", "app", "--from-database-url", "--if-missing")
    assert (code, output.strip()) == (
        0,
        "DATABASE_URL is not PostgreSQL: no query target registered.",
    )
    assert not QueryTarget.objects.filter(name="app").exists()


@pytest.mark.parametrize(
    "dsn",
    [
        # Nothing listens there.
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres",
        # libpq quotes the bad token, password and all.
        f"postgresql://postgres:{PASSWORD}%zz@127.0.0.1/postgres",
    ],
    # Named, not shown: the free port differs in each parallel worker's collection.
    ids=["nothing-listens", "malformed"],
)
def test_it_shows_a_dsn_password_in_no_output_error_or_log_line(
    db: Any, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    QueryTarget.objects.create(name="broken", dsn=dsn)
    code, output = queryopt("snapshot", "--target", "broken")
    assert code == 2
    # Refused before connecting (a DSN that does not parse), or one line for every failure.
    assert output.startswith(("broken: dsn: not a PostgreSQL DSN", f"broken: {CONNECT_FAILED}"))
    assert "\n" not in output
    target = QueryTarget.objects.get(name="broken")
    assert target.last_error.startswith(("dsn: ", CONNECT_FAILED))
    texts = [output, target.last_error, queryopt("target", "list")[1], caplog.text]
    texts.append(queryopt("target", "add", "again", "--dsn", dsn)[1])
    for text in texts:
        assert PASSWORD not in text
        assert PASSWORD[:8] not in text
    assert "broken" in caplog.text and "********" in caplog.text
