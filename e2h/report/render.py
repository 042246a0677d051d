"""Turn one or more metrics.json dicts into report.md and a self-contained report.html.

Both documents are built from the same list of :class:`Table` objects (headline first), so the markdown and
the HTML never disagree; the HTML adds the plots as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from e2h.jsonl import atomic_path
from e2h.report import plots

Run = tuple[str, dict]  # (label, metrics)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    anchor: str = ""


@dataclass
class Figure:
    title: str
    png: bytes
    caption: str
    anchor: str = ""


@dataclass
class Report:
    title: str
    summary: list[str]
    sections: list[Table | Figure] = field(default_factory=list)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _interval(curve: dict, k: int, interval: str) -> str:
    lo, hi = (curve["lo_problems"], curve["hi_problems"]) if interval == "problems" and "lo_problems" in curve \
        else (curve["lo"], curve["hi"])
    return f"{_pct(curve['mean'][k])} [{_pct(lo[k])}, {_pct(hi[k])}]"


def _shown_n(n_values: list[int]) -> list[int]:
    """At most ~8 columns: every other N when there are many, always the largest."""
    if len(n_values) <= 8:
        return list(n_values)
    shown = list(n_values[::2])
    return shown if shown[-1] == n_values[-1] else shown + [n_values[-1]]


def _methods(runs: list[Run], key: str = "headline_methods") -> list[str]:
    names: list[str] = []
    for _, metrics in runs:
        names += [n for n in (metrics[key] if key != "methods" else list(metrics["methods"])) if n not in names]
    return names


def _value(metrics: dict, family: str, group: str, method: str, n: int):
    g = metrics["groups"][family].get(group)
    if not g or not g["n_problems"] or method not in g["curves"] or n not in metrics["n_values"]:
        return None
    return g["curves"][method]["mean"][metrics["n_values"].index(n)]


def _vote_grouping(metrics: dict) -> str:
    """How the run grouped answers before voting, in a few words (metrics before issue #16 merged by the gold)."""
    grouping = metrics.get("vote_grouping", "gold")
    if grouping == "samples":
        return "without the gold (vote_grouping=samples)"
    return "with the gold, optimistic (vote_grouping=gold)"


def _grouping_counts(info: dict | None) -> str:
    if not info:
        return ""
    text = (f" ({info['distinct_keys']} distinct answers in {info['classes']} classes, {info['keys_merged']} merged, "
            f"{info['mixed_classes']} classes with mixed verdicts, {info['problems_with_several_correct_classes']} "
            f"problems with several correct classes")
    if "compared_pairs" in info:
        text += f"; {info['compared_pairs']} grader comparisons, {info['timeouts']} timeouts"
    return text + f"; {info['seconds']} s)"


@dataclass
class _Layout:
    """What every section of one report shares: the runs' N values and headline methods, the interval shown."""

    runs: list[Run]
    multi: bool  # several runs: tables get a Run column
    run_col: list[str]
    headline: list[str]
    interval: str
    n_all: list[int]
    shown: list[int]

    @property
    def n_max(self) -> int:
        return self.n_all[-1]

    def run_cells(self, label: str) -> list[str]:
        return [label] if self.multi else []


def build_report(runs: list[Run]) -> Report:
    n_all = sorted({n for _, m in runs for n in m["n_values"]})
    lay = _Layout(runs, len(runs) > 1, ["Run"] if len(runs) > 1 else [], _methods(runs),
                  runs[0][1]["interval"]["shown"], n_all, _shown_n(n_all))
    report = Report("Easy-to-hard evaluation: " + (" vs ".join(label for label, _ in runs)), _summary(runs))
    for section in (_headline_section, _plot_sections, _gap_section, _level_sections, _aggregation_section,
                    _subject_section, _counts_section, _settings_section, _appendix_section):
        report.sections += section(lay)
    return report


def _summary(runs: list[Run]) -> list[str]:
    summary = []
    for label, m in runs:
        c = m["counts"]
        split = m["groups"]["split"]
        summary.append(
            f"{label}: {c['problems']} problems ({split['easy']['n_problems']} easy, {split['hard']['n_problems']} "
            f"hard), {c['samples']} samples (pool {c['pool_size']['min']}–{c['pool_size']['max']} per problem), "
            f"{c['unparseable']} without an answer, {c['timeouts']} grader timeouts; grader {m['grader_version']} "
            f"(numeric convention {m.get('numeric_convention', 'exact').split(':')[0]}), "
            f"votes grouped {_vote_grouping(m)}, {m['resamples']} resamples per N.")
    return summary


def _headline_section(lay: _Layout) -> list:
    """Methods x N x all / easy / hard."""
    rows = []
    for method in lay.headline:
        for label, m in lay.runs:
            for split in ("all", "easy", "hard"):
                rows.append([method, *lay.run_cells(label), split,
                             *[_pct(_value(m, "split", split, method, n)) for n in lay.shown]])
    return [Table(
        "Headline: accuracy (%) by method, N and difficulty",
        ["Method", *lay.run_col, "Split", *[f"N={n}" for n in lay.shown]],
        rows, "Mean over resampled N-subsets of each problem's pool (drawn without replacement). Easy = levels 1-3, "
              "hard = levels 4-5. The oracle row is pass@N, the ceiling for any reranker. 95% intervals: see the plots "
              "and the appendix.", "headline")]


def _plot_sections(lay: _Layout) -> list:
    first = lay.runs[0][1]
    return [
        Figure("Accuracy vs N", plots.accuracy_vs_n(lay.runs, lay.headline, lay.interval),
               f"Lines: mean accuracy; shaded: 95% interval ({first['interval'][lay.interval]}).", "curves"),
        Figure("Easy vs hard", plots.easy_hard_gap(lay.runs, [h for h in lay.headline if not h.startswith("oracle")]),
               "How far the hard problems trail the easy ones, per method, as N grows.", "gap"),
    ]


def _gap_section(lay: _Layout) -> list:
    rows = []
    for method in lay.headline:
        for label, m in lay.runs:
            e, h = _value(m, "split", "easy", method, m["n_values"][-1]), _value(m, "split", "hard", method, m["n_values"][-1])
            gap = None if e is None or h is None else e - h
            rows.append([method, *lay.run_cells(label), _pct(e), _pct(h), _pct(gap)])
    return [Table(f"Gap table: easy vs hard at the largest N ({lay.n_max})",
                  ["Method", *lay.run_col, "Easy", "Hard", "Gap (points)"], rows, anchor="gap-table")]


def _level_sections(lay: _Layout) -> list:
    figure = Figure("Per level", plots.per_level_bars(lay.runs, lay.headline, lay.interval),
                    f"Accuracy at N = {lay.n_max} per MATH level; error bars: 95% interval.", "levels")
    levels = sorted({lv for _, m in lay.runs for lv in m["groups"]["level"]})
    rows = []
    for method in lay.headline:
        for label, m in lay.runs:
            rows.append([method, *lay.run_cells(label),
                         *[_pct(_value(m, "level", lv, method, m["n_values"][-1])) for lv in levels]])
    counts = " / ".join(str(lay.runs[0][1]["groups"]["level"].get(lv, {}).get("n_problems", 0)) for lv in levels)
    return [figure, Table(f"Level table: per level at N = {lay.n_max} (%)",
                          ["Method", *lay.run_col, *[f"L{lv}" for lv in levels]],
                          rows, f"Problems per level ({lay.runs[0][0]}): {counts}.", "level-table")]


def _aggregation_section(lay: _Layout) -> list:
    """The aggregation ablation: every method/score pair."""
    rows = []
    for method in _methods(lay.runs, "methods"):
        if "/" not in method:
            continue
        for label, m in lay.runs:
            rows.append([method, *lay.run_cells(label),
                         *[_pct(_value(m, "split", s, method, m["n_values"][-1])) for s in ("all", "easy", "hard")]])
    return [Table(
        f"Aggregations of step scores at N = {lay.n_max} (%)", ["Method/score", *lay.run_col, "All", "Easy", "Hard"],
        rows, "prm_min / prm_prod / prm_last / prm_mean: minimum, product, last (answer step) or mean of the step "
        "probabilities. The paper uses min for best-of-N and prod for weighted voting.", "aggregations")]


def _subject_section(lay: _Layout) -> list:
    subjects = sorted({s for _, m in lay.runs for s in m["groups"]["subject"]})
    rows = []
    for subject in subjects:
        for label, m in lay.runs:
            g = m["groups"]["subject"].get(subject, {"n_problems": 0})
            rows.append([subject, *lay.run_cells(label), str(g["n_problems"]),
                         *[_pct(_value(m, "subject", subject, h, m["n_values"][-1])) for h in lay.headline]])
    return [Table(f"Per subject at N = {lay.n_max} (%)", ["Subject", *lay.run_col, "Problems", *lay.headline],
                  rows, anchor="subjects")]


def _counts_section(lay: _Layout) -> list:
    rows = []
    for label, m in lay.runs:
        c = m["counts"]
        rows.append([label, str(c["problems"]), str(c["samples"]), str(c["correct"]), str(c["unparseable"]),
                     str(c["timeouts"]), str(c["errors"]), str(c["samples_without_step_scores"]),
                     ", ".join(f"{k}: {v}" for k, v in c["reasons"].items())])
    return [Table("Grading counts", ["Run", "Problems", "Samples", "Correct", "No answer", "Timeouts",
                                     "Errors", "No step scores", "Grader reasons"], rows, anchor="counts")]


def _settings_section(lay: _Layout) -> list:
    rows = []
    for label, m in lay.runs:
        rows += [[label, "grader", m["grader_version"] + f" ({m['grades_source']})"],
                 [label, "numeric convention", m.get("numeric_convention", "not recorded (metrics from before issue #20)")],
                 [label, "resamples / seed", f"{m['resamples']} / {m['seed']}"],
                 [label, "interval shown", f"{m['interval']['shown']}: {m['interval'][m['interval']['shown']]}"],
                 [label, "ties", m["tie_rule"]],
                 [label, "vote grouping", f"{m.get('vote_grouping', 'gold')}: {m['grouping']}"
                                          + _grouping_counts(m["counts"].get("grouping"))],
                 [label, "inputs", ", ".join(m["inputs"])]]
        short = m["counts"]["problems_with_pool_smaller_than_n"]
        if short:
            rows.append([label, "short pools", "problems with fewer samples than N use their whole pool: "
                         + ", ".join(f"N={n}: {k}" for n, k in short.items())])
    return [Table("Settings", ["Run", "Setting", "Value"], rows, anchor="settings")]


def _appendix_section(lay: _Layout) -> list:
    """Every curve with its interval."""
    rows = []
    for method in lay.headline:
        for label, m in lay.runs:
            for split in ("all", "easy", "hard"):
                g = m["groups"]["split"][split]
                if not g["n_problems"] or method not in g["curves"]:
                    continue
                rows.append([method, *lay.run_cells(label), split,
                             *[_interval(g["curves"][method], m["n_values"].index(n), lay.interval)
                               if n in m["n_values"] else "–" for n in lay.n_all]])
    return [Table("Appendix: mean [95% interval] (%)", ["Method", *lay.run_col, "Split",
                                                         *[f"N={n}" for n in lay.n_all]], rows,
                  "Every number is in metrics.json (groups → split / level / subject → curves).", "appendix")]


# ---------------------------------------------------------------------------------------------- markdown
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""] + [f"- {s}" for s in report.summary] + [""]
    for section in report.sections:
        if isinstance(section, Figure):
            lines += [f"## {section.title}", "", f"*(plot in report.html: {section.caption})*", ""]
            continue
        lines += [f"## {section.title}", "", "| " + " | ".join(map(_md_escape, section.headers)) + " |",
                  "|" + "|".join("---" if i < 1 else "---:" for i in range(len(section.headers))) + "|"]
        lines += ["| " + " | ".join(map(_md_escape, row)) + " |" for row in section.rows]
        if section.note:
            lines += ["", section.note]
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- html
STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.86rem; margin: 0.6rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text { text-align: left; }
thead th { background: #f4f4f6; }
.note, figcaption { color: #555; font-size: 0.85rem; max-width: 70rem; }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
nav a { margin-right: 0.8rem; font-size: 0.9rem; }
.wide { overflow-x: auto; }
"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = "".join(f"<td>{html.escape(c)}</td>" if _numeric(c) else f'<td class="text">{html.escape(c)}</td>'
                        for c in row)
        body.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f'<h2 id="{table.anchor}">{html.escape(table.title)}</h2><div class="wide"><table><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>{note}')


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] in "-–")


def _html_figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<h2 id="{figure.anchor}">{html.escape(figure.title)}</h2><figure class="plot">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(figure.title)}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def render_html(report: Report) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title.split(":")[0].split(" at ")[0])}</a>'
                  for s in report.sections if s.anchor)
    parts = [_html_figure(s) if isinstance(s, Figure) else _html_table(s) for s in report.sections]
    summary = "".join(f"<li>{html.escape(s)}</li>" for s in report.summary)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body><h1>{html.escape(report.title)}</h1><ul>{summary}</ul><nav>{nav}</nav>{''.join(parts)}"
            "</body></html>\n")


def write_report(metrics_list: list[dict], labels: list[str], out_dir: str | os.PathLike,
                 extra: list[Table] = ()) -> tuple[Path, Path]:
    """Write report.md and report.html (atomically) into out_dir; returns their paths. ``extra`` tables (what
    metrics.json does not hold, e.g. the demo's verifier quality) go right after the headline."""
    if len(metrics_list) != len(labels) or not metrics_list:
        raise ValueError("write_report needs one label per metrics dict, and at least one")
    report = build_report(list(zip(labels, metrics_list)))
    report.sections[1:1] = list(extra)
    out_dir = Path(out_dir)
    paths = []
    for name, text in (("report.md", render_markdown(report)), ("report.html", render_html(report))):
        with atomic_path(out_dir / name) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        paths.append(out_dir / name)
    return paths[0], paths[1]
