"""Each step's costliest statements, as the agent in a real target measured them, link to the
query page of that very statement: the optimizer's shape of it, which the capture and
pg_stat_statements snapshots fill too. Only those who may see queries follow the link."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from loadtests import lifecycle, services
from loadtests.models import LoadTestDefinition, LoadTestStep
from queryopt.fingerprints import fingerprint
from queryopt.models import QueryShape
from tests.agent.conftest import Shop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The shop's report statement as pg_stat_statements shows it: other literals, normalised.
REPORT_AS_POSTGRES_SHOWS_IT = (
    "WITH RECURSIVE n(x) AS (SELECT $1 UNION ALL SELECT x + $2 FROM n WHERE x < $3) "
    "SELECT count(*), sum(x % $4) FROM n"
)


def user_with(django_user_model: Any, name: str, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-12345-x")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_a_runs_top_statement_links_to_its_own_query_page(
    shop: Shop, settings: Any, django_user_model: Any
) -> None:
    settings.OFFGRIDPERF_AGENT_KEY = shop.key
    settings.OFFGRIDPERF_AGENT_REDIS_URL = shop.redis_url
    # The optimizer already knows the statement (a snapshot of the target saw it).
    known = QueryShape.objects.create(
        fingerprint=fingerprint(REPORT_AS_POSTGRES_SHOWS_IT),
        query_text=REPORT_AS_POSTGRES_SHOWS_IT,
    )
    definition = LoadTestDefinition.objects.create(
        name="shop report", target_base_url=shop.url, load_model="closed", users=1,
        duration_s=2, timeout_s=5,
    )  # fmt: skip
    LoadTestStep.objects.create(definition=definition, name="report", path="/report")
    LoadTestStep.objects.create(definition=definition, name="list books", path="/books")

    run = lifecycle.execute(services.create_run(definition).pk)

    run.refresh_from_db()
    top = run.steps_summary["report"]["top_sql"][0]
    assert top["sql"].startswith("WITH RECURSIVE")
    permitted = user_with(django_user_model, "ada", "view_loadtestrun", "view_queryshape")
    page = permitted.get(f"/runs/{run.pk}/").content.decode()
    link = f"/queries/runs/{run.pk}/statements/{top['fingerprint']}/"
    assert f'href="{link}"' in page
    # Every top statement of every step has a link of its own.
    links = set(re.findall(r'href="(/queries/runs/\d+/statements/\w+/)"', page))
    statements = {
        item["fingerprint"] for step in run.steps_summary.values() for item in step["top_sql"]
    }
    assert len(links) == len(statements) >= 3

    followed = permitted.get(link)

    assert followed.status_code == 302
    assert followed["Location"] == f"/queries/{known.pk}/"
    shown = permitted.get(followed["Location"])
    assert shown.status_code == 200
    assert "WITH RECURSIVE" in shown.content.decode()
    # A statement the optimizer had not seen gets its shape, filed as the capture files it.
    books_top = run.steps_summary["list books"]["top_sql"][0]
    new = permitted.get(f"/queries/runs/{run.pk}/statements/{books_top['fingerprint']}/")
    shape = QueryShape.objects.get(pk=int(new["Location"].strip("/").split("/")[-1]))
    assert shape.fingerprint == fingerprint(books_top["sql"])
    assert shape.query_text.startswith("SELECT")
    # Not a statement of this run: no page.
    assert permitted.get(f"/queries/runs/{run.pk}/statements/0123456789abcdef/").status_code == 404

    runs_only = user_with(django_user_model, "bob", "view_loadtestrun")
    assert runs_only.get(f"/runs/{run.pk}/").status_code == 200
    refused = runs_only.get(link)
    assert refused.status_code == 403
    assert "queryopt.view_queryshape" in refused.content.decode()
