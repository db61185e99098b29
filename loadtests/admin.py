from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from loadtests import documents, execution, secrets, tasks
from loadtests.models import (
    ApiToken,
    LoadTestDefinition,
    LoadTestRun,
    LoadTestStage,
    LoadTestStep,
    RunStatus,
    RunTrigger,
    Tag,
)


class SubmittedDefinition:
    """One admin save of a definition: its form and inline formsets, checked together.

    Each part is first validated on its own (field validators, the models' clean()). Once all
    are valid, the definition is frozen from the submitted forms as a run would freeze it and
    checked by the engine's rules (`documents.config_problems`), so that what the admin saves,
    Run now starts. Each problem is reported on the form and field it concerns.
    """

    def __init__(self, definition: LoadTestDefinition) -> None:
        self.definition = definition
        self.form: forms.ModelForm | None = None  # the definition's own form, once valid
        self.formsets: dict[str, BaseInlineFormSet] = {}
        self._problems: dict[str, list[str]] | None = None

    def problems(self) -> dict[str, list[str]]:
        if self._problems is None:
            self._problems = self._check()
        return self._problems

    def _check(self) -> dict[str, list[str]]:
        steps, stages = self.kept("steps"), self.kept("stages")
        if self.form is None or steps is None or stages is None:
            return {}  # a part has problems of its own; they come first
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
            part = _INLINE_FIELD.fullmatch(field)
            if part and part["inline"] == prefix:
                form = forms_in_order[int(part["index"])]
                if part["field"] in form.fields:
                    form.add_error(part["field"], texts)
                else:
                    whole += [f"{part['field']}: {text}" for text in texts]
            elif field == prefix:
                whole += texts
            elif prefix == "stages" and not part and field != "steps":
                whole += self._report_on_definition(field, texts)
        return whole

    def _report_on_definition(self, field: str, texts: list[str]) -> list[str]:
        form = self.form
        if form is not None and field in form.fields:
            form.add_error(field, texts)
            # The form was valid when the admin asked; only an inline's error stops the save.
            return ["Correct the fields above: the definition is checked with its inlines."]
        return [f"{field}: {text}" for text in texts]


_INLINE_FIELD = re.compile(r"(?P<inline>steps|stages)\[(?P<index>\d+)\]\.(?P<field>\w+)")


def submitted_definition(
    request: HttpRequest, definition: LoadTestDefinition
) -> SubmittedDefinition:
    """The SubmittedDefinition of this request: the admin builds the definition's form and each
    inline's formset separately, and the request is all they have in common."""
    submitted = getattr(request, "loadtest_submitted_definition", None)
    if submitted is None or submitted.definition is not definition:
        submitted = SubmittedDefinition(definition)
        request.loadtest_submitted_definition = submitted  # type: ignore[attr-defined]
    return submitted


class DefinitionInlineFormSet(BaseInlineFormSet):
    """An inline of a definition: valid on its own, then checked with the whole definition."""

    def __init__(self, *args: Any, submitted: SubmittedDefinition | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.submitted = submitted
        if submitted is not None:
            submitted.formsets[self.prefix] = self

    def clean(self) -> None:
        super().clean()
        if self.submitted is not None:
            whole = self.submitted.report(self.prefix)
            if whole:
                raise ValidationError(whole)


class StepFormSet(DefinitionInlineFormSet):
    def clean(self) -> None:
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError("Add at least one step.")
        super().clean()


class StageFormSet(DefinitionInlineFormSet):
    pass


class StepForm(forms.ModelForm):
    """A step whose secret header values are never sent back to the browser: the form shows
    the mask, and a mask left as it was keeps the stored value (so editing a step's path does
    not wipe its token), while a value typed over it replaces it."""

    class Meta:
        model = LoadTestStep
        fields = [
            "order", "name", "method", "path", "weight", "expected_statuses", "check_type",
            "check_path", "check_value", "headers", "secret_headers", "body",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_headers = dict(self.instance.headers or {})
        self.stored_secret = list(self.instance.secret_headers or [])
        if self.instance.pk and "headers" in self.fields:
            self.initial["headers"] = secrets.masked_headers(
                self.stored_headers, self.stored_secret
            )

    def clean_secret_headers(self) -> Any:
        return self.cleaned_data.get("secret_headers") or []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        headers = cleaned.get("headers")
        if isinstance(headers, dict):
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
        return cleaned


class StepInline(admin.StackedInline):
    model = LoadTestStep
    form = StepForm
    formset = StepFormSet
    extra = 0
    min_num = 1
    fields = [
        ("order", "name", "method", "path", "weight"),
        ("expected_statuses", "check_type", "check_path", "check_value"),
        "headers",
        "secret_headers",
        "body",
    ]


class StageInline(admin.TabularInline):
    model = LoadTestStage
    formset = StageFormSet
    extra = 0
    fields = ["order", "duration_s", "target"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(LoadTestDefinition)
class LoadTestDefinitionAdmin(admin.ModelAdmin):
    inlines = [StepInline, StageInline]
    list_display = ["name", "load_model", "level", "duration_s", "target_base_url", "tag_list"]
    list_filter = ["load_model", "tags"]
    search_fields = ["name", "description", "target_base_url"]
    filter_horizontal = ["tags"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    raw_id_fields = ["baseline_run"]
    actions = ["run_now"]
    fieldsets = [
        (None, {"fields": ["name", "description", "target_base_url", "tags"]}),
        (
            "Load",
            {
                "fields": [
                    "load_model",
                    ("users", "think_time_min_s", "think_time_max_s"),
                    "rate_rps",
                    "duration_s",
                    ("timeout_s", "max_connections", "follow_redirects", "verify_tls"),
                ]
            },
        ),
        (
            "Pass/fail",
            {
                "fields": [
                    ("threshold_p95_ms", "threshold_p99_ms"),
                    ("threshold_error_rate_pct", "threshold_min_throughput_rps"),
                    "abort_error_rate_pct",
                    "baseline_run",
                ]
            },
        ),
        ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LoadTestDefinition]:
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="users / rate")
    def level(self, obj: LoadTestDefinition) -> str:
        return f"{obj.users} users" if obj.load_model == "closed" else f"{obj.rate_rps:g} req/s"

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


@admin.register(LoadTestRun)
class LoadTestRunAdmin(admin.ModelAdmin):
    list_display = [
        "id", "name", "status", "trigger", "created_at", "requests", "latency_p95_ms",
        "error_rate_pct", "passed", "page_link",
    ]  # fmt: skip
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
                    "page_link", "name", "definition", "status", "status_reason", "passed",
                    "trigger", "started_by", "created_at", "started_at", "finished_at",
                    "heartbeat_at", "worker_host", "worker_pid", "cancel_requested",
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
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # runs are history: read-only

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

    @admin.display(description="run page")
    def page_link(self, obj: LoadTestRun) -> str:
        return format_html('<a href="{}">open</a>', reverse("loadtests:run", args=[obj.pk]))

    @admin.action(description="Cancel", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[LoadTestRun]) -> None:
        cancelled = sum(execution.request_cancel(run) for run in queryset)
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
    """Tokens are made here: the token is shown once, in a message after the save, and only
    its digest is kept. Users other than superusers see and make only their own."""

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

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"user": request.user.pk}

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            obj.user = request.user
        token = None if change else obj.set_new_token()
        super().save_model(request, obj, form, change)
        if token is not None:
            self.message_user(
                request,
                f"The new API token {obj.name!r}: {token} — copy it now: it is stored hashed "
                "and never shown again. Send it as `Authorization: Bearer <token>`.",
                messages.WARNING,
            )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = queryset.update(revoked=True)
        self.message_user(request, f"{revoked} token(s) revoked.")
