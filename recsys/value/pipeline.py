"""Customer value end to end: one entry point, :func:`compute_customer_value`, and its write-back.

Per user it produces (``CustomerValueResult.users``, snapshot row order):

=================  =====================================================================
``clv``            discounted expected value over ``horizon_weeks`` (BG/NBD x Gamma-Gamma),
                   in ``value_unit``; 0 for users with no transaction
``influence``      shrunk behavioural influence: excess followers adopting after the user,
                   per action, beyond the timestamp-shuffle null (empirical-Bayes
                   Beta-Binomial, :func:`recsys.value.influence.apply_influence`; interval in
                   ``influence_low``/``influence_high``); 0 without timestamps
``pagerank``       structural influence on the follow graph (sums to 1)
``weighted_value`` clv + customer influence value (``civ``), in ``value_unit``; exactly
                   ``clv`` unless influence is detected (``metrics["influence"]["detected"]``)
``segment_id``     follow-graph community (:mod:`recsys.value.segments`)
``rfm_segment``    classic RFM segment (:mod:`recsys.value.rfm`); ``no_transactions`` if none
``churn_risk``     P(no transaction in the next ``horizon_weeks``) = 1 - P(active)
``p_alive``        BG/NBD P(alive) (1 for customers without a repeat transaction, by the model)
``propensity``     P(high value next period) from the LightGBM model (prior-corrected)
``explanation``    top SHAP contributions of that prediction: [{feature, value, contribution}]
``clv_explanation`` why the CLV is what it is, in words (:func:`explain_clv`), for every user
=================  =====================================================================

Value unit: a shop export with prices passes ``transactions`` (money; ``value_unit`` names the
currency). Datasets without prices (ciao, epinions, lastfm-hetrec2011) measure value in
*interactions*: every timestamped interaction is one unit, so CLV is the expected number of
future interactions (discounted). Without any timestamp (BG/NBD needs dates) CLV falls back to
the user's historical interaction count, churn risk and P(alive) are NaN and no propensity
model is fitted; the fallback is recorded in ``metrics["clv"]["method"]``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.value.clv import BetaGeoModel, customer_lifetime_value
from recsys.value.influence import InfluenceGraph, apply_influence, learn_influence, pagerank
from recsys.value.propensity import (
    CutState,
    PropensityResult,
    build_cut,
    expected_value_per_transaction,
    fit_propensity,
    next_period_value,
)
from recsys.value.rfm import rfm_scores, snapshot_transactions
from recsys.value.segments import follow_communities, profile_segments

log = logging.getLogger(__name__)
MONTH_WEEKS = 52.0 / 12.0
USER_COLUMNS = (
    "user_id", "clv", "influence", "pagerank", "weighted_value", "segment_id", "rfm_segment",
    "churn_risk", "p_alive", "propensity", "explanation", "clv_explanation",
)
SEGMENT_LIST_COLUMNS = ("top_categories", "top_influencers", "rfm_mix", "members_by_rule", "detected_influencer_ids")


@dataclass
class CustomerValueResult:
    """The output of :func:`compute_customer_value`.

    Attributes:
        dataset: dataset name.
        value_unit: ``"interactions"`` or the currency/money unit of the transactions.
        users: per-user frame (module docstring) plus ``frequency``, ``recency``, ``T``,
            ``monetary_value``, ``value_per_transaction``, ``expected_transactions``,
            ``p_active``, ``followers``, ``followees``, ``assignment`` (segment rule).
        segments: per-segment profile (:func:`recsys.value.segments.profile_segments`).
        metrics: CLV fit and holdout check, propensity evaluation, influence statistics,
            modularity, counts.
        calibration: holdout check by decile of predicted value (``decile``, ``customers``,
            ``predicted_mean``, ``actual_mean``).
        importance: permutation importance of the propensity model (may be empty).
        influence_probabilities: (n, n) CSR [v, u] = p_infl(v, u) for cascades (audiences).
        quarantine: transaction rows left out, with a reason (:func:`prepare_transactions`).
    """

    dataset: str
    value_unit: str
    users: pd.DataFrame
    segments: pd.DataFrame
    metrics: dict
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    influence_probabilities: sp.csr_matrix | None = None
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS)))
    _index: dict = field(default=None, repr=False)  # type: ignore[assignment]

    def user(self, user_id: str) -> dict | None:
        """The value record of one (pseudonymised) user id, or None when unknown."""
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.users["user_id"])}
        i = self._index.get(user_id)
        if i is None:
            return None
        row = self.users.iloc[i]
        return {k: _jsonable(row[k]) for k in self.users.columns}

    def segment(self, segment_id: str) -> dict | None:
        """The profile of one segment, or None when unknown."""
        hit = self.segments[self.segments["segment_id"] == segment_id]
        if hit.empty:
            return None
        return {k: _jsonable(v) for k, v in hit.iloc[0].items()}

    def bgnbd(self) -> BetaGeoModel | None:
        """The BG/NBD model behind ``clv`` (rebuilt from its parameters), or None in the fallback."""
        params = self.metrics.get("clv", {}).get("bgnbd")
        return BetaGeoModel(params=dict(params)) if params else None


def _jsonable(value):
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class TransactionInputError(ValueError):
    """Transactions that cannot be used as given (bad date, no row matching a known user).

    The CLI maps it to exit 2 (bad input); nothing is computed or written.
    """


class ValueFitError(RuntimeError):
    """A value model fit that must not be served: a BG/NBD parameter at the optimiser's boundary
    (e.g. a ~ 4e-13) or a Gamma-Gamma q <= 1 (infinite population mean spend). The job fails
    (CLI exit 1) before anything is written, so the previous result keeps serving."""


#: A BG/NBD / Gamma-Gamma parameter outside [BOUNDARY_LOW, BOUNDARY_HIGH] is at the boundary:
#: the optimiser works on log-parameters clipped to [-30, 30], and the L2 penalty keeps sound fits
#: well inside (ciao: r 0.89, alpha 1.23, a 0.83, b 7.10; CDNOW: 0.24, 4.41, 0.79, 2.43).
BOUNDARY_LOW, BOUNDARY_HIGH = 1e-6, 1e6

#: The written rule for money transactions (docs/customer-value.md, "BTYD inputs").
NET_SPEND_RULE = ("rows are summed per customer and day; a day is a purchase occasion (first or repeat) only "
                  "when that net spend is > 0; days with net spend <= 0 (refunds, zero-amount rows) are not "
                  "occasions, add no value and are quarantined as non_positive_net_spend")

QUARANTINE_COLUMNS = ("line", "reason", "customer_id", "date", "value")


def check_value_fit(bgnbd, gamma_gamma) -> None:
    """Raise :class:`ValueFitError` when a served fit is degenerate (see the class)."""
    problems = []
    if bgnbd is not None:
        for k, v in bgnbd.params.items():
            if not (np.isfinite(v) and BOUNDARY_LOW <= v <= BOUNDARY_HIGH):
                problems.append(f"BG/NBD {k} = {v:.3g} is at the parameter boundary")
    if gamma_gamma is not None:
        q = gamma_gamma.params.get("q", float("nan"))
        if not (np.isfinite(q) and q > 1.0):
            problems.append(f"Gamma-Gamma q = {q:.3g} <= 1 (the mean spend per transaction is infinite)")
        for k, v in gamma_gamma.params.items():
            if not (np.isfinite(v) and BOUNDARY_LOW <= v <= BOUNDARY_HIGH):
                problems.append(f"Gamma-Gamma {k} = {v:.3g} is at the parameter boundary")
    if problems:
        raise ValueFitError("value model fit not served: " + "; ".join(problems))


def _parse_dates(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        return out.astype("datetime64[ns]")
    try:
        return pd.to_datetime(values.astype(str).str.strip(), format="ISO8601", utc=True) \
            .dt.tz_localize(None).astype("datetime64[ns]")
    except (ValueError, TypeError):
        for row, v in enumerate(values.astype(str)):
            try:
                pd.to_datetime(v.strip(), format="ISO8601", utc=True)
            except (ValueError, TypeError):
                raise TransactionInputError(f"transactions row {row + 1}: field 'date': cannot parse {v!r} as an "
                                            "ISO 8601 date or date-time") from None
        raise


def normalise_transactions(transactions: pd.DataFrame) -> pd.DataFrame:
    """A shop's transactions as the value frame ``customer_id``, ``date``, ``value`` (+ ``line``).

    Args:
        transactions: columns ``user_id`` or ``customer_id`` (pseudonymised, as in the snapshot:
            :func:`etl.transactions.read_transactions` reads and pseudonymises a shop's file);
            ``ts`` (Unix seconds) or ``date`` (datetime64, or ISO 8601 strings, dates and
            date-times mixed); ``value`` or ``amount`` (money per transaction); optional ``line``
            (the row's line in the source file, kept for the quarantine).
    Returns:
        Frame ``customer_id`` (str), ``date`` (datetime64[ns], UTC), ``value`` (float64; a
        missing amount is 0), ``line`` (int64; row number + 1 when not given). No row is dropped.
    Raises:
        KeyError: a required column is missing.
        TransactionInputError: a date that does not parse (row named).
    """
    cid = "customer_id" if "customer_id" in transactions else "user_id"
    if cid not in transactions:
        raise KeyError("transactions need a user_id (or customer_id) column")
    if "date" in transactions:
        dates = _parse_dates(transactions["date"])
    elif "ts" in transactions:
        dates = pd.to_datetime(pd.to_numeric(transactions["ts"]), unit="s")
    else:
        raise KeyError("transactions need a ts (Unix seconds) or date column")
    vcol = "value" if "value" in transactions else "amount"
    if vcol not in transactions:
        raise KeyError("transactions need a value (or amount) column")
    line = (transactions["line"].to_numpy(np.int64) if "line" in transactions
            else np.arange(1, len(transactions) + 1, dtype=np.int64))
    out = pd.DataFrame({
        "customer_id": transactions[cid].astype(str).to_numpy(),
        "date": dates.astype("datetime64[ns]").to_numpy(),
        "value": pd.to_numeric(transactions[vcol], errors="coerce").fillna(0.0).to_numpy(np.float64),
        "line": line,
    })
    if out["date"].isna().any():
        row = int(np.flatnonzero(out["date"].isna().to_numpy())[0])
        raise TransactionInputError(f"transactions line {int(line[row])}: field 'date': missing date")
    return out.reset_index(drop=True)


def prepare_transactions(
    transactions: pd.DataFrame,
    snapshot: Snapshot,
    observation_end: pd.Timestamp | str | None = None,
    money: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The transactions the value models use, and what was left out with a reason.

    Rules, in order: rows dated after ``observation_end`` (day resolution) are quarantined
    ``after_observation_end``; rows of customers the snapshot does not know are quarantined
    ``unknown_user``; for money (``money=True``) :data:`NET_SPEND_RULE` (``non_positive_net_spend``).

    Args:
        transactions: frame accepted by :func:`normalise_transactions`.
        snapshot: for the known user ids.
        observation_end: last day observed (inclusive); None = the latest date in the data.
        money: apply the net-spend rule (shop transactions; interactions are worth 1 each).
    Returns:
        ``(used, quarantine, report)``: ``used`` has ``customer_id``, ``date``, ``value``,
        ``line``; ``quarantine`` has :data:`QUARANTINE_COLUMNS`; ``report`` is
        ``{"rows", "used", "quarantined": {reason: rows}, "observation_end", "rule"}``.
    Raises:
        TransactionInputError: rows were given but none belongs to a known user (e.g. raw shop
            ids that were not pseudonymised), or a bad date.
    """
    tx = normalise_transactions(transactions)
    day = tx["date"].dt.floor("D")
    end = pd.Timestamp(observation_end).floor("D") if observation_end is not None else (
        day.max() if len(tx) else None)
    reason = pd.Series("", index=tx.index, dtype=object)
    if end is not None:
        reason[day > end] = "after_observation_end"
    known = np.array([snapshot.user_index(u) is not None for u in tx["customer_id"]], dtype=bool)
    reason[(reason == "") & ~known] = "unknown_user"
    if len(tx) and not known.any():
        raise TransactionInputError(
            f"none of the {len(tx)} transaction rows belongs to a user of the {snapshot.dataset!r} snapshot: "
            "pass the shop's own customer ids (they are pseudonymised with SOCIALREC_PSEUDONYM_KEY like every "
            "other table) and check the key is the one the ETL used")
    if money:
        ok = reason == ""
        net = tx[ok].assign(day=day[ok]).groupby(["customer_id", "day"])["value"].transform("sum")
        reason[net.index[net.to_numpy() <= 0]] = "non_positive_net_spend"
    bad = reason != ""
    quarantine = tx[bad].assign(reason=reason[bad])[list(QUARANTINE_COLUMNS)].reset_index(drop=True)
    used = tx[~bad].reset_index(drop=True)
    report = {"rows": int(len(tx)), "used": int(len(used)),
              "quarantined": {str(k): int(v) for k, v in reason[bad].value_counts().items()},
              "observation_end": str(end.date()) if end is not None else None,
              "rule": NET_SPEND_RULE if money else "interactions: every timestamped interaction is one unit"}
    return used, quarantine, report


def compute_customer_value(
    snapshot: Snapshot,
    transactions: pd.DataFrame | None = None,
    *,
    value_unit: str | None = None,
    horizon_weeks: float = 52.0,
    discount_rate: float = 0.01,
    tau_days: float = 30.0,
    z_margin: float = 1.645,
    high_value_quantile: float = 0.95,
    n_train_cuts: int = 3,
    min_segment_size: int = 20,
    with_propensity: bool = True,
    importance_repeats: int = 5,
    seed: int = 0,
    observation_end: pd.Timestamp | str | None = None,
) -> CustomerValueResult:
    """CLV, influence, influence-weighted value, segments and propensity for every user.

    Args:
        snapshot: the dataset's snapshot (users, interactions with timestamps, follows).
        transactions: optional money transactions (see :func:`normalise_transactions`); None =
            the snapshot's timestamped interactions, one unit each (value unit "interactions").
        value_unit: name of the unit (default "money" with transactions, else "interactions").
        horizon_weeks: CLV horizon and "next period" length H.
        discount_rate: monthly discount rate for CLV (0.01 ~ 12.7 % a year).
        tau_days: influence window (Goyal et al.).
        z_margin: influence significance margin (see :mod:`recsys.value.influence`).
        high_value_quantile: propensity label quantile (0.95 = top 5 %).
        n_train_cuts: propensity training cuts (see :mod:`recsys.value.propensity`).
        min_segment_size: smallest community kept as a segment.
        with_propensity: fit the LightGBM model (needs about (n_train_cuts + 1) x H of history).
        importance_repeats: permutation-importance repeats.
        seed: seed for Leiden and LightGBM.
        observation_end: last observed day (inclusive); later rows are quarantined
            ``after_observation_end`` (:func:`prepare_transactions`). None = the latest date.
    Returns:
        :class:`CustomerValueResult`.
    Raises:
        ValueError: the snapshot has no users.
        TransactionInputError: unusable transactions (:func:`prepare_transactions`).
        ValueFitError: the served BG/NBD / Gamma-Gamma fit is degenerate (:func:`check_value_fit`).
    """
    if snapshot.n_users == 0:
        raise ValueError("the snapshot has no users")
    n = snapshot.n_users
    metrics: dict = {"dataset": snapshot.dataset, "users": n, "horizon_weeks": float(horizon_weeks)}
    quarantine = pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    if transactions is not None:
        tx, quarantine, metrics["transactions"] = prepare_transactions(transactions, snapshot, observation_end)
        metrics["transactions_unknown_user"] = int(metrics["transactions"]["quarantined"].get("unknown_user", 0))
        if tx.empty:
            raise TransactionInputError("no transaction is left to fit on: " + json.dumps(metrics["transactions"]))
        unit = value_unit or "money"
    elif snapshot.has_timestamps:
        tx, quarantine, metrics["transactions"] = prepare_transactions(
            snapshot_transactions(snapshot)[["customer_id", "date", "value"]], snapshot, observation_end, money=False)
        unit = value_unit or "interactions"
    else:
        tx = None
        unit = value_unit or "interactions"
    metrics["value_unit"] = unit
    pr_scores = pagerank(snapshot.follows)
    fol = snapshot.follows.tocsr()
    users = pd.DataFrame({"user_id": snapshot.user_ids.astype(str)})
    users["followers"] = np.asarray(fol.sum(axis=0)).ravel()
    users["followees"] = np.asarray(fol.sum(axis=1)).ravel()
    users["pagerank"] = pr_scores
    for col in ("frequency", "recency", "T", "monetary_value", "value_per_transaction",
                "expected_transactions", "p_active", "p_alive", "churn_risk", "propensity"):
        users[col] = np.nan
    users["clv"] = 0.0
    users["explanation"] = [[] for _ in range(n)]
    users["rfm_segment"] = "no_transactions"
    calibration = pd.DataFrame()
    importance = pd.DataFrame()

    if tx is None or tx.empty:
        counts = np.diff(snapshot.interactions.tocsr().indptr).astype(np.float64)
        users["clv"] = counts
        users["historical_value"] = counts
        influence = learn_influence(snapshot, tau_days=tau_days, z_margin=z_margin)
        metrics["clv"] = {"method": "historical-interaction-count (no timestamps: BG/NBD needs dates)"}
        users["clv_explanation"] = [f"no timestamps, so no BG/NBD: CLV = the user's historical interaction count "
                                    f"({c:.0f})" for c in counts]
    else:
        prop: PropensityResult | None = None
        end = pd.Timestamp(metrics["transactions"]["observation_end"])
        if with_propensity:
            try:
                prop = fit_propensity(snapshot, tx, end=end, horizon_weeks=horizon_weeks, n_train_cuts=n_train_cuts,
                                      high_value_quantile=high_value_quantile, tau_days=tau_days, seed=seed,
                                      importance_repeats=importance_repeats, z_margin=z_margin)
            except ValueError as exc:  # too little history for the temporal design
                log.warning("propensity model skipped: %s", exc)
                metrics["propensity"] = {"skipped": str(exc)}
        current: CutState = prop.current if prop is not None else build_cut(
            snapshot, tx, end, horizon_weeks, tau_days, z_margin=z_margin)
        check_value_fit(current.bgnbd, current.gamma_gamma)
        influence = current.influence
        summ = current.summary
        idx = summ.index.to_numpy()
        x, t_x, T = summ["frequency"], summ["recency"], summ["T"]
        m = expected_value_per_transaction(summ, current.gamma_gamma)
        users.loc[idx, "frequency"] = x.to_numpy()
        users.loc[idx, "recency"] = t_x.to_numpy()
        users.loc[idx, "T"] = T.to_numpy()
        users.loc[idx, "monetary_value"] = summ["monetary_value"].to_numpy()
        users.loc[idx, "historical_value"] = summ["total_value"].to_numpy()
        users.loc[idx, "value_per_transaction"] = m
        bg = current.bgnbd
        clv_metrics: dict = {"method": "bgnbd+gammagamma", "value_unit": unit, "customers": int(len(summ)),
                             "discount_rate_monthly": discount_rate, "end": str(current.cut.date())}
        if bg is not None:
            users.loc[idx, "clv"] = customer_lifetime_value(bg, x, t_x, T, m, horizon=horizon_weeks,
                                                            step=MONTH_WEEKS, discount_rate=discount_rate)
            users.loc[idx, "expected_transactions"] = bg.conditional_expected_transactions(horizon_weeks, x, t_x, T)
            users.loc[idx, "p_alive"] = bg.p_alive(x, t_x, T)
            p_active = bg.p_active(horizon_weeks, x, t_x, T)
            users.loc[idx, "p_active"] = p_active
            # Uncalibrated BG/NBD churn; replaced below by the calibrated one when the propensity design ran.
            users.loc[idx, "churn_risk"] = 1.0 - p_active
            clv_metrics["bgnbd"] = dict(bg.params)
            clv_metrics["bgnbd_log_likelihood"] = bg.log_likelihood
        else:
            users.loc[idx, "clv"] = summ["total_value"].to_numpy()
            clv_metrics["method"] = "historical-value (too few repeat customers for BG/NBD)"
        if current.gamma_gamma is not None:
            clv_metrics["gamma_gamma"] = dict(current.gamma_gamma.params)
        rfm = rfm_scores(summ)
        users.loc[idx, "rfm_segment"] = rfm["rfm_segment"].to_numpy()
        if prop is not None:
            users.loc[idx, "propensity"] = prop.propensity
            expl = pd.Series(prop.explanations, index=idx)
            users["explanation"] = [expl.get(i, []) for i in range(n)]
            metrics["propensity"] = prop.metrics
            if prop.churn_risk is not None:
                users.loc[idx, "churn_risk"] = prop.churn_risk
            metrics.update(_headline_metrics(prop.metrics))
            importance = prop.permutation_importance
            eval_state = prop.states.get(pd.Timestamp(prop.metrics["evaluation_cut"]))
            if eval_state is not None:
                calibration, check = clv_holdout_check(snapshot, tx, eval_state, horizon_weeks)
                clv_metrics["holdout"] = check
        metrics["clv"] = clv_metrics
        users["clv_explanation"] = explain_clv(users, unit, horizon_weeks, bg is not None, str(current.cut.date()))

    # influence is tested against homophily before it weighs value (recsys.value.influence)
    metrics["influence"], influence_probs = apply_influence(users, snapshot, unit, tau_days=tau_days, seed=seed,
                                                            features=influence)
    metrics["influence"]["pagerank_sum"] = float(pr_scores.sum())

    comm = follow_communities(snapshot, min_size=min_segment_size, seed=seed)
    users["segment_id"] = comm.segment_id
    users["assignment"] = comm.assignment
    # Detected influencers (an optional input of the segment profile): users whose shrunk influence
    # is significant, and only when the influence tests passed for the dataset.
    detected = None
    if metrics.get("influence", {}).get("detected"):
        col = "influence_significant" if "influence_significant" in users else "influence"
        detected = users[col].to_numpy() > 0
    segments = profile_segments(users, snapshot, influencers=detected)
    kept = int((segments["segment_id"] != "unconnected").sum()) if len(segments) else 0
    structure = kept >= 2 and comm.modularity > 0.0
    metrics["segments"] = {
        "community_structure": "found" if structure else (
            f"no community structure found: {kept} community of >= {min_segment_size} members, modularity "
            f"{comm.modularity:.3f}; segments are not social communities"),
        "community_structure_found": bool(structure),
        "modularity": comm.modularity if structure else None, "modularity_raw": comm.modularity,
        "modularity_leiden": comm.modularity_leiden,
        "modularity_unweighted": comm.modularity_unweighted,
        "communities_leiden": comm.n_communities_leiden, "segments": int(len(segments)),
        "min_segment_size": int(min_segment_size),
        "users_by_rule": {str(k): int(v) for k, v in pd.Series(comm.assignment).value_counts().items()},
        "rfm_segments": {str(k): int(v) for k, v in users["rfm_segment"].value_counts().items()},
    }
    ordered = list(USER_COLUMNS) + [c for c in users.columns if c not in USER_COLUMNS]
    return CustomerValueResult(dataset=snapshot.dataset, value_unit=unit, users=users[ordered], segments=segments,
                               metrics=_jsonable(metrics), calibration=calibration, importance=importance,
                               influence_probabilities=influence_probs, quarantine=quarantine)


def explain_clv(users: pd.DataFrame, unit: str, horizon_weeks: float, bgnbd: bool, end: str) -> list[str]:
    """One sentence per user saying where their CLV comes from.

    Args:
        users: the per-user frame with ``frequency``, ``recency``, ``T`` (weeks), ``clv``,
            ``expected_transactions``, ``value_per_transaction``, ``p_alive``, ``monetary_value``
            (NaN for users without a transaction).
        unit: the value unit. horizon_weeks: the CLV horizon. bgnbd: whether BG/NBD was fitted.
        end: the observation end (ISO date).
    Returns:
        (n_users,) list of str. A customer first seen on the observation end day (T = 0) is told
        so: with no history the model gives them the population's expectation for a new customer.
    """
    out = []
    for x, t_x, T, clv, e, m, pa in users[["frequency", "recency", "T", "clv", "expected_transactions",
                                           "value_per_transaction", "p_alive"]].itertuples(index=False):
        if not np.isfinite(x):
            out.append(f"no transaction on or before the observation end {end}: CLV 0")
        elif not bgnbd:
            out.append(f"too few repeat customers for BG/NBD: CLV = historical value ({clv:.2f} {unit})")
        else:
            head = (f"{x:.0f} repeat occasion(s), last one {T - t_x:.1f} weeks before {end}, first {T:.1f} weeks "
                    f"before; P(alive) {pa:.2f}; expected {e:.2f} occasion(s) in the next {horizon_weeks:g} weeks "
                    f"x {m:.2f} {unit} each (Gamma-Gamma), discounted monthly = {clv:.2f} {unit}")
            if T <= 0:
                head = ("first and only occasion on the observation end day (T = 0): no history to learn this "
                        "customer's rate from, so BG/NBD gives the expectation for a brand-new customer "
                        "(population rate, P(alive) = 1); " + head)
            elif x == 0:
                head = "one occasion only, so BG/NBD assumes the customer is still alive (P(alive) = 1); " + head
            out.append(head)
    return out


def _headline_metrics(prop: dict) -> dict:
    """``baselines``, ``calibration`` and ``ablation`` of the propensity evaluation, for the JSON summary."""
    def side(block: dict) -> dict:
        return {"customers": block["customers"], "base_rate": block["base_rate"], "model": block["model"],
                **block["baselines"], "comparison": block["comparison"]}

    baselines = {"evaluation_cut": prop["evaluation_cut"], "protocol": prop["protocol"], "label": prop["label"],
                 **side(prop)}
    ablation = {"model": prop["model"], "no_graph": prop["ablation"]["no_graph"]}
    if "recently_active" in prop:
        baselines["recently_active"] = side(prop["recently_active"])
        ablation["recently_active"] = {"model": prop["recently_active"]["model"],
                                       "no_graph": prop["recently_active"]["ablation"]["no_graph"]}
    cal = prop["calibration"]
    calibration = {"ece": cal["propensity"]["ece"], "brier": cal["propensity"]["brier"],
                   "mean_predicted": cal["propensity"]["mean_predicted"], "base_rate": cal["propensity"]["base_rate"],
                   "evaluation_cut": prop["evaluation_cut"], "validation_cut": prop["validation_cut"], **cal}
    return {"baselines": baselines, "calibration": calibration, "ablation": ablation}


def clv_holdout_check(snapshot: Snapshot, transactions: pd.DataFrame, state: CutState,
                      horizon_weeks: float) -> tuple[pd.DataFrame, dict]:
    """Predicted vs actual next-period transactions and value for the models fitted at ``state.cut``.

    Args:
        snapshot: the snapshot (id maps).
        transactions: the value transactions.
        state: a cut with a fitted BG/NBD (the propensity evaluation cut).
        horizon_weeks: the holdout length.
    Returns:
        ``(by_decile, totals)``: deciles of predicted value (1 = lowest) with ``customers``,
        ``predicted_mean``, ``actual_mean`` (value unit); totals of repeat transactions (days) and
        value, predicted vs actual, with the relative errors.
    """
    if state.bgnbd is None:
        return pd.DataFrame(), {"skipped": "no BG/NBD at the cut"}
    summ = state.summary
    x, t_x, T = summ["frequency"], summ["recency"], summ["T"]
    pred_tx = state.bgnbd.conditional_expected_transactions(horizon_weeks, x, t_x, T)
    pred_value = state.baseline
    days = transactions.assign(day=pd.to_datetime(transactions["date"]).dt.floor("D"))
    cut = state.cut
    window = days[(days["day"] > cut) & (days["day"] <= cut + pd.Timedelta(weeks=horizon_weeks))]
    per_day = window.groupby(["customer_id", "day"]).size().reset_index()
    uidx = np.array([snapshot.user_index(u) for u in per_day["customer_id"]], dtype=np.int64)
    actual_tx = np.bincount(uidx, minlength=snapshot.n_users)[summ.index.to_numpy()].astype(np.float64)
    actual_value = next_period_value(transactions, snapshot, cut, horizon_weeks, summ.index)
    ranks = pd.Series(pred_value).rank(method="first")
    decile = np.ceil(ranks / len(ranks) * 10).astype(int).clip(1, 10).to_numpy()
    table = pd.DataFrame({"decile": decile, "predicted": pred_value, "actual": actual_value})
    by = table.groupby("decile").agg(customers=("actual", "size"), predicted_mean=("predicted", "mean"),
                                     actual_mean=("actual", "mean")).reset_index()
    totals = {
        "cut": str(cut.date()),
        "weeks": float(horizon_weeks),
        "customers": int(len(summ)),
        "predicted_repeat_transactions": float(pred_tx.sum()),
        "actual_repeat_transactions": int(actual_tx.sum()),
        "relative_error_transactions": float((pred_tx.sum() - actual_tx.sum()) / max(actual_tx.sum(), 1.0)),
        "predicted_value": float(pred_value.sum()),
        "actual_value": float(actual_value.sum()),
        "relative_error_value": float((pred_value.sum() - actual_value.sum()) / max(actual_value.sum(), 1e-12)),
    }
    return by, totals


# ---------------------------------------------------------------------------- persistence
def _result_dir(home: str | Path, dataset: str) -> Path:
    return Path(home) / "value" / dataset.replace(":", "_").replace("/", "_")


def save_result(result: CustomerValueResult, home: str | Path) -> Path:
    """Save a result under ``home/value/<dataset>/`` (Parquet + JSON + NPZ + quarantine CSV).

    Atomic: written into a sibling temporary folder, then swapped in by renames, so a reader
    sees the previous result or the new one, never a mix. Returns the folder.
    """
    import shutil
    import tempfile

    final = _result_dir(home, result.dataset)
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.new-", dir=final.parent))
    try:
        _write_result(result, folder)
        old = final.parent / f".{final.name}.old-{folder.name[-8:]}"
        if final.exists():
            os.replace(final, old)
        os.replace(folder, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
    return final


def _write_result(result: CustomerValueResult, folder: Path) -> None:
    users = result.users.copy()
    users["explanation"] = [json.dumps(_jsonable(e)) for e in users["explanation"]]
    users.to_parquet(folder / "users.parquet", index=False)
    segs = result.segments.copy()
    for col in SEGMENT_LIST_COLUMNS:
        if col in segs:
            segs[col] = [json.dumps(_jsonable(v)) for v in segs[col]]
    segs.to_parquet(folder / "segments.parquet", index=False)
    result.calibration.to_parquet(folder / "calibration.parquet", index=False)
    result.importance.to_parquet(folder / "importance.parquet", index=False)
    (folder / "metrics.json").write_text(json.dumps({"value_unit": result.value_unit, **result.metrics}, indent=2))
    if result.influence_probabilities is not None:
        sp.save_npz(folder / "influence.npz", result.influence_probabilities.tocsr())
    result.quarantine.reindex(columns=list(QUARANTINE_COLUMNS)).to_csv(folder / "quarantine.csv", index=False)


def load_result(home: str | Path, dataset: str) -> CustomerValueResult:
    """Load what :func:`save_result` wrote. Raises FileNotFoundError when nothing was saved."""
    folder = _result_dir(home, dataset)
    if not (folder / "users.parquet").exists():
        raise FileNotFoundError(f"no customer-value result under {folder}")
    users = pd.read_parquet(folder / "users.parquet")
    users["explanation"] = [json.loads(e) for e in users["explanation"]]
    segs = pd.read_parquet(folder / "segments.parquet")
    for col in SEGMENT_LIST_COLUMNS:
        if col in segs:
            segs[col] = [json.loads(v) for v in segs[col]]
    metrics = json.loads((folder / "metrics.json").read_text())
    unit = metrics.pop("value_unit", "interactions")
    probs = sp.load_npz(folder / "influence.npz").tocsr() if (folder / "influence.npz").exists() else None
    return CustomerValueResult(
        dataset=dataset, value_unit=unit, users=users, segments=segs, metrics=metrics,
        calibration=pd.read_parquet(folder / "calibration.parquet"),
        importance=pd.read_parquet(folder / "importance.parquet"), influence_probabilities=probs,
        quarantine=(pd.read_csv(folder / "quarantine.csv") if (folder / "quarantine.csv").exists()
                    else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))),
    )


# ---------------------------------------------------------------------------- write-back
SCORE_COLUMNS = ("clv", "influence", "pagerank", "weighted_value", "churn_risk", "p_alive", "propensity", "rfm_segment")


def segment_properties(segments: pd.DataFrame) -> pd.DataFrame:
    """Segment profiles as node properties, keyed ``segment_id``: scalars, lists of primitives
    (Neo4j list properties, queried without APOC) and a readable ``label``.

    ``top_categories`` (category names, best first) with ``top_category_shares`` beside it,
    ``top_influencers`` (user pseudonyms, best first) with ``top_influencer_scores``, and
    ``label`` (:func:`segment_label`, e.g. ``"Books / Music · high value"``).
    """
    tiers = _value_tiers(segments["mean_value"].to_numpy(np.float64))
    return pd.DataFrame({
        "segment_id": segments["segment_id"].astype(str).to_numpy(),
        "label": [segment_label(cats, tier, churn) for cats, tier, churn in
                  zip(segments["top_categories"], tiers, segments["churn_risk_share"])],
        "size": segments["size"].to_numpy(np.int64),
        "total_value": segments["total_value"].to_numpy(np.float64),
        "mean_value": segments["mean_value"].to_numpy(np.float64),
        "churn_risk_share": segments["churn_risk_share"].astype(np.float64).to_numpy(),
        "top_categories": _object_column([[str(c["category"]) for c in v] for v in segments["top_categories"]]),
        "top_category_shares": _object_column([[float(c["share"]) for c in v] for v in segments["top_categories"]]),
        "top_influencers": _object_column([[str(c["user_id"]) for c in v] for v in segments["top_influencers"]]),
        "top_influencer_scores": _object_column([[float(c["influence"]) for c in v] for v in segments["top_influencers"]]),
        **{c: segments[c].astype(t).to_numpy() for c, t in (
            ("share_of_value", np.float64), ("share_active_13w", np.float64), ("median_recency_weeks", np.float64),
            ("detected_influencers", np.int64), ("suggested_action", str)) if c in segments},
    })


def _object_column(values: list) -> np.ndarray:
    """A (n,) object array holding one Python list per row (never a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _value_tiers(mean_value: np.ndarray) -> list[str]:
    """``high`` / ``mid`` / ``low`` value by the rank of each segment's mean value (thirds)."""
    n = len(mean_value)
    if n == 0:
        return []
    order = np.argsort(-np.nan_to_num(mean_value, nan=-np.inf), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return ["high" if r < n / 3 else "mid" if r < 2 * n / 3 else "low" for r in rank]


def segment_label(top_categories: list, tier: str, churn_risk_share: float | None = None) -> str:
    """A readable segment name from its profile: its top two categories, its value tier and an
    "at risk" mark when most members with a history are at churn risk.

    Example: ``"Books / Music · high value"``, ``"no category · low value · at risk"``.
    """
    names = [str(c["category"]) for c in top_categories[:2]] if top_categories else []
    parts = [" / ".join(names) if names else "no category", f"{tier} value"]
    if churn_risk_share is not None and churn_risk_share == churn_risk_share and churn_risk_share > 0.5:
        parts.append("at risk")
    return " · ".join(parts)


def write_back(result: CustomerValueResult, store, model_version: str) -> dict:
    """Write value, influence, weighted value and segments back to the store.

    User scores go through ``store.write_scores("User", ...)`` (Neo4j node properties with the
    Neo4j store). Segments: when the store has ``write_segments(assignments, segments)`` (the
    Neo4j store: ``(:Segment)`` nodes with the profile as properties and
    ``(:User)-[:IN_SEGMENT]->(:Segment)``) it is used; otherwise ``segment`` is written as a user
    score and the profiles as ``Segment`` scores.

    Args:
        result: a :class:`CustomerValueResult`.
        store: a :class:`graph.store.GraphStore`.
        model_version: version tag stored beside the values (also a segment property).
    Returns:
        ``{"users": n, "segments": m, "segment_write": "write_segments" | "score"}``.
    """
    users = result.users
    ids = users["user_id"].to_numpy()
    scores = {c: users[c].to_numpy() for c in SCORE_COLUMNS}
    scores["rfm_segment"] = users["rfm_segment"].astype(str).to_numpy()
    props = segment_properties(result.segments)
    writer = getattr(store, "write_segments", None)
    if callable(writer):
        assignments = pd.DataFrame({"user_id": ids.astype(str), "segment_id": users["segment_id"].astype(str)})
        writer(assignments, props.assign(model_version=model_version))
        how, n_segs = "write_segments", len(props)
    else:
        scores["segment"] = users["segment_id"].astype(str).to_numpy()
        seg_scores = {c: props[c].to_numpy() for c in props.columns if c != "segment_id"}
        n_segs = store.write_scores("Segment", props["segment_id"].to_numpy(), seg_scores, model_version)
        how = "score"
    n_users = store.write_scores("User", ids, scores, model_version)
    return {"users": int(n_users), "segments": int(n_segs), "segment_write": how}


# ---------------------------------------------------------------------------- the whole job
def run_value_job(snapshot: Snapshot, store, home: str | Path, model_version: str,
                  transactions: pd.DataFrame | None = None, **options) -> dict:
    """Compute, write back, save for the API and write the HTML report (``socialrec value``).

    Args:
        snapshot: the dataset's snapshot.
        store: the store to write scores/segments back to.
        home: ``SOCIALREC_HOME``; the result goes to ``home/value/<dataset>/`` and the report to
            ``home/reports/value-<dataset>.html``.
        model_version: version tag for the write-back.
        transactions: optional money transactions (see :func:`compute_customer_value`).
        options: keyword arguments of :func:`compute_customer_value`.
    Returns:
        A JSON-able summary: ``{"dataset", "value_unit", "model_version", "report", "result_dir",
        "written", "clv", "propensity", "influence", "segments"}``.
    """
    from recsys.value.report import write_report

    result = compute_customer_value(snapshot, transactions, **options)
    written = write_back(result, store, model_version)
    folder = save_result(result, home)
    safe = snapshot.dataset.replace(":", "_").replace("/", "_")
    report = write_report(result, Path(home) / "reports" / f"value-{safe}.html")
    m = result.metrics
    return _jsonable({
        "dataset": snapshot.dataset, "value_unit": result.value_unit, "model_version": model_version,
        "report": str(report), "result_dir": str(folder), "written": written,
        "clv": m.get("clv"), "baselines": m.get("baselines"), "calibration": m.get("calibration"),
        "ablation": m.get("ablation"), "transactions": m.get("transactions"),
        "quarantine": str(folder / "quarantine.csv"),
        "propensity": m.get("propensity"), "influence": m.get("influence"),
        "segments": m.get("segments"),
    })
