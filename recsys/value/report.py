"""The customer-value HTML report: one self-contained file, plots embedded as base64 PNGs.

Sections: CLV calibration (predicted vs actual next-period value by decile of prediction, on the
temporal holdout), the high-value model against the BG/NBD baseline with permutation importance,
segment sizes and values with their profiles, and the influence distribution.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'


def plot_calibration(calibration: pd.DataFrame, unit: str) -> str:
    """Grouped bars: mean predicted vs actual next-period value per decile. Returns base64 PNG."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if calibration.empty:
        ax.text(0.5, 0.5, "no holdout check (no timestamps or too little history)", ha="center")
        ax.set_axis_off()
        return _png(fig)
    d = calibration["decile"].to_numpy()
    ax.bar(d - 0.2, calibration["predicted_mean"], width=0.4, label="predicted (BG/NBD x Gamma-Gamma)")
    ax.bar(d + 0.2, calibration["actual_mean"], width=0.4, label="actual")
    ax.set_xlabel("decile of predicted next-period value (10 = highest)")
    ax.set_ylabel(f"mean value per customer ({unit})")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(d)
    ax.legend()
    ax.set_title("CLV calibration on the temporal holdout")
    return _png(fig)


def plot_segments(segments: pd.DataFrame, unit: str, top: int = 20) -> str:
    """Segment sizes and total value side by side (largest ``top`` segments). Returns base64 PNG."""
    seg = segments.sort_values("size", ascending=False).head(top)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(seg["segment_id"], seg["size"], color="tab:blue")
    axes[0].set_title("segment size (users)")
    axes[1].bar(seg["segment_id"], seg["total_value"], color="tab:green")
    axes[1].set_title(f"segment total CLV ({unit})")
    for ax in axes:
        ax.tick_params(axis="x", rotation=60)
    return _png(fig)


def plot_influence(users: pd.DataFrame) -> str:
    """Histograms of behavioural influence (users > 0) and PageRank (log x). Returns base64 PNG."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    infl = users["influence"].to_numpy(np.float64)
    pos = infl[infl > 0]
    if pos.size:
        axes[0].hist(np.log10(pos), bins=30, color="tab:purple")
    axes[0].set_title(f"behavioural influence, {pos.size} users > 0 of {infl.size}")
    axes[0].set_xlabel("log10(followers adopting per action, beyond the null)")
    pr = users["pagerank"].to_numpy(np.float64)
    axes[1].hist(np.log10(pr[pr > 0]), bins=40, color="tab:orange")
    axes[1].set_title("PageRank of the follow graph")
    axes[1].set_xlabel("log10(PageRank)")
    return _png(fig)


def plot_importance(importance: pd.DataFrame, top: int = 12) -> str:
    """Horizontal bars of permutation importance (AUC drop). Returns base64 PNG."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    if importance.empty:
        ax.text(0.5, 0.5, "no propensity model", ha="center")
        ax.set_axis_off()
        return _png(fig)
    imp = importance.head(top).iloc[::-1]
    ax.barh(imp["feature"], imp["importance_mean"], xerr=imp["importance_std"], color="tab:gray")
    ax.set_xlabel("AUC drop when the feature is permuted (evaluation cut)")
    ax.set_title("global permutation importance")
    return _png(fig)


def _table(frame: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (list, dict)):
            return html.escape(json.dumps(v, default=str))
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt_segments(segments: pd.DataFrame) -> pd.DataFrame:
    seg = segments.copy()
    seg["top_categories"] = [", ".join(f"{c['category']} ({c['share']:.0%})" for c in v) for v in seg["top_categories"]]
    seg["top_influencers"] = [", ".join(f"{c['user_id']} ({c['influence']:.3f})" for c in v) for v in seg["top_influencers"]]
    seg["rfm_mix"] = [", ".join(f"{c['rfm_segment']} {c['share']:.0%}" for c in v) for v in seg["rfm_mix"]]
    return seg


def render_report(result, title: str | None = None) -> str:
    """The report as an HTML string.

    Args:
        result: a :class:`recsys.value.pipeline.CustomerValueResult`.
        title: page title (default: "Customer value — <dataset>").
    """
    unit = result.value_unit
    m = result.metrics
    title = title or f"Customer value — {result.dataset}"
    clv = m.get("clv", {})
    prop = m.get("propensity", {})
    rows = []
    if "model" in prop:
        for name, key in (("LightGBM high-value model", "model"), ("BG/NBD expected value (baseline)", "bgnbd_baseline")):
            r = prop[key]
            rows.append({"ranking": name, "AUC": r["auc"], "F1": r["f1"],
                         "precision@top decile": r["precision_at_top_decile"], "flagged": r["flagged"]})
    prop_table = _table(pd.DataFrame(rows)) if rows else "<p>No propensity model (see metrics).</p>"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:.5em;font-size:11px;overflow:auto}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        f"<p>{m.get('users', len(result.users))} users; value unit: <b>{html.escape(unit)}</b> "
        f"(datasets without prices count interactions). CLV horizon {m.get('horizon_weeks', 52):g} weeks, "
        f"monthly discount {clv.get('discount_rate_monthly', 'n/a')}; method {html.escape(str(clv.get('method')))}.</p>",
        "<h2>CLV calibration</h2>",
        _img(plot_calibration(result.calibration, unit), "CLV calibration"),
        f"<pre>{html.escape(json.dumps({k: clv.get(k) for k in ('bgnbd', 'gamma_gamma', 'holdout')}, indent=1))}</pre>",
        "<h2>High value next period: model vs BG/NBD baseline</h2>",
        f"<p>{html.escape(str(prop.get('label', '')))}; evaluation cut {prop.get('evaluation_cut', 'n/a')}, "
        f"{prop.get('customers', 'n/a')} customers, base rate {prop.get('base_rate', float('nan')):.3f}.</p>",
        prop_table,
        _img(plot_importance(result.importance), "permutation importance"),
        "<h2>Segments</h2>",
        f"<p>Leiden communities of the follow graph: modularity {m.get('segments', {}).get('modularity', float('nan')):.3f} "
        f"({m.get('segments', {}).get('communities_leiden')} communities found, those under "
        f"{m.get('segments', {}).get('min_segment_size')} members dissolved and their users attached by item "
        "co-activity; users sharing nothing go to <i>unconnected</i>).</p>",
        _img(plot_segments(result.segments, unit), "segments"),
        _table(_fmt_segments(result.segments)),
        "<h2>Influence</h2>",
        _img(plot_influence(result.users), "influence distribution"),
        f"<pre>{html.escape(json.dumps(m.get('influence', {}), indent=1))}</pre>",
        "<h2>Top users by influence-weighted value</h2>",
        _table(result.users.sort_values("weighted_value", ascending=False).head(15)[
            ["user_id", "clv", "influence", "weighted_value", "segment_id", "rfm_segment", "churn_risk", "propensity"]]),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(result, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`render_report` to ``path`` (parents created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, title), encoding="utf-8")
    return path
