"""The "Next:" line of a schedule shows the times beat will start the test, never a past one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from loadtests import schedules
from loadtests.models import LoadTestDefinition
from tests.loadtests.schedules.test_schedules import periodic_task_of, schedule_form, schedule_url


def at(hour: int, minute: int, second: int) -> datetime:
    return datetime(2026, 11, 27, hour, minute, second, tzinfo=UTC)


def shown_next(client: Any, definition: LoadTestDefinition) -> str:
    page = client.get(f"/definitions/{definition.pk}/").content.decode()
    return page.split('id="schedule-next">', 1)[1].split("</span>", 1)[0]


@pytest.mark.parametrize(
    "last_run_at",
    [
        pytest.param(at(23, 41, 7), id="last run just written back"),
        # Beat keeps last_run_at in memory and writes it back every few minutes: the stored
        # value lags behind the runs it has sent since, in the same phase.
        pytest.param(at(23, 38, 7), id="last run written back minutes ago"),
    ],
)
def test_an_interval_schedule_shows_the_times_beat_will_send_in_its_phase(
    admin_client: Any, definition: LoadTestDefinition, last_run_at: datetime
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(schedule_every_s="30"))
    task = periodic_task_of(definition)
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=last_run_at)
    now = at(23, 41, 20)
    with time_machine.travel(now, tick=False):
        times = schedules.next_times(definition)
        shown = shown_next(admin_client, definition)
    assert times == [at(23, 41, 37), at(23, 42, 7), at(23, 42, 37)]
    assert all(time > now for time in times)
    assert "23:41:37" in shown and "23:42:07" in shown and "23:42:37" in shown
    assert "23:41:07" not in shown


def test_an_interval_schedule_shows_no_past_time_at_the_moment_it_is_shown(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(schedule_every_s="30"))
    task = periodic_task_of(definition)
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=at(23, 40, 7))
    now = at(23, 41, 56)
    with time_machine.travel(now, tick=False):
        times = schedules.next_times(definition)
    assert times == [at(23, 42, 7), at(23, 42, 37), at(23, 43, 7)]


def test_a_new_interval_schedule_counts_from_when_it_was_saved(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    saved = at(10, 0, 3)
    with time_machine.travel(saved, tick=False):
        admin_client.post(schedule_url(definition), schedule_form(schedule_every_s="30"))
        assert periodic_task_of(definition).last_run_at is None
        assert schedules.next_times(definition) == [at(10, 0, 33), at(10, 1, 3), at(10, 1, 33)]
    # Beat starts a never-run task `every` after it was last changed (ModelEntry), then keeps
    # that phase; a page shown later skips what has gone by.
    with time_machine.travel(saved + timedelta(seconds=75), tick=False):
        assert schedules.next_times(definition) == [at(10, 1, 33), at(10, 2, 3), at(10, 2, 33)]


def test_an_interval_schedule_whose_beat_entry_is_gone_shows_no_times(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(schedule_every_s="30"))
    periodic_task_of(definition).delete()
    definition.refresh_from_db()
    assert schedules.next_times(definition) == []


def test_a_crontab_schedule_shows_its_times_in_its_own_time_zone(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(
        schedule_url(definition),
        schedule_form(
            schedule_kind="crontab",
            schedule_every_s="",
            schedule_crontab="*/15 * * * *",
            schedule_timezone="Europe/Berlin",
        ),
    )
    definition.refresh_from_db()
    with time_machine.travel(at(10, 7, 30), tick=False):
        times = schedules.next_times(definition)
        shown = shown_next(admin_client, definition)
    assert [time.astimezone(UTC) for time in times] == [at(10, 15, 0), at(10, 30, 0), at(10, 45, 0)]
    assert "2026-11-27 11:15:00 CET" in shown
    assert "2026-11-27 11:45:00 CET" in shown
