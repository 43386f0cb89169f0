"""A shop's money transactions for customer value (``socialrec value --transactions FILE``).

The file is CSV (header line 1) or Parquet, one row per transaction, with columns

* ``user_id`` (or ``customer_id``): the shop's own customer id. Raw ids are pseudonymised with
  the same keyed HMAC as every other table (:mod:`etl.pseudonymise`), so they match the
  snapshot's user ids. A value that already *is* a pseudonym (``u_`` + 20 lower-case hex
  characters, e.g. an export of our own ids) is kept as it is.
* ``date`` or ``ts``: ISO 8601 dates or date-times, mixed freely (``2024-01-06`` beside
  ``2024-01-06T10:00`` or ``2024-01-06 10:00:00+01:00``; offsets are converted to UTC), or
  ``ts`` in Unix seconds.
* ``amount`` (or ``value``): money per transaction; refunds are negative.

Errors: a missing column, an empty id, a date that is not ISO 8601 or an amount that is not a
number fails the whole file with :class:`etl.errors.EtlInputError` naming ``file:line`` and the
field (the CLI exits 2; nothing is computed or written). Rows are never dropped here: what the
value job leaves out (rows after the observation end, unknown customers, days without positive
net spend) it counts and quarantines with a reason (:func:`recsys.value.pipeline.prepare_transactions`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from etl.errors import EtlInputError
from etl.pseudonymise import PSEUDONYM_HEX_CHARS, PSEUDONYM_PREFIX, Pseudonymiser

_PSEUDONYM = re.compile(rf"^{re.escape(PSEUDONYM_PREFIX)}[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}$")


def _line(path: Path, row: int) -> int:
    """1-based file line of data row ``row`` (CSV: header is line 1; Parquet: row number)."""
    return row + 2 if path.suffix != ".parquet" else row + 1


def parse_dates(values: pd.Series, path: Path, field: str = "date") -> pd.Series:
    """ISO 8601 dates / date-times (mixed) -> datetime64[ns] UTC-naive.

    Raises:
        EtlInputError: the first value that does not parse, with its line.
    """
    text = values.astype(object)
    missing = text.isna() | (text.astype(str).str.strip() == "")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise EtlInputError(str(path), _line(path, row), field, "empty date")
    try:
        parsed = pd.to_datetime(text.astype(str).str.strip(), format="ISO8601", utc=True)
    except (ValueError, TypeError):
        for row, v in enumerate(text.astype(str)):
            try:
                pd.to_datetime(v.strip(), format="ISO8601", utc=True)
            except (ValueError, TypeError):
                raise EtlInputError(str(path), _line(path, row), field,
                                    f"cannot parse {v!r} as an ISO 8601 date or date-time "
                                    "(e.g. 2024-01-06 or 2024-01-06T10:00)") from None
        raise
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")


def pseudonymise_ids(ids: pd.Series, pseudonymiser: Pseudonymiser) -> pd.Series:
    """Raw shop ids -> pseudonyms; values that already are pseudonyms are kept (module docstring)."""
    text = ids.astype(str).str.strip()
    already = text.str.match(_PSEUDONYM)
    out = pseudonymiser.users(text)
    out[already] = text[already]
    return out


def read_transactions(path: str | Path, pseudonymiser: Pseudonymiser) -> pd.DataFrame:
    """Read, check and pseudonymise a transactions file (module docstring).

    Args:
        path: CSV or ``.parquet`` file.
        pseudonymiser: the deployment's pseudonymiser (the key the ETL used for the snapshot).
    Returns:
        Frame ``customer_id`` (pseudonym, str), ``date`` (datetime64[ns], UTC), ``value``
        (float64, money; negative = refund), ``line`` (int64, the row's line in the file), in
        file order.
    Raises:
        EtlInputError: unreadable file, missing column, empty id, bad date or amount (file:line:field).
    """
    path = Path(path)
    try:
        raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise EtlInputError(str(path), 0, "", "no such file") from None
    except Exception as exc:  # noqa: BLE001 - any parser error makes the file unusable
        raise EtlInputError(str(path), 0, "", f"cannot read the file: {exc}") from None
    cid = "customer_id" if "customer_id" in raw else "user_id"
    if cid not in raw:
        raise EtlInputError(str(path), 1, "user_id", "missing column (user_id or customer_id)")
    vcol = "amount" if "amount" in raw else "value"
    if vcol not in raw:
        raise EtlInputError(str(path), 1, "amount", "missing column (amount or value)")
    ids = raw[cid].astype(object)
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        raise EtlInputError(str(path), _line(path, int(np.flatnonzero(empty.to_numpy())[0])), cid, "empty customer id")
    if "date" in raw:
        dates = parse_dates(raw["date"], path, "date")
    elif "ts" in raw:
        secs = pd.to_numeric(raw["ts"], errors="coerce")
        bad = secs.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise EtlInputError(str(path), _line(path, row), "ts", f"not Unix seconds: {raw['ts'].iloc[row]!r}")
        dates = pd.to_datetime(secs, unit="s").astype("datetime64[ns]")
    else:
        raise EtlInputError(str(path), 1, "date", "missing column (date or ts)")
    amounts = pd.to_numeric(raw[vcol], errors="coerce")
    bad = amounts.isna().to_numpy() | ~np.isfinite(amounts.to_numpy(np.float64, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EtlInputError(str(path), _line(path, row), vcol, f"not a number: {raw[vcol].iloc[row]!r}")
    return pd.DataFrame({
        "customer_id": pseudonymise_ids(ids, pseudonymiser).to_numpy(dtype=object),
        "date": dates.to_numpy(),
        "value": amounts.to_numpy(np.float64),
        "line": np.array([_line(path, i) for i in range(len(raw))], dtype=np.int64),
    })
