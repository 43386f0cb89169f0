"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.metrics import all_metrics, hit_rate_at_k, item_coverage, map_at_k, ndcg_at_k, precision_at_k, recall_at_k

# user 0: relevant {1, 4}; ranked [1, 2, 4] -> hits at ranks 1 and 3
# user 1: relevant {0};    ranked [3, 2, 1] -> no hit
RANKED = np.array([[1, 2, 4], [3, 2, 1]], dtype=np.int32)
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=np.float32))


def test_precision_recall_hr():
    np.testing.assert_allclose(precision_at_k(RANKED, RELEVANT, 3), [2 / 3, 0])
    np.testing.assert_allclose(recall_at_k(RANKED, RELEVANT, 3), [1.0, 0])
    np.testing.assert_allclose(recall_at_k(RANKED, RELEVANT, 1), [0.5, 0])
    np.testing.assert_allclose(hit_rate_at_k(RANKED, RELEVANT, 3), [1, 0])


def test_ndcg_binary_log2():
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    np.testing.assert_allclose(ndcg_at_k(RANKED, RELEVANT, 3), [dcg / idcg, 0])


def test_map():
    np.testing.assert_allclose(map_at_k(RANKED, RELEVANT, 3), [(1 + 2 / 3) / 2, 0])


def test_padding_is_never_a_hit_and_coverage_counts_distinct_items():
    ranked = np.array([[1, -1, -1]], dtype=np.int32)
    rel = sp.csr_matrix(np.array([[0, 1, 0, 0, 0]], dtype=np.float32))
    assert precision_at_k(ranked, rel, 3)[0] == pytest.approx(1 / 3)
    assert item_coverage(RANKED, 5, 3) == pytest.approx(4 / 5)


def test_all_metrics_skips_users_without_positives():
    rel = RELEVANT.toarray()
    rel[1] = 0
    out = all_metrics(RANKED, sp.csr_matrix(rel), (3,), 5)
    assert out["n_users"] == 1 and out["recall@3"] == pytest.approx(1.0)


def test_bad_k_and_shapes_raise():
    with pytest.raises(ValueError):
        recall_at_k(RANKED, RELEVANT, 0)
    # a list shorter than k (catalogue smaller than k) is padded, not an error (issue 14 item 13)
    padded = np.hstack([RANKED, np.full((RANKED.shape[0], 1), -1, RANKED.dtype)])
    assert np.array_equal(recall_at_k(RANKED, RELEVANT, RANKED.shape[1] + 1), recall_at_k(padded, RELEVANT, RANKED.shape[1] + 1))
    with pytest.raises(ValueError):
        recall_at_k(RANKED[:1], RELEVANT, 2)
