"""A/B tests of recommendation strategies in serving: config, variant split, exposure log, analysis.

An experiment splits the users of one served dataset between *variants*, each a model of the
served (promoted) version, e.g. ``control=als, treatment=hybrid``:

* **configuration** — one JSON file per experiment under ``SOCIALREC_HOME/experiments/<name>.json``
  (:func:`save_experiment`; ``socialrec experiment create``). At most one experiment per dataset
  runs at a time; ``stop`` ends it.
* **split** — a user's variant is fixed by the salted hash of their pseudonym
  (:func:`recsys.campaigns.assignment.assignment_hash`) against the cumulative shares: stable
  across requests, processes and restarts, independent of who else arrives.
* **serving hook** — :class:`ExperimentHook` wraps ``RecommendationService.recommend``: the
  response of a user in a running experiment is ranked by the variant's model and carries
  ``"experiment"`` and ``"variant"``; every response is appended to the exposure log.
* **exposure log** — SQLite in WAL mode (``<name>.exposures.sqlite`` beside the config), one row
  per response: time, user *pseudonym* (never a raw id), variant, model version, the item ids
  shown. It survives a crash of the server (WAL, one transaction per response).
* **attribution and analysis** — :func:`analyze_experiment`: an event of the user on an item
  they were shown, after it was shown and within ``window_s``, is a *hit* for the variant that
  showed it (a purchase: a *conversion*). Per variant: exposed users, hit rate and conversion
  rate per exposed user with Wilson 95 % intervals, the treatment-minus-control difference with a
  Newcombe interval and p-value (statsmodels), and an SRM chi-square on the exposed users.

Source: the exposure-based attribution and SRM practice of Kohavi, Tang & Xu, *Trustworthy
Online Controlled Experiments* (2020), ch. 3 and 21.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.campaigns.assignment import assignment_hash

log = logging.getLogger(__name__)
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
DEFAULT_WINDOW_S = 7 * 86400.0


class ExperimentError(ValueError):
    """A bad experiment configuration (exit 2 / HTTP 422)."""


@dataclass
class Experiment:
    """One experiment's configuration.

    Attributes:
        name: id (letters, digits, ``_.-``).
        dataset: the served dataset it applies to.
        variants: variant -> model name in the served version (first = control).
        shares: variant -> share of users (sums to 1).
        salt: hash salt (default: the name).
        status: ``running`` or ``stopped``.
        started_at, stopped_at: Unix seconds.
    """

    name: str
    dataset: str
    variants: dict[str, str]
    shares: dict[str, float]
    salt: str
    status: str = "running"
    started_at: float = field(default_factory=time.time)
    stopped_at: float | None = None

    @property
    def control(self) -> str:
        return next(iter(self.variants))

    def variant_of(self, pseudo_user_ids) -> np.ndarray:
        """(n,) variant names of the given user pseudonyms (deterministic)."""
        u = assignment_hash(self.salt, list(pseudo_user_ids))
        names = list(self.variants)
        edges = np.cumsum([self.shares[v] for v in names])
        edges[-1] = 1.0 + 1e-12
        return np.array(names, dtype=object)[np.searchsorted(edges, u, side="right")]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def experiments_dir(home) -> Path:
    return Path(home) / "experiments"


def _check(exp: Experiment) -> Experiment:
    if not re.fullmatch(NAME_PATTERN, exp.name or ""):
        raise ExperimentError(f"experiment name {exp.name!r}: 1-64 letters, digits, '_', '.', '-'")
    if len(exp.variants) < 2:
        raise ExperimentError("an experiment needs at least two variants, e.g. control=als,treatment=hybrid")
    if set(exp.shares) != set(exp.variants) or min(exp.shares.values()) <= 0 or abs(sum(exp.shares.values()) - 1) > 1e-9:
        raise ExperimentError(f"shares must be > 0, one per variant, summing to 1; got {exp.shares}")
    return exp


def parse_variants(text: str) -> dict[str, str]:
    """``"control=als,treatment=hybrid"`` -> ``{"control": "als", "treatment": "hybrid"}``."""
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        if "=" not in part:
            raise ExperimentError(f"--variants: expected NAME=MODEL, got {part!r}")
        name, model = (x.strip() for x in part.split("=", 1))
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,32}", name) or not model:
            raise ExperimentError(f"--variants: bad variant {part!r}")
        if name in out:
            raise ExperimentError(f"--variants: variant {name!r} twice")
        out[name] = model
    return out


def save_experiment(home, exp: Experiment) -> Path:
    """Write the config atomically. Raises ExperimentError for a bad config or when another
    experiment already runs on the dataset."""
    _check(exp)
    folder = experiments_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    if exp.status == "running":
        for other in list_experiments(home):
            if other.name != exp.name and other.dataset == exp.dataset and other.status == "running":
                raise ExperimentError(f"experiment {other.name!r} already runs on {exp.dataset!r}; stop it first")
    path = folder / f"{exp.name}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{exp.name}.", dir=folder)
    with os.fdopen(fd, "w") as fh:
        json.dump(exp.to_dict(), fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_experiment(home, name: str) -> Experiment:
    """Raises KeyError when there is no such experiment."""
    path = experiments_dir(home) / f"{name}.json"
    if not re.fullmatch(NAME_PATTERN, name or "") or not path.exists():
        raise KeyError(f"no experiment {name!r}")
    return Experiment(**json.loads(path.read_text()))


def list_experiments(home) -> list[Experiment]:
    folder = experiments_dir(home)
    if not folder.is_dir():
        return []
    return [Experiment(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]


# ----------------------------------------------------------------------------- exposure log
class ExposureLog:
    """Append-only SQLite (WAL) log of what each variant showed.

    Rows: ``seq``, ``ts`` (Unix s), ``user`` (pseudonym), ``variant``, ``model_version``,
    ``items`` (JSON list of item ids, best first). Thread-safe (one connection, a lock).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS exposures (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
                           "user TEXT NOT NULL, variant TEXT NOT NULL, model_version TEXT, items TEXT NOT NULL)")

    def record(self, user: str, variant: str, model_version: str, items: list[str], ts: float | None = None) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO exposures (ts, user, variant, model_version, items) VALUES (?, ?, ?, ?, ?)",
                               (float(ts if ts is not None else time.time()), user, variant, model_version, json.dumps(items)))

    def read(self) -> pd.DataFrame:
        """All exposures: ``ts``, ``user``, ``variant``, ``model_version``, ``items`` (list)."""
        with self._lock:
            rows = self._conn.execute("SELECT ts, user, variant, model_version, items FROM exposures ORDER BY seq").fetchall()
        frame = pd.DataFrame(rows, columns=["ts", "user", "variant", "model_version", "items"])
        frame["items"] = frame["items"].map(json.loads)
        return frame

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def exposure_log_path(home, name: str) -> Path:
    return experiments_dir(home) / f"{name}.exposures.sqlite"


# ----------------------------------------------------------------------------- the serving hook
class ExperimentHook:
    """Routes recommendation requests through the running experiment of the served dataset.

    Args:
        home: ``SOCIALREC_HOME``.
        poll_s: how often the config folder is re-read (its mtime is checked at most this often).
    """

    def __init__(self, home, poll_s: float = 1.0):
        self.home = Path(home)
        self.poll_s = float(poll_s)
        self._checked = 0.0
        self._mtime: float | None = None
        self._running: dict[str, Experiment] = {}
        self._logs: dict[str, ExposureLog] = {}
        self._variants: dict[tuple[int, str], object] = {}
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return
        self._checked = now
        folder = experiments_dir(self.home)
        try:
            mtime = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.glob("*.json")])
        except (FileNotFoundError, ValueError):
            mtime = None
        if mtime == self._mtime:
            return
        self._mtime = mtime
        running = {}
        for exp in list_experiments(self.home) if mtime is not None else []:
            if exp.status == "running":
                running[exp.dataset] = exp
        self._running = running

    def active(self, dataset: str) -> Experiment | None:
        """The running experiment of ``dataset`` (None when there is none)."""
        with self._lock:
            self._refresh()
            return self._running.get(dataset)

    def log(self, exp: Experiment) -> ExposureLog:
        with self._lock:
            found = self._logs.get(exp.name)
            if found is None:
                found = self._logs[exp.name] = ExposureLog(exposure_log_path(self.home, exp.name))
            return found

    def _service_for(self, service, model: str):
        """The service ranking with ``model`` of the same loaded version (shares its snapshot,
        live-event overlay and seen items); None when the version has no such model."""
        if service.model.name == model:
            return service
        key = (id(service), model)
        with self._lock:
            found = self._variants.get(key)
            if found is None:
                version = service.version
                if model not in version.models:
                    return None
                from recsys.serving import RecommendationService

                copy = dataclasses.replace(version, manifest={**version.manifest, "serving_model": model})
                found = RecommendationService(copy, service.pseudonymise)
                found.overlay = service.overlay  # users/items registered online, folded-in events
                found._recent, found._recent_lock = service._recent, service._recent_lock
                self._variants = {k: v for k, v in self._variants.items() if k[0] == id(service)}  # drop old versions
                self._variants[key] = found
            return found

    def recommend(self, service, raw_user_id: str, **kwargs) -> dict:
        """``service.recommend(raw_user_id, **kwargs)``, through the running experiment if any.

        Returns:
            The service's response, plus ``experiment`` and ``variant`` when the user is in one.
        """
        exp = self.active(service.snapshot.dataset)
        if exp is None:
            return service.recommend(raw_user_id, **kwargs)
        pseudo = service.pseudonymise(raw_user_id)
        variant = str(exp.variant_of([pseudo])[0])
        target = self._service_for(service, exp.variants[variant])
        if target is None:
            warn = (exp.name, service.version.version)
            if warn not in self._warned:
                self._warned.add(warn)
                log.warning("experiment %s: model %r is not in version %s; serving without the experiment",
                            exp.name, exp.variants[variant], service.version.version)
            return service.recommend(raw_user_id, **kwargs)
        out = target.recommend(raw_user_id, **kwargs)
        out["experiment"], out["variant"] = exp.name, variant
        try:
            self.log(exp).record(pseudo, variant, out.get("model_version"), [it["item_id"] for it in out["items"]])
        except sqlite3.Error as exc:  # the answer matters more than its log line
            log.warning("experiment %s: exposure not logged (%s)", exp.name, type(exc).__name__)
        return out

    def close(self) -> None:
        with self._lock:
            for lg in self._logs.values():
                lg.close()
            self._logs.clear()


# ----------------------------------------------------------------------------- analysis
def attribute(exposures: pd.DataFrame, interactions: pd.DataFrame, window_s: float = DEFAULT_WINDOW_S) -> pd.DataFrame:
    """Per exposed user: variant, whether an event on a shown item followed (hit / conversion).

    Args:
        exposures: :meth:`ExposureLog.read` (a user's later exposures keep their first variant).
        interactions: canonical interactions (``user_id``, ``item_id``, ``kind``, ``ts``).
        window_s: an event counts when ``shown_ts < ts <= shown_ts + window_s``.
    Returns:
        Frame ``user``, ``variant``, ``exposures``, ``hit`` (0/1), ``conversion`` (0/1), ``hits``
        (number of shown items interacted with).
    """
    if exposures.empty:
        return pd.DataFrame(columns=["user", "variant", "exposures", "hit", "conversion", "hits"])
    first_variant = exposures.groupby("user", sort=False)["variant"].first()
    shown = exposures[["ts", "user", "items"]].explode("items").dropna(subset=["items"])
    shown = shown.rename(columns={"items": "item_id", "ts": "shown_ts"}).groupby(["user", "item_id"], as_index=False)["shown_ts"].min()
    ev = interactions[["user_id", "item_id", "kind", "ts"]].rename(columns={"user_id": "user"})
    ev = ev[ev["user"].isin(first_variant.index)]
    m = shown.merge(ev, on=["user", "item_id"], how="inner")
    m = m[(m["ts"] > m["shown_ts"]) & (m["ts"] <= m["shown_ts"] + window_s)]
    hits = m.groupby("user")["item_id"].nunique()
    conv = m[m["kind"] == "purchase"].groupby("user").size()
    out = pd.DataFrame({"variant": first_variant, "exposures": exposures.groupby("user").size()})
    out["hits"] = hits.reindex(out.index, fill_value=0).astype(int)
    out["hit"] = (out["hits"] > 0).astype(int)
    out["conversion"] = (conv.reindex(out.index, fill_value=0) > 0).astype(int)
    return out.rename_axis("user").reset_index()


def analyze_experiment(exp: Experiment, exposures: pd.DataFrame, interactions: pd.DataFrame,
                       window_s: float = DEFAULT_WINDOW_S) -> dict:
    """Hit rate and conversion per variant with 95 % CIs, differences against the control, SRM.

    Returns:
        ``{"experiment", "dataset", "control", "window_s", "srm": {...}, "variants": {v: {"users",
        "exposures", "hit_rate", "hit_rate_ci", "conversion", "conversion_ci", "model"}},
        "differences": {v: {"hit_rate": {"diff", "ci", "p_value"}, "conversion": {...}}}}``.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, test_proportions_2indep

    from recsys.campaigns.analysis import srm_check

    per_user = attribute(exposures, interactions, window_s)
    variants: dict[str, dict] = {}
    counts = {}
    for v, model in exp.variants.items():
        part = per_user[per_user["variant"] == v]
        n = int(len(part))
        counts[v] = n
        row = {"model": model, "users": n, "exposures": int(part["exposures"].sum()) if n else 0}
        for metric in ("hit", "conversion"):
            k = int(part[metric].sum()) if n else 0
            lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (float("nan"), float("nan"))
            key = "hit_rate" if metric == "hit" else "conversion"
            row[key], row[f"{key}_ci"], row[f"{key}_users"] = (k / n if n else None), [float(lo), float(hi)], k
        variants[v] = row
    control = exp.control
    diffs: dict[str, dict] = {}
    for v in exp.variants:
        if v == control:
            continue
        d = {}
        for key, metric in (("hit_rate", "hit"), ("conversion", "conversion")):
            k1, n1 = variants[v][f"{key}_users"], variants[v]["users"]
            k0, n0 = variants[control][f"{key}_users"], variants[control]["users"]
            if n1 and n0:
                lo, hi = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", compare="diff", alpha=0.05)
                p = test_proportions_2indep(k1, n1, k0, n0, method="wald", compare="diff").pvalue if (k1 + k0) and (k1 + k0) < n1 + n0 else 1.0
                d[key] = {"diff": k1 / n1 - k0 / n0, "ci": [float(lo), float(hi)], "p_value": float(p)}
            else:
                d[key] = {"diff": None, "ci": None, "p_value": None}
        diffs[v] = d
    srm = srm_check(counts, exp.shares)
    return {"experiment": exp.name, "dataset": exp.dataset, "control": control, "window_s": float(window_s),
            "status": exp.status, "started_at": exp.started_at, "srm": srm, "srm_p": srm["p_value"],
            "variants": variants, "differences": diffs,
            "attribution": "an event on a shown item after it was shown and within window_s; per exposed user"}
