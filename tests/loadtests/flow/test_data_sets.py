from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from loadtests.models import DataSet

pytestmark = pytest.mark.django_db
ADD = "/admin/loadtests/dataset/add/"


def upload(admin_client: Any, data: bytes, name: str = "customers", url: str = ADD) -> Any:
    file = SimpleUploadedFile("customers.csv", data, content_type="text/csv")
    return admin_client.post(url, {"name": name, "description": "", "file": file})


def errors_of(response: Any) -> str:
    form = response.context["adminform"].form
    return " ".join(" ".join(messages) for messages in form.errors.values())


def test_it_stores_an_uploaded_csv_with_its_columns_rows_and_hash(admin_client: Any) -> None:
    data = "\ufeffemail,name\na@example.com,Ann\nb@example.com,Björn\n".encode()
    response = upload(admin_client, data)
    assert response.status_code == 302, errors_of(response)
    data_set = DataSet.objects.get(name="customers")
    assert data_set.columns == ["email", "name"]
    assert data_set.row_count == 2
    assert data_set.sha256 == hashlib.sha256(data).hexdigest()
    assert data_set.rows()[1] == {"email": "b@example.com", "name": "Björn"}
    assert data_set.uploaded_by is not None and data_set.uploaded_at is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("name\nJosé\n".encode("latin-1"), "is not UTF-8 text (byte 9, line 2)"),
        (b"email,,name\na,b,c\n", "Header column 2 has no name"),
        (b"email,email\na,b\n", "'email' more than once; column names must be unique"),
        (b"email,name\n", "no data row"),
        (b"email,name\na,b\nc\nd,e\n", "Line 3 has 1 values; the header has 2 columns"),
        (b"\n", "The first line must be a header row"),
    ],
    ids=["encoding", "empty-column-name", "duplicate-column", "no-rows", "ragged-row", "empty"],
)
def test_it_refuses_a_bad_file_naming_the_rule(admin_client: Any, data: bytes, message: str):
    response = upload(admin_client, data)
    assert response.status_code == 200
    assert message in errors_of(response)
    assert not DataSet.objects.exists()


def test_it_refuses_a_file_over_the_size_limit(admin_client: Any, settings: Any) -> None:
    settings.LOADTEST_DATASET_MAX_MB = 1
    data = b"value\n" + b"x" * (1024 * 1024) + b"\n"
    response = upload(admin_client, data)
    assert "data sets may be at most 1 MB (LOADTEST_DATASET_MAX_MB)" in errors_of(response)
    assert not DataSet.objects.exists()


def test_replacing_the_file_changes_its_hash_and_keeping_it_does_not(admin_client: Any) -> None:
    upload(admin_client, b"sku\nA\n")
    data_set = DataSet.objects.get()
    first = data_set.sha256
    change = f"/admin/loadtests/dataset/{data_set.pk}/change/"
    assert admin_client.post(change, {"name": "customers", "description": "x"}).status_code == 302
    data_set.refresh_from_db()
    assert data_set.sha256 == first and data_set.description == "x"
    assert upload(admin_client, b"sku\nA\nB\n", url=change).status_code == 302
    data_set.refresh_from_db()
    assert data_set.sha256 != first and data_set.row_count == 2


def test_a_new_data_set_needs_a_file(admin_client: Any) -> None:
    response = admin_client.post(ADD, {"name": "customers", "description": ""})
    assert "Choose the CSV file to upload." in errors_of(response)
