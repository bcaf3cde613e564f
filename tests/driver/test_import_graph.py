"""The package's layers, read from its import graph: every `import` and `from ... import` in
ray_job/, at module level or inside a function (a lazy import is an edge like any other).

The layers, bottom first (docs/architecture.md, "Packages and layers", says why). A module may
import its own layer and the layers below it, never one above; and no modules import each
other, directly or around a loop, whatever their layers.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ray_job"
LAYERS = (
    ("errors", "redact", "hooks", "extras"),    # plain rules: they import only each other
    ("storage",),                            # files and object stores; imports no stage
    ("config", "config_checks", "settings", "template_syntax", "sql_query"),  # the job config
    ("rundir",),                             # the run's state: job.json (JobRecord), shards, ...
    ("read",),                               # the stages, in data-flow order
    ("encode",),                             # encode/model/: what a model is, its size (below)
    ("finalize",),
    ("quality",),                            # what the vectors are worth: report, compare
    ("publish",),
    ("search",),
    ("dedup",),                              # near duplicates of a finished run (uses the index)
    ("map",),                                # the 2-D map of a finished run
    ("explore",),                            # the browser view (map, search, neighbours)
    ("results",),                            # a finished run read from Python (open_run)
    ("estimate",),                           # `ray-embed plan`: measures the read and encode stages
    ("session",),                            # the driver's Ray session
    ("throughput", "driver_memory", "finish", "pipeline", "bench", "api", "outcome", "cli",
     "__main__"),                                                                  # driver
)


def module_names() -> dict[str, Path]:
    """ray_job.x.y -> its file, for every module of the package."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(module: str, path: Path, node: ast.AST, known: dict[str, Path]) -> list[str]:
    """The package's modules an import statement of `module` names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target
             for a in node.names]
    return [name for name in found if name in known]


def import_graph() -> dict[str, set[str]]:
    known = module_names()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(t for t in imported(module, path, node, known) if t != module)
    return graph


def group(module: str) -> str:
    """A module's subpackage (`ray_job.read.text` -> `read`), or the top-level module's name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ray_job"


def layer_of(module: str) -> int:
    name = group(module)
    if name == "ray_job":
        return -1                    # the package itself: its docstring, nothing imported
    return next(i for i, names in enumerate(LAYERS) if name in names)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer():
    known = {name for names in LAYERS for name in names}
    assert {group(m) for m in module_names()} - known == {"ray_job"}
    assert {group(m) for m in module_names()} >= known          # no layer names a ghost


def test_no_module_imports_a_later_layer():
    upward = sorted(f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                    if layer_of(t) > layer_of(m))
    assert upward == []


def test_no_import_cycles_between_modules():
    assert cycles(import_graph()) == []


# encode/model/ describes and sizes a model for the driver, `plan` and the replica: of the rest of
# `encode` it reads only the GPU datasheets and the tokenizer, never the replica's own modules
MODEL_DESCRIPTION = "ray_job.encode.model"
MODEL_DESCRIPTION_READS = {"ray_job.encode.gpus", "ray_job.encode.tokenize"}


def test_the_model_description_reads_no_replica_module():
    graph = import_graph()
    inside = [m for m in graph if m.startswith(MODEL_DESCRIPTION)]
    assert len(inside) > 10
    outside = sorted(f"{m} -> {t}" for m in inside for t in graph[m]
                     if t.startswith("ray_job.encode.") and not t.startswith(MODEL_DESCRIPTION)
                     and t not in MODEL_DESCRIPTION_READS)
    assert outside == []


def test_the_graph_reader_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "ray_job.rundir.layout" in graph["ray_job.rundir.rundir"]      # from . import layout
    assert "ray_job.finish" in graph["ray_job.cli"]                       # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
