"""The layout the code promises: core's one-way dependencies, one record per framework,
the same Owner hooks in the same order in every bridge.

Core's imports are read with `ast` (at any level, inside functions too), not by
importing: a lazy import inside a function is a dependency as much as a top-level one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from tfunite.fixes import FIXES
from tfunite.optimizer import Optimizer
from tfunite.owner import Owner
from tfunite.parameters import Parameters
from tfunite.records import Bridge, records

CORE = Path(__file__).resolve().parent.parent / "core"
HOOKS = (
    "decline_reason",
    "__init__",
    "_forward",
    "_collect",
    "_losses",
    "_endpoints",
    "_updates",
    "_aliases",
)
ALIASES_TYPE = "dict[str, str | None] | None"

# Core -> core imports that may close a cycle, each with its reason.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()

# Core -> outside-core imports allowed, each with its reason: (core module, imported).
ALLOWED_OUTSIDE = {
    # records() registers the records on first use; tfunite.bridges imports no framework.
    ("records", "tfunite.bridges"),
    # tu.slim / tu.tflearn build their bridge's owner (lazy, inside the functions).
    ("__init__", "tfunite.bridges"),
    # tu.Optimizer("adam") builds a Keras 3 optimizer by name (tf_keras where keras is
    # Keras 2): the only framework core imports, and only when given a name.
    ("optimizer", "keras"),
    ("optimizer", "tf_keras"),
}


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Imports under `if TYPE_CHECKING:` never run: they are annotations, not dependencies."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative ones resolved in tfunite)."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: inside tfunite (core is the tfunite package)
            base = "tfunite" + (f".{base}" if base else "")
        found.add(base)
        if base == "tfunite":  # `from tfunite import fixes` / `from . import x`
            found.update(f"tfunite.{alias.name}" for alias in node.names)
    return found


def _core_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({core module: core modules it imports}, {core module: other modules it imports})."""
    modules = {p.stem for p in CORE.glob("*.py")}
    inside: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for path in sorted(CORE.glob("*.py")):
        names = _imports(path)
        inside[path.stem] = {
            n.split(".")[1]
            for n in names
            if n.startswith("tfunite.")
            and n.split(".")[1] in modules
            and n.split(".")[1] != path.stem
        }
        outside[path.stem] = {
            n
            for n in names
            if not (n.startswith("tfunite.") and n.split(".")[1] in modules) and n != "tfunite"
        }
    return inside, outside


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's first-found path (DFS; the graph is small)."""
    found: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least node
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_core_imports_no_module_that_imports_it_back():
    inside, _ = _core_graph()
    graph = {m: {n for n in deps if (m, n) not in KNOWN_CYCLE_EDGES} for m, deps in inside.items()}
    # __init__ is the package facade: modules import its submodules, never the facade.
    importers = sorted(m for m, deps in graph.items() if "__init__" in deps)
    assert not importers, f"core modules import the tfunite facade: {importers}"
    cycles = [" -> ".join(c) for c in _cycles(graph)]
    assert not cycles, (
        "core modules import each other (expected one-way dependencies, core/README.md): "
        + "; ".join(cycles)
    )


def test_cycle_finder_finds_direct_and_indirect_cycles():
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_import_scan_sees_lazy_imports_and_skips_type_checking(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .errors import X\n"
        "if TYPE_CHECKING:\n    from .owner import Owner\n"
        "def f():\n    import keras\n    from tfunite import fixes\n"
    )
    names = _imports(path)
    assert {"tfunite.errors", "keras", "tfunite.fixes"} <= names
    assert "tfunite.owner" not in names


def test_core_imports_no_framework_and_no_outer_package():
    _, outside = _core_graph()
    frameworks = {r.import_name for r in records().values()} - {"tensorflow"}
    outer = ("tfunite.bridges", "tfunite.porting", "tfunite.tools", "tfunite.interop")
    bad = sorted(
        (module, name)
        for module, names in outside.items()
        for name in names
        if (name.split(".")[0] in frameworks or name.startswith(outer))
        and (module, name) not in ALLOWED_OUTSIDE
    )
    assert not bad, (
        f"core imports a framework or bridges/porting/tools/interop: {bad}. Expected core -> "
        "TensorFlow, numpy only (core/README.md); move the code to its bridge, or allow-list "
        "the import with its reason in ALLOWED_OUTSIDE."
    )
    stale = sorted(e for e in ALLOWED_OUTSIDE if e[1] not in outside.get(e[0], set()))
    assert not stale, f"allow-listed imports that no longer exist (remove them): {stale}"


def test_reading_records_imports_no_tensorflow():
    from tests.conftest import run_fresh

    out = run_fresh(
        "import json, sys\n"
        "from tfunite.records import records\n"
        "from tfunite.tools import doctor\n"
        "names = list(records())\n"
        "pkgs = doctor.packages()\n"
        "print(json.dumps({'names': names, 'tf': 'tensorflow' in sys.modules,"
        " 'slim': pkgs.get('tf_slim')}))"
    )
    assert out == {
        "names": ["keras", "tf_keras", "sonnet", "slim", "tflearn", "tf_module"],
        "tf": False,
        "slim": "tf-slim",
    }


# ------------------------------------------------------------------------ records
RECORDS = list(records().values())


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_record_resolves(record: Bridge):
    owner_class = record.load()
    assert issubclass(owner_class, Owner) and owner_class.__module__ == record.module
    assert owner_class.supports_graph is record.graph
    assert owner_class.framework in (record.name, record.import_name)
    assert importlib.util.find_spec(record.import_name) is not None
    if record.fixes is not None:
        importlib.import_module(record.fixes)
        mine = [f.name for f in FIXES.values() if record.name in f.bridges]
        assert mine, f"{record.fixes} registers no fix for the {record.name} bridge"


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_record_is_the_one_source_of_framework_and_supports_graph(record: Bridge):
    """The owner class reads `framework`/`supports_graph` from its record (an attribute
    of it), never a literal of its own."""
    tree = ast.parse(inspect.getsource(importlib.import_module(record.module)))
    body = next(
        n.body
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef) and n.name == record.owner_class
    )
    values = {
        node.target.id if isinstance(node, ast.AnnAssign) else node.targets[0].id: node.value
        for node in body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and isinstance(
            node.target if isinstance(node, ast.AnnAssign) else node.targets[0], ast.Name
        )
    }
    for attr in ("framework", "supports_graph"):
        assert isinstance(values.get(attr), ast.Attribute), (
            f"{record.owner_class}.{attr} is not read from the {record.name} record"
        )


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_every_record_has_a_conformance_case(record: Bridge):
    from tests.test_conformance import CASES

    covered = {case.framework for case in CASES.values()}
    assert record.load().framework in covered, (
        f"bridge {record.name!r} has no case in tests/test_conformance.py; add one "
        "(every registered bridge goes through the conformance harness)"
    )


# ------------------------------------------------------------------------ hooks
def _declared_order(cls: type) -> list[str]:
    """The hooks `cls` itself defines, in source order."""
    lines = {}
    for name in HOOKS:
        if name in cls.__dict__:
            func = cls.__dict__[name]
            func = getattr(func, "__func__", func)
            lines[name] = inspect.getsourcelines(func)[1]
    return sorted(lines, key=lines.get)


def test_owner_declares_every_hook_in_order():
    assert _declared_order(Owner) == list(HOOKS)
    assert isinstance(Owner.__dict__["decline_reason"], classmethod)
    for name in HOOKS:
        assert inspect.getdoc(getattr(Owner, name)), f"Owner.{name} has no docstring"
    assert Owner._aliases.__annotations__["return"] == ALIASES_TYPE


OWNER_CLASSES = [*(r.load() for r in RECORDS), Parameters, Optimizer]


@pytest.mark.parametrize("cls", OWNER_CLASSES, ids=lambda c: c.__name__)
def test_owner_classes_implement_hooks_in_the_declared_order(cls: type):
    declared = _declared_order(cls)
    assert declared == [h for h in HOOKS if h in declared], (
        f"{cls.__module__}.{cls.__name__} implements the hooks in the order {declared}; "
        f"expected the order declared on Owner: {list(HOOKS)}"
    )
    if "decline_reason" in cls.__dict__:
        assert isinstance(cls.__dict__["decline_reason"], classmethod)
    if "_aliases" in cls.__dict__:
        assert cls.__dict__["_aliases"].__annotations__["return"] == ALIASES_TYPE


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_bridges_declare_no_hook_the_base_does_not(record: Bridge):
    """A bridge's private methods are Owner's hooks; its helpers are module functions."""
    cls = record.load()
    own = [
        name
        for name, value in cls.__dict__.items()
        if name.startswith("_")
        and not name.startswith("__")
        and callable(getattr(value, "__func__", value))
    ]
    extra = [name for name in own if name not in HOOKS]
    assert not extra, (
        f"{cls.__name__} declares methods that look like hooks but Owner does not "
        f"declare: {extra}. Fix: declare the hook on Owner (core/owner.py), or make it a "
        "module-level helper."
    )


def test_hook_checks_catch_a_bridge_out_of_order():
    class Backwards(Owner):
        def _aliases(self, fmt: str) -> dict[str, str | None] | None:
            return None

        def _forward(self, inputs, training):
            return inputs

        def _helper(self):
            return None

    with pytest.raises(AssertionError, match=r"expected the order declared on Owner"):
        test_owner_classes_implement_hooks_in_the_declared_order(Backwards)
    record = Bridge("backwards", "t", __name__, "Backwards", ("x",), "x", "x", "x")
    globals()["Backwards"] = Backwards
    try:
        with pytest.raises(AssertionError, match=r"look like hooks.*\['_helper'\]"):
            test_bridges_declare_no_hook_the_base_does_not(record)
    finally:
        del globals()["Backwards"]


# ------------------------------------------------------- records are read everywhere
FAKE = Bridge(
    "fakenet",
    "FakeNet",
    "tfunite.bridges.fakenet",
    "FakeOwner",
    ("tests.test_architecture",),
    import_name="fakenet_pkg",
    distribution="fake-net",
    extra="fakenet",
    fixes="tfunite.bridges.fakenet_fixes",
    optimizers=True,
)


class FakeOptimizer:
    """An optimizer class from the fake record's class prefix."""


def test_a_new_record_reaches_doctor_capture_and_optimizer(monkeypatch):
    from tfunite import capture, optimizer
    from tfunite.records import BRIDGES
    from tfunite.tools import doctor

    monkeypatch.setitem(BRIDGES, FAKE.name, FAKE)
    assert doctor.packages()["fakenet_pkg"] == "fake-net"
    assert doctor.extras()["fakenet_pkg"] == "fakenet"
    assert "tfunite.bridges.fakenet_fixes" in doctor.fix_modules()
    problem = {p.name: p for p in doctor.problems({"tensorflow": "2.21.0"})}["fakenet_pkg-missing"]
    assert problem.fix == "pip install 'tfunite[fakenet]'" and "fake-net" in problem.summary
    errors = doctor.register_fixes()
    assert (
        "No module named 'tfunite.bridges.fakenet_fixes'" in errors["tfunite.bridges.fakenet_fixes"]
    )
    assert "fakenet_pkg" in capture._library_names()
    assert optimizer._kind(FakeOptimizer()) == "fakenet"
    with pytest.raises(TypeError, match=r"expected an optimizer of .*FakeNet, or a Keras"):
        optimizer._kind(object())
