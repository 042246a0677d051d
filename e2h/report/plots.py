"""The report's figures, drawn with matplotlib (Agg, no display) and returned as PNG bytes to inline in HTML.

Every function takes a list of runs, each ``(label, metrics)`` where metrics is a metrics.json dict, so the
single-run report and the side-by-side comparison draw the same pictures.
"""

from __future__ import annotations

import io

SPLITS = (("all", "All levels"), ("easy", "Easy (levels 1-3)"), ("hard", "Hard (levels 4-5)"))
LINESTYLES = ("-", "--", ":", "-.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _band(curve: dict, interval: str) -> tuple[list, list]:
    if interval == "problems" and "lo_problems" in curve:
        return curve["lo_problems"], curve["hi_problems"]
    return curve["lo"], curve["hi"]


def _pct(values) -> list[float]:
    return [float("nan") if v is None else 100 * v for v in values]


def accuracy_vs_n(runs: list[tuple[str, dict]], methods: list[str], interval: str) -> bytes:
    """Three panels (all / easy / hard): accuracy against N on a log2 axis, one line per method, 95% band."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (split, title) in zip(axes, SPLITS):
        for r, (label, metrics) in enumerate(runs):
            group = metrics["groups"]["split"][split]
            if not group["n_problems"]:
                continue
            n = metrics["n_values"]
            for k, name in enumerate(methods):
                curve = group["curves"].get(name)
                if curve is None:
                    continue
                lo, hi = _band(curve, interval)
                legend = name if len(runs) == 1 else f"{name} · {label}"
                ax.plot(n, _pct(curve["mean"]), LINESTYLES[r % len(LINESTYLES)], marker="o", markersize=3,
                        color=colors[k % len(colors)], label=legend)
                ax.fill_between(n, _pct(lo), _pct(hi), color=colors[k % len(colors)], alpha=0.15, linewidth=0)
        n_problems = "; ".join(str(m["groups"]["split"][split]["n_problems"]) for _, m in runs)
        ax.set_title(f"{title} — {n_problems} problems")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (samples per problem)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.045 * ((len(labels) - 1) // 4)))
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    return _png(fig)


def per_level_bars(runs: list[tuple[str, dict]], methods: list[str], interval: str) -> bytes:
    """Accuracy per MATH level at the largest N: bars per method (one run) or per run (comparison)."""
    plt = _pyplot()
    levels = sorted({lv for _, m in runs for lv in m["groups"]["level"]})
    bars = [(name, label, metrics) for name in methods for label, metrics in runs]
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(levels) + 0.35 * len(bars)), 4.4))
    width = 0.8 / max(1, len(bars))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for b, (name, label, metrics) in enumerate(bars):
        xs, ys, errs = [], [], [[], []]
        for x, level in enumerate(levels):
            group = metrics["groups"]["level"].get(level)
            if not group or not group["n_problems"] or name not in group["curves"]:
                continue
            curve = group["curves"][name]
            lo, hi = _band(curve, interval)
            mean = 100 * curve["mean"][-1]
            xs.append(x - 0.4 + width * (b + 0.5))
            ys.append(mean)
            errs[0].append(max(0.0, mean - 100 * lo[-1]))
            errs[1].append(max(0.0, 100 * hi[-1] - mean))
        legend = name if len(runs) == 1 else f"{name} · {label}"
        run_index = [lbl for lbl, _ in runs].index(label)
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=legend, color=colors[methods.index(name) % len(colors)],
               alpha=1.0 - 0.35 * run_index / max(1, len(runs)), hatch=["", "//", "..", "xx"][run_index % 4])
    ax.set_xticks(range(len(levels)), [f"level {lv}" for lv in levels])
    n_max = runs[0][1]["n_values"][-1]
    ax.set_ylabel(f"accuracy at N = {n_max} (%)")
    ax.set_xlabel("MATH difficulty level")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=3, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    return _png(fig)


def easy_hard_gap(runs: list[tuple[str, dict]], methods: list[str]) -> bytes:
    """Left: easy and hard accuracy against N; right: the gap (easy minus hard) in points."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, (label, metrics) in enumerate(runs):
        split = metrics["groups"]["split"]
        if not split["easy"]["n_problems"] or not split["hard"]["n_problems"]:
            continue
        n = metrics["n_values"]
        for k, name in enumerate(methods):
            if name not in split["easy"]["curves"]:
                continue
            easy, hard = _pct(split["easy"]["curves"][name]["mean"]), _pct(split["hard"]["curves"][name]["mean"])
            suffix = "" if len(runs) == 1 else f" · {label}"
            color = colors[k % len(colors)]
            left.plot(n, easy, "-", color=color, marker="o", markersize=3, label=f"{name} easy{suffix}",
                      alpha=1.0 - 0.3 * r)
            left.plot(n, hard, "--", color=color, marker="s", markersize=3, label=f"{name} hard{suffix}",
                      alpha=1.0 - 0.3 * r)
            right.plot(n, [e - h for e, h in zip(easy, hard)], LINESTYLES[r % len(LINESTYLES)], color=color,
                       marker="o", markersize=3, label=f"{name}{suffix}")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (samples per problem)")
        ax.grid(True, alpha=0.3)
    left.set_ylabel("accuracy (%)")
    left.set_title("Easy (solid) vs hard (dashed)")
    right.set_ylabel("easy minus hard (percentage points)")
    right.set_title("Easy-hard gap")
    left.legend(fontsize=7, ncol=2, frameon=False)
    right.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)
