from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from loadtests import services
from loadtests.models import LoadTestDefinition

pytestmark = pytest.mark.django_db

REFERENCE = sorted(
    str(p) for p in (Path(settings.BASE_DIR) / "emissions" / "loadtests").glob("*.json")
)


def register() -> str:
    # What `make run` does at every start.
    out = StringIO()
    call_command("loadtest", "import", "--if-missing", *REFERENCE, stdout=out)
    return out.getvalue()


def test_it_registers_the_reference_load_tests_once_and_keeps_edits() -> None:
    assert "created emissions-smoke" in register()
    smoke = LoadTestDefinition.objects.get(name="emissions-smoke")
    steady = LoadTestDefinition.objects.get(name="emissions-steady")
    assert (smoke.load_model, smoke.users, smoke.duration_s) == ("closed", 10, 30)
    assert steady.load_model == "open" and steady.rate_rps > 0
    assert smoke.target_base_url == f"http://127.0.0.1:{settings.TARGET_PORT}"
    assert smoke.steps.count() > 3
    smoke.users = 3
    smoke.save()
    assert "kept emissions-smoke" in register()
    assert LoadTestDefinition.objects.filter(name__startswith="emissions-").count() == len(
        REFERENCE
    )
    assert LoadTestDefinition.objects.get(name="emissions-smoke").users == 3
    assert services.create_run(steady).config["load_model"] == "open"
