"""Pieces the GNN models share: validation split, validation recall, BPR loss.

Only ``graph/`` and ``recsys.protocol`` are imported (STYLE.md: ``gnn/`` never depends on the
rest of ``recsys/``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


def holdout_validation(
    interactions: sp.csr_matrix,
    validation: sp.csr_matrix | None,
    fraction: float,
    seed: int,
) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """The (fit, validation) pair a model early-stops with.

    The harness passes a validation matrix that may overlap the training interactions (in
    ``cv5-full`` the final fit sees them): such an overlapping or missing validation set is
    useless for early stopping, so a random ``fraction`` of the training entries (seeded) is held
    out instead. A disjoint validation set (``random-80-10-10``) is used as given.

    Args:
        interactions: (n_users, n_items) CSR training interactions.
        validation: optional (n_users, n_items) CSR of validation positives.
        fraction: share held out when needed; 0 disables early stopping (validation None).
        seed: seed of the hold-out.
    Returns:
        ``(fit, validation)``: fit is what gradients see; validation is None when disabled.
    """
    inter = sp.csr_matrix(interactions)
    if validation is not None and validation.nnz:
        overlap = inter.multiply(validation != 0).nnz
        if overlap == 0:
            return inter, sp.csr_matrix(validation)
    if fraction <= 0 or inter.nnz < 20:
        return inter, None
    coo = inter.tocoo()
    held = np.random.default_rng(seed).random(coo.nnz) < fraction
    fit = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=inter.shape)
    val = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=inter.shape)
    fit.sort_indices()
    val.sort_indices()
    return fit, val


def recall_at_k(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    seen: sp.csr_matrix,
    relevant: sp.csr_matrix,
    k: int = 10,
    max_users: int = 2000,
    seed: int = 0,
) -> float:
    """Mean recall@k (hits / |relevant|, the MHCN/SEPT definition) of dot-product scores.

    Args:
        user_vectors: (n_users, d). item_vectors: (n_items, d).
        seen: (n_users, n_items) CSR of items filtered from the ranking.
        relevant: (n_users, n_items) CSR of held-out positives.
        k: cut-off, >= 1; a catalogue smaller than k is fine (clamped).
        max_users: evaluate at most this many users with positives (seeded sample) to keep early
            stopping cheap on large catalogues.
        seed: seed of that sample.
    Returns:
        Mean recall over users with at least one positive; 0.0 when there are none.
    """
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if users.size == 0:
        return 0.0
    if users.size > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    from recsys.metrics import recall_at_k as _recall  # the one recall implementation
    from recsys.protocol import top_k

    total = 0.0
    for start in range(0, users.size, 512):
        block = users[start : start + 512]
        scores = (user_vectors[block] @ item_vectors.T).astype(np.float32)
        s = seen[block].tocoo()
        scores[s.row, s.col] = -np.inf
        top, _ = top_k(scores, k)  # k clamped to the catalogue
        total += float(_recall(top, relevant[block].tocsr(), k).sum())
    return total / users.size


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking loss, mean of -log sigmoid(pos - neg) (Rendle et al., 2009).

    Args:
        pos: (b,) scores of observed pairs. neg: (b,) or (b, m) scores of sampled negatives.
    """
    if neg.dim() == 2:
        pos = pos[:, None]
    return F.softplus(neg - pos).mean()


class PairSet:
    """Vectorised membership test for the (row, col) entries of a sparse matrix."""

    def __init__(self, m: sp.spmatrix):
        coo = sp.coo_matrix(m)
        self.n_cols = m.shape[1]
        self.keys = np.sort(coo.row.astype(np.int64) * self.n_cols + coo.col)

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Boolean array: is (rows[i], cols[i]) an entry?"""
        q = np.asarray(rows, np.int64) * self.n_cols + np.asarray(cols, np.int64)
        if self.keys.size == 0:
            return np.zeros(q.shape, bool)
        pos = np.minimum(np.searchsorted(self.keys, q), self.keys.size - 1)
        return self.keys[pos] == q


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, positives: PairSet, n_items: int, n: int, tries: int = 3
) -> np.ndarray:
    """(len(users), n) uniform random items, redrawn (up to ``tries`` times) where the user has them."""
    neg = rng.integers(0, n_items, size=(users.size, n))
    for _ in range(tries):
        hit = positives.contains(np.repeat(users, n), neg.ravel()).reshape(neg.shape)
        if not hit.any():
            break
        neg[hit] = rng.integers(0, n_items, size=int(hit.sum()))
    return neg
