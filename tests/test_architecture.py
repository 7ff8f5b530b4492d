"""The package's shape, checked from its source: the import graph follows the pipeline
(no cycles, no layer importing a later one), analysis stays pure, no module uses another's
private names, modules and functions stay short, a model family lives in its folder alone
and reading never depends on training (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "interp"
#: The pipeline, in the order data flows; a module may import its own layer or earlier ones.
LAYERS = ("interp.version", "interp.imports", "interp.validate", "interp.devices",
          "interp.native", "interp.jsonable", "interp.losses", "interp.phases", "interp.models",
          "interp.config", "interp.data", "interp.records", "interp.evaluation", "interp.store",
          "interp.training", "interp.analysis", "interp.reports", "interp.sweeps",
          "interp.plots", "interp.cli")
#: What analysis (pure array functions) must never import, directly or through interp.
NOT_IN_ANALYSIS = ("h5py", "typer", "rich", "matplotlib", "safetensors", "dask", "distributed",
                   "interp.store", "interp.training", "interp.reports", "interp.sweeps",
                   "interp.plots", "interp.cli")
MAX_MODULE_LINES, MAX_BODY_LINES = 400, 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports (at any depth of its code): interp modules by their
    full name (``from interp.a import b`` is ``interp.a.b`` when that is a module), other
    packages by their top-level name. Imports under ``if TYPE_CHECKING:`` are for type
    annotations only and never run, so they are not counted."""
    out = set()
    tree = ast.parse(MODULES[name].read_text())
    for node in ast.walk(tree):  # drop type-only blocks before walking
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                    "typing.TYPE_CHECKING"):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name if a.name.startswith("interp") else a.name.split(".")[0]
                    for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("interp"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    out.add(sub if sub in MODULES else node.module)
            else:
                out.add(node.module.split(".")[0])
    return out


GRAPH = {name: {m for m in imports(name) if m in MODULES} for name in MODULES}


def layer(name: str) -> int:
    hits = [i for i, prefix in enumerate(LAYERS) if name == prefix or name.startswith(prefix + ".")]
    assert hits, f"module {name} is in no layer of LAYERS; add it"
    return hits[0]


def test_every_module_is_in_a_layer():
    for name in MODULES:
        if name != "interp":
            layer(name)


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in MODULES:
        if name not in state:
            visit(name, [name])


def test_imports_follow_the_pipeline():
    bad = [f"{a} imports {b}" for a in MODULES if a != "interp" for b in GRAPH[a]
           if b != "interp" and layer(b) > layer(a)]
    assert not bad, bad
    # the trainer reports to callbacks and never touches files; only the runner joins them
    for name in ("interp.training.trainer", "interp.training.optim", "interp.training.stacking"):
        assert not {m for m in reachable(name) if m.startswith("interp.store")}, name


def test_reading_never_depends_on_training():
    """Opening a run or a foreign checkpoint, and analyzing it, evaluates a pure function of
    (family, weights, data): no module of store, analysis or reports reaches training."""
    readers = [n for n in MODULES if n.startswith(("interp.store", "interp.analysis",
                                                   "interp.reports"))]
    bad = {n: sorted(m for m in reachable(n) if m.startswith("interp.training"))
           for n in readers}
    assert not {n: m for n, m in bad.items() if m}


def test_one_class_named_run_and_one_trainer():
    defined = {cls: [n for n, path in MODULES.items()
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ClassDef) and node.name == cls]
               for cls in ("Run", "Trainer")}
    assert defined == {"Run": ["interp.store.run"], "Trainer": ["interp.training.trainer"]}


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in GRAPH[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("interp.analysis")])
def test_analysis_is_pure(name):
    found = imports(name) | {m for dep in reachable(name) for m in imports(dep)}
    bad = sorted(m for m in found if any(m == x or m.startswith(x + ".")
                                         for x in NOT_IN_ANALYSIS))
    assert not bad, f"{name} imports {bad}"


def test_no_module_uses_another_modules_private_names():
    bad = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("interp")):
                for a in node.names:
                    if a.name.startswith("_") and a.name != "__version__":
                        bad.append(f"{name} imports {node.module}.{a.name}")
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases):
                bad.append(f"{name} uses {node.value.id}.{node.attr}")
    assert not bad, bad


def body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = fn.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):  # the docstring is not body
        body = body[1:]
    return 0 if not body else fn.end_lineno - body[0].lineno + 1


def test_modules_and_functions_are_short():
    long_modules = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in long_modules.items() if k > MAX_MODULE_LINES}
    long_functions = [
        f"{name}.{node.name}: {body_lines(node)}"
        for name, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and body_lines(node) > MAX_BODY_LINES]
    assert not long_functions, long_functions


#: Where a family may be named: its own folder, the registry, and the public API's table of
#: names (interp/__init__.py, which lists what ``import interp`` offers).
FAMILY_FOLDERS = sorted(n for n, p in MODULES.items() if n.startswith("interp.models.")
                        and p.name == "__init__.py")
NAMING_ALLOWED = ("interp.models.registry", "interp")


def family_names() -> tuple[set[str], set[str]]:
    """The registered families' names, and every class their folders define."""
    from interp.models import configs

    classes = {node.name for n in MODULES if n.startswith(tuple(FAMILY_FOLDERS))
               for node in ast.walk(ast.parse(MODULES[n].read_text()))
               if isinstance(node, ast.ClassDef)}
    return set(configs()), classes


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                     ast.Constant):
                out.add(id(body[0].value))
    return out


def test_a_family_is_named_only_in_its_folder_and_the_registry():
    """No family name (as a string), family class (as a name) or family module (as an
    import) outside the family's folder, the registry and the public API's table: code
    above the families asks the registry and the family, never which family it is."""
    names, classes = family_names()
    assert {"mlp", "deep_mlp", "transformer"} <= names and {"MLP", "TransformerConfig"} <= classes
    bad = []
    for name, path in MODULES.items():
        if name.startswith(tuple(FAMILY_FOLDERS)) or name in NAMING_ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in skip and node.value in names):
                bad.append(f"{name}:{node.lineno} names family {node.value!r}")
            elif isinstance(node, ast.Name) and node.id in classes or \
                    isinstance(node, ast.Attribute) and node.attr in classes:
                bad.append(f"{name}:{node.lineno} uses a family class")
            elif isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith(tuple(FAMILY_FOLDERS))
                    or any(a.name in classes for a in node.names)):
                bad.append(f"{name}:{node.lineno} imports from a family")
    assert not bad, bad


def test_the_checks_see_what_they_check():
    """The graph is built from real imports: spot-check edges a reader can verify."""
    assert "interp.models.base" in GRAPH["interp.models.mlp.paper"]
    assert "interp.models.mlp" in FAMILY_FOLDERS and "interp.models.transformer" in FAMILY_FOLDERS
    assert "interp.store.writer" in GRAPH["interp.training.runner"]
    assert "h5py" in imports("interp.store.trajectory")
    assert layer("interp.analysis.spectra") < layer("interp.plots.figures")


def test_the_package_ships_its_types():
    """PEP 561: ``interp/py.typed`` is in the package and its data, so a type checker
    reads interp's annotations."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    assert (root / "interp" / "py.typed").is_file()
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["interp"]


def test_the_package_ships_its_cpp_kernels():
    """Every C++ kernel (interp.native builds them where interp is installed) is in the
    package's data."""
    import fnmatch

    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["interp"]
    sources = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.cpp")]
    assert sources and all(any(fnmatch.fnmatch(s, g) for g in shipped) for s in sources)
