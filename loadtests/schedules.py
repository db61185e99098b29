"""Schedules set on a load-test definition, kept in sync with django-celery-beat.

A definition's schedule fields (kind, every-s, crontab, time zone, enabled) are the only place
people edit a schedule: `sync` turns them into one PeriodicTask (task `run_scheduled`, args
[definition id]) that beat's DatabaseScheduler reads, so nobody types a task name or JSON args.
The overlap policy is applied by the task itself when beat fires (see `overlapping_run`).
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from celery.schedules import crontab_parser
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from loadtests.models import (
    ACTIVE_STATUSES,
    LoadTestDefinition,
    LoadTestRun,
    RunStatus,
    RunTrigger,
    ScheduleKind,
)

log = logging.getLogger(__name__)

TASK = "loadtests.tasks.run_scheduled"
DEFAULT_MIN_INTERVAL_S = 10
# How far ahead the next crontab times are searched: a crontab that matches no day in five
# years (e.g. 30 February) never fires, and is refused.
SEARCH_DAYS = 5 * 366

# (label, lowest, highest) of the five crontab fields, in order; the parser's own arguments
# are (max_, min_) with max_ exclusive for 0-based fields.
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab: the text of each field and the values it matches."""

    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as in cron and Celery

    def matches_day(self, day: date) -> bool:
        # Celery's crontab needs day of month AND day of week to match (cron ORs them).
        return (
            day.month in self.months
            and day.day in self.days
            and day.isoweekday() % 7 in self.weekdays
        )


def min_interval_s() -> int:
    """The shortest interval allowed; tests lower it (LOADTEST_SCHEDULE_MIN_INTERVAL_S)."""
    return int(getattr(settings, "LOADTEST_SCHEDULE_MIN_INTERVAL_S", DEFAULT_MIN_INTERVAL_S))


def _parse_field(label: str, low: int, high: int, text: str) -> frozenset[int]:
    parser = crontab_parser(high + 1, low) if low else crontab_parser(high + 1)
    try:
        values = frozenset(parser.parse(text))
    except (ValueError, crontab_parser.ParseException) as exc:
        raise ValueError(
            f"the {label} field {text!r} is not valid: it takes {low}-{high}, '*', lists (1,2), "
            f"ranges (1-5) and steps (*/15) ({exc})"
        ) from exc
    if not values:
        raise ValueError(f"the {label} field {text!r} matches nothing")
    return values


def parse_crontab(text: str) -> Crontab:
    """Parse 'minute hour day-of-month month day-of-week'; ValueError names the bad field."""
    parts = text.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(
            f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    values = [
        _parse_field(label, low, high, part)
        for (label, low, high), part in zip(CRON_FIELDS, parts, strict=True)
    ]
    return Crontab(*parts, *values)


def parse_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name` (empty: settings.TIME_ZONE); ValueError when unknown."""
    name = name.strip() or settings.TIME_ZONE
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{name!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
        ) from exc


def problems(kind: str, every_s: int | None, crontab: str, timezone_name: str) -> dict[str, str]:
    """One message per bad schedule field, keyed by the field's name; empty when valid."""
    found: dict[str, str] = {}
    if kind and kind not in ScheduleKind.values:
        found["schedule_kind"] = f"must be one of {', '.join(ScheduleKind.values)} or empty"
    try:
        zone = parse_timezone(timezone_name)
    except ValueError as exc:
        found["schedule_timezone"] = str(exc)
        zone = None
    if kind == ScheduleKind.INTERVAL:
        least = min_interval_s()
        if every_s is None or every_s < least:
            found["schedule_every_s"] = f"an interval schedule needs every >= {least} s"
    if kind == ScheduleKind.CRONTAB:
        if not crontab.strip():
            found["schedule_crontab"] = "a crontab schedule needs a crontab, e.g. '0 3 * * *'"
        else:
            try:
                parsed = parse_crontab(crontab)
            except ValueError as exc:
                found["schedule_crontab"] = str(exc)
            else:
                if zone and not crontab_times(parsed, zone, timezone.now(), 1):
                    found["schedule_crontab"] = "matches no day in the next five years"
    return found


def problems_of(definition: LoadTestDefinition) -> dict[str, str]:
    return problems(
        definition.schedule_kind,
        definition.schedule_every_s,
        definition.schedule_crontab,
        definition.schedule_timezone,
    )


def validate(definition: LoadTestDefinition) -> None:
    """Raise ValidationError naming each bad schedule field."""
    found = problems_of(definition)
    if found:
        raise ValidationError(found)


def task_name(definition: LoadTestDefinition) -> str:
    return f"load test {definition.pk}: {definition.name}"[:200]


def _interval(every_s: int) -> IntervalSchedule:
    found = IntervalSchedule.objects.filter(every=every_s, period=IntervalSchedule.SECONDS).first()
    return found or IntervalSchedule.objects.create(every=every_s, period=IntervalSchedule.SECONDS)


def _crontab(parsed: Crontab, zone: zoneinfo.ZoneInfo) -> CrontabSchedule:
    fields = {
        "minute": parsed.minute,
        "hour": parsed.hour,
        "day_of_month": parsed.day_of_month,
        "month_of_year": parsed.month_of_year,
        "day_of_week": parsed.day_of_week,
        "timezone": zone,
    }
    found = CrontabSchedule.objects.filter(**fields).first()
    return found or CrontabSchedule.objects.create(**fields)


def sync(definition: LoadTestDefinition) -> PeriodicTask | None:
    """Create, update, disable or delete the definition's PeriodicTask to match its schedule
    fields; raises ValidationError (naming the field) when they are not valid."""
    if not definition.schedule_kind:
        remove(definition.periodic_task_id)
        _link(definition, None)
        return None
    validate(definition)
    task = PeriodicTask.objects.filter(pk=definition.periodic_task_id).first() or PeriodicTask(
        task=TASK
    )
    task.name = task_name(definition)
    task.task = TASK
    task.args = json.dumps([definition.pk])
    task.kwargs = "{}"
    task.enabled = definition.schedule_enabled
    task.description = "Kept in sync with the load-test definition; edit it there."
    if definition.schedule_kind == ScheduleKind.INTERVAL:
        task.interval, task.crontab = _interval(int(definition.schedule_every_s or 0)), None
    else:
        zone = parse_timezone(definition.schedule_timezone)
        task.interval = None
        task.crontab = _crontab(parse_crontab(definition.schedule_crontab), zone)
    task.save()  # PeriodicTask.save tells beat's DatabaseScheduler to reload
    _link(definition, task)
    return task


def _link(definition: LoadTestDefinition, task: PeriodicTask | None) -> None:
    # An update, not save(): a save would send post_save and sync again.
    task_id = task.pk if task else None
    if definition.periodic_task_id != task_id:
        LoadTestDefinition.objects.filter(pk=definition.pk).update(periodic_task_id=task_id)
        definition.periodic_task = task


def remove(periodic_task_id: int | None) -> None:
    if periodic_task_id is not None:
        for task in PeriodicTask.objects.filter(pk=periodic_task_id):
            task.delete()  # one by one: PeriodicTask.delete tells beat


@receiver(post_save, sender=LoadTestDefinition, dispatch_uid="loadtests.schedules.sync")
def _sync_on_save(sender: Any, instance: LoadTestDefinition, raw: bool = False, **_: Any) -> None:
    if not raw:
        sync(instance)


@receiver(post_delete, sender=LoadTestDefinition, dispatch_uid="loadtests.schedules.remove")
def _remove_on_delete(sender: Any, instance: LoadTestDefinition, **_: Any) -> None:
    # The OneToOne is SET_NULL the other way round: deleting the definition would leave the
    # beat entry firing for a definition that no longer exists.
    remove(instance.periodic_task_id)


def crontab_times(parsed: Crontab, zone: zoneinfo.ZoneInfo, after: datetime, count: int) -> list:
    """The first `count` times after `after` that match `parsed` in `zone`, day by day within
    SEARCH_DAYS (a day that does not match costs one check, not 1440)."""
    found: list[datetime] = []
    day = after.astimezone(zone).date()
    for _ in range(SEARCH_DAYS):
        if parsed.matches_day(day):
            found.extend(_times_of_day(parsed, zone, day, after, count - len(found)))
            if len(found) >= count:
                return found
        day += timedelta(days=1)
    return found


def _times_of_day(
    parsed: Crontab, zone: zoneinfo.ZoneInfo, day: date, after: datetime, count: int
) -> Iterable[datetime]:
    taken = 0
    for hour in sorted(parsed.hours):
        for minute in sorted(parsed.minutes):
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            if at > after and taken < count:
                taken += 1
                yield at


def interval_times(every: timedelta, anchor: datetime, now: datetime, count: int) -> list[datetime]:
    """The next `count` times after `now` at which beat sends an interval task whose last run
    (or, never run, whose last change) was `anchor`.

    Beat sends it `every` after `anchor`, then `every` after each send. It keeps last_run_at in
    memory and writes it back to the database only every few minutes, so a stored `anchor`
    lags behind the sends since: they are counted forward in the same phase, and no time
    shown is already past."""
    first = anchor + every
    if first < now:
        first += every * -((first - now) // every)  # ceil((now - first) / every) steps on
    return [first + every * index for index in range(count)]


def next_times(
    definition: LoadTestDefinition, now: datetime | None = None, count: int = 3
) -> list[datetime]:
    """The next `count` times beat will start this definition, in the schedule's time zone;
    empty when it has no valid, enabled schedule or no beat entry."""
    now = now or timezone.now()
    if not definition.schedule_kind or not definition.schedule_enabled:
        return []
    if problems_of(definition):
        return []
    zone = parse_timezone(definition.schedule_timezone)
    task = (
        PeriodicTask.objects.select_related("interval")
        .filter(pk=definition.periodic_task_id, enabled=True)
        .first()
    )
    if task is None:
        return []  # no beat entry: beat starts nothing
    if definition.schedule_kind == ScheduleKind.CRONTAB:
        return crontab_times(parse_crontab(definition.schedule_crontab), zone, now, count)
    if task.interval is None:
        return []
    # The same anchor as beat's ModelEntry: the last run, else the last change of the entry.
    anchor = task.last_run_at or task.date_changed
    times = interval_times(task.schedule.run_every, anchor, now, count)
    return [at.astimezone(zone) for at in times]


def overlapping_run(definition: LoadTestDefinition) -> LoadTestRun | None:
    """The oldest run of this definition still queued or running."""
    return definition.runs.filter(status__in=ACTIVE_STATUSES).order_by("created_at", "id").first()


def record_skipped(
    definition: LoadTestDefinition, still_going: LoadTestRun, config: dict[str, Any]
) -> LoadTestRun:
    """A scheduled run that is never executed, kept so that the gap in the history is told."""
    now = timezone.now()
    return LoadTestRun.objects.create(
        definition=definition,
        name=definition.name,
        config=config,
        status=RunStatus.SKIPPED,
        status_reason=f"skipped: run #{still_going.pk} was still running",
        trigger=RunTrigger.SCHEDULE,
        finished_at=now,
        planned_duration_s=int(config.get("duration_s") or 0),
    )


def scheduled_runs(definition: LoadTestDefinition, limit: int = 10) -> list[LoadTestRun]:
    """The last runs beat started (skipped ones included), newest first."""
    runs = definition.runs.filter(trigger=RunTrigger.SCHEDULE).order_by("-created_at", "-id")
    return list(runs[:limit])
