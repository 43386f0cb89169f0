"""The evaluation harness: split protocols, validation-only tuning, full-ranking metrics.

Protocols (``INTERFACES.md``):

=================  ==========================================================================
``cv5-full``        5 random folds over interactions (seeded). Each fold is the test set once;
                    items are ranked against ALL items the user has not interacted with in
                    training. Metrics averaged over folds (the MHCN/SEPT LastFM protocol).
``cold-lt20``       as ``cv5-full``, metrics only over test users with fewer than 20
                    interactions in the whole dataset (MHCN Table 4).
``random-80-10-10`` random 80/10/10 train/validation/test per interaction; the model is fitted
                    on the 80 %; validation interactions are filtered from the test ranking like
                    training ones (the DICER Ciao protocol, full ranking).
``temporal``        train on interactions before the cut (the 80th percentile of timestamps),
                    test on those after it; users without training history are not scored.
``cold-users``      10 % of users (seeded) lose ALL their interactions from training but keep
                    their follows; their held-out interactions are the test set.
``cold-items``      10 % of items (seeded) lose all their interactions from training but keep
                    category/text; test = interactions with those items, ranked among all items.
``given``           the user's own ``train.csv`` / ``test.csv`` / optional ``validation.csv``
                    (:func:`read_given_split`); validation only for tuning and early stopping.
=================  ==========================================================================

Candidate sets (``candidates``): ``full`` (default) ranks every unseen item; ``sampled:N`` ranks
each user's test positives among N sampled never-interacted items, repeated (see
:data:`CANDIDATE_DEFINITIONS`). Ties are scored by their expected value over tie orders.

On ``cold-lt20``, ``cold-users`` and ``cold-items`` users/items without training history are
ranked through :mod:`recsys.coldstart` (followee-propagated user vectors, content item vectors;
``evaluate(cold_start=False)`` turns it off); on ``cold-users``/``cold-items`` tuning holds out
whole pseudo-cold users/items.

Honesty rules the harness enforces: hyper-parameters are chosen on a validation split carved out
of each fold's *training* interactions (never the test fold); every model goes through the same
:meth:`recsys.protocol.Recommender.recommend`, so seen items are filtered identically.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.coldstart import wrap_for_cold_start
from recsys.metrics import all_metrics
from recsys.registry import build_model, model_class

log = logging.getLogger(__name__)

PROTOCOLS = ("cv5-full", "cold-lt20", "random-80-10-10", "temporal", "cold-users", "cold-items", "given")
PROTOCOL_DESCRIPTIONS = {
    "cv5-full": "5-fold CV over interactions (seeded), full ranking over all items unseen in training, mean over folds",
    "cold-lt20": "cv5-full folds, metrics over test users with < 20 interactions in the dataset",
    "random-80-10-10": "random 80/10/10 train/validation/test per interaction, full ranking, fit on the 80%",
    "temporal": "train before the 80th-percentile timestamp, test after, full ranking",
    "cold-users": "10% of users (seeded) lose all training interactions but keep follows",
    "cold-items": "10% of items (seeded) lose all training interactions but keep category/text",
    "given": "the user's own train/validation/test files (--split-dir); fit on train, validation only for tuning and "
             "early stopping (10% of train when no validation.csv), validation pairs filtered from the test ranking",
}
CANDIDATE_DEFINITIONS = {
    "full": "full ranking: every item the user has not interacted with in training (nor validation where it is "
            "filtered); metrics are expectations over random orders of tied scores",
    "sampled": "sampled: each user's test positives ranked among N items the user never interacted with in the whole "
               "dataset (uniform, seeded), repeated R times (mean and sd over repeats); recall@K = hits/|positives|, "
               "hr@K = hits/min(|positives|, K) (the social-GNN papers' definition), auc = P(positive scored above a "
               "sampled negative) with ties counted 1/2; expectations over tie orders",
}
TUNE_METRIC = "ndcg@10"
# Protocols whose test users/items lack (most) training history: models are ranked through
# recsys.coldstart (followee-propagated user vectors, content item vectors) for exactly those.
COLD_PROTOCOLS = ("cold-lt20", "cold-users", "cold-items")


class ProtocolError(ValueError):
    """A protocol that does not exist or does not apply to the dataset (e.g. temporal without timestamps)."""


class SplitFileError(ProtocolError):
    """A bad row in a ``given`` split file; the message starts ``path:line:field:``."""


def parse_candidates(spec: str) -> tuple[str, int | None]:
    """``"full"`` -> ("full", None); ``"sampled:N"`` -> ("sampled", N). Raises ProtocolError."""
    if spec == "full":
        return "full", None
    kind, _, n = spec.partition(":")
    if kind == "sampled" and n.isdigit() and int(n) >= 1:
        return "sampled", int(n)
    raise ProtocolError(f"--candidates: expected 'full' or 'sampled:N' with N >= 1, got {spec!r}")


def read_given_split(split_dir, snapshot: Snapshot, user_key=None) -> Split:
    """A user-supplied split (protocol ``given``) as a :class:`Split` of the snapshot.

    ``split_dir`` holds ``train.csv``, ``test.csv`` and optionally ``validation.csv``, each with a
    header and at least the columns ``user_id,item_id`` (raw ids of the dataset; optional
    ``kind,value,ts`` are accepted and ignored: values and times come from the dataset). Every
    pair must be an interaction of the dataset and appear in one file only.

    Args:
        split_dir: the folder.
        snapshot: the full dataset.
        user_key: maps a raw user id to the snapshot's (pseudonymised) id; None = identity.
    Returns:
        ``Split(train, validation, test, exclude=validation, tune_train)``; without
        ``validation.csv`` a seeded 10 % of train is the tuning validation set (the final fit
        still uses all of train).
    Raises:
        SplitFileError: missing file/column, unknown user or item, a pair not in the dataset, a
            pair in two files (message ``path:line:field: reason``; line 1 = header).
        ProtocolError: ``split_dir`` is not a folder.
    """
    import csv
    from pathlib import Path

    root = Path(split_dir)
    if not root.is_dir():
        raise ProtocolError(f"--split-dir: {root} is not a folder")
    inter = snapshot.interactions.tocsr()
    inter.sort_indices()
    keys_all = np.repeat(np.arange(inter.shape[0], dtype=np.int64), np.diff(inter.indptr)) * inter.shape[1] + inter.indices
    owner: dict[int, str] = {}
    mats: dict[str, sp.csr_matrix | None] = {}
    for name, required in (("train", True), ("validation", False), ("test", True)):
        path = root / f"{name}.csv"
        if not path.exists():
            if required:
                raise SplitFileError(f"{path}:0:file: missing (a given split needs train.csv and test.csv)")
            mats[name] = None
            continue
        pos: list[int] = []
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for col in ("user_id", "item_id"):
                if col not in cols:
                    raise SplitFileError(f"{path}:1:{col}: missing column (header has {', '.join(cols) or 'nothing'})")
            for line, row in enumerate(reader, start=2):
                raw_u, raw_i = (row.get("user_id") or "").strip(), (row.get("item_id") or "").strip()
                u = snapshot.user_index(user_key(raw_u) if user_key else raw_u) if raw_u else None
                if u is None:
                    raise SplitFileError(f"{path}:{line}:user_id: user not in the dataset")
                i = snapshot.item_index(raw_i) if raw_i else None
                if i is None:
                    raise SplitFileError(f"{path}:{line}:item_id: item not in the dataset")
                key = u * inter.shape[1] + i
                at = np.searchsorted(keys_all, key)
                if at >= keys_all.size or keys_all[at] != key:
                    raise SplitFileError(f"{path}:{line}:item_id: this (user, item) pair is not an interaction of the dataset")
                if key in owner:
                    raise SplitFileError(f"{path}:{line}:item_id: pair already in {owner[key]}")
                owner[key] = f"{path.name}:{line}"
                pos.append(int(at))
        keep = np.zeros(inter.nnz, bool)
        keep[np.asarray(pos, np.int64)] = True
        mats[name] = _mask_entries(inter, keep)
    train, valid, test = mats["train"], mats["validation"], mats["test"]
    if test.nnz == 0:
        raise SplitFileError(f"{root / 'test.csv'}:2:user_id: no test rows")
    if valid is None:
        tune_train, carved = random_holdout(train, 0.1, np.random.default_rng(12345))
        return Split(train, carved, test, name="given", tune_train=tune_train)
    return Split(train, valid, test, exclude=valid, name="given", tune_train=train)


@dataclass
class Split:
    """One train/validation/test split of a snapshot's interactions.

    Attributes:
        train: (n_users, n_items) CSR of training interactions (values kept).
        validation: (n_users, n_items) CSR used for tuning/early stopping only (subset of what
            the final model is NOT fitted on), or None.
        test: (n_users, n_items) CSR of held-out positives.
        users: (m,) int indices of the users to score; None = every user with a test positive.
        exclude: (n_users, n_items) CSR of extra items filtered from the test ranking, or None.
        name: e.g. ``"fold 2/5"``.
    """

    train: sp.csr_matrix
    validation: sp.csr_matrix | None
    test: sp.csr_matrix
    users: np.ndarray | None = None
    exclude: sp.csr_matrix | None = None
    name: str = ""
    tune_train: sp.csr_matrix | None = field(default=None, repr=False)
    validation_users: np.ndarray | None = None


def _mask_entries(m: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """Entries of CSR ``m`` where ``keep`` (a bool per stored entry, in CSR order) is True."""
    coo = m.tocoo()
    out = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape, dtype=m.dtype)
    out.sort_indices()
    return out


def random_holdout(m: sp.csr_matrix, fraction: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split the stored entries of a matrix at random.

    Args:
        m: (n_users, n_items) CSR of interactions.
        fraction: share of entries held out, in [0, 1].
        rng: random generator (seeded by the caller).
    Returns:
        ``(rest, held)``: two CSR matrices of m's shape and dtype with sorted indices, together
        holding every entry of ``m`` exactly once.
    """
    held = rng.random(m.nnz) < fraction
    return _mask_entries(m, ~held), _mask_entries(m, held)


def make_splits(snapshot: Snapshot, protocol: str, seed: int = 0, validation_fraction: float = 0.1,
                split_dir=None, user_key=None) -> Iterator[Split]:
    """Yield the splits of a protocol.

    Args:
        snapshot: the full dataset snapshot.
        protocol: one of :data:`PROTOCOLS`.
        seed: random seed of the folds / holdouts.
        validation_fraction: share of each training set carved out for tuning.
        split_dir, user_key: protocol ``given`` only (:func:`read_given_split`).
    Yields:
        :class:`Split` objects (5 for the cv protocols, 1 otherwise).
    Raises:
        ProtocolError: unknown protocol, or ``temporal`` on data without timestamps.
    """
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if protocol == "given":
        if split_dir is None:
            raise ProtocolError("protocol 'given' needs --split-dir DIR (train.csv, test.csv, optional validation.csv)")
        yield read_given_split(split_dir, snapshot, user_key)
        return
    inter = snapshot.interactions.tocsr()
    inter.sort_indices()
    rng = np.random.default_rng(seed)

    def with_validation(train: sp.csr_matrix, sub_seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        return random_holdout(train, validation_fraction, np.random.default_rng(sub_seed))

    if protocol in ("cv5-full", "cold-lt20"):
        fold_of = rng.permutation(inter.nnz) % 5
        users = None
        if protocol == "cold-lt20":
            users = np.flatnonzero(np.diff(inter.indptr) < 20)
        for f in range(5):
            train = _mask_entries(inter, fold_of != f)
            test = _mask_entries(inter, fold_of == f)
            tune_train, valid = with_validation(train, seed * 1000 + f + 1)
            yield Split(train, valid, test, users=users, name=f"fold {f + 1}/5", tune_train=tune_train)
    elif protocol == "random-80-10-10":
        u = rng.random(inter.nnz)
        train = _mask_entries(inter, u < 0.8)
        valid = _mask_entries(inter, (u >= 0.8) & (u < 0.9))
        test = _mask_entries(inter, u >= 0.9)
        yield Split(train, valid, test, exclude=valid, name="80/10/10", tune_train=train)
    elif protocol == "temporal":
        ts = snapshot.timestamps.tocsr()
        ts.sort_indices()
        if not snapshot.has_timestamps:
            raise ProtocolError(f"protocol 'temporal' needs timestamps; {snapshot.dataset} has none")
        t = ts.data
        known = np.isfinite(t)
        cut = float(np.quantile(t[known], 0.8))
        train = _mask_entries(inter, known & (t < cut))
        test = _mask_entries(inter, known & (t >= cut))
        t_train = t[known & (t < cut)]
        vcut = float(np.quantile(t_train, 0.9)) if t_train.size else cut
        ttr = _mask_entries(ts, known & (t < cut))
        tune_train = _mask_entries(train, ttr.data < vcut)
        valid = _mask_entries(train, ttr.data >= vcut)
        users = np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(test.indptr) > 0))
        yield Split(train, valid, test, users=users, name=f"cut {time.strftime('%Y-%m-%d', time.gmtime(cut))}", tune_train=tune_train)
    elif protocol == "cold-users":
        n_cold = max(1, int(round(0.1 * snapshot.n_users)))
        cold = rng.choice(snapshot.n_users, size=n_cold, replace=False)
        is_cold = np.zeros(snapshot.n_users, bool)
        is_cold[cold] = True
        row_of = np.repeat(np.arange(inter.shape[0]), np.diff(inter.indptr))
        train = _mask_entries(inter, ~is_cold[row_of])
        test = _mask_entries(inter, is_cold[row_of])
        # tuning mirrors the protocol: 10% of the remaining users with history lose their
        # training rows (kept as validation), so cold-start settings are chosen on cold users
        vrng = np.random.default_rng(seed * 1000 + 7)
        warm = np.flatnonzero(~is_cold & (np.diff(inter.indptr) > 0))
        v_users = np.sort(vrng.choice(warm, size=max(1, int(round(validation_fraction * warm.size))), replace=False))
        is_v = np.zeros(snapshot.n_users, bool)
        is_v[v_users] = True
        train_rows = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
        tune_train, valid = _mask_entries(train, ~is_v[train_rows]), _mask_entries(train, is_v[train_rows])
        yield Split(train, valid, test, users=np.sort(cold), name="cold users 10%", tune_train=tune_train,
                    validation_users=v_users)
    elif protocol == "cold-items":
        n_cold = max(1, int(round(0.1 * snapshot.n_items)))
        cold = rng.choice(snapshot.n_items, size=n_cold, replace=False)
        is_cold = np.zeros(snapshot.n_items, bool)
        is_cold[cold] = True
        train = _mask_entries(inter, ~is_cold[inter.indices])
        test = _mask_entries(inter, is_cold[inter.indices])
        # tuning mirrors the protocol: 10% of the remaining items with history lose their
        # training interactions (kept as validation)
        vrng = np.random.default_rng(seed * 1000 + 11)
        warm_items = np.flatnonzero(~is_cold & (np.diff(inter.tocsc().indptr) > 0))
        v_items = vrng.choice(warm_items, size=max(1, int(round(validation_fraction * warm_items.size))), replace=False)
        is_v = np.zeros(snapshot.n_items, bool)
        is_v[v_items] = True
        tune_train, valid = _mask_entries(train, ~is_v[train.indices]), _mask_entries(train, is_v[train.indices])
        yield Split(train, valid, test, name="cold items 10%", tune_train=tune_train)


def _rank_metrics(model, snapshot_full: Snapshot, split_users, test, exclude, ks, n_items,
                  prior_weights: tuple[float, ...] | None = None, max_users: int | None = None, seed: int = 0):
    """Expected (tie-aware) full-ranking metrics of a fitted model on held-out positives.

    Every user with a positive in ``test`` (restricted to ``split_users``) ranks ALL items it has
    not seen in training (and not in ``exclude``), scored by :meth:`Recommender.ranking_scores`;
    metrics are expectations over random orders of tied items (:mod:`recsys.metrics`).

    Args:
        model: fitted recommender. snapshot_full: unused (kept for callers).
        split_users: (m,) users to score or None. test: (n_users, n_items) CSR positives.
        exclude: CSR of further items filtered from the ranking, or None.
        ks: cut-offs. n_items: catalogue size (coverage).
        prior_weights: if given, score every prior-blend weight from the same raw scores and return
            ``{weight: metrics}`` (validation tuning of ``prior_weight_``).
        max_users: score a seeded sample of at most this many users (tuning speed); None = all.
        seed: seed of that sample.
    Returns:
        The metrics dict (``precision@k``, ``recall@k``, ``ndcg@k``, ``hr@k``, ``map@k``,
        ``coverage@k``, ``n_users``), or ``{weight: metrics}`` with ``prior_weights``.
    """
    from recsys.metrics import MetricAccumulator
    from recsys.protocol import SCORE_BATCH, top_k

    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if split_users is not None:
        users = np.intersect1d(users, split_users)
    if max_users is not None and users.size > max_users:
        users = np.sort(np.random.default_rng(seed + 99).choice(users, max_users, replace=False))
    weights = tuple(prior_weights) if prior_weights is not None else (None,)
    accs = {w: MetricAccumulator(tuple(ks), n_items) for w in weights}
    if users.size:
        tie = model.tie_rank()
        kmax = max(ks)
        for start in range(0, users.size, SCORE_BATCH):
            block = users[start : start + SCORE_BATCH]
            extra = exclude[block] if exclude is not None else None
            raw = model.raw_scores(block)
            rel = test[block]
            for w in weights:
                scores = model.ranking_scores(block, exclude_seen=True, exclude=extra, prior_weight=w, raw=raw)
                ranked, _ = top_k(scores, kmax, tie)
                accs[w].add(scores, rel, ranked)
    if prior_weights is None:
        return accs[None].result()
    return {w: a.result() for w, a in accs.items()}


def sample_negatives(seen_row: np.ndarray, n_items: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct items (uniform, without replacement) outside the sorted ``seen_row`` indices.

    Fewer than n when the user has interacted with all but fewer than n items. Returns (<=n,) int64.
    """
    seen_row = np.unique(np.asarray(seen_row, np.int64))
    free = n_items - seen_row.size
    if free <= 0:
        return np.zeros(0, np.int64)
    x = np.sort(rng.choice(free, size=min(n, free), replace=False).astype(np.int64))
    # map the x-th free slot to its item: skip the seen items at or before it
    return x + np.searchsorted(seen_row - np.arange(seen_row.size), x, side="right")


def _sampled_metrics(model, split_users, test, full: sp.csr_matrix, ks, n_neg: int, repeats: int, seed: int) -> dict:
    """Metrics with sampled candidates: each user's test positives among ``n_neg`` sampled items
    the user never interacted with (``full`` = all of the dataset), ``repeats`` seeded draws.

    Returns:
        ``{"precision@k", "recall@k", "ndcg@k", "hr@k" (hits / min(|pos|, k)), "map@k", "auc",
        "<metric>_sd" (sd over repeats), "n_users", "repeats", "negatives"}``.
    """
    from recsys.metrics import MetricAccumulator
    from recsys.protocol import SCORE_BATCH

    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if split_users is not None:
        users = np.intersect1d(users, split_users)
    full = full.tocsr()
    per_rep = []
    for rep in range(repeats):
        rng = np.random.default_rng([seed, rep, 7919])
        acc = MetricAccumulator(tuple(ks), 0, hr_denominator="min")
        auc_sum = 0.0
        for start in range(0, users.size, SCORE_BATCH):
            block = users[start : start + SCORE_BATCH]
            scores = model.ranking_scores(block, exclude_seen=False)
            rel_rows = test[block]
            pos = [rel_rows.indices[rel_rows.indptr[j] : rel_rows.indptr[j + 1]] for j in range(block.size)]
            neg = [sample_negatives(full.indices[full.indptr[u] : full.indptr[u + 1]], full.shape[1], n_neg, rng) for u in block]
            width = max(len(p) + len(q) for p, q in zip(pos, neg))
            cand = np.full((block.size, width), -np.inf, np.float32)
            r_i, r_c = [], []
            for j, (p, q) in enumerate(zip(pos, neg)):
                row = scores[j]
                cand[j, : len(p)] = row[p]
                cand[j, len(p) : len(p) + len(q)] = row[q]
                r_i += [j] * len(p)
                r_c += list(range(len(p)))
                ps, ns = row[p].astype(np.float64), np.sort(row[q].astype(np.float64))
                if ns.size:
                    less = np.searchsorted(ns, ps, side="left")
                    eq = np.searchsorted(ns, ps, side="right") - less
                    auc_sum += float(np.mean((less + 0.5 * eq) / ns.size))
                else:
                    auc_sum += 1.0
            rel = sp.csr_matrix((np.ones(len(r_i), np.float32), (r_i, r_c)), shape=cand.shape)
            acc.add(cand, rel)
        m = acc.result()
        m["auc"] = auc_sum / users.size if users.size else 0.0
        per_rep.append(m)
    out: dict = {}
    for key in per_rep[0]:
        if key == "n_users":
            continue
        vals = np.array([r[key] for r in per_rep], np.float64)
        out[key] = float(vals.mean())
        out[f"{key}_sd"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    out["n_users"] = int(users.size)
    out["repeats"] = repeats
    out["negatives"] = n_neg
    return out


PRIOR_WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)  # popularity back-off weights tried on validation
MAX_TUNE_USERS = 4000  # validation users scored per tuning trial (seeded sample beyond that)
NO_PRIOR_MODELS = ("popular", "segment_popular")  # their scores ARE a popularity prior


def tune(
    name: str,
    snapshot: Snapshot,
    split: Split,
    fixed: dict | None = None,
    users: np.ndarray | None = None,
    cold_start: bool = False,
    prior_weights: tuple[float, ...] | None = PRIOR_WEIGHTS,
) -> tuple[dict, list[dict]]:
    """Choose hyper-parameters of a model on the split's VALIDATION data only.

    Each candidate of the model's ``param_grid`` is fitted on ``split.tune_train`` (training minus
    validation) and scored by :data:`TUNE_METRIC` on ``split.validation``, once per popularity
    back-off weight of ``prior_weights`` (:meth:`recsys.protocol.Recommender.ranking_scores`;
    the same fit, re-ranked). The chosen weight is returned as ``params["prior_weight"]``, which
    :func:`recsys.registry.build_model` applies. A model with a one-entry grid is still fitted
    once when there are weights to choose.

    Args:
        name: model name.
        snapshot: full snapshot (its interactions are replaced by the tuning train set).
        split: the split; its test set is never touched here.
        fixed: hyper-parameters applied to every candidate (e.g. ``seed``).
        users: restrict validation users (e.g. the cold users of a protocol).
        cold_start: rank through :func:`recsys.coldstart.wrap_for_cold_start` (cold protocols).
        prior_weights: back-off weights to try (None or ``(0,)`` = no back-off); ignored for
            :data:`NO_PRIOR_MODELS` and cold-start wrapped models.
    Returns:
        ``(best_params, trials)``; trials = ``[{"params", "prior_weight", "ndcg@10", "recall@10",
        "seconds"}]`` (one per grid entry and weight). Empty trials = nothing was tried (no
        validation data, or a one-entry grid and no weights).
    """
    grid = list(model_class(name).param_grid) or [{}]
    weights = tuple(prior_weights or (0.0,))
    if name in NO_PRIOR_MODELS or cold_start:
        weights = (0.0,)
    if split.validation is None or split.tune_train is None or (len(grid) == 1 and len(weights) == 1):
        return {**grid[0], **(fixed or {})}, []
    tune_snap = snapshot.with_interactions(split.tune_train)
    trials = []
    from graph.progress import progress

    for params in progress(grid, f"tune {name} (validation grid)", unit="fits"):
        params = {**params, **(fixed or {})}
        t0 = time.perf_counter()
        model = build_model(name, **params).fit(tune_snap)
        if cold_start:
            model = wrap_for_cold_start(model)
        fit_s = time.perf_counter() - t0
        per_w = _rank_metrics(model, tune_snap, users, split.validation, None, (10,), snapshot.n_items,
                              prior_weights=weights, max_users=MAX_TUNE_USERS)
        for w, m in per_w.items():
            trials.append({"params": params, "prior_weight": w, TUNE_METRIC: m[TUNE_METRIC], "recall@10": m["recall@10"],
                           "seconds": fit_s})
        best_w = max(per_w, key=lambda w: per_w[w][TUNE_METRIC])
        log.info("  tune %-9s %s -> validation %s=%.4f at prior weight %s (%.1fs fit; no back-off %.4f)", name, params,
                 TUNE_METRIC, per_w[best_w][TUNE_METRIC], best_w, fit_s, per_w[weights[0]][TUNE_METRIC])
    best = max(trials, key=lambda t: t[TUNE_METRIC])
    out = dict(best["params"])
    if best["prior_weight"] > 0:
        out["prior_weight"] = best["prior_weight"]
    return out, trials


def evaluate(
    snapshot: Snapshot,
    protocol: str,
    models: list[str] | tuple[str, ...],
    ks: tuple[int, ...] = (10, 20),
    seed: int = 0,
    tune_params: bool = True,
    params: dict[str, dict] | None = None,
    max_folds: int | None = None,
    cold_start: bool = True,
    candidates: str = "full",
    repeats: int = 3,
    split_dir=None,
    user_key=None,
) -> dict:
    """Evaluate models on a protocol; the ``socialrec evaluate --json`` result.

    Args:
        snapshot: the full dataset.
        protocol: one of :data:`PROTOCOLS`.
        models: model names (:mod:`recsys.registry`).
        ks: cut-offs, e.g. (10, 20).
        seed: split seed; models are seeded with it too where they take a seed.
        tune_params: tune each model's ``param_grid`` on validation data per split; False = defaults.
        params: fixed hyper-parameters per model name, applied on top (e.g. ``{"als": {"factors": 32}}``).
        max_folds: evaluate only the first N splits (smoke tests); None = all.
        cold_start: on the :data:`COLD_PROTOCOLS`, rank users/items without training history
            through :func:`recsys.coldstart.wrap_for_cold_start` (users with history and
            ``popular`` are unchanged); each model's result says ``"cold_start": true``.
        candidates: ``full`` (every unseen item) or ``sampled:N`` (:func:`_sampled_metrics`:
            each user's positives among N sampled never-interacted items, ``repeats`` draws;
            adds ``auc`` and ``<metric>_sd``).
        repeats: draws of the sampled candidates.
        split_dir, user_key: protocol ``given`` (:func:`read_given_split`).
    Returns:
        ``{"dataset", "protocol", "protocol_definition", "candidates", "candidates_definition", "seed", "ks",
        "test_set" (see :func:`_test_set_stats`: cold test users/items), "models": {name: {"precision@10",
        "recall@10", "ndcg@10", "hr@10", "map@10", "coverage@10", ..., "fit_seconds", "params",
        "n_users", "folds"}}}``; metric values are means over splits.
    Raises:
        ProtocolError, UnknownModelError: bad protocol or model name.
    """
    for name in models:
        model_class(name)  # fail fast on an unknown model
    cand_kind, n_neg = parse_candidates(candidates)
    if repeats < 1:
        raise ProtocolError(f"repeats must be >= 1, got {repeats}")
    per_model: dict[str, list[dict]] = {m: [] for m in models}
    chosen: dict[str, list[dict]] = {m: [] for m in models}
    use_cold = cold_start and protocol in COLD_PROTOCOLS
    test_sets: list[dict] = []
    for i, split in enumerate(make_splits(snapshot, protocol, seed=seed, split_dir=split_dir, user_key=user_key)):
        if max_folds is not None and i >= max_folds:
            break
        train_snap = snapshot.with_interactions(split.train)
        test_sets.append(_test_set_stats(split))
        for name in models:
            fixed = dict((params or {}).get(name, {}))
            if "seed" in inspect.signature(model_class(name).__init__).parameters:
                fixed.setdefault("seed", seed)
            t0 = time.perf_counter()
            if tune_params:
                v_users = split.validation_users if split.validation_users is not None else split.users
                best, _ = tune(name, snapshot, split, fixed, users=v_users, cold_start=use_cold)
            else:
                best = {**(model_class(name).param_grid[0] if model_class(name).param_grid else {}), **fixed}
            t1 = time.perf_counter()
            # early-stopping models see the validation set only when it is disjoint from what they
            # are fitted on (random-80-10-10); otherwise they hold out their own share of train.
            disjoint = split.tune_train is split.train
            model = build_model(name, **best).fit(train_snap, validation=split.validation if disjoint else None)
            if use_cold:
                model = wrap_for_cold_start(model)
            fit_s = time.perf_counter() - t1
            if cand_kind == "full":
                metrics = _rank_metrics(model, train_snap, split.users, split.test, split.exclude, ks, snapshot.n_items)
            else:
                metrics = _sampled_metrics(model, split.users, split.test, snapshot.interactions, ks, n_neg, repeats, seed)
            metrics["fit_seconds"] = fit_s
            metrics["tune_seconds"] = t1 - t0
            per_model[name].append(metrics)
            chosen[name].append(best)
            log.info(
                "%s %s %-9s recall@%d=%.4f ndcg@%d=%.4f users=%d fit=%.1fs tune=%.1fs",
                protocol, split.name, name, ks[0], metrics[f"recall@{ks[0]}"], ks[0], metrics[f"ndcg@{ks[0]}"],
                metrics["n_users"], fit_s, t1 - t0,
            )
    out_models = {}
    for name, rows in per_model.items():
        keys = rows[0].keys()
        summary = {key: float(np.mean([r[key] for r in rows])) for key in keys}
        summary["n_users"] = int(round(summary["n_users"]))
        summary["folds"] = len(rows)
        summary["params"] = chosen[name]
        summary["cold_start"] = use_cold
        out_models[name] = summary
    return {
        "dataset": snapshot.dataset,
        "protocol": protocol,
        "protocol_definition": PROTOCOL_DESCRIPTIONS[protocol],
        "candidates": candidates,
        "candidates_definition": CANDIDATE_DEFINITIONS[cand_kind].replace(" N ", f" {n_neg} " if n_neg else " N ")
        .replace(" R times", f" {repeats} times"),
        "seed": seed,
        "ks": list(ks),
        "test_set": {key: float(np.mean([t[key] for t in test_sets])) for key in test_sets[0]} if test_sets else {},
        "models": out_models,
    }


def _test_set_stats(split) -> dict:
    """What a split's test set holds that no collaborative model can rank (means over splits in
    the JSON): ``n_test_users``, ``n_cold_test_users`` (no training interaction),
    ``n_test_items``, ``n_cold_test_items`` (test items with no training interaction) and
    ``cold_item_test_share`` (share of test interactions on those items)."""
    test = split.test.tocsr()
    train_items = np.diff(split.train.tocsc().indptr) > 0
    train_users = np.diff(split.train.tocsr().indptr) > 0
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    items = np.unique(test.indices)
    cold_items = items[~train_items[items]]
    on_cold = np.isin(test.indices, cold_items).sum()
    return {"n_test_users": int(users.size), "n_cold_test_users": int((~train_users[users]).sum()),
            "n_test_items": int(items.size), "n_cold_test_items": int(cold_items.size),
            "cold_item_test_share": float(on_cold / max(test.nnz, 1))}
