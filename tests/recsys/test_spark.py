"""``spark_als`` (Spark MLlib ALS, local[2]) passes the shared recommender contract, learns what
``als`` learns on the same data, and the Spark batch job writes the lists the model ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.store import EmbeddedStore
from recsys.models.als import AlternatingLeastSquaresModel
from recsys.spark.als import SparkALSModel
from recsys.spark.batch import batch_recommend, batch_score
from recsys.spark.session import stop_spark
from tests.conftest import synthetic_snapshot
from tests.recsys.recommender_contract import RecommenderContract


@pytest.fixture(scope="module", autouse=True)
def _spark_once():
    yield
    stop_spark()


class TestSparkALS(RecommenderContract):
    def make_model(self):
        return SparkALSModel(factors=8, iterations=5, regularization=0.05, seed=1)


def _blocks(n_users: int = 40, n_items: int = 40):
    """Two communities: users of block b interact with most items of block b only (the
    'learns the obvious' check of implicit's test suite); one item per user is held out."""
    from graph.snapshot import build_snapshot

    rng = np.random.default_rng(0)
    rows, held = [], {}
    for u in range(n_users):
        block = u % 2
        items = [i for i in range(n_items) if i % 2 == block and rng.random() < 0.7]
        held[u] = int(rng.choice(items))  # a random one: always the last would hold out the same few items
        rows += [(f"u{u:02d}", f"i{i:02d}", "rating", 1.0, np.nan) for i in items if i != held[u]]
    users = pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(n_users)]})
    items = pd.DataFrame({"item_id": [f"i{i:02d}" for i in range(n_items)], "category": "c"})
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "kind", "value", "ts"])
    follows = pd.DataFrame(columns=["follower_id", "followee_id"])
    snap = build_snapshot("blocks", users, items, inter, follows)
    return snap, {snap.user_index(f"u{u:02d}"): snap.item_index(f"i{i:02d}") for u, i in held.items()}


def test_spark_als_learns_the_obvious_like_als():
    snap, held = _blocks()
    spark = SparkALSModel(factors=4, iterations=10, regularization=0.01, alpha=10.0, weighting="binary").fit(snap)
    local = AlternatingLeastSquaresModel(factors=4, iterations=10, regularization=0.05, alpha=10.0, weighting="binary").fit(snap)
    for model in (spark, local):
        items, _ = model.recommend(np.arange(snap.n_users), k=5)
        # every recommendation comes from the user's own block ...
        same_block = [int(snap.item_ids[i][1:]) % 2 == int(snap.user_ids[u][1:]) % 2
                      for u in range(snap.n_users) for i in items[u] if i >= 0]
        assert np.mean(same_block) > 0.9, model.name  # chance: 0.5
        # ... and the held-out item is in the top 5 for most users
        hits = np.mean([held[u] in items[u] for u in range(snap.n_users)])
        assert hits > 0.5, (model.name, hits)


def test_batch_job_writes_the_lists_the_model_ranks(tmp_path):
    snap = synthetic_snapshot()
    model = SparkALSModel(factors=8, iterations=5, seed=1).fit(snap)
    recs = batch_recommend(model, k=5)
    expected, _ = model.recommend(np.arange(snap.n_users), k=5)
    for u in range(snap.n_users):
        got = recs.loc[recs["user_idx"] == u, "item_idx"].tolist()
        want = [i for i in expected[u].tolist() if i >= 0]
        assert got == want, u
    store = EmbeddedStore(tmp_path / "store", snap.dataset)
    report = batch_score(model, "v1/spark_als", tmp_path / "out", store=store, k=5)
    back = pd.read_parquet(report["parquet"])
    assert len(back) == report["rows"] == len(recs)
    assert set(back.columns) == {"user_id", "rank", "item_id", "score", "model_version"}
    assert (back["model_version"] == "v1/spark_als").all()
    assert set(back["user_id"]) <= set(snap.user_ids)
    stored = store.read_recommendations()
    assert len(stored) == len(back)


def test_batch_scoring_refuses_a_model_without_factors():
    from recsys.models.popular import PopularModel

    with pytest.raises(TypeError, match="factor model"):
        batch_recommend(PopularModel().fit(synthetic_snapshot()), k=5)
