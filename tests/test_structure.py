"""Structural checks of the package (issue 9): the layering holds by construction.

* no import cycle among ``fairuse_opt`` modules (module-level imports; imports inside
  functions are deferred on purpose and excluded);
* no branch on a loss's name outside the loss registry (:mod:`fairuse_opt.model.losses`):
  a new loss is one object, nothing else knows loss names;
* the solver names are defined in one place (:mod:`fairuse_opt._solver_names`), and
  everything that lists them reads them from there.
"""

from __future__ import annotations

import ast
import re
import importlib
from pathlib import Path

import pytest

import fairuse_opt
from fairuse_opt import _solver_names
from fairuse_opt.model import losses as losses_module

PKG = Path(fairuse_opt.__file__).resolve().parent
LOSS_REGISTRY = PKG / "model" / "losses.py"
SOLVER_NAMES = PKG / "_solver_names.py"


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _module_level_imports(tree: ast.Module):
    """Import nodes executed when the module is imported (not inside a def or lambda)."""
    out = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            visit(child)

    visit(tree)
    return out


def _all_imports(tree: ast.Module):
    """Every import node, module level and deferred (inside functions) alike."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    """Edges module -> fairuse_opt module it imports at module level (``deferred``: or
    inside a function)."""
    mods = all_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for node in (_all_imports(tree) if deferred else _module_level_imports(tree)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets.append(prefix)
                # "from pkg import name": name may be a submodule
                targets += [f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in mods]
            for t in targets:
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph):
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in graph}
    stack: list[str] = []

    def dfs(m):
        color[m] = GREY
        stack.append(m)
        for n in sorted(graph[m]):
            if color[n] == GREY:
                return stack[stack.index(n):] + [n]
            if color[n] == WHITE:
                found = dfs(n)
                if found:
                    return found
        stack.pop()
        color[m] = BLACK
        return None

    for m in sorted(graph):
        if color[m] == WHITE:
            found = dfs(m)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself: a cycle is found, an acyclic graph passes."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_relative_and_submodule_imports():
    """The graph resolves relative imports and ``from package import submodule``."""
    g = import_graph()
    assert "fairuse_opt.model.losses" in g["fairuse_opt.problem.problem"]  # from ..model.losses import Loss
    assert "fairuse_opt.solvers.native" in g["fairuse_opt.fairness.routes"]  # from ..solvers import native
    assert "fairuse_opt.problem.cvx" in g["fairuse_opt.problem"]  # the package's own __init__
    # imports inside functions are excluded (problem.to_cvxpy imports .cvx lazily)
    assert "fairuse_opt.problem.cvx" not in g["fairuse_opt.problem.problem"]


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_downwards_only():
    """model <- problem <- solvers <- fairness <- estimators: no layer imports a later one."""
    order = ["model", "problem", "solvers", "fairness"]
    g = import_graph()
    for mod, deps in g.items():
        parts = mod.split(".")
        if len(parts) < 2 or parts[1] not in order:
            continue
        rank = order.index(parts[1])
        for dep in deps:
            dparts = dep.split(".")
            if len(dparts) >= 2 and dparts[1] in order:
                assert order.index(dparts[1]) <= rank, f"{mod} imports {dep}, a later layer"
            assert dep.split(".")[1:2] != ["estimators"], f"{mod} imports the estimators"


# --------------------------------------------------------------- loss names
def loss_names() -> set[str]:
    names = set()
    for obj in vars(losses_module).values():
        if isinstance(obj, type) and issubclass(obj, losses_module.Loss) and obj is not losses_module.Loss:
            names.add(obj.name)
    return names


def loss_name_branches(source: str, filename: str = "<src>") -> list[str]:
    """Branches on the fitting loss by name or class:

    * a comparison (==, !=, in, not in) of a loss-like value (an expression whose source
      mentions ``loss``) with a loss name, or any comparison of a loss's ``.name``;
    * a ``match`` on a loss-like subject with a loss name as a case;
    * ``isinstance(..., LogisticLoss)`` (any Loss subclass) outside the registry.

    Audit metrics share names with losses (``m["metric"] == "log_loss"`` picks a metric,
    not the fitting loss) and are not flagged.
    """
    names = loss_names()
    classes = {obj.__name__ for obj in vars(losses_module).values()
               if isinstance(obj, type) and issubclass(obj, losses_module.Loss) and obj is not losses_module.Loss}
    hits = []
    tree = ast.parse(source, filename)

    def strings(op):
        if isinstance(op, ast.Constant) and isinstance(op.value, str):
            return [op.value]
        if isinstance(op, (ast.Tuple, ast.List, ast.Set)):
            return [e.value for e in op.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return []

    def loss_like(op):
        return not strings(op) and "loss" in ast.unparse(op).lower()

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left] + list(node.comparators)
            consts = {c for op in operands for c in strings(op)}
            if consts & names and any(loss_like(op) for op in operands):
                hits.append(f"{filename}:{node.lineno}: compares a loss with {sorted(consts & names)}")
            elif any(isinstance(op, ast.Attribute) and op.attr == "name" and "loss" in ast.unparse(op.value).lower()
                     for op in operands):
                hits.append(f"{filename}:{node.lineno}: compares a loss's .name")
        elif isinstance(node, ast.Match) and loss_like(node.subject):
            for case in node.cases:
                pats = {n.value.value for n in ast.walk(case.pattern)
                        if isinstance(n, ast.MatchValue) and isinstance(n.value, ast.Constant)}
                if pats & names:
                    hits.append(f"{filename}:{case.pattern.lineno}: matches {sorted(pats & names)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2 and set(ast.unparse(node.args[1]).replace("(", " ").replace(")", " ")
                                                .replace(",", " ").split()) & classes:
            hits.append(f"{filename}:{node.lineno}: isinstance on a loss class")
    return hits


def test_loss_name_checker_catches_branches():
    """The checker itself, on planted code."""
    assert loss_name_branches('if loss == "log_loss":\n    pass\n')
    assert loss_name_branches('x = 1 if loss_name in ("squared_error", "x") else 2\n')
    assert loss_name_branches('if self.loss.name != "anything":\n    pass\n')
    assert loss_name_branches('match loss_name:\n    case "log_loss":\n        pass\n')
    assert loss_name_branches('if isinstance(est._get_loss(), (SquaredLoss, int)):\n    pass\n')
    assert loss_name_branches('if model.loss_ == "squared_error":\n    pass\n')
    # audit metrics named like losses are not the fitting loss
    assert not loss_name_branches('if m["metric"] not in ("error", "log_loss"):\n    pass\n')
    assert not loss_name_branches('metric = "log_loss"\nif metric == "auc":\n    pass\n')


def test_no_branch_on_loss_names_outside_the_loss_registry():
    assert {"log_loss", "squared_error"} <= loss_names()
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        if path == LOSS_REGISTRY:
            continue
        hits += loss_name_branches(path.read_text(), str(path.relative_to(PKG.parent)))
    assert not hits, "\n".join(hits)


# ------------------------------------------------------- constraint arithmetic
CONSTRAINTS = PKG / "problem" / "constraints.py"


def constraint_arithmetic(source: str, filename: str = "<src>") -> list[str]:
    """Subtractions and comparisons that compute a fair-use constraint: an own loss
    (``own``, a program's ``group_loss``) against a bound, a margin, the loss matrix ``L``
    or a right-hand side (``rhs``).  The gain ``L0 - own`` is not a constraint."""
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub)) or isinstance(node, ast.Compare):
            text = ast.unparse(node)
            if re.search(r"\bown\b|\bgroup_loss\b", text) and re.search(r"\bbound\b|\bmargins?\b|\bL\b|\brhs\b", text):
                hits.append(f"{filename}:{node.lineno}: {text}")
    return hits


def test_constraint_arithmetic_checker_catches_copies():
    """The checker itself, on the copies the package held before the constraint objects."""
    assert constraint_arithmetic("s = L0[g] - margins[g] - own[g]\n")
    assert constraint_arithmetic("if own[g] > L[g, r] + tol:\n    pass\n")
    assert constraint_arithmetic("gap = own[:, None] - L\n")
    assert constraint_arithmetic("v = bound[g] - shrink - own[g]\n")
    assert constraint_arithmetic("c = self.group_loss[g] <= rhs\n")
    assert not constraint_arithmetic("gain = L0[g] - own[g]\n")


def test_constraint_arithmetic_lives_in_the_constraint_objects():
    """Rationality (with margins) and envy-freeness are computed in problem/constraints.py
    only (issue 25, "constraints as objects"): routes, certificate, solvers and the cvxpy
    program use its objects."""
    assert constraint_arithmetic(CONSTRAINTS.read_text())
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        if path != CONSTRAINTS:
            hits += constraint_arithmetic(path.read_text(), str(path.relative_to(PKG.parent)))
    assert not hits, "\n".join(hits)


# -------------------------------------------------------------- solver names
def solver_name_lists(source: str, filename: str = "<src>") -> list[str]:
    """Tuple / list / set literals holding two or more solver names, and string
    comparisons with a solver name."""
    names = {n.upper() for n in _solver_names.SOLVER_CHOICES}
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            vals = {e.value.upper() for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(vals & names) >= 2:
                hits.append(f"{filename}:{node.lineno}: lists solvers {sorted(vals & names)}")
    return hits


def test_solver_name_checker_catches_lists():
    assert solver_name_lists('SOLVERS = ("auto", "CLARABEL", "ECOS", "SCS")\n')
    assert solver_name_lists('if choice in ("auto", "native"):\n    pass\n')
    assert solver_name_lists('x = ["ecos", "scs"]\n')
    assert not solver_name_lists('x = ("ECOS",)\n')


def test_solver_names_are_defined_in_one_place():
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        if path == SOLVER_NAMES:
            continue
        hits += solver_name_lists(path.read_text(), str(path.relative_to(PKG.parent)))
    assert not hits, "\n".join(hits)
    # ... and everything that offers a choice of solver reads them from there
    from fairuse_opt import cli
    from fairuse_opt.solvers import base

    assert base.SOLVER_CHOICES is _solver_names.SOLVER_CHOICES
    assert base.CONIC_SOLVERS is _solver_names.CONIC_SOLVERS
    assert cli.SOLVERS is _solver_names.SOLVER_CHOICES


@pytest.mark.parametrize("name", _solver_names.SOLVER_CHOICES)
def test_every_solver_name_is_accepted_by_estimator_and_command_line(name):
    import numpy as np

    from fairuse_opt import FairUseClassifier
    from fairuse_opt.cli import _solver_name

    assert _solver_name(name.lower()) == name and _solver_name(name.upper()) == name
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + rng.logistic(size=60) > 0).astype(int)
    m = FairUseClassifier(encoding="none", solver=name, solver_options={"SCS": {"max_iters": 20_000}}).fit(X, y)
    expected = {"auto": "NATIVE", "native": "NATIVE"}.get(name, name)
    assert m.certificate_.solver == expected


def test_unknown_solver_is_a_clear_error():
    import argparse

    import numpy as np

    from fairuse_opt import FairUseClassifier
    from fairuse_opt.cli import _solver_name
    from fairuse_opt.exceptions import InputError

    with pytest.raises(argparse.ArgumentTypeError, match="invalid solver 'gurobi'"):
        _solver_name("gurobi")
    X = np.random.default_rng(0).normal(size=(30, 1))
    with pytest.raises(InputError, match="'gurobi' is not available"):
        FairUseClassifier(encoding="none", solver="gurobi").fit(X, (X[:, 0] > 0).astype(int))


def test_every_module_imports():
    """Each module of the graph imports on its own (no cycle hidden by import order)."""
    for mod in all_modules():
        if mod != "fairuse_opt.__main__":  # runs the command line when imported
            importlib.import_module(mod)


# ------------------------------------------------- issue 25: the map true, deferred imports included
def strongly_connected(graph) -> list[frozenset]:
    """The import circles: strongly connected sets of two or more modules (Tarjan)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    out = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


#: The circles that remain once deferred imports count (issue 25 asks for none): this
#: list may only shrink.  estimators -> model_io (to_json) -> system (system files) ->
#: estimators (its pool); the command lines import each other's subcommands.
KNOWN_CIRCLES = [
    frozenset({"fairuse_opt.estimators", "fairuse_opt.model_io", "fairuse_opt.system", "fairuse_opt.system._fit",
               "fairuse_opt.system._io", "fairuse_opt.system._system"}),
    frozenset({"fairuse_opt.bench._cli", "fairuse_opt.cli"}),
]


def test_circle_finder_finds_planted_circles():
    g = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}
    assert sorted(map(sorted, strongly_connected(g))) == [["a", "b"], ["c", "d"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_deferred_imports_are_in_the_graph():
    g = import_graph(deferred=True)
    assert "fairuse_opt.problem.cvx" in g["fairuse_opt.problem.problem"]  # problem.to_cvxpy's lazy import
    assert "fairuse_opt.model_io" in g["fairuse_opt.estimators"]  # to_json's


def test_no_new_import_circle_counting_deferred_imports():
    """No circle but the known ones (KNOWN_CIRCLES, to be removed); a known circle that
    is gone must leave the list (so that it cannot come back)."""
    found = set(strongly_connected(import_graph(deferred=True)))
    assert found == set(KNOWN_CIRCLES), (
        "new: " + "; ".join(" <-> ".join(sorted(c)) for c in found - set(KNOWN_CIRCLES))
        + " | gone (remove from KNOWN_CIRCLES): " + "; ".join(" <-> ".join(sorted(c)) for c in set(KNOWN_CIRCLES) - found))


def _package(mod: str) -> str:
    """The package a module belongs to (``fairuse_opt`` for the top-level modules)."""
    path = all_modules()[mod]
    return mod if path.name == "__init__.py" else mod.rpartition(".")[0]


def private_imports() -> list[tuple[str, str, str]]:
    """``(importer, module, name)`` for every ``from module import _name`` (private) where
    ``module`` is in another package than the importer."""
    mods = all_modules()
    out = []
    for mod, path in mods.items():
        package = _package(mod)
        for node in _all_imports(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source not in mods or _package(source) == package:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append((mod, source, alias.name))
    return sorted(set(out))


#: Private names imported across packages today (issue 25 asks for none): may only shrink.
KNOWN_PRIVATE_IMPORTS = {
    ("fairuse_opt._formulation", "fairuse_opt.problem.data", "_worth_merging"),
    ("fairuse_opt.audit._audit", "fairuse_opt._validation", "_py"),
    ("fairuse_opt.audit._fitted", "fairuse_opt._validation", "_py"),
    ("fairuse_opt.audit._predictions", "fairuse_opt._validation", "_py"),
    ("fairuse_opt.demo", "fairuse_opt.audit._report", "_COLOURS"),
    ("fairuse_opt.system._ladder", "fairuse_opt.audit._metrics", "_AdditiveMetric"),
    ("fairuse_opt.system._options", "fairuse_opt._validation", "_missing"),
    ("fairuse_opt.system._options", "fairuse_opt._validation", "_py"),
} | {("fairuse_opt.system._io", "fairuse_opt.model_io", name) for name in (
    "_bad", "_short", "_check_group_value", "_classes_dict", "_nums", "_num", "_float", "_scalar_value",
    "_vector", "_build_classes")}


def test_no_new_private_name_imported_across_packages():
    found = set(private_imports())
    assert found <= KNOWN_PRIVATE_IMPORTS, "\n".join(map(str, sorted(found - KNOWN_PRIVATE_IMPORTS)))
    assert KNOWN_PRIVATE_IMPORTS <= found, ("gone (remove from KNOWN_PRIVATE_IMPORTS): "
                                            + "\n".join(map(str, sorted(KNOWN_PRIVATE_IMPORTS - found))))


def test_private_import_finder_sees_relative_imports():
    assert ("fairuse_opt.system._io", "fairuse_opt.model_io", "_bad") in private_imports()
    # within one package a private name is fine (routes uses certify's names freely)
    assert not [t for t in private_imports() if _package(t[0]) == _package(t[1])]


#: Every module's layer, lowest first (the README's table in the real order): a module
#: imports (at module level) only modules of its own layer or lower ones.
LAYERS = [
    ("exceptions", "_solver_names"),
    ("_validation", "_groups", "_files", "tabular", "_fitcache"),
    ("model",),
    ("problem", "_family", "_losses"),
    ("solvers", "_formulation"),
    ("certificate",),
    ("fairness",),
    ("estimators",),
    ("model_io", "audit", "datasets"),
    ("system",),
    ("bench", "cli", "demo", "__main__"),
]


def layer_of(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) == 1:
        return 0  # the package itself: its public names are imported lazily (its version at once)
    for rank, names in enumerate(LAYERS):
        if parts[1] in names:
            return rank
    return None


def test_every_module_has_a_layer_and_imports_downwards():
    g = import_graph()
    unplaced = [m for m in g if layer_of(m) is None]
    assert not unplaced, f"modules without a layer in LAYERS: {unplaced}"
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in g.items() for d in deps if layer_of(d) > layer_of(m)]
    assert not upward, "\n".join(upward)
