"""Model names (``INTERFACES.md``) -> classes, imported lazily so heavy dependencies load on use."""

from __future__ import annotations

import importlib

from recsys.protocol import Recommender

MODELS: dict[str, str] = {
    "popular": "recsys.models.popular:PopularModel",
    "als": "recsys.models.als:AlternatingLeastSquaresModel",
    "itemcf": "recsys.models.itemcf:ItemCFModel",
    "social": "recsys.models.social:SocialEmbeddingModel",
    "hybrid": "recsys.models.hybrid:HybridModel",
    "graphsage": "gnn.graphsage:GraphSAGEModel",
    "lightgcn": "gnn.lightgcn:LightGCNModel",
    "segment_popular": "recsys.coldstart:SegmentPopularModel",
    "coldstart": "recsys.coldstart:ColdStartRecommender",
    "spark_als": "recsys.spark.als:SparkALSModel",
}
DEFAULT_MODELS = ("popular", "als", "itemcf")
# what `socialrec train` tunes and chooses the serving model among (on validation data)
TRAIN_MODELS = ("popular", "als", "itemcf", "hybrid")


class UnknownModelError(ValueError):
    """A model name that is not in :data:`MODELS` (or whose module is not installed)."""


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``.

    Raises:
        UnknownModelError: unknown name, or its module cannot be imported.
    """
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    module, _, cls = MODELS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise UnknownModelError(f"model {name!r} is not available: {exc}") from exc


def available_models() -> list[str]:
    """Names whose classes import cleanly."""
    out = []
    for name in MODELS:
        try:
            model_class(name)
            out.append(name)
        except UnknownModelError:
            pass
    return out


def build_model(name: str, **params) -> Recommender:
    """Instantiate a model by name with hyper-parameters. Raises UnknownModelError, TypeError.

    ``prior_weight`` (chosen by :func:`recsys.evaluation.tune`) is not a constructor argument: it
    sets the model's popularity back-off weight ``prior_weight_``.
    """
    params = dict(params)
    prior = float(params.pop("prior_weight", 0.0) or 0.0)
    model = model_class(name)(**params)
    if prior > 0:
        model.prior_weight_ = prior
    return model
