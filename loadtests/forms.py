from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString

from loadtests import schedules
from loadtests.engine import jsoninput
from loadtests.models import LoadTestDefinition, RunStatus, RunTrigger
from offgridperf.forms import FilterForm

DATE_HELP = "YYYY-MM-DD"


class CheckedJSONField(forms.JSONField):
    """A JSON form field read by the one parser of outside JSON (loadtests.engine.jsoninput):
    Infinity, NUL, lone surrogates and deep nesting are form errors naming where they are,
    not a RecursionError or a 500 when PostgreSQL or the page's encoding meets them."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values:
            return None if value in self.empty_values else value
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = jsoninput.parse(value, root="")
        except jsoninput.JsonInputInvalid as exc:
            raise ValidationError(
                [f"{path}: {message}" if path else message for path, message in exc.problems],
                code="invalid",
            ) from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return jsoninput.parse(data)
        except jsoninput.JsonInputInvalid:
            return InvalidJSONInput(data)


class RunFilterForm(FilterForm):
    """The overview's filters; an invalid field is reported and left out of the filter."""

    definition = forms.IntegerField(required=False, min_value=1)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *RunStatus.choices])
    since = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": f"Enter a date as {DATE_HELP}."},
    )
    until = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": f"Enter a date as {DATE_HELP}."},
    )
    tag = forms.SlugField(required=False, max_length=40)
    trigger = forms.ChoiceField(
        required=False,
        # How the pages name them (the enum's own labels would read "Api", "Cli").
        choices=[("", "any"), *((t, t.upper() if len(t) == 3 else t) for t in RunTrigger.values)],
        error_messages={
            "invalid_choice": f"Give one of {', '.join(RunTrigger.values)} (or nothing for any)."
        },
    )


class CompareForm(forms.Form):
    """Two run ids; a missing one is filled in with the other run's baseline."""

    a = forms.IntegerField(required=False, min_value=1, label="run a (baseline)")
    b = forms.IntegerField(required=False, min_value=1, label="run b")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and not cleaned.get("a") and not cleaned.get("b"):
            raise forms.ValidationError("Give a run id in a or b (or both).")
        if cleaned.get("a") and cleaned.get("a") == cleaned.get("b"):
            raise forms.ValidationError("A run compared with itself shows nothing: pick two runs.")
        return cleaned

    def problems(self) -> list[str]:
        return [
            (f"{self.fields[name].label}: " if name in self.fields else "") + " ".join(messages)
            for name, messages in self.errors.items()
        ]


class BaselineForm(forms.Form):
    """Empty run: go back to the default (the last passing run)."""

    run = forms.IntegerField(required=False, min_value=1)


SCHEDULE_FIELDS = [
    "schedule_kind",
    "schedule_every_s",
    "schedule_crontab",
    "schedule_timezone",
    "schedule_enabled",
    "overlap_policy",
]


def add_schedule_problems(form: forms.BaseForm, cleaned: dict[str, Any]) -> None:
    """The schedule rules of loadtests/schedules.py, on the definition page and in the admin."""
    found = schedules.problems(
        cleaned.get("schedule_kind") or "",
        cleaned.get("schedule_every_s"),
        cleaned.get("schedule_crontab") or "",
        cleaned.get("schedule_timezone") or "",
    )
    for name, message in found.items():
        if name not in form.errors:
            form.add_error(name, message)


class ScheduleForm(forms.ModelForm):
    """The definition page's schedule: saving it syncs the beat entry (schedules.sync)."""

    class Meta:
        model = LoadTestDefinition
        fields = SCHEDULE_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        add_schedule_problems(self, cleaned)
        return cleaned

    def problems(self) -> list[str]:
        return [f"{name}: {' '.join(messages)}" for name, messages in self.errors.items()]
