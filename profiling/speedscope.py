"""Reading py-spy's speedscope documents: top functions, collapsed stacks, a flame tree.

Pure: no Django. A speedscope "sampled" profile holds, per thread, a list of samples, each a
stack of indices into the shared frame table ordered from the root to the leaf, and a weight
per sample (py-spy writes seconds: 1 / rate).

    >>> doc = {"shared": {"frames": [{"name": "main", "file": "a.py", "line": 1},
    ...                              {"name": "work", "file": "a.py", "line": 5}]},
    ...        "profiles": [{"type": "sampled", "name": "MainThread",
    ...                      "samples": [[0, 1], [0, 1], [0]], "weights": [1, 1, 1]}]}
    >>> [(f.function, f.self_samples, f.total_samples) for f in top_functions(doc)]
    [('work', 2, 2), ('main', 1, 3)]
    >>> collapsed(doc).splitlines()
    ['MainThread;main (a.py:1) 1', 'MainThread;main (a.py:1);work (a.py:5) 2']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Frame = tuple[str, str, int]


@dataclass(frozen=True)
class FunctionShare:
    function: str
    file: str
    line: int
    self_samples: int
    total_samples: int
    self_pct: float
    total_pct: float


def frames(doc: dict[str, Any]) -> list[Frame]:
    return [
        (str(f.get("name", "?")), str(f.get("file") or ""), int(f.get("line") or 0))
        for f in doc.get("shared", {}).get("frames", [])
    ]


def stacks(doc: dict[str, Any]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(thread name, stack of frame indices root first) for every sample of every thread."""
    for profile in doc.get("profiles", []):
        if profile.get("type") != "sampled":
            continue
        thread = str(profile.get("name", "thread"))
        for sample in profile.get("samples", []):
            yield thread, tuple(sample)


def sample_count(doc: dict[str, Any]) -> int:
    return sum(1 for _ in stacks(doc))


def top_functions(doc: dict[str, Any], limit: int = 100) -> list[FunctionShare]:
    """Functions by samples on top of the stack (self), then anywhere in it (total)."""
    table = frames(doc)
    self_counts: Counter[Frame] = Counter()
    total_counts: Counter[Frame] = Counter()
    samples = 0
    for _, stack in stacks(doc):
        samples += 1
        if stack:
            self_counts[table[stack[-1]]] += 1
        # Once per sample: a recursive function is not counted twice.
        total_counts.update({table[index] for index in stack})
    if not samples:
        return []
    ranked = sorted(total_counts, key=lambda f: (-self_counts[f], -total_counts[f], f))
    return [
        FunctionShare(
            function=frame[0],
            file=frame[1],
            line=frame[2],
            self_samples=self_counts[frame],
            total_samples=total_counts[frame],
            self_pct=100.0 * self_counts[frame] / samples,
            total_pct=100.0 * total_counts[frame] / samples,
        )
        for frame in ranked[:limit]
    ]


def frame_label(frame: Frame) -> str:
    name, file, line = frame
    return f"{name} ({file}:{line})" if file else name


def collapsed(doc: dict[str, Any]) -> str:
    """Brendan Gregg's collapsed stacks (`thread;root;...;leaf count`), one line per stack."""
    table = frames(doc)
    counts: Counter[str] = Counter()
    for thread, stack in stacks(doc):
        labels = [thread, *(frame_label(table[i]) for i in stack)]
        counts[";".join(label.replace(";", ":") for label in labels)] += 1
    return "".join(f"{line} {count}\n" for line, count in sorted(counts.items()))


def flame_tree(doc: dict[str, Any], min_share: float = 0.002) -> dict[str, Any]:
    """A nested {"name", "value", "children"} tree (root "all", then threads), for drawing a
    flame graph; nodes below `min_share` of all samples are left out to bound its size."""
    table = frames(doc)
    return weighted_tree(
        (([thread, *(frame_label(table[i]) for i in stack)], 1) for thread, stack in stacks(doc)),
        min_share,
    )


def weighted_tree(
    paths: Iterable[tuple[list[str], int]], min_share: float = 0.002
) -> dict[str, Any]:
    """The flame tree of labelled paths (root first) and their weights: samples of a CPU
    profile, or bytes of an allocation capture. Nodes below `min_share` of the whole are left
    out to bound its size.

    >>> weighted_tree([(["main", "load"], 900), (["main"], 100)])["children"][0]["value"]
    1000
    """
    root: dict[str, Any] = {"name": "all", "value": 0, "children": {}}
    for labels, weight in paths:
        root["value"] += weight
        node = root
        for label in labels:
            node = node["children"].setdefault(label, {"name": label, "value": 0, "children": {}})
            node["value"] += weight
    return _pruned(root, max(1, int(root["value"] * min_share)))


def _pruned(node: dict[str, Any], minimum: int) -> dict[str, Any]:
    children = [
        _pruned(child, minimum)
        for child in sorted(node["children"].values(), key=lambda c: -c["value"])
        if child["value"] >= minimum
    ]
    return {"name": node["name"], "value": node["value"], "children": children}
