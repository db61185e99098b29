from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.formsets import TOTAL_FORM_COUNT
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from loadtests import alerts, datasets, documents, flowcheck, lifecycle, secrets, tasks
from loadtests.engine import jsoninput
from loadtests.engine.config import MAX_STAGES, MAX_STEPS, STAGES_RULE, STEPS_RULE
from loadtests.forms import CheckedJSONField, add_schedule_problems
from loadtests.models import (
    Alert,
    AlertDelivery,
    ApiToken,
    DataOrder,
    DataSet,
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStage,
    LoadTestStep,
    Mode,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
    Tag,
    TargetURLField,
)
from offgridperf import alerting


class SubmittedDefinition:
    """One admin save of a definition: its form and inline formsets, checked together.

    Each part is first validated on its own (field validators, the models' clean()). Once all
    are valid, the definition is frozen from the submitted forms as a run would freeze it and
    checked by the engine's rules (`documents.config_problems`), so that what the admin saves,
    Run now starts. Each problem is reported on the form and field it concerns.
    """

    def __init__(self, definition: LoadTestDefinition, posted_url: Any = None) -> None:
        self.definition = definition
        self.posted_url = posted_url  # the target URL as typed, whether or not it is valid
        self.form: forms.ModelForm | None = None  # the definition's own form, once valid
        self.formsets: dict[str, BaseInlineFormSet] = {}
        self._problems: dict[str, list[str]] | None = None
        self._moved: tuple[str, str] | None | bool = False  # False: not looked up yet

    def target_moved(self) -> tuple[str, str] | None:
        """(stored URL, new URL) when this save points the definition at another scheme,
        host or port: then a mask no longer keeps a stored secret (loadtests.secrets)."""
        if self._moved is False:
            stored = (
                LoadTestDefinition.objects.filter(pk=self.definition.pk)
                .values_list("target_base_url", flat=True)
                .first()
                if self.definition.pk
                else None
            )
            # As typed when the definition's form refused it (its own error says why): the
            # steps' masks must not pass for the old target meanwhile.
            typed = self.posted_url if isinstance(self.posted_url, str) else ""
            new = self.definition.target_base_url if self.form or "://" not in typed else typed
            moved = stored is not None and not secrets.same_target(stored, new)
            self._moved = (stored, new) if moved else None
        return self._moved or None

    def problems(self) -> dict[str, list[str]]:
        if self._problems is None:
            self._problems = self._check()
        return self._problems

    def _check(self) -> dict[str, list[str]]:
        steps, stages = self.kept("steps"), self.kept("stages")
        if self.form is None or steps is None or stages is None:
            return {}  # a part has problems of its own; they come first
        if stages:
            # The duration follows the stages: typing it again only invites a mismatch.
            self.definition.duration_s = sum(form.instance.duration_s or 0 for form in stages)
        frozen = documents.freeze_definition(
            self.definition,
            steps=[form.instance for form in steps],
            stages=[form.instance for form in stages],
        )
        return documents.config_problems(frozen)

    def kept(self, prefix: str) -> list[forms.ModelForm] | None:
        """The forms of the `prefix` inline that a save keeps, in the order a run takes them
        (order, then id); None while one of them is invalid or the inline is missing."""
        formset = self.formsets.get(prefix)
        if formset is None:
            return None
        kept = []
        for position, form in enumerate(formset.forms):
            valid = form.is_valid()
            unused = position >= formset.initial_form_count() and not form.has_changed()
            if unused or form.cleaned_data.get("DELETE"):
                continue
            if not valid:
                return None
            kept.append((form.instance.order, form.instance.pk is None, position, form))
        return [form for *_, form in sorted(kept, key=lambda item: item[:3])]

    def report(self, prefix: str) -> list[str]:
        """Put the problems of the `prefix` inline on its forms' fields; returns those of the
        inline as a whole. The stages inline also takes those of the definition's own fields."""
        forms_in_order = self.kept(prefix) or []
        whole: list[str] = []
        for field, texts in self.problems().items():
            field = _FORM_FIELDS.get(field, field)
            part = _INLINE_FIELD.fullmatch(field)
            if part and part["inline"] == prefix:
                form = forms_in_order[int(part["index"])]
                name = _STEP_FORM_FIELDS.get(part["field"], part["field"])
                if name in form.fields:
                    form.add_error(name, texts)
                else:
                    step = form.cleaned_data.get("name") or part["index"]
                    whole += [f"step {step!r}: {part['field']}: {text}" for text in texts]
            elif field == prefix:
                whole += self._report_on_stage_fields(prefix, forms_in_order, texts)
            elif prefix == "stages" and not part and field != "steps":
                whole += self._report_on_definition(field, texts)
        return whole

    @staticmethod
    def _report_on_stage_fields(
        prefix: str, forms_in_order: list[forms.ModelForm], texts: list[str]
    ) -> list[str]:
        """Problems of the stages as a whole (their sum, their targets) beside the stage field
        they concern: durations on the last stage's duration, targets on the first stage's
        target. Anything else stays on the inline as a whole."""
        if prefix != "stages" or not forms_in_order:
            return texts
        whole = []
        for text in texts:
            if "duration" in text:
                forms_in_order[-1].add_error("duration_s", text)
            elif "target" in text:
                forms_in_order[0].add_error("target", text)
            else:
                whole.append(text)
        return whole or ["Correct the stages below."]

    def _report_on_definition(self, field: str, texts: list[str]) -> list[str]:
        form = self.form
        if form is not None and field in form.fields:
            form.add_error(field, texts)
            # The form was valid when the admin asked; only an inline's error stops the save.
            return ["Correct the fields above: the definition is checked with its inlines."]
        return [f"{field}: {text}" for text in texts]


_INLINE_FIELD = re.compile(r"(?P<inline>steps|stages)\[(?P<index>\d+)\]\.(?P<field>\w+)")
# Document paths of the definition's flow settings -> its form's fields.
_FORM_FIELDS = {
    "data_set.name": "data_set",
    "data_set": "data_set",
    "data_set.order": "data_order",
    "thresholds.iteration_p95_ms": "threshold_iteration_p95_ms",
}
# A step's document names -> its form's fields.
_STEP_FORM_FIELDS = {"poll": "poll_until_path"}


def submitted_definition(
    request: HttpRequest, definition: LoadTestDefinition
) -> SubmittedDefinition:
    """The SubmittedDefinition of this request: the admin builds the definition's form and each
    inline's formset separately, and the request is all they have in common."""
    submitted = getattr(request, "loadtest_submitted_definition", None)
    if submitted is None or submitted.definition is not definition:
        submitted = SubmittedDefinition(definition, request.POST.get("target_base_url"))
        request.loadtest_submitted_definition = submitted  # type: ignore[attr-defined]
    return submitted


class DefinitionInlineFormSet(BaseInlineFormSet):
    """An inline of a definition: valid on its own, then checked with the whole definition.
    More forms than the inline's max_num (the engine's size limits) are refused at once."""

    def __init__(self, *args: Any, submitted: SubmittedDefinition | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The admin's formset factory sets validate_max=False on the class it builds, and lets
        # 1,000 forms more than max_num be built before a post is refused.
        self.validate_max = True
        self.absolute_max = self.max_num
        self.submitted = submitted
        if submitted is not None:
            submitted.formsets[self.prefix] = self

    def total_form_count(self) -> int:
        if self.is_bound and self.management_form.cleaned_data[TOTAL_FORM_COUNT] > self.max_num:
            # Refused at the count (full_clean says so): building, checking and showing again
            # even max_num forms took seconds, so none is built.
            return 0
        return super().total_form_count()

    def clean(self) -> None:
        super().clean()
        if self.submitted is not None:
            whole = self.submitted.report(self.prefix)
            if whole:
                raise ValidationError(whole)


class StepFormSet(DefinitionInlineFormSet):
    default_error_messages = {"too_many_forms": STEPS_RULE}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stored secrets of the whole definition (every step's, the target URL's): each
        # step's form and label masks any of them, as the definition page does.
        stored = {
            "target_base_url": self.instance.target_base_url,
            "steps": [
                {"headers": step.headers or {}, "secret_headers": step.secret_headers or []}
                for step in (self.get_queryset() if self.instance.pk else [])
            ],
        }
        self.secret_values = secrets.secret_values(stored)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        return {**kwargs, "submitted": self.submitted, "secret_values": self.secret_values}

    def clean(self) -> None:
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError("Add at least one step.")
        super().clean()


class StageFormSet(DefinitionInlineFormSet):
    default_error_messages = {"too_many_forms": STAGES_RULE}


class ExtractionsField(forms.CharField):
    """A step's extractions edited as text, one per line: `variable from expression`, e.g.
    `batch_id json $.id` or `token regex name="csrf" value="([^"]+)"`."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 80, "class": "vLargeTextField"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(
                f"{item.get('variable')} {item.get('from')} {item.get('expression')}"
                for item in value
                if isinstance(item, dict)
            )
        return value

    def to_python(self, value: Any) -> list[dict[str, str]]:
        text = super().to_python(value) or ""
        extractions, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(None, 2)
            if len(parts) < 3:
                problems.append(
                    f"Line {number}: write `variable from expression`, e.g. `batch_id json $.id` "
                    "(from: json, header, regex or cookie)."
                )
                continue
            variable, source, expression = parts
            extractions.append({"variable": variable, "from": source, "expression": expression})
        if problems:
            raise ValidationError(problems)
        return extractions


class HeaderRowsWidget(forms.Widget):
    """A step's headers as name/value rows (static/loadtests/admin_headers.js adds and removes
    rows), sent back as the JSON object the headers field stores. A post without the rows (a
    script, an older page) may still send the JSON itself under the field's own name."""

    NAME, VALUE = "__name", "__value"

    class Media:
        js = ["loadtests/admin_headers.js"]

    def rows(self, value: Any) -> list[tuple[str, str]] | None:
        """The (name, value) rows of `value` (a dict or its JSON); None when it is no object."""
        if isinstance(value, str):
            try:
                value = jsoninput.parse(value or "{}")
            except jsoninput.JsonInputInvalid:
                return None
        if value is None:
            return []
        if not isinstance(value, dict):
            return None
        return [
            (str(name), item if isinstance(item, str) else json.dumps(item))
            for name, item in value.items()
        ]

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> str:
        rows = self.rows(value)
        if rows is None:  # not an object: show it as it came, for the error beside it
            return format_html(
                '<textarea name="{}" rows="2" cols="60" class="vLargeTextField">{}</textarea>',
                name,
                value,
            )
        lines = [self._row(name, header, text) for header, text in [*rows, ("", "")]]
        return format_html(
            '<div class="header-rows" data-name="{}">{}'
            '<button type="button" class="button header-add">Add header</button></div>',
            name,
            format_html_join("", "{}", ((line,) for line in lines)),
        )

    def _row(self, name: str, header: str, text: str) -> str:
        return format_html(
            '<div class="header-row">'
            '<input type="text" name="{}" value="{}" placeholder="name" aria-label="header name">'
            ' <input type="text" name="{}" value="{}" placeholder="value" size="50" '
            'aria-label="header value">'
            ' <button type="button" class="button header-remove" title="Remove this header">'
            "Remove</button></div>",
            name + self.NAME,
            header,
            name + self.VALUE,
            text,
        )

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if name + self.NAME not in data:
            return data.get(name)
        names = data.getlist(name + self.NAME) if hasattr(data, "getlist") else []
        values = data.getlist(name + self.VALUE) if hasattr(data, "getlist") else []
        headers = {
            header.strip(): text
            for header, text in zip(names, [*values, *[""] * len(names)], strict=False)
            if header.strip()
        }
        return json.dumps(headers, ensure_ascii=False)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and name + self.NAME not in data


class StepForm(forms.ModelForm):
    """A step whose secret header values are never sent back to the browser: the form shows
    the mask, and a mask left as it was keeps the stored value (so editing a step's path does
    not wipe its token), while a value typed over it replaces it."""

    extract = ExtractionsField(
        required=False,
        label="extract",
        help_text="Flow mode, one per line: variable from expression — from is json ($.id, "
        "$.items[0].id), header (a name), regex (one group) or cookie (a name).",
    )

    class Meta:
        model = LoadTestStep
        fields = [
            "order", "name", "method", "path", "weight", "expected_statuses", "check_type",
            "check_path", "check_value", "headers", "secret_headers", "body", "extract",
            "poll_until_path", "poll_until_value", "poll_max_attempts", "poll_interval_s",
        ]  # fmt: skip
        widgets = {"headers": HeaderRowsWidget}
        field_classes = {"headers": CheckedJSONField, "secret_headers": CheckedJSONField}

    MASKED_TEXT_FIELDS = ("path", "check_path", "check_value", "body", "poll_until_value")

    def __init__(
        self,
        *args: Any,
        submitted: SubmittedDefinition | None = None,
        secret_values: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.submitted = submitted
        self.stored_headers = dict(self.instance.headers or {})
        self.stored_secret = list(self.instance.secret_headers or [])
        if self.instance.pk is None:
            # A new step counts DEFAULT_SUCCESS as success, as k6 and Locust do; codes narrow it.
            self.initial["expected_statuses"] = ""
        if self.instance.pk and "headers" in self.fields:
            self.initial["headers"] = secrets.masked_headers(
                self.stored_headers, self.stored_secret
            )
        # A secret header's value repeated in a text field (a path's query, a body) is shown
        # masked too; the text left as it was shown keeps the stored text.
        values = secrets.secret_values(
            {"steps": [{"headers": self.stored_headers, "secret_headers": self.stored_secret}]}
        ) | (secret_values or set())
        self.instance.shown_secret_values = values  # its label (the inline's title) too
        self.masked_texts: dict[str, tuple[str, str]] = {}
        for name in self.MASKED_TEXT_FIELDS:
            stored = getattr(self.instance, name, "")
            shown = secrets.redact(stored, values) if isinstance(stored, str) else stored
            if name in self.fields and shown != stored:
                self.initial[name] = shown
                self.masked_texts[name] = (shown, stored)

    def clean_secret_headers(self) -> Any:
        return self.cleaned_data.get("secret_headers") or []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kept_texts = self._restore_masked_texts(cleaned)
        kept_headers: list[str] = []
        headers = cleaned.get("headers")
        if isinstance(headers, dict):
            masked = [name for name, value in headers.items() if value == secrets.MASK]
            headers, unknown = secrets.restore_masked(
                headers, self.stored_headers, self.stored_secret
            )
            cleaned["headers"] = headers
            for name in unknown:
                self.add_error(
                    "headers",
                    f"{name}: type its value; {secrets.MASK} only stands for a secret already "
                    "stored under that name.",
                )
            kept_headers = [name for name in masked if name not in unknown]
        # A secret is bound to the target it was stored for: pointing the definition at
        # another host while keeping the masks would send the secrets there. Refused rather
        # than cleared, so that nothing stored is lost on a slip.
        kept = kept_texts or kept_headers
        moved = self.submitted.target_moved() if self.submitted and kept else None
        if moved:
            for name in kept_headers:
                self.add_error("headers", f"{name}: {secrets.moved_message(*moved, 'its value')}")
            for name in kept_texts:
                self.add_error(name, secrets.moved_message(*moved, "the secret in its place"))
        return cleaned

    def _restore_masked_texts(self, cleaned: dict[str, Any]) -> list[str]:
        kept = []
        for name in self.MASKED_TEXT_FIELDS:
            value = cleaned.get(name)
            if name in self.masked_texts and value == self.masked_texts[name][0]:
                cleaned[name] = self.masked_texts[name][1]
                kept.append(name)
            elif isinstance(value, str) and secrets.MASK in value:
                self.add_error(
                    name,
                    f"{secrets.MASK} stands for a secret only in the text as it was shown: "
                    "type the secret in its place.",
                )
        return kept


class StepInline(admin.StackedInline):
    """Steps in their order (a flow runs them top to bottom): static/loadtests/step_order.js
    adds up/down buttons that move a step and renumber the order fields."""

    model = LoadTestStep
    form = StepForm
    formset = StepFormSet
    extra = 0
    min_num = 1
    # The engine's size limit, checked (validate_max) before any step is checked against the
    # rest: a post of a million forms is refused at the form count.
    max_num = MAX_STEPS
    fields = [
        ("order", "name", "method", "path", "weight"),
        ("expected_statuses", "check_type", "check_path", "check_value"),
        "headers",
        "secret_headers",
        "body",
        "extract",
        ("poll_until_path", "poll_until_value", "poll_max_attempts", "poll_interval_s"),
    ]

    class Media:
        js = ["loadtests/step_order.js"]


class StageInline(admin.TabularInline):
    model = LoadTestStage
    formset = StageFormSet
    extra = 0
    max_num = MAX_STAGES
    fields = ["order", "duration_s", "target"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


DURATION_HELP = (
    "Used when no stages are given. With stages, it is ignored: the duration is the sum of "
    "the stage durations, set on save."
)


def target_url_help() -> str:
    """The target URL's help names the demo target this installation serves (TARGET_PORT)."""
    demo = f"http://127.0.0.1:{settings.TARGET_PORT}"
    hosts = ", ".join(settings.LOADTEST_ALLOWED_HOSTS)
    return (
        f"Scheme and host (and port). The emissions demo target here is {demo}. "
        f"Allowed hosts (LOADTEST_ALLOWED_HOSTS): {hosts}."
    )


class MaskedTargetURLField(forms.URLField):
    """The target URL with its user information (`user:password@`) shown masked: a mask left
    as it was keeps the stored user information, for the same scheme, host and port only
    (loadtests.secrets.restore_masked_url); a new value typed over it replaces it."""

    stored_url = ""  # set per form: the URL as stored

    def clean(self, value: Any) -> Any:
        value, problem = secrets.restore_masked_url(value, self.stored_url)
        if problem:
            raise ValidationError(problem)
        return super().clean(value)


class DefinitionForm(forms.ModelForm):
    """The definition's own form: a post that leaves out the flow settings (an older page, a
    script) keeps their defaults, as a document without them does."""

    # Declared for assume_scheme (Django 6 changes the default): a URL typed without one.
    alert_webhook_url = forms.URLField(
        label="Alert webhook",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=LoadTestDefinition._meta.get_field("alert_webhook_url").help_text,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("mode", "data_order", "overlap_policy"):
            if name in self.fields:
                self.fields[name].required = False
        if "target_base_url" in self.fields:
            field = self.fields["target_base_url"]
            field.help_text = target_url_help()
            if isinstance(field, MaskedTargetURLField) and self.instance.pk:
                field.stored_url = self.instance.target_base_url
                self.initial["target_base_url"] = secrets.masked_url(field.stored_url)
        if "duration_s" in self.fields:
            self.fields["duration_s"].help_text = DURATION_HELP

    def clean_mode(self) -> str:
        return self.cleaned_data.get("mode") or Mode.REQUESTS

    def clean_data_order(self) -> str:
        return self.cleaned_data.get("data_order") or DataOrder.SEQUENTIAL

    def clean_overlap_policy(self) -> str:
        return self.cleaned_data.get("overlap_policy") or OverlapPolicy.SKIP

    def clean_alert_emails(self) -> str:
        addresses = alerting.validate_alert_emails(self.cleaned_data.get("alert_emails") or "")
        return ", ".join(addresses)

    def clean_alert_webhook_url(self) -> str:
        return alerting.validate_alert_webhook_url(self.cleaned_data.get("alert_webhook_url") or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # The same rules as the definition page's schedule form; saving syncs the beat entry.
        add_schedule_problems(self, cleaned)
        return cleaned


class DataSetForm(forms.ModelForm):
    """A data set's upload: the file is checked (loadtests/datasets.py) and kept as text in
    the row. Changing an existing data set without a file keeps its rows."""

    file = forms.FileField(
        required=False,
        help_text="A UTF-8 CSV with a header row; at most LOADTEST_DATASET_MAX_MB MB.",
    )

    class Meta:
        model = DataSet
        fields = ["name", "description"]

    def clean_file(self) -> datasets.ParsedDataSet | None:
        upload = self.cleaned_data.get("file")
        if upload is None:
            if not self.instance.pk:
                raise ValidationError("Choose the CSV file to upload.")
            return None
        limit = settings.LOADTEST_DATASET_MAX_MB
        if upload.size > limit * 1024 * 1024:
            # Refused before it is read into memory.
            raise ValidationError(
                f"The file is {upload.size / 1024 / 1024:.1f} MB; data sets may be at most "
                f"{limit} MB (LOADTEST_DATASET_MAX_MB)."
            )
        try:
            return datasets.parse(upload.read(), max_mb=limit)
        except datasets.DataSetInvalid as exc:
            raise ValidationError(str(exc)) from exc


@admin.register(DataSet)
class DataSetAdmin(admin.ModelAdmin):
    form = DataSetForm
    list_display = ["name", "row_count", "column_list", "size_bytes", "uploaded_at", "short_sha"]
    search_fields = ["name", "description"]
    readonly_fields = [
        "column_list", "row_count", "size_bytes", "sha256", "uploaded_by", "uploaded_at",
    ]  # fmt: skip

    @admin.display(description="columns")
    def column_list(self, obj: DataSet) -> str:
        return ", ".join(obj.columns or [])

    @admin.display(description="sha256")
    def short_sha(self, obj: DataSet) -> str:
        return obj.sha256[:12]

    def save_model(self, request: HttpRequest, obj: DataSet, form: Any, change: bool) -> None:
        parsed = form.cleaned_data.get("file")
        if parsed is not None:
            obj.set_file(parsed)
            obj.uploaded_by, obj.uploaded_at = request.user, timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(LoadTestDefinition)
class LoadTestDefinitionAdmin(admin.ModelAdmin):
    form = DefinitionForm
    formfield_overrides = {
        TargetURLField: {
            "form_class": MaskedTargetURLField,
            # Not the admin's URL widget: it links to the value, here masked.
            "widget": forms.URLInput(attrs={"class": "vURLField"}),
        }
    }
    # Stages first: admin_definition.js moves them up beside the load model they shape.
    inlines = [StageInline, StepInline]
    change_form_template = "loadtests/admin/definition_change_form.html"
    list_display = ["name", "load_model", "level", "duration_s", "target", "tag_list"]
    list_filter = ["load_model", "tags"]
    # Not the target URL: a search by a password's characters would tell them one by one.
    search_fields = ["name", "description"]
    filter_horizontal = ["tags"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    raw_id_fields = ["baseline_run"]
    actions = ["run_now"]
    save_as = True  # "Save as new": a copy with its steps and stages, under a new name
    fieldsets = [
        (None, {"fields": ["name", "description", "tags"]}),
        (
            "Target",
            {
                "fields": [
                    "target_base_url",
                    ("timeout_s", "max_connections", "follow_redirects", "verify_tls"),
                    "agent_tagging",
                    "mode",
                    ("data_set", "data_order"),
                ]
            },
        ),
        (
            "Load model",
            {
                # static/loadtests/admin_definition.js shows only the chosen model's fields.
                "classes": ["load-model"],
                "fields": [
                    "load_model",
                    ("users", "think_time_min_s", "think_time_max_s"),
                    "rate_rps",
                    "duration_s",
                    "shards",
                ],
            },
        ),
        (
            "Thresholds",
            {
                "fields": [
                    ("threshold_p95_ms", "threshold_p99_ms", "threshold_iteration_p95_ms"),
                    ("threshold_error_rate_pct", "threshold_min_throughput_rps"),
                    "abort_error_rate_pct",
                    "baseline_run",
                ]
            },
        ),
        (
            "Schedule",
            {
                "fields": [
                    "schedule_kind",
                    ("schedule_every_s", "schedule_crontab", "schedule_timezone"),
                    ("schedule_enabled", "overlap_policy"),
                ]
            },
        ),
        ("Alerts", {"fields": ["alert_emails", "alert_webhook_url"]}),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    class Media:
        js = ["loadtests/admin_definition.js"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LoadTestDefinition]:
        return super().get_queryset(request).prefetch_related("tags")

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:definition_id>/validate/",
                self.admin_site.admin_view(self.validate_view),
                name="loadtests_loadtestdefinition_validate",
            ),
            path(
                "<int:definition_id>/try-once/",
                self.admin_site.admin_view(self.try_once_view),
                name="loadtests_loadtestdefinition_try_once",
            ),
            path(
                "<int:definition_id>/run-now/",
                self.admin_site.admin_view(self.run_now_view),
                name="loadtests_loadtestdefinition_run_now",
            ),
        ]
        return own + super().get_urls()

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["can_run"] = self.has_run_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def run_now_view(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        """The change form's Run now: queue a run of the saved definition and open its page."""
        return require_POST(self._run_now)(request, definition_id)

    def _run_now(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        if not self.has_run_permission(request):
            raise PermissionDenied
        definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
        try:
            run = tasks.queue_run(definition, trigger=RunTrigger.MANUAL, user=request.user)
        except documents.RunRefused as exc:
            problems = documents.problems_text(exc)
            self.message_user(request, f"Not started: {problems}", messages.ERROR)
            return redirect("admin:loadtests_loadtestdefinition_change", definition.pk)
        if run.status == RunStatus.ERROR:  # the broker was down; the run page says so
            self.message_user(request, f"Run #{run.pk}: {run.status_reason}", messages.ERROR)
        return redirect("loadtests:run", run.pk)

    def _checked_page(
        self, request: HttpRequest, definition: LoadTestDefinition, title: str, **context: Any
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": definition,
            "definition": definition,
            "title": f"{title}: {definition.name}",
            "change_url": reverse(
                "admin:loadtests_loadtestdefinition_change", args=[definition.pk]
            ),
            **context,
        }
        return render(request, "loadtests/admin/definition_check.html", context)

    def validate_view(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        """Compile every template of the saved definition and list the problems by step."""
        return require_POST(self._validate)(request, definition_id)

    def _validate(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        if not request.user.has_perm("loadtests.change_loadtestdefinition"):
            raise PermissionDenied
        definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
        report = flowcheck.validation_report(definition)
        return self._checked_page(request, definition, "Validate", validated=True, report=report)

    def try_once_view(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        """Run one iteration against the target and show every request and response."""
        return require_POST(self._try_once)(request, definition_id)

    def _try_once(self, request: HttpRequest, definition_id: int) -> HttpResponse:
        if not request.user.has_perm("loadtests.add_loadtestrun"):
            raise PermissionDenied
        definition = get_object_or_404(LoadTestDefinition, pk=definition_id)
        try:
            exchanges = flowcheck.try_once(definition)
        except flowcheck.TryRefused as exc:
            return self._checked_page(request, definition, "Try once", refused=str(exc))
        return self._checked_page(request, definition, "Try once", exchanges=exchanges)

    @admin.display(description="users / rate")
    def level(self, obj: LoadTestDefinition) -> str:
        return f"{obj.users} users" if obj.load_model == "closed" else f"{obj.rate_rps:g} req/s"

    @admin.display(description="target base URL", ordering="target_base_url")
    def target(self, obj: LoadTestDefinition) -> str:
        return secrets.masked_url(obj.target_base_url)

    @admin.display(description="tags")
    def tag_list(self, obj: LoadTestDefinition) -> str:
        return ", ".join(tag.name for tag in obj.tags.all())

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        definition = super().save_form(request, form, change)
        # Only a valid form gets here: from now on its inlines check the definition whole.
        submitted_definition(request, definition).form = form
        return definition

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if request.method == "POST":
            kwargs["submitted"] = submitted_definition(request, obj)
        return kwargs

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("loadtests.add_loadtestrun")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[LoadTestDefinition]) -> None:
        for definition in queryset:
            try:
                run = tasks.queue_run(definition, trigger=RunTrigger.MANUAL, user=request.user)
            except documents.RunRefused as exc:
                problems = documents.problems_text(exc)
                self.message_user(request, f"{definition}: not started: {problems}", messages.ERROR)
                continue
            url = reverse("loadtests:run", args=[run.pk])
            if run.status == RunStatus.ERROR:  # the broker was down
                link = format_html('<a href="{}">#{}</a>', url, run.pk)
                reason = format_html("{}: run {}: {}", definition, link, run.status_reason)
                self.message_user(request, reason, messages.ERROR)
                continue
            self.message_user(
                request,
                format_html('{}: run <a href="{}">#{}</a> queued.', definition, url, run.pk),
                messages.SUCCESS,
            )


# A run is history: the one field of it that may change is whether retention keeps it.
EDITABLE_RUN_FIELDS = ("keep",)


@admin.register(LoadTestRun)
class LoadTestRunAdmin(admin.ModelAdmin):
    # Short columns so that the list fits 1400 px: the run page has the rest.
    list_display = ["page_link", "short_name", "status", "trigger", "created", "p95", "errors_pct"]
    list_filter = ["status", "trigger", "passed", "definition"]
    search_fields = ["name", "status_reason"]
    date_hierarchy = "created_at"
    list_select_related = ["definition"]
    actions = ["cancel", "run_again"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "page_link", "name", "definition", "status", "shown_status_reason", "passed",
                    "trigger", "started_by", "created_at", "started_at", "finished_at",
                    "heartbeat_at", "worker_host", "worker_pid", "cancel_requested", "keep",
                ]
            },
        ),
        (
            "Summary",
            {
                "fields": [
                    "requests", "errors", "error_rate_pct", "throughput_rps", "duration_s",
                    ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                     "latency_p999_ms", "latency_max_ms"),
                    ("service_p50_ms", "service_p90_ms", "service_p95_ms", "service_p99_ms",
                     "service_p999_ms", "service_max_ms"),
                    ("iterations", "iterations_failed", "iteration_p50_ms", "iteration_p95_ms",
                     "iteration_p99_ms"),
                    "threshold_results", "errors_by_class", "steps_summary", "health", "valid",
                ]
            },
        ),
        ("Configuration", {"classes": ["collapse"], "fields": ["shown_config"]}),
    ]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            name
            for fieldset in self.fieldsets
            for entry in fieldset[1]["fields"]
            for name in (entry if isinstance(entry, tuple) else (entry,))
            if name not in EDITABLE_RUN_FIELDS
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Runs are history: only whether one is kept from pruning may change.
        return request.user.has_perm("loadtests.change_loadtestrun")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("loadtests.change_loadtestrun")

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("loadtests.add_loadtestrun")

    @admin.display(description="config")
    def shown_config(self, obj: LoadTestRun) -> str:
        # The frozen config with secret header values masked: only the engine sees them.
        return format_html(
            "<pre>{}</pre>",
            json.dumps(
                secrets.masked_config(documents.upgrade(obj.config)), indent=2, ensure_ascii=False
            ),
        )

    @admin.display(description="status reason")
    def shown_status_reason(self, obj: LoadTestRun) -> str:
        return secrets.redact_config_text(obj.status_reason, obj.config)

    @admin.display(description="run page")
    def page_link(self, obj: LoadTestRun) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("loadtests:run", args=[obj.pk]), obj.pk)

    @admin.display(description="name", ordering="name")
    def short_name(self, obj: LoadTestRun) -> str:
        return obj.name if len(obj.name) <= 40 else obj.name[:39] + "…"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: LoadTestRun) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="p95 ms", ordering="latency_p95_ms")
    def p95(self, obj: LoadTestRun) -> str:
        return "–" if obj.latency_p95_ms is None else f"{obj.latency_p95_ms:.1f}"

    @admin.display(description="errors %", ordering="error_rate_pct")
    def errors_pct(self, obj: LoadTestRun) -> str:
        return "–" if obj.error_rate_pct is None else f"{obj.error_rate_pct:.2f}"

    @admin.action(description="Cancel", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[LoadTestRun]) -> None:
        cancelled = sum(lifecycle.request_cancel(run) for run in queryset)
        self.message_user(request, f"Cancellation requested for {cancelled} run(s).")

    @admin.action(description="Run again (same definition)", permissions=["run"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[LoadTestRun]) -> None:
        started = 0
        for run in queryset.select_related("definition"):
            if run.definition is None:
                continue
            try:
                tasks.queue_run(run.definition, trigger=RunTrigger.MANUAL, user=request.user)
                started += 1
            except documents.RunRefused as exc:
                problems = documents.problems_text(exc)
                self.message_user(request, f"{run}: not started: {problems}", messages.ERROR)
        self.message_user(request, f"{started} run(s) queued.")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made here: the token is shown once, in the body of the page that answers
    the save (never in a message: the messages cookie is signed, not encrypted), and only its
    digest is kept. Users other than superusers see and make only their own. Revocation is
    final: once set, the box is read-only, and the model refuses to clear it."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    actions = ("revoke",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request).select_related("user")
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        who = ["user"] if request.user.is_superuser else []
        return [*who, "name", "revoked", "prefix", "created_at", "last_used_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "revoked"] if obj is not None and obj.revoked else fields

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"user": request.user.pk}

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.user = request.user
        token = None if change else obj.set_new_token()
        super().save_model(request, obj, form, change)
        if token is not None:
            # Only on this request, for response_add: never in a cookie or the session.
            request.new_api_token = token  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        token = getattr(request, "new_api_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"API token {obj.name!r} made",
            "api_token": obj,
            "token": token,
        }
        response = render(request, "loadtests/admin/token_created.html", context)
        patch_cache_control(response, no_store=True, no_cache=True, private=True)
        return response

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = queryset.update(revoked=True)
        self.message_user(request, f"{revoked} token(s) revoked.")


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = [
        "channel", "destination", "status", "attempts", "next_attempt_at", "sent_at", "last_error",
    ]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alerts are made by runs, never by hand; here they are read and acknowledged."""

    list_display = ["created_at", "kind", "definition", "run", "acknowledged_at", "acknowledged_by"]
    list_filter = ["kind", ("acknowledged_at", admin.EmptyFieldListFilter)]
    search_fields = ["message", "definition__name"]
    list_select_related = ["definition", "run", "acknowledged_by"]
    readonly_fields = [
        "definition", "run", "kind", "message", "details", "created_at",
        "acknowledged_at", "acknowledged_by",
    ]  # fmt: skip
    inlines = [AlertDeliveryInline]
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = sum(alerts.acknowledge(alert.pk, request.user) for alert in queryset)
        self.message_user(request, f"{done} alert(s) acknowledged.")
