"""Real generator processes for sharded runs (tests/loadtests/generators.py)."""

from __future__ import annotations

from tests.loadtests.generators import Generators, generators, wait_until

__all__ = ["Generators", "generators", "wait_until"]
