"""RFM features from a transaction log, and classic RFM segments.

Vocabulary (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): for a customer
observed from their first transaction to the end of a calibration period,

* ``frequency`` x — number of *repeat* transactions (transactions after the first);
* ``recency`` t_x — time of the last transaction, measured from the first one;
* ``T`` — time from the first transaction to the end of the calibration period;
* ``monetary_value`` — mean value of the repeat transactions (0 when x = 0), the z-bar of the
  Gamma-Gamma model (Fader & Hardie 2013).

Times are in ``time_unit_days`` units (weeks by default, as in the BG/NBD paper). Transactions
are first collapsed to one per customer-day, summing their value: the paper's protocol, and the
natural unit for day-resolution timestamps (ciao).

The transaction frame used throughout ``recsys.value`` has three columns:
``customer_id`` (str), ``date`` (datetime64, day resolution or finer) and ``value`` (float, money
or interactions — see ``docs/customer-value.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graph.snapshot import Snapshot

TRANSACTION_COLUMNS = ("customer_id", "date", "value")
DAY = pd.Timedelta(days=1)


def collapse_to_days(transactions: pd.DataFrame) -> pd.DataFrame:
    """One transaction per customer-day, values summed.

    Args:
        transactions: frame with ``customer_id``, ``date`` (datetime64 or anything
            ``pd.to_datetime`` reads), ``value`` (float; NaN counts as 0).
    Returns:
        Frame with columns ``customer_id`` (str), ``date`` (datetime64[ns], floored to the day),
        ``value`` (float64) and ``n`` (rows merged), sorted by customer then date.
    Raises:
        KeyError: if a column is missing.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise KeyError(f"transactions lack column(s) {missing}")
    frame = pd.DataFrame(
        {
            "customer_id": transactions["customer_id"].astype(str).to_numpy(),
            "date": pd.to_datetime(transactions["date"]).dt.floor("D").astype("datetime64[ns]").to_numpy(),
            "value": pd.to_numeric(transactions["value"], errors="coerce").fillna(0.0).astype(np.float64).to_numpy(),
        }
    )
    out = frame.groupby(["customer_id", "date"], sort=True).agg(value=("value", "sum"), n=("value", "size"))
    return out.reset_index()


def calibration_summary(
    transactions: pd.DataFrame,
    calibration_end: pd.Timestamp | str,
    holdout_end: pd.Timestamp | str | None = None,
    *,
    time_unit_days: float = 7.0,
) -> pd.DataFrame:
    """Per-customer (x, t_x, T, monetary value) at ``calibration_end``, plus holdout counts.

    Customers whose first transaction is after ``calibration_end`` are left out. Transactions are
    collapsed to customer-days first (:func:`collapse_to_days`).

    Args:
        transactions: the transaction frame (``customer_id``, ``date``, ``value``).
        calibration_end: last day of the calibration period (inclusive; day resolution). T is
            measured from the first purchase day to this day, as in the CDNOW summary file
            (first purchase 1997-01-01, end 1997-09-30 -> T = 272/7 = 38.86 weeks).
        holdout_end: last day of the holdout period (inclusive), or None for no holdout.
        time_unit_days: days per time unit (7 = weeks).
    Returns:
        Frame indexed by ``customer_id`` with float64 columns ``frequency`` (x), ``recency``
        (t_x), ``T``, ``monetary_value`` (mean value of repeat calibration transactions, 0 if
        x = 0), ``first_value`` (value of the first transaction), ``total_value`` (calibration
        value, first included), ``first_date``/``last_date`` (datetime64) and, when
        ``holdout_end`` is given, ``frequency_holdout`` (customer-days in the holdout),
        ``value_holdout`` and ``duration_holdout`` (holdout length in time units, the same for
        everyone).
    Raises:
        ValueError: if ``holdout_end`` is not after ``calibration_end`` or ``time_unit_days`` <= 0.
    """
    if time_unit_days <= 0:
        raise ValueError(f"time_unit_days must be > 0, got {time_unit_days}")
    cal_end = pd.Timestamp(calibration_end).floor("D")
    days = collapse_to_days(transactions)
    cal = days[days["date"] <= cal_end]
    grouped = cal.groupby("customer_id", sort=True)
    first = grouped["date"].min()
    last = grouped["date"].max()
    n_days = grouped.size().astype(np.float64)
    total = grouped["value"].sum()
    first_value = cal.drop_duplicates("customer_id", keep="first").set_index("customer_id")["value"]
    unit = DAY * time_unit_days
    x = n_days - 1.0
    repeat_value = total - first_value.reindex(total.index)
    out = pd.DataFrame(
        {
            "frequency": x,
            "recency": (last - first) / unit,
            "T": (cal_end - first) / unit,
            "monetary_value": np.where(x > 0, repeat_value / x.where(x > 0, 1.0), 0.0),
            "first_value": first_value.reindex(total.index).astype(np.float64),
            "total_value": total.astype(np.float64),
            "first_date": first,
            "last_date": last,
        }
    )
    out.index.name = "customer_id"
    if holdout_end is not None:
        hold_end = pd.Timestamp(holdout_end).floor("D")
        if hold_end <= cal_end:
            raise ValueError(f"holdout_end {hold_end.date()} must be after calibration_end {cal_end.date()}")
        hold = days[(days["date"] > cal_end) & (days["date"] <= hold_end)]
        hold = hold[hold["customer_id"].isin(out.index)]
        hg = hold.groupby("customer_id")
        out["frequency_holdout"] = hg.size().reindex(out.index, fill_value=0).astype(np.float64)
        out["value_holdout"] = hg["value"].sum().reindex(out.index, fill_value=0.0).astype(np.float64)
        out["duration_holdout"] = float((hold_end - cal_end) / unit)
    return out


def snapshot_transactions(snapshot: Snapshot) -> pd.DataFrame:
    """The snapshot's timestamped interactions as a transaction frame worth 1 interaction each.

    Datasets without prices measure value in interactions: every (user, item) interaction with a
    known timestamp is one unit of value, whatever its rating (a 1-star review is still an
    engagement). Interactions without a timestamp are dropped here (they cannot be placed in
    time); see :func:`recsys.value.pipeline.compute_customer_value` for the no-timestamp fallback.

    Args:
        snapshot: the training snapshot.
    Returns:
        Frame ``customer_id`` (user id, str), ``date`` (datetime64[ns], UTC day), ``value`` (1.0),
        ``item_index`` (int64 column of the snapshot); one row per timestamped interaction.
    """
    coo = snapshot.timestamps.tocoo()
    ok = np.isfinite(coo.data)
    rows, cols, ts = coo.row[ok], coo.col[ok], coo.data[ok]
    return pd.DataFrame(
        {
            "customer_id": snapshot.user_ids[rows].astype(str),
            "date": pd.to_datetime(ts, unit="s").floor("D"),
            "value": np.ones(rows.shape[0], dtype=np.float64),
            "item_index": cols.astype(np.int64),
        }
    )


# ---------------------------------------------------------------------------- classic RFM segments
# The common R x F segment map (scores 1-5; later rules override earlier ones), as used in
# retail analytics dashboards: rows of (recency-score pattern, frequency-score pattern, name).
RFM_SEGMENT_RULES: tuple[tuple[str, str, str], ...] = (
    ("12", "12", "hibernating"),
    ("12", "34", "at_risk"),
    ("12", "5", "cannot_lose"),
    ("3", "12", "about_to_sleep"),
    ("3", "3", "need_attention"),
    ("34", "45", "loyal"),
    ("4", "1", "promising"),
    ("5", "1", "new"),
    ("45", "23", "potential_loyalist"),
    ("5", "45", "champions"),
)


def _quintile_score(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Scores 1..5 from percentile ranks; ties share a score (average rank)."""
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    return np.ceil(pct * 5).clip(1, 5).astype(np.int64)


def rfm_scores(summary: pd.DataFrame) -> pd.DataFrame:
    """Classic RFM quintile scores and the named segment of each customer.

    Args:
        summary: frame from :func:`calibration_summary` (``frequency``, ``recency``, ``T``,
            ``total_value``).
    Returns:
        Frame with the same index and int columns ``r_score``, ``f_score``, ``m_score`` (1..5, 5 =
        best: most recent, most frequent, highest mean value per transaction), ``rfm`` (e.g.
        ``"545"``) and ``rfm_segment`` (a name from :data:`RFM_SEGMENT_RULES`).
    """
    if len(summary) == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in
             (("r_score", "int64"), ("f_score", "int64"), ("m_score", "int64"), ("rfm", object), ("rfm_segment", object))},
            index=summary.index,
        )
    since_last = summary["T"] - summary["recency"]
    n_transactions = summary["frequency"] + 1.0
    mean_value = summary["total_value"] / n_transactions
    out = pd.DataFrame(index=summary.index)
    out["r_score"] = _quintile_score(since_last, higher_is_better=False)
    out["f_score"] = _quintile_score(n_transactions, higher_is_better=True)
    out["m_score"] = _quintile_score(mean_value, higher_is_better=True)
    out["rfm"] = out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)
    segment = pd.Series("other", index=summary.index, dtype=object)
    r, f = out["r_score"].astype(str), out["f_score"].astype(str)
    for r_set, f_set, name in RFM_SEGMENT_RULES:
        segment[r.isin(list(r_set)) & f.isin(list(f_set))] = name
    out["rfm_segment"] = segment
    return out
