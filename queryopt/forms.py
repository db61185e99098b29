from __future__ import annotations

from typing import Any

from django import forms

from queryopt.dsn import mask_dsn, with_password_of
from queryopt.models import QueryTarget
from queryopt.services import dsn_problem


class QueryTargetForm(forms.ModelForm):
    """The DSN is shown with its password masked; saved with the mask, the stored password
    stays."""

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
            dsn = with_password_of(dsn, self.instance.dsn)
        problem = dsn_problem(dsn)
        if problem:
            raise forms.ValidationError(problem)
        return dsn
