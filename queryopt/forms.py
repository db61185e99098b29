from __future__ import annotations

import re
from typing import Any

from django import forms

from offgridperf.forms import FilterForm
from queryopt.dsn import mask_dsn
from queryopt.models import IndexHint, QueryTarget
from queryopt.pages import SORTS
from queryopt.services import TargetProblem, dsn_problem, resolved_dsn


class QueryTargetForm(forms.ModelForm):
    """The DSN is shown with its password masked; saved with the mask, the stored password
    stays, but only while the DSN still goes where it went (services.resolved_dsn)."""

    class Meta:
        model = QueryTarget
        fields = ["name", "dsn", "slow_threshold_ms", "polling_interval_s", "enabled"]
        widgets = {"dsn": forms.TextInput(attrs={"size": 80, "autocomplete": "off"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["dsn"] = mask_dsn(self.instance.dsn)

    def clean_dsn(self) -> str:
        dsn = self.cleaned_data["dsn"]
        if self.instance.pk:
            try:
                return resolved_dsn(dsn, self.instance.dsn)
            except TargetProblem as exc:
                raise forms.ValidationError(str(exc)) from None
        problem = dsn_problem(dsn)
        if problem:
            raise forms.ValidationError(problem)
        return dsn


# An unquoted SQL identifier; PostgreSQL folds it to lower case, and so does the hint, so that
# it names the column the catalog (and the advisor) knows.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
IDENTIFIER_RULE = "letters, digits, _ or $, not starting with a digit"


def parse_identifiers(text: str) -> list[str]:
    """Comma-separated column names as a list; ValidationError naming the field and rule."""
    columns = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(columns):
        raise forms.ValidationError(
            "columns: give one or more column names separated by commas, e.g. site_id, taken_at"
        )
    bad = [column for column in columns if not IDENTIFIER.match(column)]
    if bad:
        raise forms.ValidationError(f"columns: {bad[0]!r} is not a column name ({IDENTIFIER_RULE})")
    columns = [column.lower() for column in columns]
    if len(set(columns)) != len(columns):
        raise forms.ValidationError("columns: a column may appear only once")
    return columns


class IndexHintForm(forms.ModelForm):
    """Columns are typed as a comma-separated list and stored as a list of identifiers."""

    columns = forms.CharField(
        help_text="Column names in index order, separated by commas, e.g. site_id, taken_at.",
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = IndexHint
        fields = ["target", "table", "columns", "kind", "note"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["columns"] = ", ".join(self.instance.columns)

    def clean_table(self) -> str:
        table = self.cleaned_data["table"].strip()
        if not all(IDENTIFIER.match(part) for part in table.split(".")) or table.count(".") > 1:
            raise forms.ValidationError(
                f"table: give a table name or schema.table ({IDENTIFIER_RULE} in each part)"
            )
        return table.lower()

    def clean_columns(self) -> list[str]:
        return parse_identifiers(self.cleaned_data["columns"])


DATE_HELP = "YYYY-MM-DD"


class QueryFilterForm(FilterForm):
    """The list's filters and sort; an invalid field is reported and left out."""

    target = forms.IntegerField(required=False, min_value=1)
    origin = forms.CharField(required=False, max_length=200)
    run = forms.IntegerField(required=False, min_value=1)
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
    sort = forms.ChoiceField(
        required=False,
        choices=list(SORTS.items()),
        error_messages={"invalid_choice": f"Sort by one of {', '.join(SORTS)}."},
    )
    page = forms.IntegerField(
        required=False, min_value=1, error_messages={"invalid": "Enter a page number."}
    )
    # The tool's own queries (its pages and tasks) are off by default: the list is about the
    # service under test.
    own = forms.BooleanField(required=False)
