"""Reading a memray capture file: every byte allocated during the window by stack, its top
allocators by bytes and by count, and the allocations still alive at the end (memray's leaks
view). No Django.

memray's FileReader gives records of (stack, bytes, allocations); we turn them into blocks of
plain data first, so that the ranking and the flame tree are tested without any file. A stack
comes leaf first, as memray gives it: the leaf is where the allocation was made, and an
"allocator" is that place (function, file, line).

    >>> blocks = [Block(((("grow", "m.py", 3), ("main", "m.py", 9))), 900, 9),
    ...           Block(((("small", "m.py", 5), ("main", "m.py", 9))), 100, 50)]
    >>> [(a.function, a.bytes) for a in top_allocators(blocks)]
    [('grow', 900), ('small', 100)]
    >>> [a.function for a in top_allocators(blocks, by="count")]
    ['small', 'grow']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from profiling.speedscope import Frame, frame_label, weighted_tree

TOP_ALLOCATORS = 100
# An allocation with no Python frame (made by C code before any Python ran, or by a thread
# that never ran Python) is shown under this name.
NO_PYTHON_STACK = ("<no Python stack>", "", 0)
RANKINGS = ("bytes", "count")


@dataclass(frozen=True)
class Block:
    """Bytes held by one stack (leaf first), and the number of allocations behind them."""

    stack: tuple[Frame, ...]
    bytes: int
    count: int


@dataclass(frozen=True)
class Allocator:
    function: str
    file: str
    line: int
    bytes: int
    count: int


@dataclass(frozen=True)
class Heap:
    """What one capture file says: all that was allocated and the leaks, each as blocks."""

    allocated: list[Block]
    leaked: list[Block]
    peak_bytes: int
    allocations: int
    window_s: float


def read(path: Path) -> Heap:
    """The bytes allocated by stack over the whole window, and memray's leaks view, of the
    file at `path` (memray's full format: its aggregated one keeps only the peak and leaks)."""
    import memray  # here: memray's extension loads only where a capture is read

    with memray.FileReader(str(path)) as reader:
        meta = reader.metadata
        allocated = _allocated(reader.get_allocation_records(), memray.AllocatorType)
        leaked = _blocks(reader.get_leaked_allocation_records(merge_threads=True))
    return Heap(
        allocated=allocated,
        leaked=leaked,
        peak_bytes=int(meta.peak_memory),
        allocations=int(meta.total_allocations),
        window_s=round((meta.end_time - meta.start_time).total_seconds(), 3),
    )


def _blocks(records: Iterable[Any]) -> list[Block]:
    return [
        Block(
            stack=_stack(record),
            bytes=int(record.size),
            count=int(record.n_allocations),
        )
        for record in records
    ]


def _allocated(records: Iterable[Any], kinds: Any) -> list[Block]:
    """Every allocation event summed by stack (threads merged); frees are not allocations.
    A stack is read once per stack id: files hold millions of events and few stacks."""
    frees = {kinds.FREE, kinds.MUNMAP, kinds.PYMALLOC_FREE}
    totals: dict[int, list[int]] = {}
    stacks: dict[int, tuple[Frame, ...]] = {}
    for record in records:
        if record.allocator in frees:
            continue
        stack_id = record.stack_id
        found = totals.get(stack_id)
        if found is None:
            found = totals[stack_id] = [0, 0]
            stacks[stack_id] = _stack(record)
        found[0] += record.size
        found[1] += record.n_allocations
    return [Block(stacks[key], size, count) for key, (size, count) in totals.items()]


def _stack(record: Any) -> tuple[Frame, ...]:
    return tuple((str(f), str(file), int(line)) for f, file, line in record.stack_trace())


def top_allocators(
    blocks: Iterable[Block], *, by: str = "bytes", limit: int = TOP_ALLOCATORS
) -> list[Allocator]:
    """The places that allocated the most, by bytes or by count (the other one breaks ties)."""
    if by not in RANKINGS:
        raise ValueError(f"by must be one of {', '.join(RANKINGS)}")
    totals: dict[Frame, list[int]] = {}
    for block in blocks:
        where = block.stack[0] if block.stack else NO_PYTHON_STACK
        found = totals.setdefault(where, [0, 0])
        found[0] += block.bytes
        found[1] += block.count
    allocators = [Allocator(*where, size, count) for where, (size, count) in totals.items()]
    if by == "bytes":
        allocators.sort(key=lambda a: (-a.bytes, -a.count, a.function, a.file, a.line))
    else:
        allocators.sort(key=lambda a: (-a.count, -a.bytes, a.function, a.file, a.line))
    return allocators[:limit]


def as_rows(allocators: Iterable[Allocator]) -> list[dict[str, Any]]:
    """Allocators as the summary, the CLI and the pages hold them."""
    return [asdict(allocator) for allocator in allocators]


def flame_tree(blocks: Iterable[Block], min_share: float = 0.002) -> dict[str, Any]:
    """The bytes of `blocks` as a flame tree (root "all", then frames root first), the shape
    the CPU flame graph draws."""
    return weighted_tree(
        (
            ([frame_label(frame) for frame in reversed(block.stack or (NO_PYTHON_STACK,))], size)
            for block in blocks
            if (size := block.bytes) > 0
        ),
        min_share,
    )


def summary(heap: Heap, limit: int = TOP_ALLOCATORS) -> dict[str, Any]:
    """What a capture keeps of its file: the totals, the top allocators of the window by bytes
    and by count, and the leaks by bytes."""
    return {
        "peak_bytes": heap.peak_bytes,
        "allocations": heap.allocations,
        "allocated_bytes": sum(block.bytes for block in heap.allocated),
        "window_s": heap.window_s,
        "top_by_bytes": as_rows(top_allocators(heap.allocated, by="bytes", limit=limit)),
        "top_by_count": as_rows(top_allocators(heap.allocated, by="count", limit=limit)),
        "leaks": as_rows(top_allocators(heap.leaked, by="bytes", limit=limit)),
        "leaked_bytes": sum(block.bytes for block in heap.leaked),
        "leaked_count": sum(block.count for block in heap.leaked),
    }
