"""Form behaviour shared by the tool's list pages."""

from __future__ import annotations

from typing import Any

from django import forms


class FilterForm(forms.Form):
    """A GET filter form whose good fields apply even when others are bad, each bad one named
    in one line. Fields `since` and `until`, when a form has them, must be in order."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be on or after the 'since' date.")
        return cleaned

    def valid_filters(self) -> dict[str, Any]:
        """The fields that cleaned, whatever happened to the others."""
        self.is_valid()
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.errors and value not in (None, "")
        }

    def problems(self) -> list[str]:
        return [
            f"{self.fields[name].label or name}: {' '.join(messages)}"
            for name, messages in self.errors.items()
        ]
