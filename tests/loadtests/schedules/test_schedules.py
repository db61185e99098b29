from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import PeriodicTask

from loadtests import schedules, tasks
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from tests.loadtests.admin_forms import ADD, admin_form


def schedule_url(definition: LoadTestDefinition) -> str:
    return f"/definitions/{definition.pk}/schedule/"


def schedule_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "schedule_kind": "interval",
        "schedule_every_s": "60",
        "schedule_crontab": "",
        "schedule_timezone": "",
        "schedule_enabled": "on",
        "overlap_policy": "skip",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def periodic_task_of(definition: LoadTestDefinition) -> PeriodicTask:
    definition.refresh_from_db()
    return PeriodicTask.objects.get(pk=definition.periodic_task_id)


def test_it_creates_the_periodic_task_from_the_definition_page(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    response = admin_client.post(schedule_url(definition), schedule_form())
    assert response.status_code == 302
    task = periodic_task_of(definition)
    assert task.name == f"load test {definition.pk}: smoke"
    assert task.task == "loadtests.tasks.run_scheduled"
    assert json.loads(task.args) == [definition.pk]
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (60, "seconds")
    assert task.crontab is None
    assert PeriodicTask.objects.filter(task=schedules.TASK).count() == 1


def test_it_changes_the_periodic_task_when_the_schedule_is_edited(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form())
    first = periodic_task_of(definition)
    response = admin_client.post(
        schedule_url(definition),
        schedule_form(
            schedule_kind="crontab",
            schedule_every_s="",
            schedule_crontab="30 9 * * mon-fri",
            schedule_timezone="Europe/Berlin",
        ),
    )
    assert response.status_code == 302
    task = periodic_task_of(definition)
    assert task.pk == first.pk
    assert task.interval is None
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "30",
        "9",
        "*",
        "*",
        "mon-fri",
    )
    assert str(cron.timezone) == "Europe/Berlin"
    definition.name = "renamed"
    definition.save()
    assert periodic_task_of(definition).name == f"load test {definition.pk}: renamed"


def test_it_disables_the_periodic_task_and_removes_it_when_unscheduled(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form())
    admin_client.post(schedule_url(definition), schedule_form(schedule_enabled=None))
    task = periodic_task_of(definition)
    assert task.enabled is False
    admin_client.post(schedule_url(definition), schedule_form(schedule_kind=""))
    definition.refresh_from_db()
    assert definition.periodic_task_id is None
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_it_removes_the_periodic_task_with_the_definition(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form())
    task = periodic_task_of(definition)
    definition.delete()
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        (
            {"schedule_kind": "crontab", "schedule_crontab": "0 25 * * *"},
            "schedule_crontab",
            "hour",
        ),
        ({"schedule_kind": "crontab", "schedule_crontab": "0 3 * *"}, "schedule_crontab", "5"),
        (
            {"schedule_kind": "crontab", "schedule_crontab": "0 3 30 2 *"},
            "schedule_crontab",
            "matches no day",
        ),
        (
            {
                "schedule_kind": "crontab",
                "schedule_crontab": "0 3 * * *",
                "schedule_timezone": "Mars/Olympus",
            },
            "schedule_timezone",
            "IANA",
        ),
        ({"schedule_every_s": "5"}, "schedule_every_s", ">= 10 s"),
    ],
)
def test_it_refuses_a_bad_schedule_naming_the_field_and_stores_nothing(
    admin_client: Any,
    definition: LoadTestDefinition,
    overrides: dict[str, str],
    field: str,
    words: str,
) -> None:
    response = admin_client.post(schedule_url(definition), schedule_form(**overrides))
    assert response.status_code == 400
    problems = response.context["schedule_form"].problems()
    assert len(problems) == 1 and problems[0].startswith(f"{field}: ")
    assert words in problems[0]
    assert field in response.content.decode()
    definition.refresh_from_db()
    assert definition.schedule_kind == "" and definition.periodic_task_id is None
    assert not PeriodicTask.objects.filter(task=schedules.TASK).exists()


def test_it_refuses_the_schedule_form_without_the_change_permission(
    viewer_client: Any, definition: LoadTestDefinition
) -> None:
    response = viewer_client.post(schedule_url(definition), schedule_form())
    assert response.status_code == 403
    assert not PeriodicTask.objects.filter(task=schedules.TASK).exists()


def test_it_sets_and_validates_the_schedule_in_the_admin(
    admin_client: Any, target_url: str
) -> None:
    bad = admin_form(target_url, schedule_kind="crontab", schedule_crontab="61 * * * *")
    response = admin_client.post(ADD, bad)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["schedule_crontab"] and "minute" in errors["schedule_crontab"][0]
    assert not LoadTestDefinition.objects.exists()
    good = admin_form(
        target_url,
        schedule_kind="crontab",
        schedule_crontab="*/15 * * * *",
        schedule_timezone="America/New_York",
        schedule_enabled="on",
    )
    response = admin_client.post(ADD, good)
    assert response.status_code == 302
    definition = LoadTestDefinition.objects.get()
    task = periodic_task_of(definition)
    assert task.crontab.minute == "*/15" and str(task.crontab.timezone) == "America/New_York"
    assert definition.overlap_policy == "skip"


def running_run(definition: LoadTestDefinition) -> LoadTestRun:
    return LoadTestRun.objects.create(
        definition=definition, name=definition.name, config={}, status=RunStatus.RUNNING
    )


def test_it_records_a_skipped_run_while_the_previous_one_is_still_running(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form())
    going = running_run(definition)
    skipped = LoadTestRun.objects.get(pk=tasks.run_scheduled(definition.pk))
    assert skipped.status == RunStatus.SKIPPED
    assert skipped.trigger == "schedule"
    assert skipped.status_reason == f"skipped: run #{going.pk} was still running"
    assert skipped.finished_at is not None and skipped.celery_task_id == ""
    page = admin_client.get(f"/definitions/{definition.pk}/")
    assert [run.pk for run in page.context["scheduled_runs"]] == [skipped.pk]
    assert "was still running" in page.content.decode()


def test_it_queues_a_scheduled_run_with_the_queue_policy(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(overlap_policy="queue"))
    running_run(definition)
    queued = LoadTestRun.objects.get(pk=tasks.run_scheduled(definition.pk))
    assert (queued.status, queued.trigger) == (RunStatus.QUEUED, "schedule")


def test_it_starts_nothing_for_a_disabled_or_deleted_schedule(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(schedule_enabled=None))
    assert tasks.run_scheduled(definition.pk) is None
    assert tasks.run_scheduled(definition.pk + 1000) is None
    assert not LoadTestRun.objects.exists()


def test_it_computes_the_next_three_crontab_times_in_the_schedule_time_zone(
    definition: LoadTestDefinition,
) -> None:
    definition.schedule_kind = "crontab"
    definition.schedule_crontab = "30 9 * * mon-fri"
    definition.schedule_timezone = "Europe/Berlin"
    definition.save()
    friday_11_berlin = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    times = schedules.next_times(definition, now=friday_11_berlin)
    berlin = ZoneInfo("Europe/Berlin")
    assert times == [
        datetime(2026, 11, 30, 9, 30, tzinfo=berlin),
        datetime(2026, 12, 1, 9, 30, tzinfo=berlin),
        datetime(2026, 12, 2, 9, 30, tzinfo=berlin),
    ]
    assert [t.astimezone(UTC).hour for t in times] == [8, 8, 8]


def test_it_computes_the_next_three_crontab_times_across_a_dst_change(
    definition: LoadTestDefinition,
) -> None:
    definition.schedule_kind = "crontab"
    definition.schedule_crontab = "0 12 * * *"
    definition.schedule_timezone = "America/New_York"
    definition.save()
    times = schedules.next_times(definition, now=datetime(2026, 3, 7, 18, 0, tzinfo=UTC))
    # New York moves to summer time on 8 March 2026: noon is 17:00 UTC, then 16:00 UTC.
    assert [t.astimezone(UTC) for t in times] == [
        datetime(2026, 3, 8, 16, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 16, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 16, 0, tzinfo=UTC),
    ]


def test_it_computes_the_next_three_interval_times_from_the_last_run(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    admin_client.post(schedule_url(definition), schedule_form(schedule_every_s="600"))
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    task = periodic_task_of(definition)
    task.last_run_at = now - timedelta(seconds=100)
    task.save()
    times = schedules.next_times(definition, now=now)
    assert times == [now + timedelta(seconds=s) for s in (500, 1100, 1700)]
    page = admin_client.get(f"/definitions/{definition.pk}/")
    assert len(page.context["next_times"]) == 3
    assert 'id="schedule-next"' in page.content.decode()
