"""The customer-value HTML report: one self-contained file, plots embedded as base64 PNGs.

Sections: the high-value model against its baselines (recency, last-52-week value, BG/NBD) and
its no-graph ablation, overall and on the recently active, with permutation importance; the
calibration of the served probabilities (reliability diagram, ECE, Brier); the CLV holdout check
(predicted vs actual next-period value by decile); segments with their profile and suggested
action; influence; top users. Tables and charts, no JSON dumps.
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


def plot_reliability(calibration: dict) -> str:
    """Reliability diagram: mean predicted vs observed per equal-mass bin, for propensity and
    churn risk on the evaluation cut. Returns base64 PNG."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "propensity", "P(high value next period)"), (axes[1], "churn_risk", "churn risk")):
        rep = calibration.get(key) if calibration else None
        if not rep or not rep.get("bins"):
            ax.text(0.5, 0.5, f"no calibrated {name}", ha="center")
            ax.set_axis_off()
            continue
        x = [b["mean_predicted"] for b in rep["bins"]]
        y = [b["observed"] for b in rep["bins"]]
        ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
        ax.plot(x, y, marker="o", color="tab:blue", label="calibrated (isotonic)")
        ax.set_xlabel("mean predicted probability (10 equal-mass bins)")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"{name}: ECE {rep['ece']:.4f}, Brier {rep['brier']:.4f}")
        ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def plot_baselines(baselines: dict, ablation: dict) -> str:
    """AUC of the model, its no-graph ablation and the baselines, overall and recently active."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if not baselines:
        ax.text(0.5, 0.5, "no propensity model", ha="center")
        ax.set_axis_off()
        return _png(fig)
    names = ["model", "no_graph", "recency", "value_52w", "bgnbd"]
    groups = [("all customers", baselines, ablation)]
    if "recently_active" in baselines:
        groups.append(("recently active", baselines["recently_active"], ablation.get("recently_active", {})))
    width = 0.8 / len(names)
    colors = ["tab:blue", "tab:cyan", "tab:gray", "tab:olive", "tab:orange"]
    for g, (_, base, abl) in enumerate(groups):
        for j, nm in enumerate(names):
            src = abl.get("no_graph") if nm == "no_graph" else base.get(nm)
            if src and src.get("auc") is not None:
                ax.bar(g + (j - 2) * width, src["auc"], width=width, color=colors[j], label=nm if g == 0 else None)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[0] for g in groups])
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUC, evaluation cut")
    ax.legend(fontsize=8, ncol=5, loc="lower center")
    ax.set_title("high value next period: model vs baselines (same cut, same customers)")
    return _png(fig)


def plot_segment_actions(segments: pd.DataFrame, top: int = 20) -> str:
    """Per segment: share of users vs share of expected value, coloured by suggested action."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    if segments.empty or "suggested_action" not in segments:
        ax.text(0.5, 0.5, "no segments", ha="center")
        ax.set_axis_off()
        return _png(fig)
    seg = segments.sort_values("size", ascending=False).head(top)
    colors = {"retain": "tab:green", "win back": "tab:red", "nurture": "tab:blue", "ignore": "tab:gray"}
    x = np.arange(len(seg))
    ax.bar(x - 0.2, seg["share_of_users"], width=0.4, color="lightgray", label="share of users")
    ax.bar(x + 0.2, seg["share_of_value"], width=0.4, color=[colors.get(a, "k") for a in seg["suggested_action"]])
    ax.set_xticks(x)
    ax.set_xticklabels(seg["segment_id"], rotation=60)
    for a, c in colors.items():
        ax.bar([0], [0], color=c, label=a)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title("segments: share of users (grey) and of expected value (coloured by suggested action)")
    return _png(fig)


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.1%}"


def _num(v, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def _baseline_rows(block: dict, ablation: dict) -> pd.DataFrame:
    rows = []
    for name, key, src in (("learned model (LightGBM)", "model", block), ("model without graph features", "no_graph", ablation),
                           ("recency only", "recency", block), ("value in the last 52 weeks", "value_52w", block),
                           ("BG/NBD x Gamma-Gamma", "bgnbd", block)):
        r = (src or {}).get(key)
        if r:
            rows.append({"ranking": name, "AUC": _num(r.get("auc")), "F1": _num(r.get("f1")),
                         "precision@top decile": _num(r.get("precision_at_top_decile")), "flagged": r.get("flagged")})
    return pd.DataFrame(rows)


def _kv_table(pairs) -> str:
    return _table(pd.DataFrame([{"quantity": k, "value": v} for k, v in pairs]))


def _segment_rows(segments: pd.DataFrame) -> pd.DataFrame:
    if segments.empty:
        return segments
    cols = {"segment_id": "segment", "size": "users", "share_of_value": "share of value",
            "share_active_13w": "active last 13 w", "median_recency_weeks": "median weeks since last",
            "top_categories": "top categories", "detected_influencers": "detected influencers",
            "suggested_action": "suggested action", "action_reason": "why"}
    seg = segments.copy()
    for c in ("share_of_value", "share_active_13w"):
        if c in seg:
            seg[c] = [_pct(v) for v in seg[c]]
    if "median_recency_weeks" in seg:
        seg["median_recency_weeks"] = [_num(v, ".0f") for v in seg["median_recency_weeks"]]
    seg["top_categories"] = [", ".join(f"{c['category']} ({c['share']:.0%})" for c in v) for v in seg["top_categories"]]
    if "detected_influencers" in seg:
        seg["detected_influencers"] = [f"{n}" + (f" ({', '.join(ids)})" if ids else "")
                                       for n, ids in zip(seg["detected_influencers"], seg["detected_influencer_ids"])]
    keep = [c for c in cols if c in seg]
    return seg[keep].rename(columns=cols)


def plot_influence_test(test: dict) -> str:
    """Observed statistics against their shuffle nulls (q01-q99 bar, q05-q95 box, mean tick).

    Returns base64 PNG.
    """
    fig, ax = plt.subplots(figsize=(7, 2.8))
    rows = [("shuffle test: follower-after-followee adoptions", test.get("statistic"), test.get("null"))]
    placebo = test.get("reverse_placebo")
    if placebo:
        rows.append(("reverse-edge placebo: followee-first minus follower-first", placebo["statistic"], placebo["null"]))
    for y, (label, obs, null) in enumerate(rows):
        q = null["quantiles"]
        ax.plot([q["q01"], q["q99"]], [y, y], color="0.6", lw=1)
        ax.plot([q["q05"], q["q95"]], [y, y], color="tab:blue", lw=6, solid_capstyle="butt",
                label="null q05-q95 (200 shuffles)" if y == 0 else None)
        ax.plot([null["mean"]], [y], "|", color="k", ms=14)
        ax.plot([obs], [y], "D", color="tab:red", label="observed" if y == 0 else None)
        ax.text(obs, y + 0.25, f"{obs:.0f}", ha="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("influence vs homophily: observed statistic and its timestamp-shuffle null")
    return _png(fig)


def influence_section(result) -> list[str]:
    """The influence part of the report (owned by :mod:`recsys.value.influence`): the test, the
    out-of-time check, the decision and the weighting formula, as tables and charts."""
    infl = result.metrics.get("influence", {}) or {}
    test = infl.get("test") or {}
    detected = bool(infl.get("detected"))
    parts = ["<h2>Influence: tested before it is used</h2>",
             f"<p><b>{'Influence detected' if detected else 'Influence not detected'}</b>. "
             f"{html.escape(str(infl.get('reason', 'no influence test in this result')).capitalize())}.</p>"]
    if not detected:
        parts.append("<p>Influence-weighted value therefore <b>equals CLV</b> for every user, audiences seed no "
                     "influencers, and the API's value record says <code>influence_detected: false</code>.</p>")
    if test.get("can_run"):
        null = test["null"]
        rows = [{"test": "timestamp shuffle (Anagnostopoulos, Kumar & Mahdian 2008)", "statistic": test["statistic"],
                 "null mean": null["mean"], "null sd": null["sd"], "null q95": null["quantiles"]["q95"],
                 "shuffles": null["n"], "p-value": test["p_value"]}]
        placebo = test.get("reverse_placebo")
        if placebo:
            rows.append({"test": "reverse-edge placebo (followee-first minus follower-first)",
                         "statistic": placebo["statistic"], "null mean": placebo["null"]["mean"],
                         "null sd": placebo["null"]["sd"], "null q95": placebo["null"]["quantiles"]["q95"],
                         "shuffles": placebo["null"]["n"], "p-value": placebo["p_value"]})
        parts.append(f"<p>{test.get('pairs', 0)} (follow edge, co-adopted item) pairs; window tau = "
                     f"{test.get('tau_days', float('nan')):g} days (adoption dates every "
                     f"{test.get('resolution_days', float('nan')):g} days at the finest); graph "
                     f"{'symmetric: the reverse-edge placebo does not apply' if test.get('symmetric') else 'directed'}."
                     "</p>")
        parts.append(_table(pd.DataFrame(rows)))
        parts.append(_img(plot_influence_test(test), "influence test"))
        oot = test.get("out_of_time_ratio") or {}
        if oot.get("value") is not None:
            ci = oot.get("ci") or [float("nan"), float("nan")]
            parts.append("<h3>Out-of-time check</h3>")
            parts.append(_table(pd.DataFrame([{
                "cut": oot["cut"], "top-decile influencers": oot["top_influencers"],
                "activity-matched controls": oot["controls"], "strata": oot["strata"],
                "follower adoption rate, top": oot["top_rate"], "follower adoption rate, controls": oot["control_rate"],
                "ratio": oot["value"], f"{oot['level']:.0%} bootstrap CI": f"{ci[0]:.3g} - {ci[1]:.3g}"}])))
        else:
            parts.append(f"<p>Out-of-time check not possible: {html.escape(str(oot.get('reason')))}.</p>")
        shr = test.get("shrinkage") or {}
        parts.append(f"<p>Per-user influence: empirical-Bayes Beta-Binomial on followers adopting within tau after "
                     f"an exposure, prior Beta({shr.get('prior_alpha', float('nan')):.3g}, "
                     f"{shr.get('prior_beta', float('nan')):.3g}); {shr.get('users_significant', 0)} users have a "
                     f"{shr.get('level', 0.95):.0%} interval above their shuffle-null rate.</p>")
        parts.append(_img(plot_influence(result.users), "influence distribution"))
    w = infl.get("weighting") or {}
    if w:
        parts.append(f"<p>Weighting: <code>{html.escape(w['formula'])}</code>; unit: {html.escape(w['unit'])}; "
                     f"source: {html.escape(w['source'])}.</p>")
    return parts


def render_report(result, title: str | None = None) -> str:
    """The report as an HTML string: tables and charts, no JSON dumps.

    Sections: headline (does the model beat the baselines?), high value next period (model,
    no-graph ablation and baselines, overall and recently active), probability calibration
    (reliability diagram, ECE, Brier), CLV holdout check, segments (with suggested actions),
    influence, top users.

    Args:
        result: a :class:`recsys.value.pipeline.CustomerValueResult`.
        title: page title (default: "Customer value — <dataset>").
    """
    unit = result.value_unit
    m = result.metrics
    title = title or f"Customer value — {result.dataset}"
    clv = m.get("clv", {})
    prop = m.get("propensity", {})
    baselines = m.get("baselines") or {}
    ablation = m.get("ablation") or {}
    cal = m.get("calibration") or {}
    segm = m.get("segments", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:left;vertical-align:top}pre{background:#f6f6f6;padding:.5em;font-size:11px;overflow:auto}"
        ".verdict{font-size:15px;background:#eef5ee;padding:.5em}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        f"<p>{m.get('users', len(result.users))} users; value unit: <b>{html.escape(unit)}</b> "
        f"(datasets without prices count interactions). CLV horizon {m.get('horizon_weeks', 52):g} weeks, "
        f"monthly discount {clv.get('discount_rate_monthly', 'n/a')}; method {html.escape(str(clv.get('method')))}; "
        f"observation end {html.escape(str(clv.get('end', 'n/a')))}.</p>",
    ]
    tx = m.get("transactions")
    if tx:
        q = ", ".join(f"{k}: {v}" for k, v in tx.get("quarantined", {}).items()) or "none"
        parts.append(f"<p>Transactions: {tx.get('rows')} rows, {tx.get('used')} used; left out (quarantine.csv): "
                     f"{html.escape(q)}. Rule: {html.escape(str(tx.get('rule')))}.</p>")
    parts.append("<h2>High value next period: does the model beat the simplest baselines?</h2>")
    if baselines:
        verdicts = [f"<b>All customers</b> ({baselines['customers']}): {html.escape(baselines['comparison']['verdict'])}."]
        if "recently_active" in baselines:
            ra = baselines["recently_active"]
            verdicts.append(f"<b>Recently active</b> ({ra['customers']}, active in the 52 weeks before the cut): "
                            f"{html.escape(ra['comparison']['verdict'])}.")
        ng = ablation.get("no_graph", {}).get("auc_difference_vs_model")
        if ng:
            verdicts.append(f"<b>Graph features</b>: removing them changes AUC by {-ng['difference']:+.4f} "
                            f"(95 % CI {-ng['ci95'][1]:+.4f} .. {-ng['ci95'][0]:+.4f}).")
        parts.append("<p class='verdict'>" + "<br/>".join(verdicts) + "</p>")
        parts.append(f"<p>{html.escape(str(prop.get('label', '')))}; evaluation cut {prop.get('evaluation_cut')}, "
                     f"validation cut {prop.get('validation_cut')}, training cuts {', '.join(prop.get('training_cuts', []))}; "
                     f"base rate {_num(prop.get('base_rate'))}. Protocol: {html.escape(str(prop.get('protocol')))}. "
                     f"Follow graph: {html.escape(str(prop.get('follow_graph')))}.</p>")
        parts.append("<h3>All customers at the evaluation cut</h3>")
        parts.append(_table(_baseline_rows(baselines, ablation)))
        if "recently_active" in baselines:
            parts.append("<h3>Recently active customers</h3>")
            parts.append(_table(_baseline_rows(baselines["recently_active"], ablation.get("recently_active", {}))))
        parts.append(_img(plot_baselines(baselines, ablation), "model vs baselines"))
    else:
        parts.append(f"<p>No propensity model: {html.escape(str(prop.get('skipped', 'not fitted')))}.</p>")
    parts.append(_img(plot_importance(result.importance), "permutation importance"))
    parts.append("<h2>Are the probabilities calibrated?</h2>")
    if cal:
        rows = []
        for key, name in (("propensity", "propensity"), ("churn_risk", "churn risk")):
            r = cal.get(key)
            if r:
                rows.append({"probability": name, "ECE (10 equal-mass bins)": _num(r["ece"], ".4f"),
                             "Brier": _num(r["brier"], ".4f"), "mean predicted": _num(r["mean_predicted"], ".4f"),
                             "base rate": _num(r["base_rate"], ".4f"),
                             "mean within 10 % of base rate": "yes" if r.get("mean_within_10pct") else "no"})
        parts.append(f"<p>{html.escape(str(cal.get('method', '')))}.</p>")
        parts.append(_table(pd.DataFrame(rows)))
        parts.append(_img(plot_reliability(cal), "reliability diagram"))
    else:
        parts.append("<p>No calibrated probabilities (no propensity model).</p>")
    parts.append("<h2>CLV holdout check</h2>")
    parts.append(_img(plot_calibration(result.calibration, unit), "CLV calibration"))
    hold = clv.get("holdout") or {}
    pairs = [(f"BG/NBD {k}", _num(v, ".4g")) for k, v in (clv.get("bgnbd") or {}).items()]
    pairs += [(f"Gamma-Gamma {k}", _num(v, ".4g")) for k, v in (clv.get("gamma_gamma") or {}).items()]
    if hold and "cut" in hold:
        pairs += [("holdout", f"{hold['cut']} + {hold['weeks']:g} weeks, {hold['customers']} customers"),
                  ("repeat occasions predicted / actual",
                   f"{hold['predicted_repeat_transactions']:.1f} / {hold['actual_repeat_transactions']} "
                   f"({hold['relative_error_transactions']:+.1%})"),
                  (f"value predicted / actual ({unit})",
                   f"{hold['predicted_value']:.1f} / {hold['actual_value']:.1f} ({hold['relative_error_value']:+.1%})")]
    parts.append(_kv_table(pairs))
    parts.append("<h2>Segments</h2>")
    if segm.get("community_structure_found", True) and segm.get("modularity") is not None:
        parts.append(f"<p>Leiden communities of the follow graph: modularity {segm['modularity']:.3f} "
                     f"({segm.get('communities_leiden')} communities found, those under {segm.get('min_segment_size')} "
                     "members dissolved and their users attached by item co-activity; users sharing nothing go to "
                     "<i>unconnected</i>).</p>")
    else:
        parts.append(f"<p><b>{html.escape(str(segm.get('community_structure', 'no community structure found')))}</b>.</p>")
    parts.append("<p>Suggested actions are rules (docs/customer-value.md): <i>retain</i> = valuable and active, "
                 "<i>win back</i> = was valuable, now inactive, <i>ignore</i> = &lt; 1 % of value past and expected, "
                 "<i>nurture</i> = the rest.</p>")
    parts.append(_img(plot_segment_actions(result.segments), "segment actions"))
    parts.append(_img(plot_segments(result.segments, unit), "segments"))
    parts.append(_table(_segment_rows(result.segments)))
    rfm = segm.get("rfm_segments") or {}
    if rfm:
        parts.append("<h3>RFM segments (absolute windows: recency 4/13/26/52 weeks, occasions 1/2/3-4/5-9/10+)</h3>")
        parts.append(_table(pd.DataFrame([{"RFM segment": k, "users": v} for k, v in rfm.items()])))
    parts += influence_section(result)
    cols = [c for c in ["user_id", "clv", "influence", "weighted_value", "segment_id", "rfm_segment", "churn_risk",
                        "propensity", "clv_explanation"] if c in result.users]
    parts += ["<h2>Top users by influence-weighted value</h2>",
              _table(result.users.sort_values("weighted_value", ascending=False).head(15)[cols]),
              "</body></html>"]
    return "\n".join(parts)


def write_report(result, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`render_report` to ``path`` (parents created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, title), encoding="utf-8")
    return path
