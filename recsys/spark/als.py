"""``spark_als``: Spark MLlib's implicit-feedback ALS behind the one model protocol.

The same model as ``als`` (Hu, Koren & Volinsky, ICDM 2008: preference p_ui = 1 for every observed
interaction, confidence c_ui = 1 + alpha * f(r_ui) with f from :mod:`recsys.models.weighting`),
solved by ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` so that the fit runs on a Spark
cluster when the data outgrows one machine. After the fit the factors are collected into NumPy
arrays: scoring, seen-item filtering, top-K, saving and serving are those of every
:class:`~recsys.protocol.FactorModel`.

One difference from ``implicit``: Spark scales the L2 penalty of each user (item) by its number of
interactions ("ALS-WR", Zhou et al. 2008), ``implicit`` does not. ``regularization`` here is
Spark's ``regParam``; its grid is chosen on validation data like every model's.

Source: Apache Spark MLlib, "Collaborative Filtering" (``ALS`` with ``implicitPrefs``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.models.weighting import confidence, default_weighting
from recsys.protocol import FactorModel

log = logging.getLogger("socialrec.spark")


class SparkALSModel(FactorModel):
    """Implicit ALS on Apache Spark (``spark_als``).

    Args:
        factors: latent dimension d (Spark's ``rank``).
        regularization: Spark's ``regParam`` (scaled per user/item by its interaction count).
        alpha: confidence scale.
        iterations: ALS sweeps (``maxIter``).
        weighting: ``auto``, ``binary``, ``log`` or ``bm25`` (as ``als``).
        seed: random seed of the initialisation.
        num_blocks: user and item blocks (``numUserBlocks``/``numItemBlocks``); 0 = Spark's default.

    Attributes:
        user_factors_: (n_users, factors) float32; a user Spark never saw (no interaction) gets zeros.
        item_factors_: (n_items, factors) float32, zeros likewise.
    """

    name = "spark_als"
    param_grid = [
        {"factors": 64, "regularization": 0.01, "alpha": 10.0, "weighting": "binary"},
        {"factors": 64, "regularization": 0.05, "alpha": 10.0, "weighting": "binary"},
        {"factors": 128, "regularization": 0.01, "alpha": 20.0, "weighting": "binary"},
        {"factors": 64, "regularization": 0.01, "alpha": 2.0, "weighting": "log"},
    ]

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 10.0,
        iterations: int = 15,
        weighting: str = "auto",
        seed: int = 0,
        num_blocks: int = 0,
    ):
        super().__init__()
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.seed = seed
        self.num_blocks = num_blocks

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        from pyspark.ml.recommendation import ALS

        from recsys.spark.session import spark_session

        scheme = default_weighting(snapshot.kinds) if self.weighting == "auto" else self.weighting
        weighted = confidence(snapshot.interactions, scheme).tocoo()
        n_users, n_items = weighted.shape
        rank = max(1, min(int(self.factors), n_users, n_items))
        spark = spark_session()
        frame = spark.createDataFrame(pd.DataFrame({
            "u": weighted.row.astype(np.int32), "i": weighted.col.astype(np.int32), "r": weighted.data.astype(np.float32),
        }))
        als = ALS(
            rank=rank, maxIter=int(self.iterations), regParam=float(self.regularization), alpha=float(self.alpha),
            implicitPrefs=True, userCol="u", itemCol="i", ratingCol="r", seed=int(self.seed),
            nonnegative=False, coldStartStrategy="drop", checkpointInterval=-1,
        )
        if self.num_blocks:
            als = als.setNumUserBlocks(int(self.num_blocks)).setNumItemBlocks(int(self.num_blocks))
        model = als.fit(frame)
        self.user_factors_ = _collect(model.userFactors, n_users, rank)
        self.item_factors_ = _collect(model.itemFactors, n_items, rank)

    def __getstate__(self):
        return self.__dict__  # NumPy factors only: no Spark object survives the fit


def _collect(factors_df, n: int, rank: int) -> np.ndarray:
    """Spark's ``(id, features)`` factor table -> (n, rank) float32, zeros for ids it lacks."""
    pdf = factors_df.toPandas()
    out = np.zeros((n, rank), dtype=np.float32)
    if len(pdf):
        out[pdf["id"].to_numpy(dtype=np.int64)] = np.stack(pdf["features"].to_numpy()).astype(np.float32)
    return out
