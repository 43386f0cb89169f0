"""Targeting policy and ROI: whom to contact so that the campaign's incremental profit is largest.

Money model (per campaign): contacting ``c`` customers costs ``cost * c``; the campaign earns
``margin * incremental revenue``; ``profit = margin * incremental revenue - cost * c``;
``ROI = profit / (cost * c)`` (undefined when nobody is contacted). Incremental revenue is the
incremental ``spend`` when the table has it, else ``value_per_outcome`` times the incremental
outcome (no revenue = no profit figures, and no profit-optimal policy).

Policies compared (binary treatment, :func:`evaluate_policies`): ``contact_all``,
``contact_none``, ``top_n_response`` (top share by the response model), ``top_n_uplift`` (same
share by the uplift model) and ``profit_optimal`` (the uplift model's top share that maximises
profit on the *validation* part). Every figure is *realised* on the randomised held-out part: the
arm difference inside the selected group times its size (:func:`~recsys.campaigns.uplift_metrics.incremental_at`),
scaled to ``population`` customers, with bootstrap CIs; ``expected`` is what the validation part
predicted for the same policy.

Fallback (:func:`summarise_policies`): the uplift-targeted policy is recommended only when the
uplift model's Qini CI excludes random targeting AND the profit-optimal policy's realised gain over
the better of contact-all / contact-none has a CI above zero. Otherwise the recommendation is the
better of contact-all / contact-none and the reason says targeting showed no gain: a policy never
claims a gain it cannot show.

Multi-treatment (:func:`run_best_arm`): each customer gets the arm with the largest predicted
uplift (none when no arm's predicted gain pays for the contact); its value is estimated on the
held-out part by inverse-propensity weighting over the randomised arms (Dudik, Langford & Li 2011,
"Doubly robust policy evaluation and learning", ICML; the IPW term).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from recsys.campaigns.uplift_metrics import incremental_at, poisson_weights, ranking_metrics

#: Contact depths searched for the profit-optimal policy (share of customers).
FRACTIONS: np.ndarray = np.round(np.arange(0.0, 1.0 + 1e-9, 0.05), 2)
POLICIES: tuple[str, ...] = ("contact_all", "contact_none", "top_n_response", "top_n_uplift", "profit_optimal")
INCREMENTAL_NAMES: dict[str, str] = {"visit": "incremental_visits", "conversion": "incremental_conversions",
                                     "spend": "incremental_revenue"}


def _revenue(inc: dict[str, np.ndarray], outcome: str, value_per_outcome: float | None):
    if "spend" in inc:
        return inc["spend"]
    if value_per_outcome is not None:
        return value_per_outcome * inc[outcome]
    return None


def profit_curve(outcomes: dict[str, np.ndarray], t: np.ndarray, score: np.ndarray, *, outcome: str, cost: float,
                 margin: float, value_per_outcome: float | None, population: int, fractions=FRACTIONS) -> np.ndarray | None:
    """Realised incremental profit (money, for ``population`` customers) of contacting the top
    share ``f`` by ``score``, for each ``f`` in ``fractions``; None without revenue. Shape (F,)."""
    inc = {o: incremental_at(v, t, score, fractions)[0] for o, v in outcomes.items()}
    rev = _revenue(inc, outcome, value_per_outcome)
    if rev is None:
        return None
    return population * (margin * rev - cost * np.asarray(fractions))


def evaluate_policies(*, outcomes_val, t_val, outcomes_test, t_test, uplift_val, uplift_test, response_val,
                      response_test, weights, outcome, cost, margin, top_fraction, value_per_outcome, population) -> dict:
    """One seed's policies: their fractions, validation (expected) and test (realised + draws) figures.

    Args:
        outcomes_val / outcomes_test: outcome name -> (n,) values on the validation / test rows.
        t_val / t_test: (n,) 0/1 treated. uplift_* / response_*: (n,) scores of the targeting
            model (fitted on the fit part for validation, on train for test) and the response model.
        weights: (B, n_test) bootstrap weights. Others: see :func:`recsys.campaigns.uplift.run_uplift`.
    Returns:
        ``{policy: {"fraction", "expected": {quantity: float}, "realised": {quantity: float},
        "draws": {quantity: (B,)}}}``, plus ``"_profit_curve_val"`` (F,) or None.
    """
    curve = profit_curve(outcomes_val, t_val, uplift_val, outcome=outcome, cost=cost, margin=margin,
                         value_per_outcome=value_per_outcome, population=population)
    f_opt = float(FRACTIONS[int(np.argmax(curve))]) if curve is not None else None
    plan = {
        "contact_all": ("uplift", 1.0), "contact_none": ("uplift", 0.0),
        "top_n_response": ("response", top_fraction), "top_n_uplift": ("uplift", top_fraction),
    }
    if f_opt is not None:
        plan["profit_optimal"] = ("uplift", f_opt)
    out = {}
    for name, (ranking, frac) in plan.items():
        s_val = uplift_val if ranking == "uplift" else response_val
        s_test = uplift_test if ranking == "uplift" else response_test
        exp = _quantities({o: incremental_at(v, t_val, s_val, [frac])[:, 0] for o, v in outcomes_val.items()},
                          frac, outcome, cost, margin, value_per_outcome, population)
        real = _quantities({o: incremental_at(v, t_test, s_test, [frac])[:, 0] for o, v in outcomes_test.items()},
                           frac, outcome, cost, margin, value_per_outcome, population)
        draws = _quantities({o: incremental_at(v, t_test, s_test, [frac], weights)[:, 0] for o, v in outcomes_test.items()},
                            frac, outcome, cost, margin, value_per_outcome, population)
        out[name] = {"fraction": frac, "ranking": ranking if 0 < frac < 1 else None,
                     "expected": {k: float(v[0]) for k, v in exp.items()},
                     "realised": {k: float(v[0]) for k, v in real.items()}, "draws": draws}
    out["_profit_curve_val"] = curve
    return out


def _quantities(inc: dict[str, np.ndarray], frac, outcome, cost, margin, value_per_outcome, population) -> dict[str, np.ndarray]:
    """Per-customer incremental outcomes -> campaign totals (arrays of one shape)."""
    q = {}
    for o, v in inc.items():
        q[INCREMENTAL_NAMES.get(o, f"incremental_{o}")] = population * v
    rev = _revenue(inc, outcome, value_per_outcome)
    contacts = frac * population
    shape = next(iter(inc.values())).shape
    q["contacts"] = np.full(shape, contacts)
    q["cost"] = np.full(shape, cost * contacts)
    if rev is not None:
        q["incremental_revenue"] = population * rev
        q["profit"] = margin * population * rev - cost * contacts
        if cost * contacts > 0:
            q["roi"] = q["profit"] / (cost * contacts)
    return q


def _pool(points: list[float], draws: list[np.ndarray]) -> tuple[float, list[float]]:
    """Mean over seeds and the 95 % CI of that mean over the joint resamples (draws index-aligned)."""
    mean_draws = np.mean(np.stack([np.broadcast_to(d, np.shape(draws[0])) for d in draws]), axis=0)
    return float(np.mean(points)), [float(np.percentile(mean_draws, 2.5)), float(np.percentile(mean_draws, 97.5))]


def summarise_policies(per_seed: list[dict], *, separates: bool, selected_model: str, cost: float, margin: float,
                       top_fraction: float, population: int, outcome: str) -> dict:
    """Pool the seeds' policies and make the recommendation (with the fallback rule above).

    Returns:
        ``{"cost_per_contact", "margin", "population", "top_fraction", "ranking_model",
        "policies": {name: {"fraction", quantity, quantity_ci, ..., "expected": {...}}},
        "recommended", "targeting_gain": {"profit_diff", "ci"} | None, "reason"}``.
    """
    names = [p for p in POLICIES if all(p in s for s in per_seed)]
    policies = {}
    for name in names:
        seeds = [s[name] for s in per_seed]
        block = {"fraction": float(np.mean([s["fraction"] for s in seeds])),
                 "fraction_seeds": [s["fraction"] for s in seeds], "ranking": seeds[0]["ranking"]}
        for q in seeds[0]["realised"]:
            if not all(q in s["realised"] for s in seeds):
                continue
            point, ci = _pool([s["realised"][q] for s in seeds], [s["draws"][q] for s in seeds])
            block[q] = point
            if q not in ("contacts", "cost"):
                block[f"{q}_ci"] = ci
        block["expected"] = {q: float(np.mean([s["expected"][q] for s in seeds if q in s["expected"]]))
                             for q in seeds[0]["expected"] if q not in ("contacts", "cost")}
        policies[name] = block
    result = {"cost_per_contact": cost, "margin": margin, "population": population, "top_fraction": top_fraction,
              "ranking_model": selected_model, "targeting_outcome": outcome, "policies": policies}
    if "profit_optimal" not in policies or "profit" not in policies["contact_all"]:
        result.update(recommended=None, targeting_gain=None,
                      reason="no revenue: the table has no spend column and no --value-per-outcome was given")
        return result
    fallback = max(("contact_all", "contact_none"), key=lambda p: policies[p]["profit"])
    diffs = [s["profit_optimal"]["realised"]["profit"] - s[fallback]["realised"]["profit"] for s in per_seed]
    ddraws = [s["profit_optimal"]["draws"]["profit"] - s[fallback]["draws"]["profit"] for s in per_seed]
    point, ci = _pool(diffs, ddraws)
    result["targeting_gain"] = {"vs": fallback, "profit_diff": point, "ci": ci}
    if separates and ci[0] > 0:
        result["recommended"] = "profit_optimal"
        result["reason"] = (f"uplift ranking separates from random (Qini CI > 0) and contacting the top "
                            f"{policies['profit_optimal']['fraction']:.0%} earns {point:,.2f} more than {fallback} "
                            f"(95% CI {ci[0]:,.2f}..{ci[1]:,.2f})")
    else:
        result["recommended"] = fallback
        why = "the uplift ranking does not separate from random (Qini CI includes 0)" if not separates else \
            f"the profit-optimal policy's gain over {fallback} is not shown (95% CI {ci[0]:,.2f}..{ci[1]:,.2f} includes 0)"
        result["reason"] = f"{why}: no targeting gain can be claimed, so the recommendation falls back to {fallback}"
    return result


# --------------------------------------------------------------------------- several treatments
def run_best_arm(frame, spec, outcome, *, models=None, seeds=3, n_boot=1000, cost=0.10, margin=0.30,
                 value_per_outcome=None, population=None, progress=True) -> dict:
    """Several treatment arms: per-arm Qini of each model and the best-arm-per-customer policy.

    Each model is fitted on all arms (causalml meta-learners and the uplift forest natively, the
    transformed outcome one regressor per arm); a customer is assigned the arm with the largest
    predicted uplift when its predicted profit ``margin * value * uplift - cost`` is positive (for a
    binary outcome without value: uplift > 0), else no contact. Policy values on the held-out part
    by IPW over the randomised arms, in totals for ``population`` customers, with bootstrap CIs.

    Returns:
        ``{"dataset", "treatment": "all", "arms", "outcome", "protocol", "models": {M: {"qini",
        "qini_ci", "per_arm": {arm: {metric, metric_ci}}, "params"}}, "baselines": {"random", "t_learner"},
        "policy": {"policies": {"contact_none", "all:<arm>"..., "best_arm:<model>"...}, "recommended", "reason"}}``.
    """
    from recsys.campaigns.uplift import (BINARY_ONLY, CONTROL_LABEL, FOREST_GRID, LGBM_GRID, METRIC_KEYS,
                                         UPLIFT_MODELS, UpliftModel, _progress, _tune, design_matrix, prepare,
                                         stratified_split)

    started = time.perf_counter()
    rows, arm, y, kind, treatments = prepare(frame, spec, "all", outcome)
    treatments = sorted(treatments)  # the column order of UpliftModel.predict
    names = tuple(m for m in (models or UPLIFT_MODELS) if not (m in BINARY_ONLY and kind != "binary"))
    if "t_learner" not in names:
        names = names + ("t_learner",)
    X = design_matrix(frame, spec)[0][rows]
    sub = frame.loc[rows]
    outs = {o: sub[o].to_numpy(dtype=np.float64) for o in spec.outcomes}
    population = int(population or spec.n_customers)
    value = 1.0 if outcome == "spend" else value_per_outcome
    per_arm = {m: {a: {k: [] for k in METRIC_KEYS} for a in treatments} for m in names + ("random",)}
    per_arm_draws = {m: {a: {k: [] for k in METRIC_KEYS} for a in treatments} for m in per_arm}
    pol_pts: dict[str, dict[str, list]] = {}
    pol_draws: dict[str, dict[str, list]] = {}
    val_sel, chosen = [], {m: [] for m in names}
    joint_weights = poisson_weights(len(y), n_boot, np.random.default_rng(20_000))  # shared by all seeds
    bar = _progress(seeds * sum(len(FOREST_GRID if m == "uplift_forest" else LGBM_GRID) + 1 for m in names), progress,
                    f"best arm {outcome}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(seeds):
            split = stratified_split(arm, y, seed)
            te = split.test
            rng = np.random.default_rng(20_000 + seed)
            weights = joint_weights[:, te].astype(np.float64)
            preds, vq = {}, {}
            for m in names:
                params, _, _, q = _tune(m, kind, X, arm, y, split, seed)
                chosen[m].append(params)
                vq[m] = q
                preds[m] = UpliftModel(m, kind, params, seed).fit(X[split.train], arm[split.train], y[split.train]).predict(X[te])
                bar.update(len(FOREST_GRID if m == "uplift_forest" else LGBM_GRID) + 1)
            val_sel.append(max(names, key=lambda m: vq[m]))
            preds["random"] = rng.random((len(te), len(treatments)))
            a_te = arm[te]
            for m, tau in preds.items():
                for k, a in enumerate(treatments):
                    r = (a_te == a) | (a_te == CONTROL_LABEL)
                    tt = (a_te[r] == a).astype(float)
                    pt = ranking_metrics(y[te][r], tt, tau[r, k])
                    bt = ranking_metrics(y[te][r], tt, tau[r, k], weights[:, r])
                    for key in METRIC_KEYS:
                        per_arm[m][a][key].append(float(pt[key][0]))
                        per_arm_draws[m][a][key].append(bt[key])
            # policies by IPW
            shares = {a: float((a_te == a).mean()) for a in [CONTROL_LABEL] + treatments}
            assignments = {"contact_none": np.full(len(te), CONTROL_LABEL, dtype=object)}
            for a in treatments:
                assignments[f"all:{a}"] = np.full(len(te), a, dtype=object)
            for m in names:
                tau = preds[m]
                best = np.argmax(tau, axis=1)
                gain = tau[np.arange(len(te)), best]
                pays = (margin * value * gain - cost > 0) if value is not None else gain > 0
                assignments[f"best_arm:{m}"] = np.where(pays, np.array(treatments, dtype=object)[best], CONTROL_LABEL)
            p_row = np.array([shares[a] for a in a_te])
            w_unit = np.ones((1, len(te)))
            base = {o: _ipw(v[te], a_te, assignments["contact_none"], p_row, w_unit) for o, v in outs.items()}
            base_d = {o: _ipw(v[te], a_te, assignments["contact_none"], p_row, weights) for o, v in outs.items()}
            for pname, assign in assignments.items():
                contacts = float((assign != CONTROL_LABEL).mean())
                inc = {o: _ipw(v[te], a_te, assign, p_row, w_unit) - base[o] for o, v in outs.items()}
                inc_d = {o: _ipw(v[te], a_te, assign, p_row, weights) - base_d[o] for o, v in outs.items()}
                qp = _quantities(inc, contacts, outcome, cost, margin, value_per_outcome, population)
                qd = _quantities(inc_d, contacts, outcome, cost, margin, value_per_outcome, population)
                for q in qp:
                    pol_pts.setdefault(pname, {}).setdefault(q, []).append(float(qp[q][0]))
                    pol_draws.setdefault(pname, {}).setdefault(q, []).append(np.broadcast_to(qd[q], (n_boot,)))
    bar.close()

    def arm_block(m):
        out = {}
        for a in treatments:
            b = {}
            for key in METRIC_KEYS:
                point, ci = _pool(per_arm[m][a][key], per_arm_draws[m][a][key])
                b[key], b[f"{key}_ci"] = point, ci
            out[a] = b
        qs = [np.mean(np.stack(per_arm_draws[m][a]["qini"]), axis=0) for a in treatments]
        point = float(np.mean([np.mean(per_arm[m][a]["qini"]) for a in treatments]))
        mean_draws = np.mean(qs, axis=0)
        return {"qini": point, "qini_ci": [float(np.percentile(mean_draws, 2.5)), float(np.percentile(mean_draws, 97.5))],
                "per_arm": out}

    models_out = {m: arm_block(m) | {"params": chosen[m]} for m in names}
    policies = {}
    for pname in pol_pts:
        block = {}
        for q, pts in pol_pts[pname].items():
            point, ci = _pool(pts, pol_draws[pname][q])
            block[q] = point
            if q not in ("contacts", "cost"):
                block[f"{q}_ci"] = ci
        block["contacts_share"] = block["contacts"] / population
        policies[pname] = block
    sel = max(set(val_sel), key=val_sel.count)
    key = "profit" if "profit" in policies["contact_none"] else INCREMENTAL_NAMES.get(outcome, f"incremental_{outcome}")
    simple = [p for p in policies if not p.startswith("best_arm:")]
    fallback = max(simple, key=lambda p: policies[p][key])
    chosen_pol = f"best_arm:{sel}"
    sep = models_out[sel]["qini_ci"][0] > 0
    ci_gain = _pool([a - b for a, b in zip(pol_pts[chosen_pol][key], pol_pts[fallback][key])],
                    [a - b for a, b in zip(pol_draws[chosen_pol][key], pol_draws[fallback][key])])
    if sep and ci_gain[1][0] > 0:
        rec, reason = chosen_pol, f"best arm per customer by {sel} beats {fallback} on {key} (95% CI {ci_gain[1][0]:.2f}..{ci_gain[1][1]:.2f})"
    else:
        rec = fallback
        reason = (f"best arm per customer by {sel} does not show a gain over {fallback} on {key} "
                  f"(Qini CI lower {models_out[sel]['qini_ci'][0]:.4f}, gain CI {ci_gain[1][0]:.2f}..{ci_gain[1][1]:.2f}): falls back to {fallback}")
    return {
        "dataset": spec.name, "treatment": "all", "arms": treatments, "control": spec.control, "outcome": outcome,
        "protocol": {"name": "stratified-70-30x3", "seeds": list(range(seeds)), "n_boot": n_boot,
                     "definition": "as for one arm; per-arm Qini on (arm + control) test rows; policy values by IPW "
                                   "over the randomised arms on the test rows"},
        "models": models_out,
        "baselines": {"random": arm_block("random"), "t_learner": models_out["t_learner"]},
        "selected_model": sel,
        "policy": {"cost_per_contact": cost, "margin": margin, "population": population, "policies": policies,
                   "recommended": rec, "targeting_gain": {"vs": fallback, "diff": ci_gain[0], "ci": ci_gain[1], "on": key},
                   "reason": reason},
        "seconds": round(time.perf_counter() - started, 2),
    }


def _ipw(y, arm, assign, p_row, weights) -> np.ndarray:
    """IPW mean outcome under an assignment: sum w y 1[arm = assign] / p(arm) / sum w; (B,)."""
    hit = (arm == assign).astype(np.float64) / p_row
    return (weights * (y * hit)).sum(axis=1) / weights.sum(axis=1)


__all__ = ["FRACTIONS", "POLICIES", "evaluate_policies", "profit_curve", "run_best_arm", "summarise_policies"]
