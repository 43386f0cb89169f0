"""The contract every recommender passes (after implicit's ``recommender_base_test.py``).

Subclass :class:`RecommenderContract` in a test module and implement ``make_model``; pytest
collects the inherited tests for it.
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys.protocol import NotFittedError, Recommender
from tests.conftest import synthetic_snapshot


class RecommenderContract:
    """Shapes, seen-item filtering, determinism, save/load, k beyond the catalogue, empty users."""

    def make_model(self) -> Recommender:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def snap(self):
        return synthetic_snapshot()

    @pytest.fixture(scope="class")
    def fitted(self, snap):
        return self.make_model().fit(snap)

    def test_recommend_shapes_and_dtypes(self, fitted, snap):
        items, scores = fitted.recommend(np.arange(5), k=7)
        assert items.shape == (5, 7) and scores.shape == (5, 7)
        assert items.dtype == np.int32 and scores.dtype == np.float32
        assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must be sorted best first"

    def test_seen_items_are_filtered(self, fitted, snap):
        items, _ = fitted.recommend(np.arange(snap.n_users - 1), k=10)
        for u, row in enumerate(items):
            seen = set(snap.interactions[u].indices.tolist())
            assert not seen & set(row[row >= 0].tolist()), f"user {u} got a seen item"

    def test_seen_items_come_back_when_not_filtered(self, fitted, snap):
        items, _ = fitted.recommend(np.arange(snap.n_users - 1), k=snap.n_items, exclude_seen=False)
        assert (items >= 0).all(), "without filtering every item is ranked"

    def test_same_seed_same_recommendations(self, snap):
        a, _ = self.make_model().fit(snap).recommend(np.arange(10), k=5)
        b, _ = self.make_model().fit(snap).recommend(np.arange(10), k=5)
        np.testing.assert_array_equal(a, b)

    def test_save_load_round_trip(self, fitted, snap, tmp_path):
        fitted.save(tmp_path / "m")
        loaded = type(fitted).load(tmp_path / "m", snap)
        a, sa = fitted.recommend(np.arange(8), k=6)
        b, sb = loaded.recommend(np.arange(8), k=6)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, rtol=1e-5)

    def test_k_larger_than_catalogue_pads(self, fitted, snap):
        items, scores = fitted.recommend(np.array([0]), k=snap.n_items + 5)
        n_seen = snap.interactions[0].nnz
        valid = items[0] >= 0
        assert valid.sum() == snap.n_items - n_seen
        assert np.all(np.isneginf(scores[0][~valid]))

    def test_user_without_history_gets_items(self, fitted, snap):
        items, scores = fitted.recommend(np.array([snap.n_users - 1]), k=5)
        assert (items[0] >= 0).all() and np.isfinite(scores[0]).all()

    def test_unfitted_model_raises(self):
        with pytest.raises(NotFittedError):
            self.make_model().recommend(np.array([0]), k=3)

    def test_bad_k_raises(self, fitted):
        with pytest.raises(ValueError):
            fitted.recommend(np.array([0]), k=0)
