"""The profiler's forms: the captures list's filters, "Take a capture", the diff's two picks.

Forms only parse input into types; the rules of a capture (duration limits, rates) live in
services.capture_problem, and the view puts its message on the field it names.
"""

from __future__ import annotations

from typing import Any

from django import forms

from profiling.models import CaptureKind, CaptureStatus, ProfileTarget

CHILDREN_CHOICES = [
    ("", "as the target says"),
    ("yes", "include"),
    ("no", "leave out"),
]

# services.capture_problem's message prefix -> the field of CaptureForm it is about.
PROBLEM_FIELDS = {
    "kind": "kind",
    "target": "target",
    "pid": "pid",
    "pid_file": "target",
    "cmdline_match": "target",
    "duration": "duration_s",
    "rate": "rate_hz",
    "interval": "interval_ms",
}


def _problems(form: forms.Form) -> list[str]:
    return [
        (f"{name}: " if name != "__all__" else "") + " ".join(errors)
        for name, errors in form.errors.items()
    ]


class CaptureFilterForm(forms.Form):
    """The captures list's filters; an invalid field is reported and left out of the filter."""

    target = forms.IntegerField(required=False, min_value=1)
    kind = forms.ChoiceField(
        required=False,
        choices=[("", "any"), *CaptureKind.choices],
        error_messages={"invalid_choice": f"Pick one of {', '.join(CaptureKind.values)}."},
    )
    run = forms.IntegerField(required=False, min_value=1)
    status = forms.ChoiceField(
        required=False,
        choices=[("", "any"), *CaptureStatus.choices],
        error_messages={"invalid_choice": f"Pick one of {', '.join(CaptureStatus.values)}."},
    )

    def valid_filters(self) -> dict[str, Any]:
        """The filters that cleaned, whatever happened to the others."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.errors and value not in (None, "")
        }

    def problems(self) -> list[str]:
        return _problems(self)


class CaptureForm(forms.Form):
    """Take a capture of a target, or of a PID, now."""

    kind = forms.ChoiceField(choices=CaptureKind.choices, initial=CaptureKind.CPU)
    target = forms.ModelChoiceField(
        queryset=ProfileTarget.objects.all(),
        required=False,
        error_messages={"invalid_choice": "Pick one of the profile targets listed."},
    )
    pid = forms.IntegerField(label="PID", required=False, min_value=1)
    duration_s = forms.FloatField(label="duration (s)", initial=10.0)
    rate_hz = forms.IntegerField(label="rate (Hz)", initial=100)
    interval_ms = forms.IntegerField(label="interval (ms)", initial=100)
    children = forms.ChoiceField(choices=CHILDREN_CHOICES, required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and cleaned.get("target") is None and not cleaned.get("pid"):
            self.add_error("pid", "Give a PID or pick a profile target.")
        return cleaned

    def include_children(self) -> bool | None:
        """True or False when chosen, None to follow the target's own setting."""
        return {"yes": True, "no": False}.get(self.cleaned_data.get("children") or "")

    def add_problem(self, problem: str) -> None:
        """Put services' "field: rule" message on the form field it names."""
        prefix, _, rule = problem.partition(": ")
        field = PROBLEM_FIELDS.get(prefix)
        self.add_error(field, rule if field else problem)

    def problems(self) -> list[str]:
        return _problems(self)


class DiffForm(forms.Form):
    """Two done CPU captures, picked from the choices the view offers."""

    a = forms.TypedChoiceField(coerce=int, label="capture a (before)")
    b = forms.TypedChoiceField(coerce=int, label="capture b (after)")

    def __init__(self, data: Any, choices: list[tuple[int, str]]) -> None:
        super().__init__(data)
        for name in ("a", "b"):
            self.fields[name].choices = choices
            self.fields[name].error_messages["invalid_choice"] = (
                "Pick one of the recent finished CPU captures listed."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and cleaned.get("a") == cleaned.get("b"):
            raise forms.ValidationError("A capture diffed with itself shows nothing: pick two.")
        return cleaned

    def problems(self) -> list[str]:
        return _problems(self)
