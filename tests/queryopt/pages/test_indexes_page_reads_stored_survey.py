"""The Indexes page shows the unused and duplicate indexes a worker task last read, never
connecting to the target itself: a refresh is a POST that queues the task, and the page says
when the indexes were read and that a refresh is pending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from queryopt import services, tasks
from queryopt.models import IndexSurvey, QueryTarget
from tests.queryopt.fakepg import FakePostgres

pytestmark = pytest.mark.django_db


@pytest.fixture
def hanging() -> Iterator[FakePostgres]:
    with FakePostgres(silent=True) as server:
        yield server


@pytest.fixture
def hanging_target(hanging: FakePostgres) -> QueryTarget:
    dsn = f"host=127.0.0.1 port={hanging.port} dbname=shop user=tuner password=pw"
    return QueryTarget.objects.create(name="hangs", dsn=dsn)


@pytest.fixture
def engineer_client(client: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("engineer", password="pw-engineer-1")
    codenames = ["change_querytarget", "view_queryshape"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def indexes_url(target: QueryTarget) -> str:
    return f"/queries/indexes/?target={target.pk}"


def test_the_page_never_opens_a_connection_to_the_target(
    viewer_client: Any, hanging_target: QueryTarget, hanging: FakePostgres
) -> None:
    for _ in range(3):
        response = viewer_client.get(indexes_url(hanging_target))
        assert response.status_code == 200
    body = response.content.decode()
    assert "Not read from hangs yet" in body
    assert 'id="refresh-indexes"' not in body  # the viewer may not ask for a refresh
    assert hanging.connections == 0


def test_a_refresh_is_queued_by_a_post_and_shown_pending(
    engineer_client: Any, hanging_target: QueryTarget, hanging: FakePostgres
) -> None:
    url = f"/queries/indexes/{hanging_target.pk}/refresh/"
    response = engineer_client.post(url, follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    assert "is pending" in body and 'http-equiv="refresh"' in body
    assert 'id="refresh-indexes" disabled' in body
    survey = IndexSurvey.objects.get(target=hanging_target)
    assert survey.refreshing and survey.taken_at is None
    # Asking again while it is pending queues nothing more.
    body = engineer_client.post(url, follow=True).content.decode()
    assert "are being read already" in body
    assert hanging.connections == 0


def test_a_refresh_needs_the_permission_to_change_targets(
    viewer_client: Any, hanging_target: QueryTarget
) -> None:
    response = viewer_client.post(f"/queries/indexes/{hanging_target.pk}/refresh/")
    assert response.status_code == 403
    assert not IndexSurvey.objects.exists()


def test_the_task_reads_the_indexes_and_the_page_shows_them_with_the_time(
    viewer_client: Any, pg: Any, scratch_dsn: str
) -> None:
    pg.execute("DROP TABLE IF EXISTS surveyed")
    pg.execute("CREATE TABLE surveyed (id bigint PRIMARY KEY, site int)")
    pg.execute("CREATE INDEX surveyed_site ON surveyed (site)")
    target = QueryTarget.objects.create(name="scratch", dsn=scratch_dsn)
    services.request_index_survey(target)
    try:
        assert tasks.refresh_index_survey(target.pk) is not None
    finally:
        pg.execute("DROP TABLE surveyed")
    body = viewer_client.get(indexes_url(target)).content.decode()
    assert "Last read from scratch at" in body and "is pending" not in body
    unused = body.split('id="unused-indexes"', 1)[1].split("</table>", 1)[0]
    assert "surveyed_site" in unused  # as read then, though the table is gone now


def test_a_failed_reading_keeps_the_last_one_and_says_why(viewer_client: Any, db: Any) -> None:
    target = QueryTarget.objects.create(name="gone", dsn="host=127.0.0.1 port=1 dbname=x")
    row = {"index": "old_idx", "schema": "public", "table": "t", "size_bytes": 8192}
    IndexSurvey.objects.create(target=target, unused=[row])
    tasks.refresh_index_survey(target.pk)
    body = viewer_client.get(indexes_url(target)).content.decode()
    assert 'id="index-problem"' in body and "cannot connect" in body
    assert "old_idx" in body
