"""Similar items need support and have a stable tie rule; reasons need evidence (issue 14 items 11, 12)."""

from __future__ import annotations

import numpy as np

from tests.conftest import synthetic_snapshot


def test_similar_items_drop_single_rater_neighbours_and_break_ties_by_support_then_index():
    from recsys.models.als import AlternatingLeastSquaresModel
    from recsys.protocol import SIMILAR_MIN_SUPPORT

    snap = synthetic_snapshot(n_users=30, n_items=40, density=0.15)
    model = AlternatingLeastSquaresModel(factors=4, iterations=2).fit(snap)
    # every item on one embedding, as ciao's 18 items with one shared ALS vector: all cosines tie
    model.item_factors_ = np.ones_like(model.item_factors_)
    support = np.diff(snap.interactions.tocsc().indptr)
    idx, scores = model.similar_items(0, k=10)
    got = idx[0].tolist()
    eligible = [j for j in range(snap.n_items) if j != 0 and support[j] >= SIMILAR_MIN_SUPPORT]
    expected = sorted(eligible, key=lambda j: (-support[j], j))[:10]
    assert got == expected
    assert all(support[j] >= SIMILAR_MIN_SUPPORT for j in got)
    assert np.all(np.diff(scores[0]) <= 1e-6)  # best first
    assert model.similar_items(np.array([0, 1]), k=10)[0][0].tolist() == got  # same answer in a batch


def test_a_similar_item_reason_needs_a_similarity_above_the_threshold():
    from recsys.explain import REASON_MIN_SIMILARITY, _best_similar

    class Stub:
        similarity_ = None

        def item_embeddings(self):
            return np.array([[1.0, 0.0], [1e-7, 1.0], [1.0, 0.1]])

    best = _best_similar(Stub(), np.array([0]), np.array([1, 2]))
    assert best == {2: 0}  # item 1 (cosine ~1e-7 with the history item) gets no "similar to" reason
    assert REASON_MIN_SIMILARITY > 1e-3
