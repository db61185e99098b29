from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from shop.models import Book


def book_list(request: HttpRequest) -> JsonResponse:
    """The N+1: one query for the books, then one per book for its author."""
    books = [{"title": book.title, "author": book.author.name} for book in Book.objects.all()]
    return JsonResponse({"books": books})


def checksum(request: HttpRequest) -> JsonResponse:
    """CPU-heavy: pure Python work, one cache read."""
    cache.get("checksum")
    total = 0
    for value in range(60_000):
        total = (total * 31 + value * value) % 1_000_000_007
    return JsonResponse({"checksum": total})


def report(request: HttpRequest) -> JsonResponse:
    """Database-heavy: one statement that makes SQLite count for a long while."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000) "
            "SELECT count(*), sum(x % 7) FROM n"
        )
        count, total = cursor.fetchone()
    return JsonResponse({"count": count, "total": total})
