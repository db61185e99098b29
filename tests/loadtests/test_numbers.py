"""Numbers in URLs and on the command line are ASCII digits only: int() also reads '٣' as 3."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command

from loadtests.models import LoadTestDefinition, LoadTestRun
from loadtests.validators import ascii_number


@pytest.mark.parametrize("text", ["٣", "３", "²", " 3", "3 ", "+3", "-3", "3_0", "", "1" * 11])
def test_it_takes_only_plain_ascii_digits_as_a_number(text: str) -> None:
    assert ascii_number(text) is None


def test_it_reads_ascii_digits_up_to_the_maximum() -> None:
    assert ascii_number("0") == 0
    assert ascii_number("0042") == 42
    assert ascii_number("2147483647") == 2**31 - 1
    assert ascii_number("2147483648") is None
    assert ascii_number("9", maximum=8) is None


@pytest.mark.parametrize("after", ["٣", "99999999999999999999", "1e3", "-2", " 1"])
def test_the_live_endpoint_refuses_an_after_that_is_not_ascii_digits(
    admin_client: Any, definition: LoadTestDefinition, after: str
) -> None:
    run = LoadTestRun.objects.create(definition=definition, name="r", config={})
    response = admin_client.get(f"/runs/{run.pk}/live/", {"after": after})
    assert response.status_code == 400
    assert response.json()["error"].startswith("after:")


def test_the_cli_does_not_read_foreign_digits_as_a_definition_id(
    definition: LoadTestDefinition,
) -> None:
    foreign = str(definition.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    with pytest.raises(CommandError, match="no load-test definition named or numbered"):
        call_command("loadtest", "run", foreign)
    assert not LoadTestRun.objects.exists()


def test_the_live_endpoint_takes_minus_one_for_nothing_shown_yet(
    admin_client: Any, definition: LoadTestDefinition
) -> None:
    run = LoadTestRun.objects.create(definition=definition, name="r", config={})
    assert admin_client.get(f"/runs/{run.pk}/live/", {"after": "-1"}).status_code == 200
    assert admin_client.get(f"/runs/{run.pk}/live/").status_code == 200
