from __future__ import annotations

from typing import Any

from django.db import migrations, models

BOOKS = 20


def seed(apps: Any, schema_editor: Any) -> None:
    author_model, book_model = apps.get_model("shop", "Author"), apps.get_model("shop", "Book")
    for index in range(BOOKS):
        author = author_model.objects.create(name=f"author {index}")
        book_model.objects.create(title=f"book {index}", author=author)


class Migration(migrations.Migration):
    initial = True
    dependencies: list[Any] = []
    operations = [
        migrations.CreateModel(
            name="Author",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
            ],
        ),
        migrations.CreateModel(
            name="Book",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("title", models.CharField(max_length=100)),
                ("author", models.ForeignKey(on_delete=models.CASCADE, to="shop.author")),
            ],
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
