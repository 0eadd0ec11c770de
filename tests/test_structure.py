"""The package's structure: no import cycle, layers that only point down, a light start-up.

The import graph is read from the source with ``ast``: every ``import`` and ``from … import``
of an hpcscale module, at module level and inside functions alike (an import placed in a
function is still a dependency, only a later one). ``if TYPE_CHECKING:`` imports count for
cycles, as /work/shared/hooks/import_cycles.py counts them, but not for layers: they never run.

Layers, lowest first. A module may import modules of its own layer and of the layers below it,
never above. The order follows DESIGN.md's data flow — a site descriptor, then one job's shape
(plan), then its job script (render) and container, then the training core every rank runs
(train) with its workload, then submission (schedulers: they submit the core and read its job
environment), then the study that ties them together, its report, and the CLI on top:

0. leaf: ``hpcscale`` (the version), ``errors``, ``messages``, ``fmt`` (durations, plurals,
   mean ± std), ``envref`` (``${NAME}`` references), ``resources``, ``fsutil``.
1. registries: ``hpcscale.workloads`` (model name → module). A lookup by name imports the
   module it names at run time (``importlib``), so train and render may use it without
   depending on any workload. ``schedulers.registry`` is not here: importing it runs the
   ``hpcscale.schedulers`` package, which imports every layer up to the schedulers.
2. ``sites``, ``data`` (descriptors; data sets and their generators).
3. ``plan`` (one job's shape; the scheduler's rules come in as an argument).
4. ``containers``.
5. ``render`` (the job script; the scheduler's header values come in as an argument).
6. ``train`` (the rank's training core).
7. ``workloads.*`` (what plugs into the core).
8. ``schedulers``.
9. studies: ``spec``, ``study``, ``submission``, ``preflight``, ``run``, ``launch``,
   ``optimize``, ``tables``.
10. ``analysis`` (reads study folders).
11. ``cli``, ``__main__``.
"""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hpcscale"

# Module-name prefixes, lowest layer first (a module takes its longest matching prefix).
LAYERS: list[list[str]] = [
    ["hpcscale", "hpcscale.errors", "hpcscale.messages", "hpcscale.fmt", "hpcscale.envref",
     "hpcscale.resources", "hpcscale.fsutil", "hpcscale.registry"],
    ["hpcscale.workloads", "hpcscale.workloads.plugins"],
    ["hpcscale.sites.models", "hpcscale.sites.yamlload", "hpcscale.data"],
    ["hpcscale.plan"],
    ["hpcscale.containers", "hpcscale.launchers"],
    ["hpcscale.render"],
    ["hpcscale.train", "hpcscale.command", "hpcscale.track"],
    ["hpcscale.workloads."],  # the workload modules (the registry itself is layer 1)
    ["hpcscale.schedulers"],
    ["hpcscale.sites"],  # the loader: it asks every backend for its refusals
    ["hpcscale.spec", "hpcscale.study", "hpcscale.submission", "hpcscale.preflight",
     "hpcscale.run", "hpcscale.launch", "hpcscale.optimize", "hpcscale.tables",
     "hpcscale.keptsite"],
    ["hpcscale.analysis"],
    ["hpcscale.cli", "hpcscale.__main__"],
]  # fmt: skip

# Imports that still point up, (importer, imported), each with why it is still there. Shrink
# this list; never grow it without a reason a reviewer accepts.
UPWARD_EXCEPTIONS: dict[tuple[str, str], str] = {}

HEAVY = ("torch", "horovod", "matplotlib", "hpccm", "optuna", "triton", "spython", "scipy", "numpy")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def import_edges(*, type_checking: bool) -> dict[str, dict[str, int]]:
    """importer → {imported hpcscale module: line}, module-level and in-function imports."""
    mods = _modules()
    edges: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = set() if type_checking else _type_checking_nodes(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]  # fmt: skip
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod and not mod.startswith(target + "."):
                    edges.setdefault(mod, {}).setdefault(target, node.lineno)
    return edges


def find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(_modules()):
        if v not in index:
            visit(v)
    return out


def _cycle_path(comp: list[str], edges: dict[str, dict[str, int]]) -> str:
    """One cycle through ``comp``'s first module, as ``a:line → b:line → … → a``."""
    members, start = set(comp), comp[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in edges.get(v, {}):
            if w == start:
                hops = [*paths[v], start]
                steps = [f"{a} (line {edges[a][b]})" for a, b in itertools.pairwise(hops)]
                return " → ".join([*steps, start])
            if w in members and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return ", ".join(comp)


def _in(module: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return module.startswith(prefix)
    return module == prefix or (prefix != "hpcscale" and module.startswith(prefix + "."))


def layer(module: str) -> int:
    """The layer of ``module``: that of its longest matching prefix in LAYERS."""
    found = [(len(p), i) for i, prefixes in enumerate(LAYERS) for p in prefixes if _in(module, p)]
    assert found, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return max(found)[1]


def test_no_import_cycle() -> None:
    edges = import_edges(type_checking=True)
    cycles = find_cycles(edges)
    assert not cycles, "import cycles (module-level and in-function imports):\n" + "\n".join(
        f"  {len(c)} modules: {', '.join(c)}\n    for one: {_cycle_path(c, edges)}" for c in cycles
    )


def test_layers_only_point_down() -> None:
    edges = import_edges(type_checking=False)
    upward = sorted(
        (a, b, line)
        for a, targets in edges.items()
        for b, line in targets.items()
        if layer(b) > layer(a)
    )
    unexpected = [
        f"  {a} (layer {layer(a)}, line {line}) imports {b} (layer {layer(b)})"
        for a, b, line in upward
        if (a, b) not in UPWARD_EXCEPTIONS
    ]
    assert not unexpected, "imports pointing up a layer:\n" + "\n".join(unexpected)
    gone = sorted(set(UPWARD_EXCEPTIONS) - {(a, b) for a, b, _ in upward})
    assert not gone, f"fixed, so remove from UPWARD_EXCEPTIONS: {gone}"


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        layer(module)


def test_help_imports_no_heavy_package() -> None:
    script = (
        "import runpy, sys\n"
        "sys.argv = ['hpcscale', '--help']\n"
        "try:\n"
        "    runpy.run_module('hpcscale', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout, result.stdout  # it did print the help
    loaded = result.stdout.rsplit("LOADED ", 1)[1].strip()
    assert loaded == "[]", f"`hpcscale --help` imported {loaded}"
