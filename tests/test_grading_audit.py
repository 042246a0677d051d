"""`e2h grade --audit`: every MATH500 gold is parsed as a whole; the unparsed MATH train golds are listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from e2h.grading.audit import DEFAULT_GOLD_FILES, audit_file, audit_gold

DATA = Path(__file__).resolve().parent / "data"


def test_default_files_are_the_in_repo_golds():
    assert [p.resolve() for p in DEFAULT_GOLD_FILES] == [DATA / "math500.jsonl", DATA / "math_train_golds.jsonl"]


def test_math500_has_no_unparsed_gold():
    result = audit_file(DATA / "math500.jsonl")
    assert result.golds == 500 and result.unparsed == []


def test_math_train_unparsed_golds_are_only_the_empty_boxes():
    # MATH's own defect (tests/data/LICENSES.md): two train problems box nothing. The README states this count.
    result = audit_file(DATA / "math_train_golds.jsonl")
    assert result.golds == 12000
    assert [(uid, gold) for uid, gold, _ in result.unparsed] == [
        ("train/number_theory/7115.json", ""), ("train/number_theory/7117.json", "")]


def test_audit_gold_says_why():
    assert audit_gold("1, 2, and 3") is None and audit_gold("\\text{Devon}") is None
    assert audit_gold("\\sum_{k=1}^{n} k") is None
    assert "nested" in audit_gold("(" * 50 + "1" + ")" * 50)
    assert audit_gold("\\zzz{1}") is not None  # an unknown command: not parsed, listed


def test_audit_command_lists_and_counts(tmp_path):
    golds = tmp_path / "golds.jsonl"
    golds.write_text("".join(json.dumps(r) + "\n" for r in [
        {"unique_id": "a", "answer": "\\frac12"}, {"unique_id": "b", "answer": "\\zzz{1}"}, {"gold": "x=1, y=2"}]))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "e2h", "grade", "--audit", str(golds)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "b\t'\\\\zzz{1}'" in proc.stdout
    assert "1 of 3 golds cannot be parsed as a whole" in proc.stdout and "unparsed golds: 1" in proc.stdout
