"""How a parallel run (`make test`, pytest-xdist `--dist loadgroup`) places tests on workers:
tests of server-wide state share one worker, and so do the tests of a module with a costly
module-scoped fixture, which is then built once per run."""

from __future__ import annotations

from tests.conftest import STANDALONE_RUN, run_order, server_state_group


def test_a_modules_tests_with_a_shared_product_share_one_group() -> None:
    first = server_state_group("tests/faults/test_faults.py::test_a")
    assert first == server_state_group("tests/faults/test_faults.py::test_b[x]")
    assert first != server_state_group("tests/faults/test_database_loss.py::test_a")


def test_tests_of_server_wide_state_share_one_group_across_modules() -> None:
    assert server_state_group("tests/queryopt/indexes/test_a.py::t") == "pg_stat_statements"
    assert server_state_group("tests/queryopt/tuning/test_b.py::t") == "pg_stat_statements"


def test_other_tests_are_placed_one_by_one() -> None:
    assert server_state_group("tests/emissions/test_api.py::test_it_lists") is None


def test_the_engines_tests_are_handed_out_first_then_groups_most_tests_first() -> None:
    sizes = {"pg_stat_statements": 40, "whole_product": 12}
    engine = run_order(STANDALONE_RUN, sizes)
    pg = run_order("tests/queryopt/indexes/test_a.py::t", sizes)
    whole_product = run_order("tests/defaults/test_x.py::test_a", sizes)
    single = run_order("tests/emissions/test_api.py::test_it_lists", sizes)
    assert engine < pg < whole_product < single
