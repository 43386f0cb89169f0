"""Never below popularity: back-off weights tuned on validation, the serving model chosen among all
candidates (popular included), the hybrid falling back to its best generator."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation import Split, random_holdout, tune
from recsys.registry import build_model
from recsys.training import select_serving_model, train_models


def test_popular_is_served_when_no_model_beats_it():
    val = {"popular": {"recall@10": 0.30, "ndcg@10": 0.20}, "als": {"recall@10": 0.25, "ndcg@10": 0.22},
           "itemcf": {"recall@10": 0.301, "ndcg@10": 0.21}}  # itemcf: within the 1 % margin
    name, report = select_serving_model(val)
    assert name == "popular" and report["beats_popular"] is False
    assert set(report["candidates"]) == {"popular", "als", "itemcf"} and "rule" in report


def test_the_best_model_that_beats_popular_is_served():
    val = {"popular": {"recall@10": 0.10, "ndcg@10": 0.10}, "als": {"recall@10": 0.20, "ndcg@10": 0.15},
           "hybrid": {"recall@10": 0.25, "ndcg@10": 0.09}, "itemcf": {"recall@10": 0.18, "ndcg@10": 0.2}}
    name, report = select_serving_model(val)  # hybrid is below popular on NDCG: not eligible
    assert name == "als" and report["chosen"] == "als" and report["beats_popular"]


def test_train_models_reports_its_choice_among_candidates_including_popular(tiny_snapshot):
    res = train_models(tiny_snapshot, ["als"], params={"als": {"factors": 4, "iterations": 2}})
    assert set(res.validation) == {"popular", "als"}
    assert res.serving_model in ("popular", "als") and res.selection["chosen"] == res.serving_model
    assert {"recall@10", "ndcg@10"} <= set(res.validation["als"])


def test_tuning_chooses_a_back_off_weight_and_build_model_applies_it(tiny_snapshot):
    rest, valid = random_holdout(tiny_snapshot.interactions.tocsr(), 0.2, np.random.default_rng(0))
    split = Split(train=rest, validation=valid, test=valid, tune_train=rest)
    best, trials = tune("itemcf", tiny_snapshot, split, prior_weights=(0.0, 1.0, 1000.0))
    assert {t["prior_weight"] for t in trials} == {0.0, 1.0, 1000.0}
    model = build_model("itemcf", **best).fit(tiny_snapshot)
    assert model.prior_weight_ == best.get("prior_weight", 0.0)
    # an overwhelming weight ranks by popularity (the model's scores order equally popular items)
    heavy = build_model("itemcf", prior_weight=1000.0).fit(tiny_snapshot)
    pop = build_model("popular").fit(tiny_snapshot)
    counts = np.diff(tiny_snapshot.interactions.tocsc().indptr)
    users = np.arange(5)
    np.testing.assert_array_equal(counts[heavy.recommend(users, k=3)[0]], counts[pop.recommend(users, k=3)[0]])
    assert build_model("itemcf").prior_weight_ == 0.0
    with pytest.raises(TypeError):
        build_model("itemcf", no_such_param=1)


def test_hybrid_serves_its_best_generator_when_the_ranker_does_not_beat_it(tiny_snapshot, monkeypatch):
    from recsys.models.hybrid import HybridModel

    def rigged(self, users, snap, held, gens):
        return {"ranker": 0.1, **{g: (0.5 if g == "itemcf" else 0.0) for g in gens}}

    monkeypatch.setattr(HybridModel, "_holdout_ndcg", rigged)
    model = HybridModel(generators=("ease", "itemcf"), candidates=10, n_estimators=10, min_child_samples=5, seed=1).fit(tiny_snapshot)
    assert model.mode_ == "itemcf" and set(model.generators_) == {"itemcf"}
    ref = model.generators_["itemcf"]
    users = np.arange(8)
    np.testing.assert_array_equal(model.recommend(users, k=5)[0], ref.recommend(users, k=5)[0])
