"""Randomised campaign assignment: deterministic salted-hash randomisation, balance checks, storage.

A campaign splits an *audience* (a list of users: a file, a segment, or the top-K of an uplift
ranking) into arms. Assignment is a salted hash, so the same audience, salt and shares give the
same arms on any machine, byte for byte:

1. every user gets ``u = H(salt, user_id)`` — the first 64 bits of SHA-256 of
   ``salt + "\\x1f" + user_id`` as a fraction in [0, 1) (a pseudo-random permutation of the
   audience that nobody can steer);
2. within each stratum (``--stratify segment``; one stratum otherwise) users are sorted by
   ``u`` (ties by id) and cut into consecutive blocks whose sizes are the shares times the
   stratum size, rounded by largest remainder (an odd user goes to an arm drawn by the hash of
   salt and stratum). So every stratum is split exactly in proportion
   (complete randomisation within strata, "permuted blocks" of one block per stratum), which is
   what makes the arms balanced on the stratifier and, in expectation, on everything else.

The balance table (:func:`balance_table`) compares the arms on pre-campaign covariates with the
standardised mean difference, SMD = (mean_t - mean_c) / sqrt((var_t + var_c) / 2); |SMD| > 0.1
is the usual sign of imbalance (Austin, "Balance diagnostics...", Stat. Med. 2009).

Source of the hashing scheme: the salted-hash bucketing of online experiment platforms (Kohavi,
Tang & Xu, *Trustworthy Online Controlled Experiments*, 2020, ch. 14).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: arm names of a two-arm campaign created by :func:`create_campaign`.
TREATMENT, CONTROL = "treatment", "control"
#: |SMD| above which a covariate counts as imbalanced.
SMD_THRESHOLD = 0.1


def assignment_hash(salt: str, user_ids) -> np.ndarray:
    """The assignment hash of each user.

    Args:
        salt: the campaign's salt (any text).
        user_ids: (n,) ids (str).
    Returns:
        (n,) float64 in [0, 1): the first 8 bytes of SHA-256(salt + "\\x1f" + id), big-endian, / 2**64.
    """
    prefix = (str(salt) + "\x1f").encode()
    out = np.empty(len(user_ids), dtype=np.float64)
    for i, uid in enumerate(user_ids):
        out[i] = int.from_bytes(hashlib.sha256(prefix + str(uid).encode()).digest()[:8], "big") / 2.0**64
    return out


def _block_sizes(n: int, shares: list[float], tie_key: str = "") -> list[int]:
    """Largest-remainder rounding of ``n * shares`` (sums to n). Equal remainders (an odd
    stratum split in half) go to the arm ranked first by the hash of ``tie_key`` and the arm's
    position, so across many strata the extra users fall on either arm, not always the first."""
    raw = np.asarray(shares, dtype=np.float64) * n
    sizes = np.floor(raw).astype(int)
    rest = n - int(sizes.sum())
    ties = assignment_hash(tie_key, [str(j) for j in range(len(shares))])
    order = sorted(range(len(shares)), key=lambda j: (-round(raw[j] - sizes[j], 9), ties[j], j))
    for j in order[:rest]:
        sizes[j] += 1
    return sizes.tolist()


def assign_arms(
    user_ids,
    salt: str,
    arms: dict[str, float],
    strata=None,
) -> pd.DataFrame:
    """Assign users to arms by salted hash, exactly proportional within each stratum.

    Args:
        user_ids: (n,) distinct user ids.
        salt: the campaign's salt.
        arms: arm -> share, shares > 0 summing to 1 (order matters only for rounding ties).
        strata: optional (n,) stratum labels (e.g. segments); None = one stratum.
    Returns:
        Frame sorted by ``user_id``: ``user_id`` (str), ``arm`` (str), ``stratum`` (str),
        ``u`` (float64, the hash).
    Raises:
        ValueError: duplicate users, an empty audience, or shares not positive / not summing to 1.
    """
    ids = pd.Series(np.asarray(user_ids, dtype=object)).astype(str)
    if ids.empty:
        raise ValueError("the audience is empty")
    if ids.duplicated().any():
        raise ValueError(f"user {ids[ids.duplicated()].iloc[0]!r} appears twice in the audience")
    names, shares = list(arms), [float(s) for s in arms.values()]
    if len(names) < 2 or min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError(f"arm shares must be > 0 and sum to 1, got {dict(arms)}")
    frame = pd.DataFrame({
        "user_id": ids.to_numpy(),
        "stratum": (pd.Series(np.asarray(strata, dtype=object)).fillna("").astype(str).to_numpy()
                    if strata is not None else np.full(len(ids), "all", dtype=object)),
        "u": assignment_hash(salt, ids.tolist()),
    })
    frame = frame.sort_values(["stratum", "u", "user_id"], kind="stable").reset_index(drop=True)
    arm = np.empty(len(frame), dtype=object)
    for stratum, idx in frame.groupby("stratum", sort=True).indices.items():
        sizes = _block_sizes(len(idx), shares, tie_key=f"{salt}\x1f{stratum}")
        arm[idx] = np.repeat(np.array(names, dtype=object), sizes)
    frame["arm"] = arm
    return frame.sort_values("user_id", kind="stable").reset_index(drop=True)[["user_id", "arm", "stratum", "u"]]


def balance_table(assignments: pd.DataFrame, covariates: pd.DataFrame, control: str) -> pd.DataFrame:
    """Covariate balance of each treatment arm against the control.

    Args:
        assignments: ``user_id``, ``arm``.
        covariates: ``user_id`` + numeric covariate columns (pre-campaign; missing = NaN).
        control: the control arm.
    Returns:
        One row per (covariate, treatment arm): ``covariate``, ``arm``, ``mean_treatment``,
        ``mean_control``, ``smd``, ``imbalanced`` (|smd| > :data:`SMD_THRESHOLD`).
    """
    m = assignments[["user_id", "arm"]].merge(covariates, on="user_id", how="left")
    cols = [c for c in covariates.columns if c != "user_id" and pd.api.types.is_numeric_dtype(covariates[c])]
    rows = []
    ctrl = m[m["arm"] == control]
    for arm in sorted(set(m["arm"]) - {control}):
        tr = m[m["arm"] == arm]
        for c in cols:
            a, b = tr[c].astype(float).dropna(), ctrl[c].astype(float).dropna()
            if len(a) < 2 or len(b) < 2:
                continue
            pooled = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
            diff = float(a.mean() - b.mean())
            smd = diff / pooled if pooled > 0 else 0.0
            rows.append({"covariate": c, "arm": arm, "mean_treatment": float(a.mean()),
                         "mean_control": float(b.mean()), "smd": float(smd),
                         "imbalanced": bool(abs(smd) > SMD_THRESHOLD)})
    return pd.DataFrame(rows, columns=["covariate", "arm", "mean_treatment", "mean_control", "smd", "imbalanced"])


# ----------------------------------------------------------------------------- from the store
def user_covariates(store, before: float) -> pd.DataFrame:
    """Pre-campaign covariates of every stored user, from interactions before ``before``.

    Args:
        store: a :class:`graph.store.GraphStore`.
        before: Unix seconds (the launch time); later interactions are outcomes, not covariates.
    Returns:
        ``user_id`` + ``pre_interactions``, ``pre_purchases``, ``pre_revenue`` (sum of purchase
        values), ``pre_views``, ``followers`` (float64), and the users' numeric written-back
        scores (``clv``, ``influence``, ... when present).
    """
    inter = store.read_table("interactions")
    users = store.read_table("users")[["user_id"]]
    inter = inter[~(inter["ts"] >= before)]  # NaN ts (unknown time) counts as before
    g = inter.groupby("user_id")
    feats = pd.DataFrame({
        "pre_interactions": g.size(),
        "pre_purchases": inter[inter["kind"] == "purchase"].groupby("user_id").size(),
        "pre_revenue": inter[inter["kind"] == "purchase"].groupby("user_id")["value"].sum(),
        "pre_views": inter[inter["kind"] == "view"].groupby("user_id").size(),
    })
    follows = store.read_table("follows")
    feats["followers"] = follows.groupby("followee_id").size()
    feats = feats.rename_axis("user_id").reset_index()
    out = users.merge(feats, on="user_id", how="outer")
    for c in out.columns:
        if c != "user_id":
            out[c] = out[c].astype(float).fillna(0.0)
    try:
        scores = store.read_scores("User")
    except Exception:  # noqa: BLE001 - scores are optional decoration
        scores = pd.DataFrame({"id": []})
    keep = [c for c in scores.columns if c != "id" and not c.endswith("_version") and pd.api.types.is_numeric_dtype(scores[c])]
    if keep:
        out = out.merge(scores[["id", *keep]].rename(columns={"id": "user_id"}), on="user_id", how="left")
    return out


def user_segments(store) -> pd.Series:
    """user_id -> segment id (str) from the store's segments (``read_segments`` or the ``segment``
    score); empty when none were written."""
    reader = getattr(store, "read_segments", None)
    if callable(reader):
        assignments, _ = reader()
        if len(assignments):
            return assignments.set_index("user_id")["segment_id"].astype(str)
    scores = store.read_scores("User")
    for col in ("segment", "segment_id"):
        if col in scores.columns:
            s = scores[["id", col]].dropna()
            return s.set_index("id")[col].astype(str).rename_axis("user_id")
    return pd.Series(dtype=object)


@dataclass
class CampaignPlan:
    """A campaign ready to store: its document, its assignment rows and its balance table."""

    campaign: dict
    assignments: pd.DataFrame
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)


def plan_campaign(
    name: str,
    audience,
    treatment_share: float = 0.5,
    salt: str | None = None,
    strata=None,
    stratify: str | None = None,
    covariates: pd.DataFrame | None = None,
    launched_at: float | None = None,
    source: str = "audience",
    cost_per_contact: float = 0.0,
    margin: float = 1.0,
) -> CampaignPlan:
    """Assign a two-arm campaign (``treatment`` / ``control``) over ``audience``.

    Args:
        name: campaign id (letters, digits, ``_.-``).
        audience: (n,) distinct user ids (pseudonyms, as stored).
        treatment_share: share of the audience treated, in (0, 1).
        salt: hashing salt; default the name (so the campaign is reproducible from its name).
        strata, stratify: optional (n,) stratum labels and the name of what they are.
        covariates: optional pre-campaign covariates (``user_id`` + numeric) for the balance table.
        launched_at: Unix seconds when the campaign starts counting outcomes (default now).
        source: how the audience was chosen (for the record), e.g. ``segment:s3``.
        cost_per_contact, margin: for ROI: cost of treating one user (currency units) and the
            share of revenue that is profit.
    Returns:
        A :class:`CampaignPlan`; assignments have ``user_id``, ``arm``, ``stratum``.
    Raises:
        ValueError: a share outside (0, 1), an empty audience or a duplicate user.
    """
    if not 0.0 < float(treatment_share) < 1.0:
        raise ValueError(f"--treatment-share must be in (0, 1), got {treatment_share}")
    salt = name if salt is None else salt
    a = assign_arms(audience, salt, {TREATMENT: float(treatment_share), CONTROL: 1.0 - float(treatment_share)}, strata)
    counts = a["arm"].value_counts()
    doc = {
        "id": name, "name": name, "arms": [TREATMENT, CONTROL], "control_arm": CONTROL,
        "treatment_arm": TREATMENT, "shares": {TREATMENT: float(treatment_share), CONTROL: 1.0 - float(treatment_share)},
        "salt": salt, "treatment_share": float(treatment_share), "stratify": stratify, "source": source,
        "status": "running", "created_at": float(time.time()),
        "launched_at": float(launched_at if launched_at is not None else time.time()),
        "n_assigned": int(len(a)), "arm_sizes": {k: int(counts.get(k, 0)) for k in (TREATMENT, CONTROL)},
        "cost_per_contact": float(cost_per_contact), "margin": float(margin), "outcomes": "events",
        "assignment": "salted-sha256-stratified-blocks",
    }
    balance = balance_table(a, covariates, CONTROL) if covariates is not None else pd.DataFrame()
    rows = a[["user_id", "arm", "stratum"]]
    return CampaignPlan(doc, rows, balance)


def assignments_csv(assignments: pd.DataFrame) -> str:
    """The assignment table as CSV for an e-mail tool: ``user_id,arm[,stratum]``, sorted by user,
    ``\\n`` line ends (byte-identical for the same campaign)."""
    cols = [c for c in ("user_id", "arm", "stratum") if c in assignments.columns]
    return assignments[cols].sort_values("user_id", kind="stable").to_csv(index=False, lineterminator="\n")


# ----------------------------------------------------------------------------- into the store
def create_campaign(
    store,
    name: str,
    audience,
    treatment_share: float = 0.5,
    stratify: str | None = None,
    salt: str | None = None,
    launched_at: float | None = None,
    source: str = "audience",
    cost_per_contact: float = 0.0,
    margin: float = 1.0,
) -> dict:
    """Assign a two-arm campaign over ``audience`` and store it (one atomic write).

    Args:
        store: the dataset's :class:`graph.store.GraphStore`.
        audience: (n,) distinct pseudonymised user ids.
        stratify: ``"segment"`` to stratify by the stored segments (users without one form
            their own stratum), or None.
        Others: see :func:`plan_campaign`.
    Returns:
        ``{"campaign": doc, "balance": [rows], "arm_sizes": {...}}``.
    Raises:
        ValueError: bad arguments, an existing campaign of that name (nothing is written).
    """
    if store.read_campaign(name) is not None:
        raise ValueError(f"campaign {name!r} already exists in {store.dataset!r}; choose another --name")
    launched_at = float(launched_at if launched_at is not None else time.time())
    audience = list(pd.Series(np.asarray(audience, dtype=object)).astype(str))
    strata = None
    if stratify is not None:
        if stratify != "segment":
            raise ValueError(f"--stratify: only 'segment' is supported, got {stratify!r}")
        seg = user_segments(store)
        if seg.empty:
            raise ValueError("--stratify segment: no segments stored; run `socialrec value` first")
        strata = [seg.get(u, "none") for u in audience]
    # users the store has no activity for had none before the launch: zeros, not missing
    covariates = user_covariates(store, launched_at)
    covariates = covariates.set_index("user_id").reindex(pd.Index(audience, name="user_id")).fillna(0.0).reset_index()
    plan = plan_campaign(name, audience, treatment_share, salt=salt, strata=strata, stratify=stratify,
                         covariates=covariates, launched_at=launched_at, source=source,
                         cost_per_contact=cost_per_contact, margin=margin)
    plan.campaign["balance"] = plan.balance.to_dict("records")
    store.write_campaign(plan.campaign, plan.assignments)
    return {"campaign": plan.campaign, "balance": plan.campaign["balance"], "arm_sizes": plan.campaign["arm_sizes"]}


def import_campaign(
    store,
    name: str,
    frame: pd.DataFrame,
    arms: list[str],
    control: str,
    outcomes: list[str],
    covariates: list[str],
    pre: str | None = None,
    shares: dict[str, float] | None = None,
    source: str = "table",
    categorical: list[str] | None = None,
    launched_at: float | None = None,
    cost_per_contact: float = 0.0,
    margin: float = 1.0,
) -> dict:
    """Store a finished campaign whose assignment and outcomes come in a table (e.g. Hillstrom).

    Args:
        frame: the checked canonical campaign table (``customer_id`` as stored, ``arm``, outcomes,
            covariates), as :func:`etl.campaign.load_campaign_table` returns it.
        arms, control: every arm (control first) and the control.
        outcomes: outcome columns kept on the assignments.
        covariates: numeric pre-campaign columns kept (for balance and CUPED).
        categorical: text pre-campaign columns kept (for ``analyze --by``).
        pre: the covariate used as the CUPED pre-period value (e.g. ``history``), or None.
        shares: the designed arm shares (default equal).
    Returns:
        ``{"campaign": doc, "balance": [rows], "arm_sizes": {...}}``.
    Raises:
        ValueError: an existing campaign of that name, or a bad table (nothing is written).
    """
    if store.read_campaign(name) is not None:
        raise ValueError(f"campaign {name!r} already exists in {store.dataset!r}; choose another --name")
    categorical = [c for c in (categorical or []) if c not in covariates and c not in outcomes]
    keep = ["customer_id", "arm", *outcomes, *[c for c in covariates if c not in outcomes], *categorical]
    rows = frame[keep].rename(columns={"customer_id": "user_id"})
    counts = rows["arm"].value_counts()
    shares = shares or {a: 1.0 / len(arms) for a in arms}
    treatments = [a for a in arms if a != control]
    doc = {
        "id": name, "name": name, "arms": list(arms), "control_arm": control, "treatment_arm": treatments[0],
        "shares": shares, "source": source, "status": "finished", "created_at": float(time.time()),
        "launched_at": float(launched_at) if launched_at is not None else None, "n_assigned": int(len(rows)),
        "arm_sizes": {a: int(counts.get(a, 0)) for a in arms}, "outcomes": "table", "outcome_columns": list(outcomes),
        "covariates": list(covariates), "categorical_covariates": categorical, "pre_covariate": pre, "cost_per_contact": float(cost_per_contact),
        "margin": float(margin), "assignment": "imported (randomised by the campaign's owner)",
    }
    bal = balance_table(rows[["user_id", "arm"]], rows[["user_id", *covariates]], control) if covariates else pd.DataFrame()
    doc["balance"] = bal.to_dict("records")
    store.write_campaign(doc, rows)
    return {"campaign": doc, "balance": doc["balance"], "arm_sizes": doc["arm_sizes"]}


def segment_audience(store, segment: str) -> list[str]:
    """The users of a stored segment, sorted. Raises ValueError when it has none."""
    seg = user_segments(store)
    ids = sorted(seg.index[seg == str(segment)])
    if not ids:
        known = ", ".join(sorted(set(seg))[:20]) or "none"
        raise ValueError(f"no users in segment {segment!r} (segments: {known})")
    return ids


def uplift_audience(store, k: int) -> list[str]:
    """The ``k`` users with the highest written-back ``uplift`` score (ties by id).

    Raises:
        ValueError: k < 2, or no ``uplift`` score is stored for this dataset.
    """
    if int(k) < 2:
        raise ValueError("uplift-top must be >= 2")
    scores = store.read_scores("User")
    if "uplift" not in scores.columns:
        raise ValueError("no 'uplift' score is written back for this dataset (see docs/marketing.md)")
    s = scores[["id", "uplift"]].dropna().sort_values(["uplift", "id"], ascending=[False, True]).head(int(k))
    return s["id"].astype(str).tolist()
