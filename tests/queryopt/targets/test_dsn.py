from __future__ import annotations

import pytest

from queryopt.dsn import MASK, mask_dsn, password_of, redact, with_password_of


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:p%40ss@db:5432/shop", f"postgresql://app:{MASK}@db:5432/shop"),
        (
            "postgres://app:pw@db/shop?sslmode=require",
            f"postgres://app:{MASK}@db/shop?sslmode=require",
        ),
        ("postgresql://app@db/shop?password=pw", f"postgresql://app@db/shop?password={MASK}"),
        (
            "host=db user=app password=pw dbname=shop",
            f"user=app password={MASK} dbname=shop host=db",
        ),
        ("postgresql://app@db/shop", "postgresql://app@db/shop"),
    ],
)
def test_it_masks_the_password_and_puts_the_stored_one_back(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
    restored = with_password_of(mask_dsn(dsn), dsn)
    assert password_of(restored) == password_of(dsn)


def test_it_takes_the_new_password_when_one_is_typed() -> None:
    stored = "postgresql://app:old@db/shop"
    assert (
        with_password_of("postgresql://app:new@db/shop", stored) == "postgresql://app:new@db/shop"
    )


def test_it_redacts_the_password_raw_and_url_encoded() -> None:
    dsn = "postgresql://app:p%40ss%2Fw@db/shop"
    text = redact("failed for p@ss/w and p%40ss%2Fw", dsn)
    assert text == f"failed for {MASK} and {MASK}"
    assert redact("nothing to hide", "host=db") == "nothing to hide"
