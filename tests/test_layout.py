"""The repository's layout: file names say what they hold, and the product stands alone.

fer/ is the product (training, export, gallery); benchmarks/ measures it, research/
studies it and tools/ writes the docs: they import fer, never the other way round.
"""

import ast
import collections
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The project's own code; everything else under ROOT (virtual environments, builds,
# runs, caches) is not.
CODE = ("fer", "benchmarks", "research", "tools", "configs", "scripts", "tests")
SHARED_NAMES = {"__init__.py", "__main__.py"}  # A package's, by Python's convention.
OUTSIDE_THE_PRODUCT = ("benchmarks", "research", "tools")


def python_files(root: str = ROOT) -> list[str]:
    """Paths (relative to root) of the project's .py files."""
    found = [name for name in os.listdir(root)
             if name.endswith(".py") and os.path.isfile(os.path.join(root, name))]
    for top in CODE:
        for folder, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            found += [os.path.relpath(os.path.join(folder, f), root)
                      for f in files if f.endswith(".py")]
    return sorted(found)


def shared_basenames(paths: list[str]) -> dict[str, list[str]]:
    """Basenames held by more than one file (packages' __init__/__main__ aside)."""
    by_name = collections.defaultdict(list)
    for path in paths:
        by_name[os.path.basename(path)].append(path)
    return {name: sorted(group) for name, group in by_name.items()
            if len(group) > 1 and name not in SHARED_NAMES}


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module's source imports (absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def upward_imports(root: str = ROOT) -> dict[str, set[str]]:
    """fer/ modules that import benchmarks, research or tools, and what they import."""
    found = {}
    for path in python_files(root):
        if path.split(os.sep)[0] != "fer":
            continue
        with open(os.path.join(root, path), encoding="utf-8") as f:
            bad = imported_packages(f.read()) & set(OUTSIDE_THE_PRODUCT)
        if bad:
            found[path] = bad
    return found


def test_no_two_python_files_share_a_name():
    paths = python_files()
    assert "fer/spec.py" in paths and "tests/test_layout.py" in paths  # The walk sees them.
    assert shared_basenames(paths) == {}


def test_fer_imports_nothing_outside_the_product():
    assert upward_imports() == {}


def test_the_checks_catch_what_they_forbid(tmp_path):
    for path, text in (("fer/export/ensemble.py", "from research.x import y\n"),
                       ("fer/models/ensemble.py", "import benchmarks.latency\n"),
                       ("fer/api.py", "from . import spec\nfrom tools import readme_tables\n"),
                       ("research/study/__main__.py", "import fer\n"),
                       ("research/study/__init__.py", ""),
                       ("benchmarks/__init__.py", "")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    paths = python_files(str(tmp_path))
    assert shared_basenames(paths) == {
        "ensemble.py": ["fer/export/ensemble.py", "fer/models/ensemble.py"]}
    assert upward_imports(str(tmp_path)) == {
        "fer/export/ensemble.py": {"research"}, "fer/models/ensemble.py": {"benchmarks"},
        "fer/api.py": {"tools"}}


@pytest.mark.parametrize("study", ["label_transfer", "per_class_offsets", "shipped_tau",
                                   "preprocessing_table4", "ensemble_ablation"])
def test_every_study_has_its_command_readme_and_results(study):
    folder = os.path.join(ROOT, "research", study)
    assert os.path.isfile(os.path.join(folder, "__main__.py"))
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert f"python -m research.{study}" in readme
    assert "**Question.**" in readme and "**Finding**" in readme
    assert os.listdir(os.path.join(folder, "results"))
