"""The single entry point for every dg workflow: `nox -l` lists the sessions.

- tests : CPU test suite (what CI runs): builds dg-core, checks each upper package installs alone on it, runs pytest.
- bench : the main job. On a GPU machine it is `sm90`/`sm100` for the card found; on a machine without a GPU it
          precompiles the kernels for sm_90a into the JIT cache and says what it could not run.
- sm90  : on a Hopper GPU: build, GPU + CPU tests, benchmarks -> benchmarks/results/<card>/ (JSON + Markdown).
- sm100 : the same for Blackwell (says so and stops where no such GPU is present).
- docs  : Sphinx site, warnings are errors.   - lint : ruff + clang-format.
Set DG_NOX_NO_VENV=1 to run in the current interpreter (e.g. a machine without network that already has torch).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from xml.etree import ElementTree

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ["dg-core", "dg-layout", "dg-moe", "dg-indexer"]
UPPER = {"dg-layout": "dg.layout", "dg-moe": "dg.moe", "dg-indexer": "dg.indexer"}
TORCH_CPU = "torch==2.13.0"  # the CPU build that lies on this project's CPU machines; never a loose requirement
NO_VENV = os.environ.get("DG_NOX_NO_VENV") == "1"
BACKEND = "none" if NO_VENV else None

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _fmt_include(session: nox.Session) -> str:
    """fmt headers for building dg-core: the system's, $DG_FMT_INCLUDE_DIR, or Debian's libfmt-dev unpacked."""
    if os.environ.get("DG_FMT_INCLUDE_DIR"):
        return os.environ["DG_FMT_INCLUDE_DIR"]
    if Path("/usr/include/fmt/format.h").exists():
        return "/usr/include"
    local = ROOT / ".nox" / "fmt"
    if not (local / "usr" / "include" / "fmt" / "format.h").exists():
        local.mkdir(parents=True, exist_ok=True)
        session.run("apt-get", "download", "libfmt-dev", external=True, cwd=str(local))
        deb = next(local.glob("libfmt-dev_*.deb"))
        session.run("dpkg", "-x", str(deb), str(local), external=True)
    return str(local / "usr" / "include")


def _build_env(session: nox.Session) -> dict[str, str]:
    env = {"DG_FMT_INCLUDE_DIR": _fmt_include(session)}
    # NOTE: build host C++ with the system g++; another toolchain's libstdc++ inside a Python process has crashed.
    if Path("/usr/bin/g++").exists():
        env["CXX"] = "/usr/bin/g++"
    return env


def _install_dg(session: nox.Session, packages: list[str], editable: bool = False) -> None:
    args = ["--no-build-isolation", "--no-deps"] if NO_VENV else ["--no-build-isolation"]
    for p in packages:
        target = ["-e", str(ROOT / "packages" / p)] if editable else [str(ROOT / "packages" / p)]
        session.run("python", "-m", "pip", "install", "-q", *args, *target, env=_build_env(session), external=NO_VENV)


def _base_deps(session: nox.Session) -> None:
    if NO_VENV:
        return
    session.install(TORCH_CPU, "scikit-build-core>=0.10", "nanobind>=2.4", "pytest", "numpy",
                    "nvidia-cutlass==4.2.0.0", "nvidia-cuda-nvrtc==13.0.88")


def _has_gpu(session: nox.Session) -> tuple[int, int] | None:
    out = session.run("python", "-c",
                      "import torch; print(*torch.cuda.get_device_capability() if torch.cuda.is_available() else '')",
                      silent=True, external=NO_VENV)
    parts = (out or "").split()
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else None


def _check_isolated_installs(session: nox.Session) -> None:
    """Each upper package installs alone on dg-core and imports; the others stay absent."""
    # NOTE: a reused virtualenv may still hold them from an earlier run.
    session.run("python", "-m", "pip", "uninstall", "-q", "-y", *UPPER, external=NO_VENV)
    for dist, module in UPPER.items():
        _install_dg(session, [dist])
        others = [m for m in UPPER.values() if m != module]
        code = (
            "import importlib.util, sys\n"
            f"import {module}\n"
            f"missing = [m for m in {others!r} if importlib.util.find_spec(m) is not None]\n"
            "sys.exit(f'unexpected packages present: {missing}' if missing else 0)\n"
        )
        session.run("python", "-c", code, external=NO_VENV)
        session.run("python", "-m", "pip", "uninstall", "-q", "-y", dist, external=NO_VENV)
        session.log(f"{dist} installs and imports alone on dg-core")


@nox.session(venv_backend=BACKEND)
def tests(session: nox.Session) -> None:
    """CPU test suite: build, isolated installs of each upper package, pytest (GPU tests skip without a GPU)."""
    _base_deps(session)
    _install_dg(session, ["dg-core"])
    if not NO_VENV:
        _check_isolated_installs(session)
    _install_dg(session, PACKAGES[1:])
    session.run("python", "-m", "pytest", "-q", "-m", "not gpu", *session.posargs, external=NO_VENV)


def _precompile(session: nox.Session, arch: str) -> None:
    session.run("python", "-m", "dg", "precompile", "--arch", arch, "--preset", "seed", external=NO_VENV)


def _gpu_session(session: nox.Session, major: int) -> None:
    cap = _has_gpu(session)
    name = {9: "SM90 (Hopper)", 10: "SM100 (Blackwell)"}[major]
    if cap is None or cap[0] != major:
        session.log(f"no {name} GPU here (found {cap or 'none'}): nothing run for this session")
        return
    _install_dg(session, PACKAGES)
    results = ROOT / "benchmarks" / "results"
    # The CPU suite is the `tests` session; here the GPU tests of every package run, each package in its own
    # process (a sticky CUDA error in one must not hide the others' results), then the benchmarks. The session
    # fails at the end if any GPU test failed.
    args = session.posargs or ["-m", "gpu or sm90"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        args = [*args, "--timeout=240"]  # a hung kernel fails its test instead of stalling the session
    failed = []
    reports = ROOT / ".nox" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for folder in [*(f"packages/{p}/tests" for p in PACKAGES), "tests"]:
        xml = reports / (folder.replace("/", "_") + ".xml")
        xml.unlink(missing_ok=True)
        session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *args,
                    str(ROOT / folder), external=NO_VENV, success_codes=[0, 1, 5])
        if not xml.exists():  # the run died (e.g. a timeout killed it) before writing its report
            failed.append(folder)
            continue
        suite = ElementTree.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        if int(suite.get("failures", 0)) + int(suite.get("errors", 0)) > 0:
            failed.append(folder)
    session.run("python", "-m", "dg", "bench", "--routines", str(ROOT / "benchmarks" / "routines"), "--out",
                str(results), "--anchors", str(ROOT / "benchmarks" / "anchors" / "h100_2026-11-25.json"),
                external=NO_VENV)
    if failed:
        session.error(f"GPU tests failed in: {', '.join(failed)}")


@nox.session(venv_backend=BACKEND)
def sm90(session: nox.Session) -> None:
    """On a Hopper GPU: build, run every test (GPU ones included), benchmark; results in benchmarks/results/."""
    _base_deps(session)
    _gpu_session(session, 9)


@nox.session(venv_backend=BACKEND)
def sm100(session: nox.Session) -> None:
    """The same for Blackwell. dg's SM100 kernels are not written yet: without such a GPU it says so and stops."""
    _base_deps(session)
    _gpu_session(session, 10)


@nox.session(venv_backend=BACKEND)
def bench(session: nox.Session) -> None:
    """The main job: GPU -> the matching arch session; no GPU -> precompile for sm_90a and report what did not run."""
    _base_deps(session)
    _install_dg(session, PACKAGES)
    cap = _has_gpu(session)
    if cap is not None and cap[0] in (9, 10):
        _gpu_session(session, cap[0])
        return
    _precompile(session, "sm_90a")
    session.log("no Hopper/Blackwell GPU here: the JIT cache is filled for sm_90a (copy DG_JIT_CACHE_DIR to a GPU "
                "node); GPU tests and benchmarks were NOT run")


@nox.session(venv_backend=BACKEND)
def sanitize(session: nox.Session) -> None:
    """compute-sanitizer memcheck and racecheck over the FP8 GEMM paths and both MQA-logits kernels (needs an SM90
    GPU)."""
    cap = _has_gpu(session)
    if cap is None or cap[0] != 9:
        session.log(f"no SM90 GPU here (found {cap or 'none'}): nothing run")
        return
    scripts = [str(ROOT / "packages" / "dg-core" / "tests" / "sanitize_fp8_gemm.py"),
               str(ROOT / "packages" / "dg-indexer" / "tests" / "sanitize_mqa_logits.py")]
    for script in scripts:
        for tool in ("memcheck", "racecheck"):
            session.run("compute-sanitizer", "--tool", tool, "--error-exitcode", "1", "python", script, external=True)


@nox.session(venv_backend=BACKEND)
def docs(session: nox.Session) -> None:
    """Build the Sphinx site with warnings as errors (docs/_build/html)."""
    _base_deps(session)
    if not NO_VENV:
        session.install("sphinx", "myst-parser", "furo")
    _install_dg(session, PACKAGES)
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
                external=NO_VENV)


@nox.session(venv_backend=BACKEND)
def lint(session: nox.Session) -> None:
    """ruff on Python; clang-format on C++/CUDA sources (check only)."""
    if not NO_VENV:
        # NOTE: pinned: clang-format's layout of the same .clang-format changes between releases.
        session.install("ruff==0.17.6", "clang-format==23.1.5")
    session.run("ruff", "check", ".", external=NO_VENV)
    sources = [
        str(p)
        for p in ROOT.glob("packages/*/**/*")
        if p.suffix in (".hpp", ".cpp", ".cuh") and "build" not in p.relative_to(ROOT).parts
    ]
    session.run("clang-format", "--dry-run", "--Werror", *sources, external=NO_VENV)
