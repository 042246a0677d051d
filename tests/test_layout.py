"""The import rule (core knows nothing of prm/, policy/ or training/; nothing below imports the top floor) and the CLI."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# e2h.__main__ is `python -m e2h`, the command line
TOP_FLOOR = ("e2h.commands", "e2h.serve", "e2h.report", "e2h.__main__")


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", files("e2h"), ids=lambda p: module_name(p))
def test_core_never_imports_stages_and_only_top_floor_imports_top_floor(path):
    name = module_name(path)
    is_top = name.startswith(TOP_FLOOR)
    for imported in imported_modules(path):
        if not is_top:
            assert not imported.startswith(("prm", "policy")), f"{name} (core) imports {imported}"
            assert not imported.startswith(TOP_FLOOR), f"{name} (core) imports top-floor {imported}"


@pytest.mark.parametrize("path", files("e2h") + files("training"), ids=lambda p: module_name(p))
def test_only_the_trainers_import_training(path):
    """training/ (DeepSpeed plumbing) sits beside prm/ and policy/: the core never imports it, nor it the stages."""
    name = module_name(path)
    imported = imported_modules(path)
    if name.startswith("training"):
        assert not any(m.startswith(("prm", "policy") + TOP_FLOOR) for m in imported), f"{name} imports a stage"
    elif not name.startswith(TOP_FLOOR):
        assert not any(m.split(".")[0] == "training" for m in imported), f"{name} (core) imports training"


@pytest.mark.parametrize("path", files("prm") + files("policy"), ids=lambda p: module_name(p))
def test_stages_never_import_the_top_floor(path):
    for imported in imported_modules(path):
        assert not imported.startswith(TOP_FLOOR), f"{module_name(path)} imports top-floor {imported}"
    if module_name(path).startswith("prm"):
        assert not any(m.startswith("policy") for m in imported_modules(path)), "prm/ must not import policy/"


def test_cli_help_lists_commands_and_each_has_help(capsys):
    from e2h.commands.cli import COMMANDS, main

    # the installed entry point, once
    out = subprocess.run([sys.executable, "-m", "e2h", "--help"], capture_output=True, text=True, check=True)
    for name, _, _ in COMMANDS:
        assert name in out.stdout
    # each command's --help, in process (a subprocess per command costs a torch import each)
    for name, _, _ in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: e2h " + name in capsys.readouterr().out
