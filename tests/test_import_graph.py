"""The package's import graph: no circles, explanations never reach into the recipes, and no import inside a function.

Every dependency of a module is named at the top of its file, where the graph shows it. A dependency that costs
seconds and that the module's main path never needs (papermill, nbconvert, nbval, nbformat, scikit-learn's
metrics, transformers, torchvision; torch in ``repro``; ipywidgets/IPython) is declared there too, as
``name = lazy_import("module")`` (:mod:`cxrkit.lazy`), and imported at its first use. These declarations are edges of
the graph below, so a circle through them is found, and a ``lazy_import`` inside a function is refused like a hidden
``import``. The only imports allowed inside a function are of optional dependencies (the extras in
``pyproject.toml`` that are not also required).
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from collections import defaultdict
from pathlib import Path

import cxrkit

PACKAGE = Path(cxrkit.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _distribution(requirement: str) -> str:
    """The import name a requirement line provides, as far as this kit needs (``scikit-learn>=1.4`` → ``sklearn``)."""
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()
    return {"scikit-learn": "sklearn", "python-gdcm": "gdcm", "pyyaml": "yaml", "pillow": "PIL", "ipython": "IPython"}.get(name, name.replace("-", "_"))


def _optional_dependencies() -> set[str]:
    """Import names offered only by an extra of ``pyproject.toml`` (not also a required dependency)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    required = {_distribution(r) for r in project["dependencies"]}
    extras = {_distribution(r) for group in project.get("optional-dependencies", {}).values() for r in group}
    return extras - required


def _is_lazy_import(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_import"


def _scan(tree: ast.Module, name: str, package: str, modules: set[str]):
    """Yield (target module, line, inside a function?, lazy?) for every import statement and ``lazy_import`` call."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        lazy = False
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        elif _is_lazy_import(node):
            arg = node.args[0] if node.args else None
            targets = [arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else "<not a literal>"]
            lazy = True
        else:
            continue
        scope, in_function = node, False
        while scope in parents:
            scope = parents[scope]
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function = True
                break
        for target in targets:
            yield target, node.lineno, in_function, lazy


def _imports():
    """The cxrkit import graph (module level, lazy declarations included) and every import found inside a function."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    edges: dict[str, set[str]] = defaultdict(set)
    in_functions: list[tuple[str, str, int, bool]] = []
    lazy: list[tuple[str, str, int]] = []
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target, line, in_function, is_lazy in _scan(ast.parse(path.read_text()), name, package, modules):
            if in_function:
                in_functions.append((name, target, line, is_lazy))
            if is_lazy:
                lazy.append((name, target, line))
            while target and target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                edges[name].add(target)
    return edges, in_functions, lazy


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circles():
    edges, _, _ = _imports()
    assert _cycles(edges) == []


def test_explanations_never_import_the_recipes():
    edges, _, _ = _imports()
    reach = [(a, b) for a, targets in edges.items() for b in targets
             if a.startswith("cxrkit.explain") and b.startswith("cxrkit.recipes")]
    assert reach == []


def test_no_import_inside_a_function_but_of_an_optional_dependency():
    _, in_functions, _ = _imports()
    optional = _optional_dependencies()
    hidden = [f"{module} line {line}: {'lazy_import' if lazy else 'import'} {target}"
              for module, target, line, lazy in in_functions if lazy or target.split(".")[0] not in optional]
    assert hidden == [], ("name these dependencies at the top of the file — `name = lazy_import(\"module\")` "
                          "(cxrkit.lazy) where importing it costs seconds the module's main path never needs")


def test_lazy_imports_name_literal_modules_that_the_kit_depends_on():
    _, _, lazy = _imports()
    assert lazy, "the heavy dependencies are declared with lazy_import"
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = {_distribution(r) for r in project["dependencies"]} | _optional_dependencies() | {"cxrkit"}
    wrong = [f"{m} line {line}: {target}" for m, target, line in lazy
             if target.split(".")[0] not in declared and target.split(".")[0] not in sys.stdlib_module_names]
    assert wrong == []


def test_the_checker_sees_a_circle_a_hidden_import_and_a_lazy_edge():
    """The checks above can fail: a made-up circle is found, imports inside functions are seen, lazy edges count."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = textwrap.dedent("""
        from cxrkit.lazy import lazy_import
        nets = lazy_import("cxrkit.models.torchvision_nets")
        def f():
            import json
            late = lazy_import("papermill")
    """)
    modules = {"cxrkit.lazy", "cxrkit.models.torchvision_nets", "cxrkit.models.image"}
    found = {(t, fn, lz) for t, _, fn, lz in _scan(ast.parse(source), "cxrkit.models.image", "cxrkit.models", modules)}
    assert found == {("cxrkit.lazy", False, False), ("cxrkit.models.torchvision_nets", False, True),
                     ("json", True, False), ("papermill", True, True)}
    edges, _, _ = _imports()
    assert "cxrkit.models.torchvision_nets" in edges["cxrkit.models.image"]  # a lazy declaration is an edge
    assert _distribution("scikit-learn>=1.4,<2") == "sklearn"


def test_the_deferred_dependencies_stay_unloaded_until_used():
    """In a fresh interpreter: building the CLI and importing the notebooks' tools load none of the deferred packages."""
    code = textwrap.dedent("""
        import sys
        import cxrkit.cli, cxrkit.runner, cxrkit.report, cxrkit.checked_outputs, cxrkit.spread, cxrkit.labeler
        import cxrkit.text.pretrained, cxrkit.models, cxrkit.widgets
        cxrkit.cli.build_parser()
        deferred = ["papermill", "nbconvert", "nbval", "transformers", "torchvision", "ipywidgets"]
        print(",".join(m for m in deferred if m in sys.modules))
        import cxrkit.report
        cxrkit.report.nbformat.from_dict({"a": 1})  # first use imports the real module
        print("nbformat" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "", f"loaded before use: {out[0]}"
    assert out[1] == "True"
