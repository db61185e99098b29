"""Whether an existing index covers the columns a recommendation wants (a leading prefix only)."""

from __future__ import annotations

from queryopt.advisor import is_covered


def test_it_counts_an_index_as_covering_only_as_a_leading_prefix() -> None:
    keys = [("id",), ("site", "kg_co2e")]
    assert is_covered(["site"], keys)
    assert is_covered(["site", "kg_co2e"], keys)
    assert not is_covered(["kg_co2e"], keys)
    assert not is_covered(["kg_co2e", "site"], keys)
    ordered = [(("site", ""), ("kg_co2e", "DESC NULLS LAST"))]
    assert is_covered([("site", ""), ("kg_co2e", "DESC NULLS LAST")], ordered)
    assert is_covered(["site"], ordered)
    assert not is_covered(["site", "kg_co2e"], ordered)
