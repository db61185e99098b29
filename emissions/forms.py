"""Query-string and upload-metadata forms of the emissions API: one message per bad field."""

from __future__ import annotations

from typing import Any

from django import forms

from emissions.models import (
    PERIOD_RULE,
    REFERENCE_RULE,
    ActivityBatch,
    Scope,
    validate_period,
    validate_reference,
)
from emissions.rows import is_id

GROUPINGS = ("scope", "category", "site", "month")
MAX_PAGE = 100_000
ISO_DATE = "%Y-%m-%d"
DATE_ERROR = {"invalid": "must be a date as YYYY-MM-DD"}


def first_errors(form: forms.Form) -> dict[str, str]:
    """{field: its first message} for a bound, invalid form."""
    return {name: str(messages[0]) for name, messages in form.errors.items()}


class DigitsField(forms.IntegerField):
    """A whole number written with digits 0-9 only.

    forms.IntegerField goes through int(), which also reads '٣', '３', '1_0' and '1.0':
    a number in the URL has one spelling, so that it means one thing (and one cache key).
    """

    default_error_messages = {"invalid": "must be a whole number written with digits 0-9"}

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not is_id(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(text)


class PageForm(forms.Form):
    page = DigitsField(required=False, min_value=1, max_value=MAX_PAGE)
    page_size = DigitsField(required=False, min_value=1, max_value=500)

    def clean_page(self) -> int:
        return self.cleaned_data.get("page") or 1

    def clean_page_size(self) -> int:
        return self.cleaned_data.get("page_size") or 50


class ActivityFilterForm(PageForm):
    scope = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "any"), *Scope.choices],
        error_messages={"invalid_choice": "must be 1, 2 or 3"},
    )
    category = forms.CharField(required=False, max_length=64)
    site = forms.CharField(required=False, max_length=64)
    date_from = forms.DateField(required=False, input_formats=[ISO_DATE], error_messages=DATE_ERROR)
    date_to = forms.DateField(required=False, input_formats=[ISO_DATE], error_messages=DATE_ERROR)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "must not be before date_from")
        return data


class BySiteForm(PageForm):
    site = forms.CharField(max_length=64)


class TotalsForm(forms.Form):
    group_by = forms.ChoiceField(
        choices=[(g, g) for g in GROUPINGS],
        error_messages={
            "required": f"is required: one of {', '.join(GROUPINGS)}",
            "invalid_choice": f"must be one of {', '.join(GROUPINGS)}",
        },
    )
    batch = forms.CharField(required=False, max_length=64)


class BatchMetaForm(forms.Form):
    organisation = forms.CharField(max_length=120)
    period = forms.CharField(
        max_length=10, validators=[validate_period], error_messages={"required": PERIOD_RULE}
    )
    reference = forms.CharField(required=False, max_length=64, validators=[validate_reference])

    def clean_period(self) -> str:
        period = self.cleaned_data["period"]
        if not period.isascii():  # the rule's \d also matches '٢٠٢٤'
            raise forms.ValidationError(f"use {PERIOD_RULE}")
        return period

    def clean_reference(self) -> str:
        reference = self.cleaned_data.get("reference", "")
        if reference and ActivityBatch.objects.filter(reference=reference).exists():
            raise forms.ValidationError(f"{reference!r} is taken; use another ({REFERENCE_RULE})")
        return reference
