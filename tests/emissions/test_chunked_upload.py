"""Chunked uploads (Transfer-Encoding: chunked, no Content-Length) to the real target server.

gunicorn, which serves the target, hands a chunked body to WSGI as wsgi.input without
CONTENT_LENGTH; Django reads that as an empty body. The test client always sends a length,
so these tests start the target as `runall` does (gunicorn, OFFGRIDPERF_ROLE=target).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from django.conf import settings

from emissions import rows
from emissions.models import ActivityBatch
from tests.conftest import ROOT, closed_port, worker_env
from tests.emissions.conftest import KNOWN_ROWS, csv_text, many_rows

UPLOAD_MAX_MB = 1
START_TIMEOUT_S = 60
PIECE = 16 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def target(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[str, int]]:
    """The emissions target under gunicorn on a free port, against the test database."""
    from django.db import connection

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    port = closed_port()
    env = {
        **worker_env(database_name),
        "OFFGRIDPERF_ROLE": "target",
        "EMISSIONS_API_TOKEN": settings.EMISSIONS_API_TOKEN,
        "EMISSIONS_UPLOAD_MAX_MB": str(UPLOAD_MAX_MB),
    }
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "offgridperf.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*argv, "--workers", "1", "--threads", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_serving(proc, port)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the target did not answer within {START_TIMEOUT_S} s")


def pieces(data: bytes) -> Iterable[bytes]:
    return (data[start : start + PIECE] for start in range(0, len(data), PIECE))


def send_chunked(
    target: tuple[str, int], method: str, path: str, data: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(*target, timeout=30)
    headers = {
        "Content-Type": content_type,
        "Authorization": f"Bearer {settings.EMISSIONS_API_TOKEN}",
    }
    # An iterable body without Content-Length: http.client sends it chunked.
    conn.request(method, path, body=pieces(data), headers=headers, encode_chunked=True)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


UPLOAD = "/api/batches/?organisation=Acme&period=2024"


def test_it_reads_a_chunked_csv_upload(target: tuple[str, int]) -> None:
    text = csv_text(many_rows(3000))  # well over one chunk
    status, body = send_chunked(
        target, "POST", f"{UPLOAD}&reference=chunky", text.encode(), "text/csv"
    )
    assert (status, body["row_count"], body["error_count"]) == (201, 3000, 0)
    assert ActivityBatch.objects.get(reference="chunky").activities.count() == 3000


def test_it_reads_a_chunked_json_upload_and_reupload(target: tuple[str, int]) -> None:
    activities = [dict(zip(rows.FIELDS, row, strict=True)) for row in KNOWN_ROWS]
    payload = json.dumps({"reference": "chunky-json", "activities": activities}).encode()
    status, body = send_chunked(target, "POST", UPLOAD, payload, "application/json")
    assert (status, body["row_count"]) == (201, len(KNOWN_ROWS))
    replacement = csv_text(KNOWN_ROWS[:2]).encode()
    status, body = send_chunked(target, "PUT", "/api/batches/chunky-json/", replacement, "text/csv")
    assert (status, body["row_count"]) == (200, 2)


def test_it_reads_a_chunked_multipart_upload(target: tuple[str, int]) -> None:
    boundary = "chunked-boundary-1234"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="organisation"\r\n\r\nAcme\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="period"\r\n\r\n2024-03\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="rows.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text(KNOWN_ROWS)}\r\n",
        f"--{boundary}--\r\n",
    ]
    content_type = f"multipart/form-data; boundary={boundary}"
    status, body = send_chunked(
        target, "POST", "/api/batches/", "".join(parts).encode(), content_type
    )
    assert (status, body["row_count"], body["period"]) == (201, len(KNOWN_ROWS), "2024-03")


def test_it_refuses_a_chunked_upload_over_the_limit_with_a_413(target: tuple[str, int]) -> None:
    header, row = csv_text(many_rows(1)).splitlines(keepends=True)
    limit = UPLOAD_MAX_MB * 1024 * 1024
    text = header + row * (limit // len(row) + 10)
    status, body = send_chunked(target, "POST", UPLOAD, text.encode(), "text/csv")
    assert status == 413
    assert body["errors"]["body"] == (
        f"is larger than the limit of {UPLOAD_MAX_MB} MB (EMISSIONS_UPLOAD_MAX_MB)"
    )
    assert not ActivityBatch.objects.exists()


def test_it_still_says_an_empty_chunked_upload_is_empty(target: tuple[str, int]) -> None:
    status, body = send_chunked(target, "POST", UPLOAD, b"", "text/csv")
    assert status == 400
    assert "empty" in body["errors"]["file"]
