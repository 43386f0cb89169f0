"""Training a model version: validation-only tuning, a final fit on everything, artifacts.

Used by ``socialrec train``, ``socialrec demo`` and the nightly retrain.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from graph.snapshot import Snapshot
from recsys.evaluation import MAX_TUNE_USERS, Split, _rank_metrics, random_holdout, tune
from recsys.protocol import Recommender
from recsys.registry import build_model, model_class

log = logging.getLogger(__name__)


SELECTION_METRIC = "recall@10"
SELECTION_MARGIN = 0.01  # a model must beat popular's validation recall@10 by >= 1 % (relative)


@dataclass
class TrainResult:
    """Fitted models plus what was learned while choosing them.

    Attributes:
        models: name -> model fitted on the whole snapshot.
        params: name -> chosen hyper-parameters (``prior_weight`` = popularity back-off weight).
        validation: name -> ``{"recall@10", "ndcg@10"}`` of the chosen setting on the validation
            holdout (random 10 % of the snapshot, model fitted on the other 90 %).
        fit_seconds: name -> seconds of the final fit.
        tune_seconds: name -> seconds spent tuning (and probing) on the validation holdout.
        serving_model: the model chosen on validation by :func:`select_serving_model` — possibly
            ``popular``.
        selection: the choice, reported: ``{"metric", "rule", "chosen", "candidates": {name:
            {"recall@10", "ndcg@10"}}, "popular": {...}, "beats_popular"}``.
    """

    models: dict[str, Recommender]
    params: dict[str, dict]
    validation: dict[str, dict] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    serving_model: str = "popular"
    selection: dict = field(default_factory=dict)
    tune_seconds: dict[str, float] = field(default_factory=dict)


def select_serving_model(validation: dict[str, dict], metric: str = SELECTION_METRIC,
                         margin: float = SELECTION_MARGIN) -> tuple[str, dict]:
    """The model to serve, chosen on validation metrics among ALL candidates, ``popular`` included.

    Rule: the candidate with the highest validation ``metric`` (recall@10) among those that beat
    ``popular`` by at least ``margin`` (relative) on it and are not below popular on NDCG@10;
    ``popular`` when no candidate does (a shop whose data is too sparse for collaborative
    filtering is served popularity rather than a worse model).

    Args:
        validation: name -> ``{"recall@10", "ndcg@10", ...}``; must hold ``popular``.
        metric: the selection metric. margin: relative margin over popular.
    Returns:
        ``(name, report)``; report as :attr:`TrainResult.selection`.
    Raises:
        KeyError: ``popular`` missing from ``validation``.
    """
    pop = validation["popular"]
    ok = [n for n, v in validation.items() if n != "popular" and v[metric] >= pop[metric] * (1 + margin)
          and v["ndcg@10"] >= pop["ndcg@10"] and v[metric] > 0]
    chosen = max(ok, key=lambda n: (validation[n][metric], validation[n]["ndcg@10"])) if ok else "popular"
    report = {
        "metric": metric,
        "rule": f"highest validation {metric} among models beating popular by >= {margin:.0%} on it and not below it "
                "on ndcg@10; popular otherwise",
        "chosen": chosen,
        "beats_popular": chosen != "popular",
        "popular": {k: pop[k] for k in (metric, "ndcg@10")},
        "candidates": {n: {k: v[k] for k in (metric, "ndcg@10")} for n, v in validation.items()},
    }
    return chosen, report


def train_models(
    snapshot: Snapshot,
    model_names: list[str] | tuple[str, ...],
    seed: int = 0,
    tune_params: bool = True,
    validation_fraction: float = 0.1,
    params: dict[str, dict] | None = None,
) -> TrainResult:
    """Tune each model on a random validation holdout, then fit it on the whole snapshot.

    Tuning covers each model's ``param_grid`` and its popularity back-off weight
    (:func:`recsys.evaluation.tune`); the serving model is then chosen on the same validation
    data among all of them, ``popular`` included (:func:`select_serving_model`).

    Args:
        snapshot: all interactions known now.
        model_names: registry names; ``popular`` is always added (the API's fallback and a candidate).
        seed: seed of the holdout and of the models.
        tune_params: try each model's ``param_grid`` and back-off weights; False = first grid
            entry, no back-off (the choice of serving model still uses validation).
        validation_fraction: share of interactions held out for tuning.
        params: fixed hyper-parameters per model, applied on top of the tuned ones.
    Returns:
        :class:`TrainResult`.
    Raises:
        UnknownModelError: a bad model name.
    """
    names = list(dict.fromkeys(["popular", *model_names]))
    rest, valid = random_holdout(snapshot.interactions.tocsr(), validation_fraction, np.random.default_rng(seed + 17))
    split = Split(train=rest, validation=valid, test=valid, name="validation", tune_train=rest)
    rest_snap = snapshot.with_interactions(rest)
    result = TrainResult(models={}, params={})
    for name in names:
        cls = model_class(name)
        fixed = dict((params or {}).get(name, {}))
        if "seed" in inspect.signature(cls.__init__).parameters:
            fixed.setdefault("seed", seed)
        t_tune = time.perf_counter()
        if tune_params:
            best, trials = tune(name, snapshot, split, fixed)
        else:
            best, trials = {**(cls.param_grid[0] if cls.param_grid else {}), **fixed}, []
        if trials:
            val = max(trials, key=lambda t: t["ndcg@10"])
            result.validation[name] = {"ndcg@10": val["ndcg@10"], "recall@10": val["recall@10"]}
        else:
            probe = build_model(name, **best).fit(rest_snap, validation=valid)
            m = _rank_metrics(probe, rest_snap, None, valid, None, (10,), snapshot.n_items, max_users=MAX_TUNE_USERS)
            result.validation[name] = {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"]}
        result.tune_seconds[name] = time.perf_counter() - t_tune
        t0 = time.perf_counter()
        result.models[name] = build_model(name, **best).fit(snapshot, validation=None)
        result.fit_seconds[name] = time.perf_counter() - t0
        result.params[name] = best
        log.info("trained %-9s validation recall@10=%.4f ndcg@10=%.4f fit=%.1fs params=%s", name,
                 result.validation[name]["recall@10"], result.validation[name]["ndcg@10"], result.fit_seconds[name], best)
    result.serving_model, result.selection = select_serving_model(result.validation)
    log.info("serving model %s chosen on validation %s (%s)", result.serving_model, SELECTION_METRIC,
             ", ".join(f"{n} {v[SELECTION_METRIC]:.4f}" for n, v in result.validation.items()))
    return result
