"""Confidence weighting of implicit feedback: raw interaction values -> ALS/item-CF input.

Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008:
preference p_ui = 1 if r_ui > 0, confidence c_ui = 1 + alpha * f(r_ui). ``implicit`` multiplies
the matrix it is given by ``alpha`` and adds 1, so we hand it f(r_ui):

* ``binary``  f = 1                       (ratings: every rated item is a positive, as in DICER/MHCN)
* ``log``     f = log1p(r)                (play counts, quantities: diminishing returns)
* ``bm25``    Okapi BM25 row/column weighting of the log counts (implicit.nearest_neighbours.bm25_weight)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

WEIGHTINGS = ("binary", "log", "bm25")


def confidence(interactions: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    """Weighted copy of an interaction matrix.

    Args:
        interactions: (n_users, n_items) float32 CSR of raw values (> 0).
        weighting: one of ``WEIGHTINGS``.
    Returns:
        (n_users, n_items) float32 CSR, same sparsity pattern, values > 0.
    Raises:
        ValueError: unknown weighting.
    """
    out = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    if weighting == "binary":
        out.data[:] = 1.0
    elif weighting == "log":
        out.data = np.log1p(np.maximum(out.data, 0.0)).astype(np.float32) + np.float32(1e-3)
    elif weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        logged = out.copy()
        logged.data = np.log1p(np.maximum(logged.data, 0.0)).astype(np.float32) + np.float32(1e-3)
        out = sp.csr_matrix(bm25_weight(logged, K1=100, B=0.8), dtype=np.float32)
    else:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    return out


def default_weighting(kinds: tuple[str, ...]) -> str:
    """``log`` when the data holds counts (play/purchase), else ``binary`` (ratings, views)."""
    return "log" if any(k in ("play", "purchase") for k in kinds) else "binary"
