"""The uplift report: a Qini-curve PNG and a self-contained HTML page (metrics, comparisons, policy / ROI).

Files: ``<reports>/uplift-<dataset>-<treatment>-<outcome>.png`` and ``.html`` (names slugged),
written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from recsys.campaigns.uplift_metrics import curves
from recsys.report import figure_to_img, plt, table_html, write_html


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:60] or "x"


def _qini_figure(curve_data: dict, title: str):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    y, t = curve_data["y"], curve_data["t"]
    for name, score in curve_data["scores"].items():
        c = curves(y, t, score)
        x = c["x"][0] / c["x"][0, -1]
        style = {"random": dict(color="grey", ls=":"), "response": dict(color="black", ls="--")}.get(name, {})
        lw = 2.5 if name == curve_data.get("selected") else 1.2
        ax.plot(x, c["qini"][0], label=name, lw=lw, **style)
    c = curves(y, t, next(iter(curve_data["scores"].values())))
    ax.plot([0, 1], [0, c["qini"][0, -1]], color="red", lw=0.8, label="random (chord)")
    ax.set_xlabel("share of held-out customers targeted (by score, best first)", fontsize=9)
    ax.set_ylabel("Qini: incremental outcomes among the targeted", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def write_uplift_report(result: dict, curve_data: dict | None, reports_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the PNG (when curves are given) and the HTML report of a :func:`run_uplift` result.

    Returns:
        ``{"html": path, "png": path}`` (``png`` only with curves).
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = f"uplift-{_slug(result['dataset'])}-{_slug(result['treatment'])}-{_slug(result['outcome'])}"
    out: dict[str, Path] = {}
    title = f"{result['dataset']}: {result['treatment']} vs {result.get('control')} — {result['outcome']}"
    sections = []
    proto = result.get("protocol", {})
    sections.append(("Protocol", f"<p>{html.escape(proto.get('definition', ''))}</p>"
                                 f"<p>rows {proto.get('rows', '')}, test rows per seed {proto.get('test_rows', '')}, "
                                 f"seeds {proto.get('seeds')}, selected model (validation): "
                                 f"<b>{html.escape(str(result.get('selected_model')))}</b></p>"))
    if curve_data:
        fig = _qini_figure(curve_data, title + " (held-out part, seed 0)")
        png = reports_dir / f"{stem}.png"
        tmp = png.with_name(f".{png.name}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, png)
        out["png"] = png
        sections.append(("Qini curves", figure_to_img(fig)))
    keys = [k for k in ("qini", "qini_area", "auuc", "uplift@10", "uplift@20", "uplift@30")]
    rows = []
    entries = list(result["models"].items()) + [(f"baseline: {k}", v) for k, v in result["baselines"].items() if k != "t_learner"]
    for name, b in entries:
        row = {"model": name}
        for k in keys:
            if k in b:
                row[k] = f"{b[k]:.4f} {_fmt_ci(b.get(k + '_ci'))}"
        rows.append(row)
    sections.append(("Ranking metrics (mean over seeds, 95 % CI)", table_html(rows, ["model"] + keys)))
    if result.get("comparisons"):
        crow = [{"comparison": k, "diff": v["diff"], "ci": _fmt_ci(v["ci"]), "excludes 0": str(v["excludes_zero"])}
                for k, v in result["comparisons"].items()]
        sections.append(("Paired Qini differences (same bootstrap resamples)", table_html(crow, ["comparison", "diff", "ci", "excludes 0"])))
    pol = result.get("policy") or {}
    if pol.get("policies"):
        qs = ["fraction", "contacts", "incremental_visits", "incremental_conversions", "incremental_revenue", "cost", "profit", "roi"]
        prow = []
        for name, b in pol["policies"].items():
            row = {"policy": name}
            for q in qs:
                if q in b:
                    v = b[q]
                    row[q] = f"{v:,.2f}" + (f" [{b[q + '_ci'][0]:,.1f}, {b[q + '_ci'][1]:,.1f}]" if q + "_ci" in b else "")
            prow.append(row)
        sections.append((f"Policies (realised on the held-out part, scaled to {pol.get('population')} customers; "
                         f"cost {pol.get('cost_per_contact')}/contact, margin {pol.get('margin')})",
                         table_html(prow, ["policy"] + qs)
                         + f"<p><b>Recommended: {html.escape(str(pol.get('recommended')))}</b> — {html.escape(str(pol.get('reason')))}</p>"))
    out["html"] = write_html(reports_dir / f"{stem}.html", title, sections)
    return out


__all__ = ["write_uplift_report"]
