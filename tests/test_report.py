"""The report: markdown tables match metrics.json, and report.html opens in headless Chromium offline,
without console errors, with its plots loaded at a visible size (checked in the DOM and on a screenshot)."""

import html as html_lib
import json
import random
import re
import shutil
import subprocess

import numpy as np
import pytest

from e2h.config import load_config
from e2h.commands.eval_command import compute_metrics, grade_samples
from e2h.records import Sample
from e2h.report import write_report

INSTALL = "apt-get update && apt-get install -y chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('figure img')].map(i => {
    const r = i.getBoundingClientRect();
    return [i.complete, i.naturalWidth, i.naturalHeight, r.width, r.height];
  });
  const h2 = [...document.querySelectorAll('h2')].map(h => h.textContent);
  document.body.setAttribute('data-probe', JSON.stringify({imgs, h2, tables: document.querySelectorAll('table').length}));
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(f"chromium is not installed; the report tests need it. Install: {INSTALL}")
    return path


def run_chromium(tmp_path, *args, url):
    profile = tmp_path / f"profile-{random.random():.6f}"
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_problems(stderr: str) -> list[str]:
    """Chromium logs every console message (errors, uncaught exceptions) as ':CONSOLE'; the report has no
    scripts, so any such line is a problem."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def probe_page(tmp_path, page_html: str) -> tuple[dict | None, subprocess.CompletedProcess]:
    """Open page_html (plus the probe script) headless; returns what the probe measured, and the process."""
    probed = tmp_path / f"probed-{random.random():.6f}.html"
    probed.write_text(page_html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
                          url=probed.as_uri())
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    return (json.loads(html_lib.unescape(found.group(1))) if found else None), result


def samples_with_grades(seed=0):
    """Pre-graded samples (the grader's verdicts are in the file) for 25 problems across 5 levels."""
    rng = random.Random(seed)
    rows = []
    for p in range(25):
        level = 1 + p % 5
        for k in range(8):
            right = rng.random() < 0.9 - 0.15 * level
            answer = None if rng.random() < 0.1 else ("7" if right else str(rng.randint(1, 4)))
            scores = [min(1.0, max(0.0, rng.gauss(0.75 if right else 0.5, 0.2))) for _ in range(3)]
            rows.append(Sample(problem_id=f"p{p}", sample_index=k, prompt="q", completion="c", gold_answer="7",
                               level=level, subject=["Algebra", "Prealgebra", "Geometry"][p % 3],
                               step_scores=scores, pred_answer=answer, correct=right and answer is not None))
    return rows


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    samples = samples_with_grades()
    cfg = load_config(None, ["eval.resamples=200", "eval.regrade=false"]).eval
    metrics = compute_metrics(samples, grade_samples(samples, 5.0, 1, regrade=False), cfg)
    metrics["run_name"] = "demo"
    write_report([metrics], ["demo"], out)
    (out / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return out, metrics


def test_markdown_headline_first_and_matches_metrics(report_dir):
    out, metrics = report_dir
    md = (out / "report.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections[0].startswith("Headline")
    curve = metrics["groups"]["split"]["hard"]["curves"]["weighted_vote/prod"]["mean"]
    row = next(line for line in md.splitlines() if line.startswith("| weighted_vote/prod | hard |"))
    cells = [c.strip() for c in row.strip("|").split("|")][2:]
    assert cells == [f"{100 * v:.1f}" for v in curve]  # N = 1, 2, 4, 8 all shown
    for method in metrics["headline_methods"]:
        assert f"| {method} | easy |" in md
    assert "Per subject" in md and "| Prealgebra |" in md and "Grading counts" in md


def test_html_is_self_contained(report_dir):
    out, _ = report_dir
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert not re.search(r'src="(?!data:)', text)  # every image is inline
    assert text.count('<img src="data:image/png;base64,') == 3


def test_html_renders_in_headless_chromium_with_plots(report_dir, tmp_path):
    out, metrics = report_dir
    probe, result = probe_page(tmp_path, (out / "report.html").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_problems(result.stderr) == []
    assert probe is not None, "the probe did not run: the page did not finish loading"
    assert len(probe["imgs"]) == 3
    for complete, natural_w, natural_h, width, height in probe["imgs"]:
        assert complete and natural_w > 300 and natural_h > 200 and width > 300 and height > 100
    assert probe["h2"][0].startswith("Headline") and probe["tables"] >= 6

    shot = tmp_path / "shot.png"
    result = run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", "--hide-scrollbars",
                          url=(out / "report.html").as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    # plot lines and bands are coloured, text is grey-scale: measured ~0.05 with the plots, ~0.001 without
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.25
    assert colourful.mean() > 0.01, f"only {colourful.mean():.4f} of the screenshot is coloured: plots missing?"


def test_console_check_catches_a_broken_page(tmp_path):
    """Control for the check above: a page with a missing image and a console error is caught."""
    page = ('<html><body><figure><img src="missing.png"></figure><script>console.error("boom")</script>'
            "</body></html>")
    probe, result = probe_page(tmp_path, page)
    assert console_problems(result.stderr), result.stderr[-2000:]
    assert probe is not None and probe["imgs"][0][1] == 0  # the broken image has no natural width


def test_comparison_report_has_both_runs(report_dir, tmp_path):
    _, metrics = report_dir
    other = json.loads(json.dumps(metrics))
    curve = other["groups"]["split"]["all"]["curves"]["majority"]
    curve["mean"] = list(np.array(curve["mean"]) * 0.5)
    md_path, html_path = write_report([metrics, other], ["levels 1-3", "levels 1-5"], tmp_path)
    md = md_path.read_text(encoding="utf-8")
    assert "levels 1-3 vs levels 1-5" in md
    half = f"{100 * curve['mean'][-1]:.1f}"
    row = next(line for line in md.splitlines() if line.startswith("| majority | levels 1-5 | all |"))
    assert row.rstrip(" |").endswith(half)
    assert html_path.read_text(encoding="utf-8").count("data:image/png;base64,") == 3


def test_the_demos_verifier_tables_follow_the_headline(report_dir, tmp_path):
    """The demo's step AUCs and recovered gain (numbers metrics.json does not hold) land after the headline."""
    from e2h.commands.pipeline import verifier_tables

    _, metrics = report_dir
    auc = {"easy": {"auc": 0.912, "correct_steps": 30, "wrong_steps": 10},
           "hard": {"auc": 0.634, "correct_steps": 12, "wrong_steps": 20}}
    effects = {"levels 1-3": {"majority@N": 20.0, "weighted_vote@N": 26.0},
               "levels 1-5": {"majority@N": 20.0, "weighted_vote@N": 28.0}}
    md, html = write_report([metrics], ["demo"], tmp_path, extra=verifier_tables({"levels 1-3": auc}, effects))
    text = md.read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections[0].startswith("Headline") and sections[1].startswith("Verifier quality")
    assert sections[2].startswith("Easy-to-hard")
    assert "| levels 1-3 | hard | 63.4 | 12 | 20 |" in text
    assert "| levels 1-5 | 20.0 | 28.0 | +8.0 |" in text and "recovers 75% " in text
    assert 'id="verifier"' in html.read_text(encoding="utf-8")
