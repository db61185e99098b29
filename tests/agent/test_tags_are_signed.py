"""The run tag: only a tag signed with the shared key names a run and a step."""

from __future__ import annotations

from offgridperf_agent import tags

KEY = b"k" * 32


def test_it_reads_back_the_run_and_step_it_signed() -> None:
    value = tags.sign(KEY, 42, "list batches; page 2")
    assert tags.verify(KEY, value) == tags.Tag(42, "list batches; page 2")


def test_it_refuses_a_tag_signed_with_another_key() -> None:
    assert tags.verify(KEY, tags.sign(b"x" * 32, 42, "list")) is None


def test_it_refuses_a_tag_whose_run_or_step_was_changed() -> None:
    value = tags.sign(KEY, 42, "list")
    assert tags.verify(KEY, value.replace("run=42", "run=43")) is None
    assert tags.verify(KEY, value.replace("step=list", "step=lisT")) is None


def test_it_refuses_unsigned_and_malformed_tags() -> None:
    for value in ("", "v1;run=42;step=list", "v1;run=42;step=list;sig=", "run=1", "v2;a;b;c",
                  "v1;run=-1;step=list;sig=00", "v1;run=42;step=list;sig=" + "0" * 64,
                  "v1;run=1;step=" + "a" * 600 + ";sig=00"):  # fmt: skip
        assert tags.verify(KEY, value) is None, value
