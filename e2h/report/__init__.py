"""The evaluation report: report.md (tables) and a self-contained report.html (tables + inline PNG plots).

    write_report([metrics], ["demo"], "runs/demo/eval")                 # one run (e2h eval)
    write_report([m1, m2], ["levels 1-3", "levels 1-5"], "compare/")   # side by side (e2h report A B)

The HTML has no scripts and no external references (images are base64 data URIs), so it opens offline and
can be mailed as one file. Numbers come from metrics.json only; nothing is recomputed here.
"""

from __future__ import annotations

from e2h.report.render import build_report, render_html, render_markdown, write_report

__all__ = ["build_report", "render_html", "render_markdown", "write_report"]
