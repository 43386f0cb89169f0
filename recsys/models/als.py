"""``als``: matrix factorisation for implicit feedback by alternating least squares (``implicit``)."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from graph.snapshot import Snapshot
from recsys.models.weighting import confidence, default_weighting
from recsys.protocol import FactorModel

log = logging.getLogger(__name__)


def _gpu_available() -> bool:
    """True when implicit was built with CUDA and a GPU is visible (never on the CI machine)."""
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except Exception:  # noqa: BLE001 - any failure to probe the GPU means: use the CPU
        return False


class AlternatingLeastSquaresModel(FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008) via ``implicit.cpu.als``.

    Confidence: c_ui = 1 + alpha * f(r_ui), preference p_ui = 1 for every observed interaction,
    where f is the ``weighting`` of :mod:`recsys.models.weighting` (``auto``: log1p of play
    counts/quantities, 1 for ratings). Scores are ``user_factors @ item_factors.T``.

    Args:
        factors: latent dimension d; capped at min(n_users, n_items) of the snapshot (logged;
            the dimension used is ``factors_used_``).
        regularization: L2 penalty lambda.
        alpha: confidence scale.
        iterations: ALS sweeps.
        weighting: ``auto``, ``binary``, ``log`` or ``bm25``.
        seed: random seed of the factor initialisation.
        num_threads: 0 = all cores.

    Attributes:
        user_factors_: (n_users, factors) float32. item_factors_: (n_items, factors) float32.
        device_: ``cuda`` when implicit's GPU build solved it (a CUDA build of implicit and a GPU
            present), else ``cpu``.
    """

    name = "als"
    param_grid = [
        {"factors": 64, "regularization": 0.05, "alpha": 10.0, "weighting": "binary"},
        {"factors": 128, "regularization": 0.05, "alpha": 10.0, "weighting": "binary"},
        {"factors": 128, "regularization": 0.5, "alpha": 20.0, "weighting": "binary"},
        {"factors": 64, "regularization": 0.05, "alpha": 2.0, "weighting": "log"},
        # strong regularisation for sparse data (most users/items with a handful of interactions)
        {"factors": 64, "regularization": 10.0, "alpha": 10.0, "weighting": "binary"},
        {"factors": 64, "regularization": 100.0, "alpha": 40.0, "weighting": "binary"},
    ]

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        weighting: str = "auto",
        seed: int = 0,
        num_threads: int = 0,
    ):
        super().__init__()
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.seed = seed
        self.num_threads = num_threads

    def _weighted(self, snapshot: Snapshot) -> sp.csr_matrix:
        scheme = default_weighting(snapshot.kinds) if self.weighting == "auto" else self.weighting
        return confidence(snapshot.interactions, scheme)

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        factors = max(1, min(int(self.factors), snapshot.n_users, snapshot.n_items))
        if factors < self.factors:  # more factors than users or items only fits noise
            log.info("als: %d factors capped at %d = min(n_users=%d, n_items=%d)", self.factors, factors,
                     snapshot.n_users, snapshot.n_items)
        self.factors_used_ = factors
        if _gpu_available():  # implicit's CUDA build: the same model, solved on the GPU
            from implicit.gpu.als import AlternatingLeastSquares as GpuALS

            gpu = GpuALS(factors=factors, regularization=self.regularization, alpha=self.alpha,
                         iterations=self.iterations, random_state=self.seed, calculate_training_loss=False)
            gpu.fit(self._weighted(snapshot), show_progress=False)
            model = gpu.to_cpu()  # fold-in and pickling use the CPU model
            self.device_ = "cuda"
        else:
            model = AlternatingLeastSquares(
                factors=factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.num_threads,
                calculate_training_loss=False,
            )
            # implicit's own threads do the work; a multi-threaded BLAS inside them oversubscribes
            # the cores (implicit warns about it) and made fits ~4x slower on 2 cores.
            with threadpool_limits(1, "blas"):
                model.fit(self._weighted(snapshot), show_progress=False)
            self.device_ = "cpu"
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._implicit = model

    def fold_in(self, item_idx: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Embedding of a user from their interactions without retraining (one ALS half-step).

        Args:
            item_idx: (m,) int item indices the user interacted with.
            values: (m,) raw values (default 1).
        Returns:
            (factors,) float32 user vector (``implicit``'s ``recalculate_user``).
        """
        self._check_fitted()
        item_idx = np.asarray(item_idx, dtype=np.int32)
        vals = np.ones(len(item_idx), np.float32) if values is None else np.asarray(values, np.float32)
        row = sp.csr_matrix((vals, (np.zeros(len(item_idx), int), item_idx)), shape=(1, self.item_factors_.shape[0]))
        scheme = default_weighting(self.snapshot_.kinds) if self.weighting == "auto" else self.weighting
        vec = self._implicit.recalculate_user(0, confidence(row, scheme))
        return np.asarray(vec, dtype=np.float32).ravel()

    def __getstate__(self):
        return self.__dict__
