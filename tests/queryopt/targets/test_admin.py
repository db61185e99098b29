from __future__ import annotations

from typing import Any

from django.urls import reverse

from queryopt import snapshots
from queryopt.dsn import MASK
from queryopt.models import QueryTarget, SnapshotReason
from tests.conftest import closed_port
from tests.queryopt.targets.conftest import PASSWORD


def form_data(target: QueryTarget, dsn: str) -> dict[str, Any]:
    return {
        "name": target.name,
        "dsn": dsn,
        "slow_threshold_ms": "100",
        "polling_interval_s": "60",
        "enabled": "on",
    }


def test_it_shows_the_dsn_masked_in_the_list_and_the_form(
    admin_client: Any, target: QueryTarget
) -> None:
    pages = [
        admin_client.get(reverse("admin:queryopt_querytarget_changelist")),
        admin_client.get(reverse("admin:queryopt_querytarget_change", args=[target.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        assert f"password={MASK}" in page.content.decode()
        assert PASSWORD not in page.content.decode()


def test_it_keeps_the_stored_password_when_the_form_comes_back_masked(
    admin_client: Any, target: QueryTarget
) -> None:
    url = reverse("admin:queryopt_querytarget_change", args=[target.pk])
    masked = admin_client.get(url).context["adminform"].form.initial["dsn"]
    assert MASK in masked
    response = admin_client.post(url, form_data(target, masked))
    assert response.status_code == 302
    target.refresh_from_db()
    assert f"password={PASSWORD}" in target.dsn
    response = admin_client.post(url, form_data(target, masked.replace(MASK, "n3w-pass")))
    assert response.status_code == 302
    target.refresh_from_db()
    assert "password=n3w-pass" in target.dsn


def test_it_shows_a_failed_targets_error_without_its_password(admin_client: Any) -> None:
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres"
    target = QueryTarget.objects.create(name="down", dsn=dsn)
    try:
        snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    except Exception as exc:  # noqa: BLE001 - the error itself is checked below
        error = str(exc)
    page = admin_client.get(reverse("admin:queryopt_querytarget_change", args=[target.pk]))
    content = page.content.decode()
    assert "cannot connect to" in content
    assert PASSWORD not in content and PASSWORD not in error


def test_it_lists_snapshots_and_deltas_read_only(admin_client: Any, target: QueryTarget) -> None:
    snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    snapshot = snapshots.take_snapshot(target, SnapshotReason.MANUAL)
    assert snapshot.deltas.exists()  # at least the first snapshot's own statements
    for name in ["statementsnapshot", "statementdelta"]:
        page = admin_client.get(reverse(f"admin:queryopt_{name}_changelist"))
        assert page.status_code == 200
        assert admin_client.get(reverse(f"admin:queryopt_{name}_add")).status_code == 403
    page = admin_client.get(reverse("admin:queryopt_statementsnapshot_change", args=[snapshot.pk]))
    assert page.status_code == 200
    assert PASSWORD not in page.content.decode()
