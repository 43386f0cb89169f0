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


# ---------------------------------------------------------------------------- RFM segments
# R and F are scored on ABSOLUTE windows, not quintiles: on a customer base where most customers
# left years ago (ciao), a recency quintile of 4 meant "last seen a median 225 weeks ago" and the
# quintile map called such customers "loyal". With absolute windows a segment name means the same
# thing on every dataset and every day.
#: Upper edges (weeks since the last occasion, inclusive) of recency scores 5, 4, 3, 2; older = 1.
RECENCY_WINDOWS_WEEKS: tuple[float, ...] = (4.0, 13.0, 26.0, 52.0)
#: Lower edges (occasions = distinct purchase days, first included) of frequency scores 2, 3, 4, 5.
FREQUENCY_EDGES: tuple[int, ...] = (2, 3, 5, 10)

# The R x F segment map (later rules override earlier ones): (recency scores, frequency scores, name).
RFM_SEGMENT_RULES: tuple[tuple[str, str, str], ...] = (
    ("1", "12345", "lost"),                 # no occasion in the last 52 weeks
    ("2", "12", "hibernating"),             # last seen 26-52 weeks ago, 1-2 occasions
    ("2", "34", "at_risk"),                 # 26-52 weeks, 3-9 occasions
    ("2", "5", "cannot_lose"),              # 26-52 weeks, 10+ occasions
    ("3", "12", "about_to_sleep"),          # 13-26 weeks, 1-2 occasions
    ("3", "3", "need_attention"),           # 13-26 weeks, 3-4 occasions
    ("34", "45", "loyal"),                  # within 26 weeks, 5+ occasions
    ("4", "1", "promising"),                # 4-13 weeks, a single occasion
    ("5", "1", "new"),                      # within 4 weeks, a single occasion
    ("45", "23", "potential_loyalist"),     # within 13 weeks, 2-4 occasions
    ("5", "45", "champions"),               # within 4 weeks, 5+ occasions
)


def _quintile_score(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """Scores 1..5 from percentile ranks; ties share a score (average rank)."""
    pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    return np.ceil(pct * 5).clip(1, 5).astype(np.int64)


def recency_score(weeks_since_last: pd.Series) -> pd.Series:
    """5 = last occasion within 4 weeks, 4 = 13, 3 = 26, 2 = 52, 1 = older (:data:`RECENCY_WINDOWS_WEEKS`)."""
    w = weeks_since_last.to_numpy(np.float64)
    score = 5 - np.searchsorted(np.asarray(RECENCY_WINDOWS_WEEKS), w, side="left")
    return pd.Series(score.astype(np.int64), index=weeks_since_last.index)


def frequency_score(occasions: pd.Series) -> pd.Series:
    """1 = one occasion, 2 = 2, 3 = 3-4, 4 = 5-9, 5 = 10+ (:data:`FREQUENCY_EDGES`)."""
    n = occasions.to_numpy(np.float64)
    score = 1 + np.searchsorted(np.asarray(FREQUENCY_EDGES, dtype=np.float64), n, side="right")
    return pd.Series(score.astype(np.int64), index=occasions.index)


def rfm_scores(summary: pd.DataFrame, time_unit_days: float = 7.0) -> pd.DataFrame:
    """RFM scores on absolute windows and the named segment of each customer.

    Args:
        summary: frame from :func:`calibration_summary` (``frequency``, ``recency``, ``T``,
            ``total_value``), times in ``time_unit_days`` units.
        time_unit_days: days per time unit of the summary (7 = weeks).
    Returns:
        Frame with the same index and int columns ``r_score`` (absolute recency windows,
        :func:`recency_score`), ``f_score`` (occasions, :func:`frequency_score`), ``m_score``
        (quintile of mean value per occasion, 5 = highest; relative, not used by the names),
        ``rfm`` (e.g. ``"545"``), ``rfm_segment`` (a name from :data:`RFM_SEGMENT_RULES`) and
        ``weeks_since_last`` (float).
    """
    if len(summary) == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in
             (("r_score", "int64"), ("f_score", "int64"), ("m_score", "int64"), ("rfm", object), ("rfm_segment", object),
              ("weeks_since_last", "float64"))},
            index=summary.index,
        )
    weeks_since_last = (summary["T"] - summary["recency"]) * (time_unit_days / 7.0)
    n_transactions = summary["frequency"] + 1.0
    mean_value = summary["total_value"] / n_transactions
    out = pd.DataFrame(index=summary.index)
    out["r_score"] = recency_score(weeks_since_last)
    out["f_score"] = frequency_score(n_transactions)
    out["m_score"] = _quintile_score(mean_value, higher_is_better=True)
    out["rfm"] = out["r_score"].astype(str) + out["f_score"].astype(str) + out["m_score"].astype(str)
    segment = pd.Series("other", index=summary.index, dtype=object)
    r, f = out["r_score"].astype(str), out["f_score"].astype(str)
    for r_set, f_set, name in RFM_SEGMENT_RULES:
        segment[r.isin(list(r_set)) & f.isin(list(f_set))] = name
    out["rfm_segment"] = segment
    out["weeks_since_last"] = weeks_since_last.astype(np.float64)
    return out
