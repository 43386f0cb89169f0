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
from recsys.evaluation import Split, _rank_metrics, random_holdout, tune
from recsys.protocol import Recommender
from recsys.registry import build_model, model_class

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Fitted models plus what was learned while choosing them.

    Attributes:
        models: name -> model fitted on the whole snapshot.
        params: name -> chosen hyper-parameters.
        validation: name -> validation metrics of the chosen setting (random 10 % holdout of the
            snapshot, model fitted on the other 90 %).
        fit_seconds: name -> seconds of the final fit.
        serving_model: the non-``popular`` model with the best validation NDCG@10 (``popular`` if
            it is the only one).
    """

    models: dict[str, Recommender]
    params: dict[str, dict]
    validation: dict[str, dict] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)
    serving_model: str = "popular"


def train_models(
    snapshot: Snapshot,
    model_names: list[str] | tuple[str, ...],
    seed: int = 0,
    tune_params: bool = True,
    validation_fraction: float = 0.1,
    params: dict[str, dict] | None = None,
) -> TrainResult:
    """Tune each model on a random validation holdout, then fit it on the whole snapshot.

    Args:
        snapshot: all interactions known now.
        model_names: registry names; ``popular`` is always added (the API's fallback).
        seed: seed of the holdout and of the models.
        tune_params: try each model's ``param_grid``; False = first grid entry.
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
        if tune_params:
            best, trials = tune(name, snapshot, split, fixed)
        else:
            best, trials = {**(cls.param_grid[0] if cls.param_grid else {}), **fixed}, []
        if trials:
            val = max(trials, key=lambda t: t["ndcg@10"])
            result.validation[name] = {"ndcg@10": val["ndcg@10"]}
        else:
            probe = build_model(name, **best).fit(rest_snap, validation=valid)
            result.validation[name] = {"ndcg@10": _rank_metrics(probe, rest_snap, None, valid, None, (10,), snapshot.n_items)["ndcg@10"]}
        t0 = time.perf_counter()
        result.models[name] = build_model(name, **best).fit(snapshot, validation=None)
        result.fit_seconds[name] = time.perf_counter() - t0
        result.params[name] = best
        log.info("trained %-9s validation ndcg@10=%.4f fit=%.1fs params=%s", name, result.validation[name]["ndcg@10"], result.fit_seconds[name], best)
    candidates = [n for n in names if n != "popular"] or ["popular"]
    result.serving_model = max(candidates, key=lambda n: result.validation[n]["ndcg@10"])
    return result
