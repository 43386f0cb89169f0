"""Did the campaign work? Lift with confidence intervals, CUPED, sample-ratio mismatch, ROI.

For each treatment arm against the control and each outcome:

* **difference in means** ``mean_t - mean_c`` with a 95 % Welch interval (unequal variances;
  ``statsmodels.stats.weightstats.CompareMeans.tconfint_diff``) and its two-sided p-value;
* **CUPED** (Deng, Xu, Kohavi & Walker, "Improving the sensitivity of online controlled
  experiments by utilizing pre-experiment data", WSDM 2013): ``y' = y - theta (x - mean(x))`` with
  ``theta = cov(y, x) / var(x)`` pooled over both arms and ``x`` the outcome's pre-period value;
  the same Welch interval on ``y'``. Unbiased for the same effect; narrower when ``x``
  predicts ``y`` (``variance_reduction`` = 1 - var(y')/var(y));
* **sample-ratio mismatch**: Pearson's chi-square of the arm counts against the designed shares
  (``scipy.stats.chisquare``); p < 0.001 flags a broken assignment or logging (Fabijan et al.,
  "Diagnosing sample ratio mismatch in online controlled experiments", KDD 2019): then no
  lift should be trusted;
* **incremental revenue and ROI** for the revenue outcome: ``lift x n_treated`` and
  ``(incremental revenue x margin - cost) / cost``, cost = ``cost_per_contact x n_treated``;
  both intervals are the lift's interval mapped through the same (monotone) formula.

Outcomes either come with the campaign (an imported finished campaign such as Hillstrom) or are
computed from the stored events after the launch time (:func:`event_outcomes`).
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

#: SRM p-value below which the assignment is flagged.
SRM_ALPHA = 0.001
#: outcomes computed from events, with the event kind and aggregation each uses.
EVENT_OUTCOMES = ("visit", "conversion", "revenue", "purchases", "views")


def srm_check(observed: dict[str, int], expected_shares: dict[str, float]) -> dict:
    """Sample-ratio-mismatch test.

    Args:
        observed: arm -> users counted.
        expected_shares: arm -> designed share (normalised here).
    Returns:
        ``{"chi2", "p_value", "df", "flagged", "observed", "expected"}``; flagged when p < 0.001.
    """
    arms = list(expected_shares)
    obs = np.array([observed.get(a, 0) for a in arms], dtype=np.float64)
    share = np.array([expected_shares[a] for a in arms], dtype=np.float64)
    share = share / share.sum()
    exp = obs.sum() * share
    chi2, p = stats.chisquare(obs, exp)
    return {"chi2": float(chi2), "p_value": float(p), "df": len(arms) - 1, "flagged": bool(p < SRM_ALPHA),
            "observed": {a: int(o) for a, o in zip(arms, obs)}, "expected": {a: float(e) for a, e in zip(arms, exp)}}


def diff_in_means(y_t: np.ndarray, y_c: np.ndarray, alpha: float = 0.05) -> dict:
    """``mean_t - mean_c`` with a Welch (1 - alpha) interval and p-value.

    Returns:
        ``{"lift", "ci": [lo, hi], "se", "p_value"}``.
    """
    y_t, y_c = np.asarray(y_t, np.float64), np.asarray(y_c, np.float64)
    lift = float(y_t.mean() - y_c.mean())
    se = math.sqrt(y_t.var(ddof=1) / len(y_t) + y_c.var(ddof=1) / len(y_c))
    if se == 0.0:
        return {"lift": lift, "ci": [lift, lift], "se": 0.0, "p_value": 1.0 if lift == 0 else 0.0}
    cm = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c))
    lo, hi = cm.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p, _ = cm.ttest_ind(usevar="unequal")
    return {"lift": lift, "ci": [float(lo), float(hi)], "se": float(se), "p_value": float(p)}


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED-adjusted outcome.

    Args:
        y: (n,) outcome; x: (n,) pre-period covariate (NaN treated as its mean).
    Returns:
        ``(y_adj (n,), theta, variance_reduction)``.
    """
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    x = np.where(np.isnan(x), np.nanmean(x) if np.isfinite(x).any() else 0.0, x)
    vx = x.var(ddof=1)
    if not np.isfinite(vx) or vx == 0.0:
        return y.copy(), 0.0, 0.0
    theta = float(np.cov(y, x, ddof=1)[0, 1] / vx)
    adj = y - theta * (x - x.mean())
    vy = y.var(ddof=1)
    return adj, theta, float(1.0 - adj.var(ddof=1) / vy) if vy > 0 else 0.0


def analyze(
    frame: pd.DataFrame,
    arms: list[str],
    control: str,
    outcomes: list[str],
    pre: dict[str, str] | None = None,
    shares: dict[str, float] | None = None,
    revenue_outcome: str | None = None,
    cost_per_contact: float = 0.0,
    margin: float = 1.0,
    treatment: str | None = None,
) -> dict:
    """Per-arm, per-outcome campaign effects.

    Args:
        frame: one row per assigned user: ``arm`` + the outcome columns (+ the pre columns).
        arms: every arm, the control among them.
        control: the control arm.
        outcomes: outcome columns to analyse.
        pre: outcome -> pre-period column used as CUPED covariate (missing = no CUPED for it).
        shares: arm -> designed share for the SRM test (default equal shares).
        revenue_outcome: the outcome in currency units (for incremental revenue and ROI).
        cost_per_contact: cost of treating one user; margin: profit share of revenue.
        treatment: the arm reported under ``outcomes`` (default the first non-control arm).
    Returns:
        ``{"arms": {arm: n}, "control", "treatment", "srm": {...}, "srm_p", "outcomes": {o: {...}},
        "contrasts": {arm: {o: {...}}}}``; per outcome ``control_mean``, ``treatment_mean``,
        ``lift``, ``ci``, ``relative_lift``, ``p_value``, ``cuped_lift``, ``cuped_ci``,
        ``cuped_covariate``, ``variance_reduction``, ``srm_p``, ``incremental`` (lift x treated),
        ``incremental_revenue`` (+ ``_ci``) and ``roi`` (+ ``_ci``) for the revenue outcome (None
        for the others).
    Raises:
        ValueError: an outcome or pre column is missing, the control is not an arm, or an arm is empty.
    """
    pre = pre or {}
    if control not in arms:
        raise ValueError(f"control arm {control!r} is not one of {arms}")
    for col in list(outcomes) + list(pre.values()):
        if col not in frame.columns:
            raise ValueError(f"missing column {col!r}")
    counts = frame["arm"].value_counts()
    sizes = {a: int(counts.get(a, 0)) for a in arms}
    empty = [a for a, n in sizes.items() if n == 0]
    if empty:
        raise ValueError(f"arm(s) without users: {empty}")
    shares = shares or {a: 1.0 / len(arms) for a in arms}
    srm = srm_check(sizes, shares)
    treatments = [a for a in arms if a != control]
    treatment = treatment or treatments[0]
    arm_values = frame["arm"].to_numpy()
    contrasts: dict[str, dict] = {}
    cuped_cache: dict[str, tuple] = {}
    for arm in treatments:
        in_pair = (arm_values == arm) | (arm_values == control)
        t_mask = arm_values[in_pair] == arm
        per: dict[str, dict] = {}
        for o in outcomes:
            y = frame[o].to_numpy(np.float64)[in_pair]
            base = diff_in_means(y[t_mask], y[~t_mask])
            c_mean, t_mean = float(y[~t_mask].mean()), float(y[t_mask].mean())
            row = {"control_mean": c_mean, "treatment_mean": t_mean, "lift": base["lift"], "ci": base["ci"],
                   "se": base["se"], "p_value": base["p_value"],
                   "relative_lift": base["lift"] / c_mean if c_mean else None,
                   "cuped_lift": None, "cuped_ci": None, "cuped_covariate": pre.get(o), "variance_reduction": None,
                   "srm_p": srm["p_value"], "n_treatment": int(t_mask.sum()), "n_control": int((~t_mask).sum())}
            if o in pre:
                x = frame[pre[o]].to_numpy(np.float64)[in_pair]
                adj, theta, vr = cuped_adjust(y, x)
                cu = diff_in_means(adj[t_mask], adj[~t_mask])
                row.update(cuped_lift=cu["lift"], cuped_ci=cu["ci"], cuped_theta=theta, variance_reduction=vr)
            n_t = int(t_mask.sum())
            row["incremental"] = row["lift"] * n_t
            row["incremental_ci"] = [v * n_t for v in row["ci"]]
            row["incremental_revenue"] = row["incremental_revenue_ci"] = row["roi"] = row["roi_ci"] = None
            if o == revenue_outcome:
                cost = float(cost_per_contact) * n_t
                row["incremental_revenue"] = row["incremental"]
                row["incremental_revenue_ci"] = row["incremental_ci"]
                row["cost"] = cost
                row["incremental_profit"] = row["incremental"] * margin - cost
                if cost > 0:
                    row["roi"] = (row["incremental"] * margin - cost) / cost
                    row["roi_ci"] = [(v * margin - cost) / cost for v in row["incremental_ci"]]
            per[o] = row
        contrasts[arm] = per
    del cuped_cache
    return {"arms": sizes, "control": control, "treatment": treatment, "shares": shares, "srm": srm,
            "srm_p": srm["p_value"], "outcomes": contrasts[treatment], "contrasts": contrasts,
            "revenue_outcome": revenue_outcome, "cost_per_contact": float(cost_per_contact), "margin": float(margin)}


# ----------------------------------------------------------------------------- events -> outcomes
def event_outcomes(interactions: pd.DataFrame, user_ids, launched_at: float, until: float | None = None) -> pd.DataFrame:
    """Per-user outcomes from stored events after the launch, and the same in the pre-period.

    The window is ``[launched_at, until)`` (``until`` default: the latest event); the pre-period
    is the window of the same length just before the launch, so ``pre_<o>`` measures the same
    thing and serves as CUPED covariate. Interactions are the store's (keyed by user, item,
    kind: a repeated purchase of one item keeps its latest value and time).

    Args:
        interactions: the canonical ``interactions`` table (``user_id``, ``item_id``, ``kind``,
            ``value``, ``ts``).
        user_ids: (n,) the assigned users.
        launched_at: Unix seconds.
        until: Unix seconds or None.
    Returns:
        Frame ``user_id`` + for o in visit (any view or purchase, 0/1), conversion (any purchase,
        0/1), revenue (sum of purchase values), purchases, views: ``o`` and ``pre_o`` (float64).
    """
    ids = pd.Index(pd.Series(np.asarray(user_ids, dtype=object)).astype(str), name="user_id")
    ts = interactions["ts"].to_numpy(np.float64)
    end = until if until is not None else (float(np.nanmax(ts)) + 1.0 if np.isfinite(ts).any() else launched_at + 1.0)
    span = max(end - launched_at, 1.0)
    out = pd.DataFrame(index=ids)
    inter = interactions[interactions["user_id"].isin(ids)]
    t = inter["ts"].to_numpy(np.float64)
    for prefix, lo, hi in (("", launched_at, end), ("pre_", launched_at - span, launched_at)):
        w = inter[(t >= lo) & (t < hi)]
        purchase, view = w[w["kind"] == "purchase"], w[w["kind"] == "view"]
        n_p = purchase.groupby("user_id").size().reindex(ids, fill_value=0).astype(float)
        n_v = view.groupby("user_id").size().reindex(ids, fill_value=0).astype(float)
        out[f"{prefix}purchases"] = n_p
        out[f"{prefix}views"] = n_v
        out[f"{prefix}revenue"] = purchase.groupby("user_id")["value"].sum().reindex(ids, fill_value=0.0).astype(float)
        out[f"{prefix}conversion"] = (n_p > 0).astype(float)
        out[f"{prefix}visit"] = ((n_p + n_v) > 0).astype(float)
    return out.reset_index()


# ----------------------------------------------------------------------------- HTML report
def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v * 100:+.2f} pp" if pct else f"{v:+.4f}"


def write_report(result: dict, path: str | Path, title: str) -> Path:
    """A self-contained HTML report: arm means with 95 % intervals, lift forest plot (plain and
    CUPED), the SRM check, revenue/ROI and the balance table when present.

    Args:
        result: :func:`analyze`'s dict (plus optional ``balance`` rows, ``campaign`` doc).
        path: where to write (atomically).
    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    from recsys.report import figure_to_img, table_html, write_html

    control = result["control"]
    outcomes = list(result["outcomes"])
    sections: list[tuple[str, str]] = []
    srm = result["srm"]
    verdict = ("<p><b>Sample-ratio mismatch: the arm sizes do not match the design (p = "
               f"{srm['p_value']:.2e}). Do not trust the lifts below until the assignment is explained.</b></p>"
               if srm["flagged"] else f"<p>Arm sizes match the design (SRM chi-square p = {srm['p_value']:.3f}).</p>")
    sections.append(("Sample ratio", verdict + table_html(
        [{"arm": a, "observed": srm["observed"][a], "expected": srm["expected"][a]} for a in srm["observed"]],
        ["arm", "observed", "expected"], "{:.1f}")))

    # arm means with CIs
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 3.2), squeeze=False)
    for ax, o in zip(axes[0], outcomes):
        labels, means, errs = [control], [result["outcomes"][o]["control_mean"]], [0.0]
        for arm, per in result["contrasts"].items():
            r = per[o]
            labels.append(arm)
            means.append(r["treatment_mean"])
            errs.append((r["ci"][1] - r["ci"][0]) / 2)
        ax.bar(range(len(labels)), means, yerr=errs, capsize=4, color=["#999"] + ["#3b7dd8"] * (len(labels) - 1))
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        ax.set_title(f"{o}: mean per user (bars: 95 % CI of the lift)", fontsize=8)
    sections.append(("Outcome per arm", figure_to_img(fig)))

    # forest plot of lifts
    rows = [(arm, o, per[o]) for arm, per in result["contrasts"].items() for o in outcomes]
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 1.6 + 0.8 * len(result["contrasts"])), squeeze=False)
    for col, (ax, o) in enumerate(zip(axes[0], outcomes)):
        arms = list(result["contrasts"])
        for j, arm in enumerate(arms):
            r = result["contrasts"][arm][o]
            ax.errorbar(r["lift"], j + 0.1, xerr=[[r["lift"] - r["ci"][0]], [r["ci"][1] - r["lift"]]], fmt="o", color="#3b7dd8",
                        label="difference in means" if j == 0 else None)
            if r["cuped_lift"] is not None:
                ax.errorbar(r["cuped_lift"], j - 0.1, xerr=[[r["cuped_lift"] - r["cuped_ci"][0]], [r["cuped_ci"][1] - r["cuped_lift"]]],
                            fmt="s", color="#d8843b", label="CUPED" if j == 0 else None)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(arms)), arms if col == 0 else [""] * len(arms), fontsize=8)
        ax.set_ylim(-0.6, len(arms) - 0.4)
        ax.set_title(f"lift in {o} vs {control} (95 % CI)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.subplots_adjust(bottom=0.25)
    sections.append(("Lift", figure_to_img(fig)))

    table = []
    for arm, o, r in rows:
        table.append({"arm": arm, "outcome": o, "control": f"{r['control_mean']:.5f}", "treated": f"{r['treatment_mean']:.5f}",
                      "lift": f"{r['lift']:+.5f}", "95% CI": f"[{r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}]",
                      "p": f"{r['p_value']:.2g}",
                      "CUPED lift": "–" if r["cuped_lift"] is None else f"{r['cuped_lift']:+.5f}",
                      "CUPED CI": "–" if r["cuped_ci"] is None else f"[{r['cuped_ci'][0]:+.5f}, {r['cuped_ci'][1]:+.5f}]",
                      "var. reduction": "–" if r["variance_reduction"] is None else f"{r['variance_reduction']:.1%}",
                      "incremental revenue": "–" if r["incremental_revenue"] is None else f"{r['incremental_revenue']:,.2f}",
                      "ROI": "–" if r["roi"] is None else f"{r['roi']:+.2f} [{r['roi_ci'][0]:+.2f}, {r['roi_ci'][1]:+.2f}]"})
    sections.append(("Effects", table_html(table, list(table[0]) if table else [])))
    if result.get("by"):
        part = result["by"]
        rows_by = []
        for o, per in part["outcomes"].items():
            for r in per["levels"]:
                rows_by.append({"outcome": o, part["by"]: r["level"], "treated / control": f"{r['n_treatment']} / {r['n_control']}",
                                "lift": "–" if r["lift"] is None else f"{r['lift']:+.5f}",
                                "95% CI": "–" if r["ci"] is None else f"[{r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}]",
                                "heterogeneity p": "–" if per["heterogeneity_p"] is None else f"{per['heterogeneity_p']:.3g}"})
        sections.append((f"Lift by {part['by']} (Cochran's Q: a small p = the lift differs between levels)",
                         table_html(rows_by, list(rows_by[0]) if rows_by else [])))
    if result.get("balance"):
        sections.append(("Covariate balance (|SMD| > 0.1 = imbalanced)", table_html(
            result["balance"], ["covariate", "arm", "mean_treatment", "mean_control", "smd", "imbalanced"])))
    doc = result.get("campaign") or {}
    sections.append(("About", f"<p>Campaign {html.escape(str(doc.get('id', '')))}; assignment "
                              f"{html.escape(str(doc.get('assignment', '')))}; generated {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}. "
                              "Lifts: Welch difference in means; CUPED: Deng et al. 2013; SRM: chi-square, flagged at p &lt; 0.001.</p>"))
    return write_html(path, title, sections)


# ----------------------------------------------------------------------------- a stored campaign
def analyze_campaign(
    store,
    campaign_id: str,
    treatment: str | None = None,
    outcomes: list[str] | None = None,
    cost_per_contact: float | None = None,
    margin: float | None = None,
    until: float | None = None,
    by: str | None = None,
) -> dict:
    """Analyse a stored campaign: outcomes from its table (imported) or from events after launch.

    Args:
        store: the dataset's store.
        campaign_id: the campaign's id.
        treatment: the arm reported under ``outcomes`` (default the campaign's treatment arm).
        outcomes: outcomes to analyse (default: the table's outcome columns, or visit, conversion
            and revenue for event outcomes).
        cost_per_contact, margin: override the campaign's ROI inputs.
        until: end of the outcome window (Unix seconds; default the latest event).
        by: also the lift per level of this column (``segment``, ``stratum`` or an imported
            covariate), with a heterogeneity test (:func:`lift_by`), under ``"by"``.
    Returns:
        :func:`analyze`'s dict plus ``campaign`` (the document), ``dataset``, ``n``,
        ``outcome_source`` and ``balance``.
    Raises:
        KeyError: no such campaign. ValueError: unknown arm or outcome.
    """
    doc = store.read_campaign(campaign_id)
    if doc is None:
        raise KeyError(f"no campaign {campaign_id!r} in {store.dataset!r}")
    assignments = store.read_assignments(campaign_id)
    arms, control = list(doc["arms"]), doc["control_arm"]
    treatment = treatment or doc.get("treatment_arm")
    if treatment not in arms or treatment == control:
        raise ValueError(f"unknown treatment arm {treatment!r}; the treatment arms are {[a for a in arms if a != control]}")
    if doc.get("outcomes") == "events":
        if doc.get("launched_at") is None:
            raise ValueError(f"campaign {campaign_id!r} has no launch time")
        frame = assignments.merge(event_outcomes(store.read_table("interactions"), assignments["user_id"], doc["launched_at"], until),
                                  on="user_id", how="left")
        outcomes = outcomes or ["visit", "conversion", "revenue"]
        unknown = [o for o in outcomes if o not in EVENT_OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcome(s) {unknown}; events give {list(EVENT_OUTCOMES)}")
        pre = {o: f"pre_{o}" for o in outcomes}
        revenue = "revenue"
        source = "events"
    else:
        frame = assignments
        available = list(doc.get("outcome_columns") or [])
        outcomes = outcomes or available
        unknown = [o for o in outcomes if o not in available]
        if unknown:
            raise ValueError(f"missing outcome column(s) {unknown}; the campaign has {available}")
        pre = {o: doc["pre_covariate"] for o in outcomes} if doc.get("pre_covariate") else {}
        revenue = "spend" if "spend" in outcomes else None
        source = "table"
    result = analyze(
        frame, arms, control, outcomes, pre=pre, shares=doc.get("shares"), revenue_outcome=revenue,
        cost_per_contact=float(doc.get("cost_per_contact") or 0.0) if cost_per_contact is None else float(cost_per_contact),
        margin=float(doc.get("margin") or 1.0) if margin is None else float(margin), treatment=treatment,
    )
    result.update(campaign=doc["id"], dataset=store.dataset, n=int(len(frame)), outcome_source=source,
                  launched_at=doc.get("launched_at"), balance=doc.get("balance") or [])
    if by is not None:
        if by == "segment" and "segment" not in frame.columns:
            from recsys.campaigns.assignment import user_segments

            frame = frame.assign(segment=frame["user_id"].map(user_segments(store)))
        if by not in frame.columns:
            raise ValueError(f"--by: no column {by!r}; the campaign has {[c for c in frame.columns if c not in ('user_id', 'arm')]} "
                             "(or 'segment' for stored segments)")
        result["by"] = lift_by(frame, by, treatment, control, outcomes)
    return result


# ----------------------------------------------------------------------------- which segment?
def lift_by(frame: pd.DataFrame, by: str, treatment: str, control: str, outcomes: list[str], min_users: int = 30) -> dict:
    """The lift of ``treatment`` over ``control`` within each level of ``by`` (a pre-campaign
    attribute: segment, channel, ...), and whether the lifts differ at all.

    Heterogeneity: Cochran's Q over the levels' lifts, ``Q = sum w_i (l_i - l_bar)^2`` with
    ``w_i = 1 / se_i^2``, chi-square with (levels - 1) degrees of freedom (Cochran, Biometrics
    1954). A small ``heterogeneity_p`` says the campaign worked differently across levels;
    otherwise the best-looking level is within noise of the others and targeting it is not
    supported by this campaign.

    Args:
        frame: ``arm``, ``by`` and the outcome columns.
        min_users: levels with fewer treated or control users are reported without statistics.
    Returns:
        ``{"by", "treatment", "control", "outcomes": {o: {"levels": [{"level", "n_treatment",
        "n_control", "lift", "ci", "p_value"}], "heterogeneity_q", "heterogeneity_p", "best"}}}``.
    Raises:
        ValueError: ``by`` or an outcome is not a column.
    """
    for col in [by, *outcomes]:
        if col not in frame.columns:
            raise ValueError(f"missing column {col!r}")
    pair = frame[frame["arm"].isin([treatment, control])]
    levels = pair[by].astype(object).where(pair[by].notna(), "none").astype(str)
    out = {"by": by, "treatment": treatment, "control": control, "outcomes": {}}
    for o in outcomes:
        rows = []
        for level in sorted(levels.unique()):
            part = pair[levels == level]
            t = part.loc[part["arm"] == treatment, o].to_numpy(np.float64)
            c = part.loc[part["arm"] == control, o].to_numpy(np.float64)
            row = {"level": level, "n_treatment": int(len(t)), "n_control": int(len(c)), "lift": None, "ci": None, "p_value": None, "se": None}
            if len(t) >= min_users and len(c) >= min_users:
                d = diff_in_means(t, c)
                row.update(lift=d["lift"], ci=d["ci"], p_value=d["p_value"], se=d["se"])
            rows.append(row)
        usable = [r for r in rows if r["se"]]
        q = p = None
        if len(usable) >= 2:
            w = np.array([1.0 / r["se"] ** 2 for r in usable])
            lifts = np.array([r["lift"] for r in usable])
            pooled = float((w * lifts).sum() / w.sum())
            q = float((w * (lifts - pooled) ** 2).sum())
            p = float(stats.chi2.sf(q, len(usable) - 1))
        best = max(usable, key=lambda r: r["lift"])["level"] if usable else None
        out["outcomes"][o] = {"levels": rows, "heterogeneity_q": q, "heterogeneity_p": p, "best": best}
    return out
