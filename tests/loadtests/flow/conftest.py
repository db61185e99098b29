from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from loadtests import datasets
from loadtests.models import DataSet, LoadTestDefinition, LoadTestStep

CSV = b"sku,qty\nA-1,3\nB-2,5\n"


def make_data_set(name: str = "skus", data: bytes = CSV) -> DataSet:
    data_set = DataSet(name=name)
    data_set.set_file(datasets.parse(data, max_mb=10))
    data_set.save()
    return data_set


@pytest.fixture
def data_set(db: Any) -> DataSet:
    return make_data_set()


@pytest.fixture
def flow_definition(db: Any, target_url: str, data_set: DataSet) -> LoadTestDefinition:
    """A two-step flow on the local target: read /json, take its data.id, echo it back with
    the data set's row."""
    definition = LoadTestDefinition.objects.create(
        name="journey",
        mode="flow",
        data_set=data_set,
        target_base_url=target_url,
        load_model="closed",
        users=2,
        duration_s=2,
        timeout_s=2,
        threshold_iteration_p95_ms=5000,
    )
    LoadTestStep.objects.create(
        definition=definition,
        order=0,
        name="read",
        path="/json",
        expected_statuses="",
        extract=[{"variable": "item_id", "from": "json", "expression": "$.data.id"}],
    )
    LoadTestStep.objects.create(
        definition=definition,
        order=1,
        name="echo",
        method="POST",
        path="/echo?item={{ item_id }}",
        headers={"Authorization": "Bearer flow-secret-token", "Content-Type": "text/plain"},
        body="sku={{ row.sku }} user={{ user }}",
        expected_statuses="",
    )
    return definition


def staff_with(django_user_model: type[User], username: str, *codenames: str) -> User:
    user = django_user_model.objects.create_user(username, password="pw-12345678", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user
