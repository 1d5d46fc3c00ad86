"""The package's structure: imports point one way, one module runs L-BFGS.

Layers, lowest first: the compiled kernels; helpers (parameter layout,
targets, weights, threads, sparse input, prediction, rescaling); the
objective; the fit core and the integrations built on the objective (Dask,
the public loss and metric); the estimators; the package itself. A module
imports from its own layer or below, never above, even lazily inside a
function, and no two modules import each other, directly or through others.
"""

import ast
from pathlib import Path

import skcce

PACKAGE = Path(skcce.__file__).parent

LAYERS = [
    {"skcce._kernels"},
    {"skcce._layout", "skcce._sparse", "skcce._targets", "skcce._weights",
     "skcce._callbacks", "skcce._threads", "skcce._prediction", "skcce._precondition",
     "skcce._columns", "skcce._owlqn", "skcce._lbfgs"},
    {"skcce._objective"},
    {"skcce._fit", "skcce._dask", "skcce._array_api", "skcce._loss", "skcce._metrics"},
    {"skcce._base", "skcce._classifier", "skcce._cv"},
    {"skcce", "skcce.demo", "skcce.onnx"},
]


def _modules():
    """Module name -> source of every Python module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path.read_text()
    return modules


def _imports(source, modules):
    """The package's modules that ``source`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def _graph():
    modules = _modules()
    return {name: _imports(source, modules) - {name} for name, source in modules.items()}


def test_every_module_has_a_layer():
    layered = set().union(*LAYERS)
    assert set(_graph()) == layered


def test_imports_point_down_the_layers():
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = [(a, b) for a, targets in _graph().items() for b in targets
              if rank[b] > rank[a]]
    assert upward == []


def test_no_import_cycle():
    graph = _graph()
    state = {}  # 1: on the current path, 2: done

    def visit(name, path):
        state[name] = 1
        for target in sorted(graph[name]):
            assert state.get(target) != 1, " -> ".join(path + [name, target])
            if target not in state:
                visit(target, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_only_the_fit_core_calls_minimize():
    callers = sorted(name for name, source in _modules().items()
                     if "minimize(" in source or "fmin_l_bfgs_b" in source)
    assert callers == ["skcce._fit"]
