"""The canonical campaign table: one row per customer of a randomised campaign.

:func:`load_campaign_table` is the one reader every campaign method uses (uplift models, policy /
ROI, campaign analysis). It accepts

* a known campaign dataset name: ``"hillstrom"`` (:mod:`etl.datasets.hillstrom`);
* ``csv:PATH`` / ``parquet:PATH`` (or a bare ``PATH``): a shop's campaign export, PATH being the
  file itself or a directory holding ``campaign.csv`` / ``campaign.csv.gz`` / ``campaign.parquet``.

Canonical columns (``docs/marketing.md`` has the schema with an example)::

    customer_id   str      the shop's customer id (unique: one arm per customer)
    arm           str      the randomised arm, e.g. "Mens E-Mail"; one arm is the control
                           (or, instead of ``arm``: ``treatment`` in {0, 1}, 0 = control)
    visit         0/1      outcome: visited in the campaign window              } at least one
    conversion    0/1      outcome: bought in the campaign window               } of the three
    spend         >= 0     outcome: money spent in the window (0 if no purchase) }
    <anything>    covariates measured BEFORE the campaign: numbers -> numeric, text -> categorical

Unlike the graph ETL (which quarantines bad rows), a campaign table is all-or-nothing: dropping
rows of a randomised experiment silently biases every estimate, so any bad value raises
:class:`~etl.errors.EtlInputError` naming ``file:line`` and the field (CLI exit 2). Raw customer
ids never appear in messages or logs (lines do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from etl.errors import EtlInputError

log = logging.getLogger("socialrec.etl.campaign")

#: Known campaign datasets (name -> module under etl.datasets with ``read_hillstrom``-style reader).
CAMPAIGN_DATASETS: tuple[str, ...] = ("hillstrom",)
#: Canonical outcome columns and their kind: ``binary`` (0/1) or ``money`` (>= 0).
OUTCOME_KINDS: dict[str, str] = {"visit": "binary", "conversion": "binary", "spend": "money"}
#: Arm names recognised as the control arm when none is named explicitly (compared lower-case).
CONTROL_NAMES: tuple[str, ...] = ("control", "no e-mail", "no email", "none", "holdout", "no_treatment")
#: A text covariate with more distinct values than this is not a category (an id, free text): ignored.
MAX_CATEGORIES = 100
#: Files looked up inside a ``csv:DIR`` / ``parquet:DIR`` directory, in order.
EXPORT_FILES: tuple[str, ...] = ("campaign.csv", "campaign.csv.gz", "campaign.parquet")
_RESERVED = ("customer_id", "arm", "treatment", "_line")


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign table holds (returned beside the frame by :func:`load_campaign_table`).

    Attributes:
        name: dataset name or ``csv:PATH`` as given.
        file: the file the rows came from (used in ``file:line`` messages).
        arms: every arm, control first, then the others in order of first appearance.
        control: the control arm.
        outcomes: outcome columns present, canonical order (subset of :data:`OUTCOME_KINDS`).
        numeric_covariates: covariate columns parsed to float64 (NaN = missing).
        categorical_covariates: covariate columns kept as text (missing = ``""``).
        ignored_columns: text columns with more than :data:`MAX_CATEGORIES` values (not used).
        n_customers: number of rows.
    """

    name: str
    file: str
    arms: tuple[str, ...]
    control: str
    outcomes: tuple[str, ...]
    numeric_covariates: tuple[str, ...]
    categorical_covariates: tuple[str, ...]
    ignored_columns: tuple[str, ...] = ()
    n_customers: int = 0
    arm_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def treatments(self) -> tuple[str, ...]:
        """The non-control arms."""
        return tuple(a for a in self.arms if a != self.control)

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.numeric_covariates + self.categorical_covariates

    def outcome_kind(self, outcome: str) -> str:
        """``"binary"`` or ``"money"``."""
        return OUTCOME_KINDS[outcome]

    def require_outcome(self, outcome: str) -> None:
        """Raise EtlInputError (line 1 = the header) unless ``outcome`` is a column of this table."""
        if outcome not in OUTCOME_KINDS:
            raise EtlInputError(self.file, 0, outcome, f"unknown outcome; expected one of {', '.join(OUTCOME_KINDS)}")
        if outcome not in self.outcomes:
            raise EtlInputError(
                self.file, 1, outcome,
                f"missing outcome column (the table has: {', '.join(self.outcomes) or 'none'})",
            )

    def require_arm(self, arm: str) -> None:
        """Raise EtlInputError unless ``arm`` is a treatment arm of this table."""
        if arm == self.control:
            raise EtlInputError(self.file, 0, "arm", f"--treatment: {arm!r} is the control arm; choose a treatment: {', '.join(self.treatments)}")
        if arm not in self.arms:
            raise EtlInputError(self.file, 0, "arm", f"--treatment: unknown arm {arm!r}; the arms are: {', '.join(self.arms)}")


def load_campaign_table(
    name_or_path: str | Path,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    control: str | None = None,
    pseudonymiser=None,
) -> tuple[pd.DataFrame, CampaignSpec]:
    """Read and check one campaign table.

    Args:
        name_or_path: ``"hillstrom"``, ``csv:PATH``, ``parquet:PATH`` or a path (file or directory).
        data_dir: ``SOCIALREC_DATA_DIR`` (a known dataset is read from ``data_dir/<name>`` when
            present, else downloaded and checksum-verified into ``cache_dir``).
        cache_dir: writable download cache (default ``./.socialrec/cache``).
        control: the control arm's name; default: the arm named like :data:`CONTROL_NAMES`.
        pseudonymiser: optional :class:`etl.pseudonymise.Pseudonymiser`; when given,
            ``customer_id`` holds pseudonyms (as the graph stores users) instead of raw ids.
    Returns:
        ``(frame, spec)``: frame with ``customer_id`` (str), ``arm`` (str), the outcomes
        (``visit``/``conversion`` int64 0/1, ``spend`` float64 >= 0), the covariates (float64 /
        str) and ``_line`` (int64, 1-based line in ``spec.file``); file order. See :class:`CampaignSpec`.
    Raises:
        EtlInputError: missing/unreadable file, missing ``customer_id``/``arm`` column or no
            outcome column (line 1), a customer in two arms or listed twice, a non-binary
            ``treatment`` or binary outcome, a negative or non-numeric outcome, an empty arm, fewer
            than two arms or no recognisable control (each with file:line:field).
        DownloadError: a known dataset had to be downloaded and that failed.
    """
    name = str(name_or_path)
    if name in CAMPAIGN_DATASETS:
        from etl.datasets.hillstrom import FILE, read_hillstrom
        from etl.download import ensure_dataset

        folder = ensure_dataset(name, data_dir, Path(cache_dir) if cache_dir else Path(".socialrec") / "cache")
        raw, file = read_hillstrom(folder), FILE
    else:
        path = _export_path(name)
        raw, file = _read_export(path), path.name
    frame, spec = check_campaign_table(raw, file=file, name=name, control=control)
    if pseudonymiser is not None:
        frame["customer_id"] = pseudonymiser.users(frame["customer_id"]).to_numpy()
    log.info("campaign table %s: %d customers, arms %s", file, spec.n_customers, spec.arm_sizes)
    return frame, spec


def _export_path(name: str) -> Path:
    text = name
    for prefix in ("csv:", "parquet:"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if not text:
        raise EtlInputError(name, 0, "", "empty path; expected csv:PATH or parquet:PATH")
    path = Path(text).expanduser()
    if path.is_dir():
        for candidate in EXPORT_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise EtlInputError(str(path), 0, "", f"no campaign file in the directory; expected one of {', '.join(EXPORT_FILES)}")
    if not path.is_file():
        raise EtlInputError(str(path), 0, "", "file not found")
    return path


def _read_export(path: Path) -> pd.DataFrame:
    try:
        if path.name.endswith(".parquet"):
            raw = pd.read_parquet(path)
            raw = raw.astype({c: object for c in raw.columns if raw[c].dtype == object})
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise EtlInputError(path.name, 0, "", f"cannot parse: {exc}") from exc
    except OSError as exc:
        raise EtlInputError(path.name, 0, "", f"cannot read: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    raw["_line"] = np.arange(2, 2 + len(raw), dtype=np.int64)  # header = line 1 (parquet: row + 1)
    return raw


def _first(mask: np.ndarray, lines: np.ndarray) -> int:
    return int(lines[np.flatnonzero(mask)[0]])


def check_campaign_table(
    raw: pd.DataFrame, file: str, name: str | None = None, control: str | None = None
) -> tuple[pd.DataFrame, CampaignSpec]:
    """Parse and check a raw campaign frame (text or typed columns plus ``_line``).

    Args:
        raw: columns as in the module docstring (values may be text), plus ``_line``.
        file: file name for messages.
        name: dataset name for the spec (default ``file``).
        control: the control arm (default: detected from :data:`CONTROL_NAMES`).
    Returns / Raises: see :func:`load_campaign_table`.
    """
    cols = list(raw.columns)
    lines = raw["_line"].to_numpy(dtype=np.int64) if "_line" in raw else np.arange(2, 2 + len(raw), dtype=np.int64)
    if "customer_id" not in cols:
        raise EtlInputError(file, 1, "customer_id", "missing column (the header must name customer_id)")
    if len(raw) == 0:
        raise EtlInputError(file, 1, "", "no data rows")
    ids = raw["customer_id"].astype(object)
    id_text = ids.where(ids.isna(), ids.astype(str).str.strip())
    empty = id_text.isna().to_numpy() | (id_text.fillna("") == "").to_numpy()
    if empty.any():
        raise EtlInputError(file, _first(empty, lines), "customer_id", "empty customer id")

    # --- the arm
    if "arm" in cols:
        arm = raw["arm"].astype(object)
        arm = arm.where(arm.isna(), arm.astype(str).str.strip())
        bad = arm.isna().to_numpy() | (arm.fillna("") == "").to_numpy()
        if bad.any():
            raise EtlInputError(file, _first(bad, lines), "arm", "empty arm")
        arm = arm.to_numpy(dtype=object)
    elif "treatment" in cols:
        t = pd.to_numeric(raw["treatment"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isin(t, (0.0, 1.0))
        if bad.any():
            value = raw["treatment"].iloc[int(np.flatnonzero(bad)[0])]
            raise EtlInputError(
                file, _first(bad, lines), "treatment",
                f"non-binary treatment {value!r}: expected 0 (control) or 1 (treated); for several arms use an 'arm' column",
            )
        arm = np.where(t == 1.0, "treatment", "control").astype(object)
        control = control or "control"
    else:
        raise EtlInputError(file, 1, "arm", "missing column: the header must name 'arm' (or a 0/1 'treatment')")

    # --- one arm per customer
    dup = id_text.duplicated(keep=False).to_numpy()
    if dup.any():
        frame_dup = pd.DataFrame({"id": id_text.to_numpy()[dup], "arm": arm[dup], "line": lines[dup]})
        first_line = frame_dup.groupby("id", sort=False)["line"].min()
        arms_per = frame_dup.groupby("id", sort=False)["arm"].nunique()
        second = id_text.duplicated(keep="first").to_numpy()
        line = _first(second, lines)
        cid = id_text.to_numpy()[np.flatnonzero(second)[0]]
        where = int(first_line[cid])
        if arms_per[cid] > 1:
            raise EtlInputError(file, line, "customer_id", f"customer in two arms (also on line {where}): a customer must be randomised once")
        raise EtlInputError(file, line, "customer_id", f"customer listed twice (also on line {where})")

    arms_seen = list(dict.fromkeys(arm.tolist()))
    if control is None:
        named = [a for a in arms_seen if a.lower() in CONTROL_NAMES]
        if len(named) != 1:
            raise EtlInputError(
                file, 0, "arm",
                f"cannot tell the control arm among {arms_seen}; name it (--control ARM)",
            )
        control = named[0]
    elif control not in arms_seen:
        raise EtlInputError(file, 0, "arm", f"control arm {control!r} does not occur; the arms are: {', '.join(arms_seen)}")
    if len(arms_seen) < 2:
        raise EtlInputError(file, 0, "arm", f"only one arm ({arms_seen[0]!r}): a campaign needs a control and a treatment")
    arms = (control,) + tuple(a for a in arms_seen if a != control)

    # --- outcomes
    out = pd.DataFrame({"customer_id": id_text.to_numpy(dtype=object), "arm": arm})
    outcomes = tuple(o for o in OUTCOME_KINDS if o in cols)
    if not outcomes:
        raise EtlInputError(file, 1, "visit", f"no outcome column; the header must name at least one of {', '.join(OUTCOME_KINDS)}")
    for o in outcomes:
        values = pd.to_numeric(raw[o], errors="coerce").to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        if missing.any():
            raise EtlInputError(file, _first(missing, lines), o, "missing or non-numeric outcome")
        if OUTCOME_KINDS[o] == "binary":
            bad = ~np.isin(values, (0.0, 1.0))
            if bad.any():
                raise EtlInputError(file, _first(bad, lines), o, f"binary outcome must be 0 or 1, got {values[bad][0]:g}")
            out[o] = values.astype(np.int64)
        else:
            bad = values < 0
            if bad.any():
                raise EtlInputError(file, _first(bad, lines), o, f"money outcome must be >= 0, got {values[bad][0]:g}")
            out[o] = values

    # --- covariates: everything else
    numeric, categorical, ignored = [], [], []
    for c in cols:
        if c in _RESERVED or c in OUTCOME_KINDS or c.startswith("_"):
            continue
        column = raw[c]
        present = column.notna().to_numpy() & (column.astype(str).str.strip() != "").to_numpy()
        parsed = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        if present.any() and not np.isnan(parsed[present]).any():
            out[c] = np.where(present, parsed, np.nan)
            numeric.append(c)
            continue
        text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
        if text.nunique() > MAX_CATEGORIES:
            ignored.append(c)
            log.warning("%s: column %r has %d distinct text values: not a category, ignored", file, c, text.nunique())
            continue
        out[c] = text.to_numpy(dtype=object)
        categorical.append(c)
    out["_line"] = lines
    sizes = {a: int((arm == a).sum()) for a in arms}
    spec = CampaignSpec(
        name=name or file,
        file=file,
        arms=arms,
        control=control,
        outcomes=outcomes,
        numeric_covariates=tuple(numeric),
        categorical_covariates=tuple(categorical),
        ignored_columns=tuple(ignored),
        n_customers=len(out),
        arm_sizes=sizes,
    )
    return out, spec


__all__ = ["CAMPAIGN_DATASETS", "OUTCOME_KINDS", "CampaignSpec", "check_campaign_table", "load_campaign_table"]
