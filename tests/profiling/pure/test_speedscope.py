from __future__ import annotations

from profiling import speedscope

DOC = {
    "shared": {
        "frames": [
            {"name": "main", "file": "app.py", "line": 1},
            {"name": "handle", "file": "app.py", "line": 10},
            {"name": "render", "file": "tpl.py", "line": 3},
            {"name": "handle", "file": "app.py", "line": 10},
        ]
    },
    "profiles": [
        {"type": "sampled", "name": "MainThread", "samples": [[0, 1, 2], [0, 1, 2], [0, 1]]},
        {"type": "sampled", "name": "Worker", "samples": [[0, 1, 3]]},
    ],
}


def test_it_ranks_functions_by_self_then_total_samples() -> None:
    top = speedscope.top_functions(DOC)
    assert [(f.function, f.self_samples, f.total_samples) for f in top] == [
        ("handle", 2, 4),
        ("render", 2, 2),
        ("main", 0, 4),
    ]
    assert top[1].self_pct == 50.0
    assert top[0].total_pct == 100.0


def test_it_counts_a_recursive_function_once_per_sample() -> None:
    handle = next(f for f in speedscope.top_functions(DOC) if f.function == "handle")
    assert handle.total_samples == 4


def test_it_writes_collapsed_stacks_per_thread() -> None:
    lines = speedscope.collapsed(DOC).splitlines()
    assert "MainThread;main (app.py:1);handle (app.py:10);render (tpl.py:3) 2" in lines
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 4


def test_it_builds_a_flame_tree_whose_values_add_up() -> None:
    tree = speedscope.flame_tree(DOC)
    assert tree["value"] == 4
    assert [child["name"] for child in tree["children"]] == ["MainThread", "Worker"]
    assert tree["children"][0]["value"] == 3
