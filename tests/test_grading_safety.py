"""Hostile inputs, timeouts in threads and in process pools, the `e2h grade` command."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from e2h.grading import grade, grade_many
from e2h.grading.timeout import WorkerPool

HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "\\boxed{{__import__('os').system('touch {marker}')}}",
    "exec(compile('open(\"{marker}\",\"w\")','x','exec'))",
    "10^{{10^{{10^{{10}}}}}}",
    "9**9**9**9",
    "2^{{2^{{2^{{2^{{2^{{2}}}}}}}}}}",
    "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))))))))))))))))))))))",
    "\\frac{{1}}{{" * 200 + "1" + "}}" * 200,
    "1+" * 10000 + "1",
    "\\boxed{{\\frac{{1}}{{2}}",
    "{{{{{{{{{{]]]]",
    "1000000!",
    "x" * 20000,
]


@pytest.mark.parametrize("template", HOSTILE, ids=lambda s: s[:30])
def test_hostile_inputs_are_wrong_fast_and_execute_nothing(template, tmp_path):
    marker = tmp_path / "pwned"
    pred = template.format(marker=marker) if "{marker}" in template else template.replace("{{", "{").replace("}}", "}")
    start = time.monotonic()
    verdict = grade(pred, "3", timeout_s=5.0)
    assert time.monotonic() - start < 5.0
    assert verdict.correct is False
    assert not marker.exists()


def test_timeout_kills_a_stuck_worker_inside_a_thread():
    pool = WorkerPool(size=1, command=[sys.executable, str(Path(__file__).with_name("grading_worker_with_sleep.py"))])
    try:
        out = {}

        def work():
            out["slow"] = pool.run("sleep", [30], timeout_s=0.5)
            out["after"] = pool.run("compare", ["x^2+2x+1", "(x+1)^2"], timeout_s=60)

        t = threading.Thread(target=work)
        start = time.monotonic()
        t.start()
        t.join(120)
        assert out["slow"].timed_out and not out["slow"].ok
        assert out["after"].ok and out["after"].value[0] is True  # a fresh worker took over
        assert time.monotonic() - start < 60
    finally:
        pool.close()


def test_grade_reports_timeout_from_a_worker_thread():
    # SymPy is needed here (symbols); a 1 ms budget cannot be met, so the pair counts as a timeout
    from e2h.grading.batch import CACHE

    CACHE.clear()  # an earlier test may have graded the same pair
    result = {}
    t = threading.Thread(target=lambda: result.update(v=grade("\\tan^2(w)+1", "\\sec^2(w)", timeout_s=0.001)))
    t.start()
    t.join(60)
    assert result["v"].correct is False and result["v"].reason == "timeout"


def _grade_in_child(timeout_s: float, power: int) -> tuple[bool, str]:
    v = grade(f"(a+1)^{power}*(a-1)", f"(a+1)^{power - 1}*(a^2-1)", timeout_s=timeout_s)
    return v.correct, v.reason


def test_grade_inside_a_subprocess_pool():
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:
        assert ex.submit(_grade_in_child, 60.0, 3).result(timeout=120) == (True, "sympy")
        assert ex.submit(_grade_in_child, 0.001, 4).result(timeout=120) == (False, "timeout")


def test_grade_many_dedupes_and_caches():
    pairs = [("\\frac{1}{2}", "0.5")] * 256 + [("1/3", "0.5")] * 256
    start = time.monotonic()
    verdicts = grade_many(pairs)
    assert [v.correct for v in verdicts] == [True] * 256 + [False] * 256
    assert time.monotonic() - start < 5


def test_grade_command(tmp_path):
    src = tmp_path / "pairs.jsonl"
    rows = [{"gold": "\\frac{1}{2}", "pred": "so \\boxed{0.5}"}, {"gold": "3", "pred": "4"},
            {"gold": "x^2+2x+1", "pred": "(x+1)^2", "id": 7}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "e2h", "grade", "--input", str(src), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["correct"] for g in graded] == [True, False, True]
    assert graded[0]["pred_answer"] == "0.5" and graded[2]["id"] == 7
    assert "2 correct" in proc.stderr and "0 timeouts" in proc.stderr


def test_grade_command_names_the_bad_line(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text('{"gold": "1", "pred": "1"}\n{"pred": "2"}\n')
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "e2h", "grade", "--input", str(src), "--output",
                           str(tmp_path / "o.jsonl")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "pairs.jsonl:2" in proc.stderr and "gold" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()
