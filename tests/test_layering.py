"""Architecture checks over the source tree: layers, namespace package, framework-free device code, versions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
UPPER = ["layout", "moe", "indexer"]
# What upper packages may use from dg.core: its public modules only.
CORE_PUBLIC = {"dg.core", "dg.core.jit", "dg.core.gemm", "dg.core.benchmark"}


def python_files(pkg: str) -> list[Path]:
    return sorted((PACKAGES / f"dg-{pkg}" / "src").rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_core_imports_no_upper_package():
    for path in python_files("core"):
        bad = {m for m in imported_modules(path) if re.match(r"dg\.(layout|moe|indexer)\b", m)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: dg.core must not depend on upper layers"


@pytest.mark.parametrize("pkg", UPPER)
def test_upper_packages_use_only_public_core(pkg):
    for path in python_files(pkg):
        for m in imported_modules(path):
            if m.startswith("dg.core"):
                head = ".".join(m.split(".")[:3])
                ok = head in CORE_PUBLIC or m.rsplit(".", 1)[0] in CORE_PUBLIC
                assert ok and "._" not in m, f"{path.relative_to(ROOT)} reaches into dg.core internals: {m}"


@pytest.mark.parametrize("pkg", UPPER)
def test_upper_packages_do_not_import_each_other_sideways(pkg):
    # dg.moe may use dg.layout (see STYLE.md); dg.indexer and dg.layout use dg.core only.
    allowed = {"moe": {"layout"}}.get(pkg, set())
    for path in python_files(pkg):
        for m in imported_modules(path):
            other = re.match(r"dg\.(layout|moe|indexer)\b", m)
            if other and other.group(1) != pkg:
                assert other.group(1) in allowed, f"{path.relative_to(ROOT)} imports {m}"


def test_namespace_package_has_no_init():
    inits = sorted(str(p.relative_to(ROOT)) for p in PACKAGES.glob("*/src/dg/__init__.py"))
    assert not inits, f"dg is a namespace package; remove {inits}"


def test_device_code_is_framework_free():
    pattern = re.compile(r'#\s*include\s*[<"](torch|ATen|c10|nanobind|pybind11|Python\.h)')
    for path in PACKAGES.glob("*/src/dg/*/include/**/*"):
        if path.suffix in {".cuh", ".h", ".hpp"}:
            m = pattern.search(path.read_text())
            assert m is None, f"{path.relative_to(ROOT)} includes {m.group(1)}: device code must be framework-free"


def test_host_cpp_does_not_include_torch():
    for path in (PACKAGES / "dg-core" / "csrc").rglob("*"):
        if path.suffix in {".hpp", ".cpp", ".h"}:
            assert not re.search(r"#\s*include\s*[<\"](torch|ATen|c10)/", path.read_text()), path


def test_all_packages_share_one_version():
    versions = {}
    for pyproject in PACKAGES.glob("*/pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())["project"]
        versions[project["name"]] = project["version"]
        for dep in project.get("dependencies", []):
            if dep.startswith("dg-"):
                assert dep.endswith("==" + project["version"]), f"{project['name']} pins {dep}"
    assert len(set(versions.values())) == 1, versions
    assert (ROOT / "VERSION").read_text().strip() == next(iter(versions.values()))


def test_torch_is_never_a_build_requirement():
    for pyproject in PACKAGES.glob("*/pyproject.toml"):
        requires = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
        assert not any(r.startswith("torch") for r in requires), pyproject
