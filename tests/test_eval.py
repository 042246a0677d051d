"""`e2h eval` end to end on a small samples file: metrics.json agrees with a plain-Python recomputation,
answers group by the grader's equivalence between samples (never by the gold), the old gold-merging grouping
scores higher where it differs, bad input fails with file:line:field, and `e2h report` compares runs."""

import json
import math
import random
from collections import defaultdict

import pytest

from e2h.commands.cli import main

POOL = 8
N_PROBLEMS = 20
CRAFTED = 3  # problems built to need grouping by equivalence (eq-right, eq-wrong, interval)


def solution(answer: str | None, rng) -> str:
    steps = [f"Step {k}." for k in range(rng.randint(1, 3))]
    return "\n\n".join(steps + ([f"# Answer\n\n{answer}"] if answer is not None else ["I give up."]))


def make_samples(seed: int = 0) -> list[dict]:
    """Synthetic scored samples: higher step scores for right answers; a few without an answer; three problems
    built to need grader-equivalence grouping."""
    rng = random.Random(seed)
    rows = []

    def add(pid, level, subject, gold, answers, good_score=0.75):
        for k, answer in enumerate(answers):
            right = answer is not None and answer in (gold, "x \\ge 5")
            steps = [min(1.0, max(0.0, rng.gauss(good_score if right else 0.5, 0.2))) for _ in range(3)]
            rows.append({"problem_id": pid, "sample_index": k, "prompt": "# Question\n\nq\n\n# Solution\n\n",
                         "completion": solution(answer, rng), "gold_answer": gold, "level": level,
                         "subject": subject, "step_scores": steps, "aggregates": {"orm_score": steps[-1]}})

    for p in range(N_PROBLEMS):
        level = 1 + p % 5
        gold = str(10 + p)
        p_right = 0.85 - 0.15 * level
        answers = [gold if rng.random() < p_right else (None if rng.random() < 0.15 else str(rng.choice([1, 2, 3])))
                   for _ in range(POOL)]
        add(f"p{p:02d}", level, ["Algebra", "Geometry"][p % 2], gold, answers)
    # right answer written three ways ("\frac12", "0.5", "1/2"): one class that out-votes "3" (2 votes)
    add("eq-right", 4, "Algebra", "1/2", ["\\frac12", "3", "0.5", "3", "\\frac{1}{2}", "7", None, "9"])
    # a wrong answer written three ways ("3", "\frac{6}{2}", "6/2"): one class that out-votes the gold (2)
    add("eq-wrong", 2, "Algebra", "5", ["3", "5", "\\frac{6}{2}", "5", "6/2", None, "8", "9"])
    # distinct grader keys that the grader calls equal: the right answer as an interval and as an inequality (2),
    # and a wrong one written three ways, "(5,\infty)", "x > 5", "5 < x" (3). Without the gold the wrong
    # answer wins 3-2; merging everything graded correct into one class, the gold wins 2-1-1-1
    add("interval", 5, "Algebra", "[5,\\infty)",
        ["[5,\\infty)", "(5,\\infty)", "x \\ge 5", "x > 5", "5 < x", None, "7", "8"])
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    samples = write(root / "samples.jsonl", make_samples())
    out = root / "run_a" / "eval"
    code = main(["eval", "--samples", str(samples), "--out", str(out), "run.name=prm-l1-3", "eval.resamples=200"])
    assert code == 0
    return {"root": root, "samples": samples, "out": out,
            "metrics": json.loads((out / "metrics.json").read_text(encoding="utf-8"))}


def plain_grades(rows):
    """Grade each sample on its own (no batching, no cache); keep its answer text for grouping."""
    from e2h.grading import grade
    from e2h.text_format import extract_final_answer

    problems = defaultdict(list)
    for row in rows:
        answer = extract_final_answer(row["completion"])
        verdict = grade(answer, row["gold_answer"]) if answer is not None else None
        key = None if verdict is None else verdict.pred_normalized
        problems[row["problem_id"]].append((key, bool(verdict and verdict.correct), row, answer))
    return problems


def plain_labels(pool):
    """Gold-blind classes the slow way: every pair of answered samples is compared (equal keys, or the grader
    accepts either answer with the other as the gold), then connected components; a class is correct when at
    least half of its samples are. Returns (label per sample or None, set of correct labels)."""
    from e2h.grading import answers_equivalent

    answered = [i for i, (key, *_) in enumerate(pool) if key is not None]
    label = {i: i for i in answered}

    def same(i, j):
        (ki, _, _, ai), (kj, _, _, aj) = pool[i], pool[j]
        return ki == kj or answers_equivalent(ai, aj) or answers_equivalent(aj, ai)

    changed = True
    while changed:  # propagate the smallest label along equal pairs until nothing moves
        changed = False
        for i in answered:
            for j in answered:
                if label[j] > label[i] and same(i, j):
                    label[j], changed = label[i], True
    members = defaultdict(list)
    for i in answered:
        members[label[i]].append(pool[i][1])
    correct = {c for c, oks in members.items() if 2 * sum(oks) >= len(oks)}
    return [label.get(i) for i in range(len(pool))], correct


def plain_methods(pool, grouping="samples"):
    if grouping == "samples":
        labels, gold = plain_labels(pool)
    else:  # the old grouping: every key graded correct is one "GOLD" class
        gold_keys = {k for k, ok, *_ in pool if ok}
        labels = [None if k is None else "GOLD" if k in gold_keys else k for k, *_ in pool]
        gold = {"GOLD"}
    votes, weights = defaultdict(float), defaultdict(float)
    for label, (_, _, row, _) in zip(labels, pool):
        if label is not None:
            votes[label] += 1
            weights[label] += math.prod(row["step_scores"])

    def vote(totals):
        if not totals or max(totals.values()) <= 0:
            return 0.0
        top = max(totals.values())
        tied = [k for k, v in totals.items() if v == top]
        return sum(k in gold for k in tied) / len(tied)

    answered = [(min(row["step_scores"]), label in gold) for label, (_, _, row, _) in zip(labels, pool)
                if label is not None]
    best = max(s for s, _ in answered) if answered else None
    tied = [ok for s, ok in answered if s == best]
    return {"majority": vote(votes), "weighted_vote/prod": vote(weights),
            "best_of_n/min": sum(tied) / len(tied) if tied else 0.0,
            "oracle (pass@N)": float(any(label in gold for label in labels))}


def test_metrics_agree_with_plain_recomputation(eval_run):
    metrics, rows = eval_run["metrics"], make_samples()
    problems = plain_grades(rows)
    counts = metrics["counts"]
    assert counts["problems"] == len(problems) == N_PROBLEMS + CRAFTED
    assert counts["samples"] == len(rows)
    assert counts["unparseable"] == sum(1 for pool in problems.values() for k, *_ in pool if k is None)
    assert counts["correct"] == sum(ok for pool in problems.values() for _, ok, *_ in pool)
    assert counts["timeouts"] == 0
    assert metrics["grader_version"].startswith("e2h-grader")
    assert metrics["n_values"] == [1, 2, 4, 8]
    levels = defaultdict(int)
    for pool in problems.values():
        levels[str(pool[0][2]["level"])] += 1
    assert counts["problems_per_level"] == dict(levels)
    # at N = pool size every method is deterministic: compare per split with the plain computation
    split = metrics["groups"]["split"]
    for name in ("all", "easy", "hard"):
        wanted = [pid for pid, pool in problems.items()
                  if name == "all" or (pool[0][2]["level"] <= 3) == (name == "easy")]
        assert split[name]["n_problems"] == len(wanted)
        for method in ("majority", "weighted_vote/prod", "best_of_n/min", "oracle (pass@N)"):
            expected = sum(plain_methods(problems[pid])[method] for pid in wanted) / len(wanted)
            curve = split[name]["curves"][method]
            assert curve["mean"][-1] == pytest.approx(expected, abs=1e-6), (name, method)
            assert curve["lo"][-1] == pytest.approx(expected, abs=1e-6)
    # at N = 1 every method is the accuracy of one random sample
    per_sample = sum(ok for pool in problems.values() for _, ok, *_ in pool) / len(rows)
    for method in ("majority", "weighted_vote/prod", "best_of_n/min"):
        assert split["all"]["curves"][method]["mean"][0] == pytest.approx(per_sample, abs=0.05)
    assert split["all"]["curves"]["oracle (pass@N)"]["mean"] == sorted(split["all"]["curves"]["oracle (pass@N)"]["mean"])
    # ORM-style aggregates become their own methods; prm.score's min/prod/... are not duplicated
    assert {"best_of_n/orm_score", "weighted_vote/orm_score"} <= set(metrics["methods"])
    assert "best_of_n/min" in metrics["methods"] and "best_of_n/prm_min" not in metrics["methods"]


def test_answers_group_by_grader_equivalence(eval_run):
    from e2h.grading import normalize_answer

    assert normalize_answer("\\frac{6}{2}") == normalize_answer("6/2") == normalize_answer("3")  # precondition
    metrics = eval_run["metrics"]
    per_problem = {row["problem_id"]: row for row in metrics["per_problem"]}
    at = f"mean_at_n{POOL}"
    assert per_problem["eq-right"][at]["majority"] == 1.0  # 3 spellings of 1/2 beat two "3"s
    assert per_problem["eq-right"]["distinct_answers"] == 4  # gold, 3, 7, 9
    assert per_problem["eq-wrong"][at]["majority"] == 0.0  # 3 spellings of 3 beat two "5"s
    assert per_problem["eq-wrong"]["distinct_answers"] == 4  # 3, gold, 8, 9
    # five distinct keys in two classes: [5,oo) = x>=5 (right), (5,oo) = x>5 = 5<x (wrong, and it wins 3-2)
    assert per_problem["interval"]["distinct_answers"] == 4  # right, wrong, 7, 8
    assert per_problem["interval"][at]["majority"] == 0.0 and per_problem["interval"]["correct_classes"] == 1
    assert metrics["vote_grouping"] == "samples" and "without the gold" in metrics["grouping"]
    grouping = metrics["counts"]["grouping"]
    assert grouping["keys_merged"] == 3 and grouping["mixed_classes"] == 0
    assert grouping["problems_with_several_correct_classes"] == 0 and grouping["compared_pairs"] > 0
    report = (eval_run["out"] / "report.md").read_text(encoding="utf-8")
    assert "votes grouped without the gold (vote_grouping=samples)" in report


def test_gold_merging_grouping_scores_higher_where_it_differs(eval_run, capsys):
    """eval.vote_grouping=gold (the old grouping, which reads the gold) is recorded as such and can only raise
    the votes; on the crafted "interval" problem it turns a wrong majority into a right one."""
    out = eval_run["root"] / "gold_grouping"
    assert main(["eval", "--samples", str(eval_run["samples"]), "--out", str(out), "run.name=gold-grouping",
                 "eval.resamples=200", "eval.vote_grouping=gold"]) == 0
    assert "WITH the gold (optimistic) (eval.vote_grouping=gold)" in capsys.readouterr().out
    gold = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    blind = eval_run["metrics"]
    assert gold["vote_grouping"] == "gold" and "compared_pairs" not in gold["counts"]["grouping"]
    assert "with the gold, optimistic (vote_grouping=gold)" in (out / "report.md").read_text(encoding="utf-8")
    at = f"mean_at_n{POOL}"
    by_id = {row["problem_id"]: row for row in blind["per_problem"]}
    for row in gold["per_problem"]:
        for method in ("majority", "weighted_vote/prod"):
            assert row[at][method] >= by_id[row["problem_id"]][at][method], (row["problem_id"], method)
    assert {row["problem_id"]: row for row in gold["per_problem"]}["interval"][at]["majority"] == 1.0
    for name in ("all", "hard"):
        g, b = (m["groups"]["split"][name]["curves"]["majority"]["mean"][-1] for m in (gold, blind))
        assert g > b
    # the independent recomputation agrees with both groupings
    problems = plain_grades(make_samples())
    curve = gold["groups"]["split"]["all"]["curves"]["majority"]["mean"][-1]
    assert curve == pytest.approx(sum(plain_methods(p, "gold")["majority"] for p in problems.values()) / len(problems))


def test_rerun_uses_the_grade_cache_and_report_compares_runs(eval_run, capsys):
    root = eval_run["root"]
    rows = make_samples()
    for row in rows:  # a second "PRM": scores that ignore correctness
        row["step_scores"] = [0.5, 0.5, 0.5]
        row["aggregates"] = {}
    samples_b = write(root / "samples_b.jsonl", rows)
    out_b = root / "run_b" / "eval"
    assert main(["eval", "--samples", str(samples_b), "--out", str(out_b), "run.name=prm-l1-5",
                 "eval.resamples=100"]) == 0
    # rerun into the first folder: every answer is in the on-disk cache
    assert main(["eval", "--samples", str(eval_run["samples"]), "--out", str(eval_run["out"]),
                 "run.name=prm-l1-3", "eval.resamples=50"]) == 0
    again = json.loads((eval_run["out"] / "metrics.json").read_text(encoding="utf-8"))
    assert again["counts"]["graded_pairs"] == 0 and again["counts"]["cache_hits"] > 0
    capsys.readouterr()
    out = root / "compare"
    assert main(["report", str(root / "run_a"), str(root / "run_b"), "--out", str(out)]) == 0
    assert "compared 2 runs: prm-l1-3, prm-l1-5" in capsys.readouterr().out
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "prm-l1-3 vs prm-l1-5" in md and "| Method | Run | Split |" in md
    assert html.count("data:image/png;base64,") == 3 and "prm-l1-5" in html
    # constant scores: best-of-N ties everything, so at full pool it equals the answered-correct fraction
    b = json.loads((out_b / "metrics.json").read_text(encoding="utf-8"))
    assert "best_of_n/orm_score" not in b["methods"]


def mutate(rows, index, **changes):
    rows = [dict(r) for r in rows]
    rows[index].update(changes)
    return rows


@pytest.mark.parametrize("change, message", [
    (lambda rows: mutate(rows, 3, step_scores=[0.5, 1.7]), ":4: field 'step_scores' holds 1.7"),
    (lambda rows: mutate(rows, 2, gold_answer=None), ":3: field 'gold_answer' is missing"),
    (lambda rows: mutate(rows, 5, sample_index=0), ":6: duplicate sample ('p00', 0)"),
    (lambda rows: mutate(rows, 1, gold_answer="999"), ":2: field 'gold_answer' is '999'"),
    (lambda rows: mutate(rows, 0, sample_index=-1), ":1: field 'sample_index'"),
])
def test_bad_samples_fail_naming_file_line_field(tmp_path, capsys, change, message):
    path = write(tmp_path / "bad.jsonl", change(make_samples()))
    assert main(["eval", "--samples", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) + message in err, err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_trusting_grades_in_the_samples_file(tmp_path):
    from e2h.commands.eval_command import grade_samples
    from e2h.records import Sample

    rows = make_samples()[:POOL]
    for row, ok in zip(rows, [True, False] * 4):
        row.update(pred_answer="\\frac{1}{2}" if ok else None, correct=ok)
    samples = [Sample.model_validate(r) for r in rows]
    grades = grade_samples(samples, 5.0, 1, regrade=False)
    assert grades.source == "samples file"
    assert grades.keys[0] == "1/2" and grades.keys[1] is None
    assert grades.correct == [True, False] * 4 and grades.counts["unparseable"] == 4
