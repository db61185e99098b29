from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from loadtests import services
from loadtests.models import LoadTestDefinition

pytestmark = pytest.mark.django_db


def test_it_registers_the_reference_load_tests_once_and_keeps_edits() -> None:
    call_command("register_reference_loadtests", stdout=StringIO())
    smoke = LoadTestDefinition.objects.get(name="emissions-smoke")
    steady = LoadTestDefinition.objects.get(name="emissions-steady")
    assert (smoke.load_model, smoke.users, smoke.duration_s) == ("closed", 10, 30)
    assert steady.load_model == "open" and steady.rate_rps > 0
    assert smoke.steps.count() > 3
    smoke.users = 3
    smoke.save()
    call_command("register_reference_loadtests", stdout=StringIO())
    assert LoadTestDefinition.objects.filter(name__startswith="emissions-").count() == 2
    assert LoadTestDefinition.objects.get(name="emissions-smoke").users == 3
    assert services.create_run(steady).config["load_model"] == "open"
