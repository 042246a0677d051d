"""The repository stands alone: a clone without any folder beside it builds, tests and runs.

No code, config, script or document names a path outside the repository (a sibling folder reached with a
dot-dot, or a ``Path(__file__).parents[N] / "shared"`` that climbs out of it), and the data defaults name public
sources: paths inside the working directory or hub ids. Test data lives in tests/data (see its LICENSES.md).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from e2h.config import DataSection
from e2h.data.rows import is_local

ROOT = Path(__file__).resolve().parents[1]

# a sibling folder of the repository, e.g. dot-dot-slash-shared, however many dot-dots
SIBLING = re.compile(r"(?<![\w.])\.\.[/\\]+(?:\.\.[/\\]+)*shared\b")
# climbing out of the repository from a file in it to that folder: parents[N] or .parent.parent, then / "shared"
CLIMB = re.compile(r"""(?:parents\[\d+\]|\.parent)\s*/\s*["']shared["']""")
SKIP_DIRS = {".git", ".venv", ".cache", "runs", "node_modules", "__pycache__"}


def repository_files() -> list[Path]:
    """Tracked files plus new ones git does not ignore; without git, every file outside build and cache folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
        names = [name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            names += [os.path.relpath(os.path.join(folder, name), ROOT) for name in files]
    return [ROOT / name for name in sorted(set(names)) if (ROOT / name).is_file()]


def text_files() -> list[Path]:
    """Code, configs, scripts and documents (tests/data holds data rows, not references)."""
    found = []
    for path in repository_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("tests/data/") and path.suffix != ".md":
            continue
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        found.append(path)
    return found


def outside_references(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
            if SIBLING.search(line) or CLIMB.search(line)]


def test_the_patterns_catch_what_they_must_and_leave_cluster_paths_alone():
    sibling, climb = "../" + "shared/data/math500.jsonl", 'parents[2] / "' + 'shared" / "data"'
    assert outside_references(f"x = '{sibling}'\n") == [(1, f"x = '{sibling}'")]
    assert outside_references(f"see ../{sibling}") and outside_references(f"DATA = Path(__file__).resolve().{climb}")
    assert outside_references("p.parent.parent / " + "'shared'")
    # prose about shared disks and cluster paths is fine
    assert not outside_references("cd /shared/e2h && source /shared/e2h/.venv/bin/activate  # on shared disk")
    assert not outside_references("cache/shared/x and a_shared/y and data/shared.jsonl")


def test_no_file_names_a_path_outside_the_repository():
    files = text_files()
    assert any(path.name == "config.py" for path in files) and any(path.suffix == ".md" for path in files)
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line}" for path in files
                 for number, line in outside_references(path.read_text(encoding="utf-8"))]
    assert not offenders, "paths outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("key", ["math_train", "math500", "prm800k", "processbench"])
def test_data_defaults_name_public_sources_inside_the_working_directory(key):
    value = getattr(DataSection(), key)
    for source in value if isinstance(value, list) else [value]:
        if is_local(source):
            path = Path(source)
            assert not path.is_absolute() and ".." not in path.parts, f"data.{key}: {source} leaves the directory"
            assert path.parts[0] == "prm800k", f"data.{key}: {source} is not a file of an openai/prm800k clone"
        else:
            name, _, split = source.partition(":")
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", name) and split, f"data.{key}: {source} is not owner/name:split"


def test_data_defaults_are_the_documented_sources():
    data = DataSection()
    # openai/prm800k's own file names (a clone in the working directory; the files are Git LFS)
    assert data.math_train == "prm800k/prm800k/math_splits/train.jsonl"
    assert data.prm800k == ["prm800k/prm800k/data/phase1_train.jsonl", "prm800k/prm800k/data/phase2_train.jsonl"]
    assert data.math500 == "HuggingFaceH4/MATH-500:test"
    assert data.processbench == ["Qwen/ProcessBench:gsm8k", "Qwen/ProcessBench:math"]
