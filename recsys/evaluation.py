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
=================  ==========================================================================

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

PROTOCOLS = ("cv5-full", "cold-lt20", "random-80-10-10", "temporal", "cold-users", "cold-items")
PROTOCOL_DESCRIPTIONS = {
    "cv5-full": "5-fold CV over interactions (seeded), full ranking over all items unseen in training, mean over folds",
    "cold-lt20": "cv5-full folds, metrics over test users with < 20 interactions in the dataset",
    "random-80-10-10": "random 80/10/10 train/validation/test per interaction, full ranking, fit on the 80%",
    "temporal": "train before the 80th-percentile timestamp, test after, full ranking",
    "cold-users": "10% of users (seeded) lose all training interactions but keep follows",
    "cold-items": "10% of items (seeded) lose all training interactions but keep category/text",
}
TUNE_METRIC = "ndcg@10"
# Protocols whose test users/items lack (most) training history: models are ranked through
# recsys.coldstart (followee-propagated user vectors, content item vectors) for exactly those.
COLD_PROTOCOLS = ("cold-lt20", "cold-users", "cold-items")


class ProtocolError(ValueError):
    """A protocol that does not exist or does not apply to the dataset (e.g. temporal without timestamps)."""


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


def make_splits(snapshot: Snapshot, protocol: str, seed: int = 0, validation_fraction: float = 0.1) -> Iterator[Split]:
    """Yield the splits of a protocol.

    Args:
        snapshot: the full dataset snapshot.
        protocol: one of :data:`PROTOCOLS`.
        seed: random seed of the folds / holdouts.
        validation_fraction: share of each training set carved out for tuning.
    Yields:
        :class:`Split` objects (5 for the cv protocols, 1 otherwise).
    Raises:
        ProtocolError: unknown protocol, or ``temporal`` on data without timestamps.
    """
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
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


def tune(
    name: str,
    snapshot: Snapshot,
    split: Split,
    fixed: dict | None = None,
    users: np.ndarray | None = None,
    cold_start: bool = False,
) -> tuple[dict, list[dict]]:
    """Choose hyper-parameters of a model on the split's VALIDATION data only.

    Each candidate of the model's ``param_grid`` is fitted on ``split.tune_train`` (training minus
    validation) and scored by :data:`TUNE_METRIC` on ``split.validation``.

    Args:
        name: model name.
        snapshot: full snapshot (its interactions are replaced by the tuning train set).
        split: the split; its test set is never touched here.
        fixed: hyper-parameters applied to every candidate (e.g. ``seed``).
        users: restrict validation users (e.g. the cold users of a protocol).
        cold_start: rank through :func:`recsys.coldstart.wrap_for_cold_start` (cold protocols).
    Returns:
        ``(best_params, trials)``; trials = ``[{"params", "ndcg@10", "seconds"}]``.
    """
    grid = list(model_class(name).param_grid) or [{}]
    if len(grid) == 1 or split.validation is None or split.tune_train is None:
        return {**grid[0], **(fixed or {})}, []
    tune_snap = snapshot.with_interactions(split.tune_train)
    trials = []
    for params in grid:
        params = {**params, **(fixed or {})}
        t0 = time.perf_counter()
        model = build_model(name, **params).fit(tune_snap)
        if cold_start:
            model = wrap_for_cold_start(model)
        score = _rank_metrics(model, tune_snap, users, split.validation, None, (10,), snapshot.n_items)[TUNE_METRIC]
        trials.append({"params": params, TUNE_METRIC: score, "seconds": time.perf_counter() - t0})
        log.info("  tune %-9s %s -> validation %s=%.4f (%.1fs)", name, params, TUNE_METRIC, score, trials[-1]["seconds"])
    best = max(trials, key=lambda t: t[TUNE_METRIC])
    return best["params"], trials


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
    Returns:
        ``{"dataset", "protocol", "protocol_definition", "seed", "ks", "models": {name: {"precision@10",
        "recall@10", "ndcg@10", "hr@10", "map@10", "coverage@10", ..., "fit_seconds", "params",
        "n_users", "folds"}}}``; metric values are means over splits.
    Raises:
        ProtocolError, UnknownModelError: bad protocol or model name.
    """
    for name in models:
        model_class(name)  # fail fast on an unknown model
    per_model: dict[str, list[dict]] = {m: [] for m in models}
    chosen: dict[str, list[dict]] = {m: [] for m in models}
    use_cold = cold_start and protocol in COLD_PROTOCOLS
    for i, split in enumerate(make_splits(snapshot, protocol, seed=seed)):
        if max_folds is not None and i >= max_folds:
            break
        train_snap = snapshot.with_interactions(split.train)
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
            metrics = _rank_metrics(model, train_snap, split.users, split.test, split.exclude, ks, snapshot.n_items)
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
        "seed": seed,
        "ks": list(ks),
        "models": out_models,
    }
