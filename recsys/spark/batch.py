"""Batch scoring: the top-K list of every user, computed on Spark, for shops that serve
precomputed lists (``socialrec batch-score``).

Any factor model (``als``, ``spark_als``, ``lightgcn``, …: a :class:`recsys.protocol.FactorModel`)
scores by ``user_factors @ item_factors.T``. The job distributes the users over Spark partitions
(``mapInPandas``); each task scores its users against the broadcast item factors, removes the
items each user has already interacted with, and keeps the top K with the one tie rule of
:func:`recsys.protocol.top_k` — the same lists the API would serve without business filters.
The result is written as Parquet (``user_id, rank, item_id, score, model_version``; one row per
user and rank) and, in batches, to the graph store (:meth:`graph.store.GraphStore.write_recommendations`).

On a cluster (``SOCIALREC_SPARK_MASTER``) the workers need socialrec installed (the tasks import
:mod:`recsys.protocol`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("socialrec.spark.batch")
SCHEMA = "user_idx long, rank int, item_idx long, score float"


def _score_partition(item_factors_b, rank_b, k: int):
    def run(batches):
        from recsys.protocol import blend_prior, top_k

        items = item_factors_b.value
        tie, prior_z, no_history, weight = rank_b.value
        for pdf in batches:
            if pdf.empty:
                continue
            users = np.stack(pdf["vec"].to_numpy()).astype(np.float32)
            scores = users @ items.T
            if weight > 0:  # the model's popularity back-off, as Recommender.ranking_scores applies it
                scores = blend_prior(scores, prior_z, weight, no_history[pdf["user_idx"].to_numpy()])
            for row, seen in enumerate(pdf["seen"].to_numpy()):
                if seen is not None and len(seen):
                    scores[row, np.asarray(seen, dtype=np.int64)] = -np.inf
            idx, top = top_k(scores, k, tie)
            n = len(pdf)
            kk = idx.shape[1]
            out = pd.DataFrame({
                "user_idx": np.repeat(pdf["user_idx"].to_numpy(dtype=np.int64), kk),
                "rank": np.tile(np.arange(1, kk + 1, dtype=np.int32), n),
                "item_idx": idx.reshape(-1).astype(np.int64),
                "score": top.reshape(-1).astype(np.float32),
            })
            yield out[np.isfinite(out["score"])]

    return run


def batch_recommend(model, k: int = 20, partitions: int | None = None) -> pd.DataFrame:
    """Top-``k`` unseen items of every user of a fitted factor model, computed on Spark.

    Args:
        model: a fitted :class:`recsys.protocol.FactorModel`.
        k: list length (clamped to the catalogue).
        partitions: Spark partitions of the users (default: 4 per core of the master).
    Returns:
        Frame ``user_idx, rank (1..k), item_idx, score`` ordered by user then rank; users with
        nothing left to recommend have fewer rows.
    Raises:
        TypeError: the model has no factors (not a FactorModel).
    """
    from recsys.protocol import FactorModel
    from recsys.spark.session import spark_session

    if not isinstance(model, FactorModel):
        raise TypeError(f"batch scoring needs a factor model (als, spark_als, lightgcn, ...), not {model.name!r}")
    snap = model._check_fitted()  # noqa: SLF001 - the protocol's own guard
    users, items = model.user_embeddings(), model.item_embeddings()
    k = max(1, min(int(k), items.shape[0]))
    seen = snap.interactions.tocsr()
    spark = spark_session()
    parts = partitions or max(2, 4 * spark.sparkContext.defaultParallelism)
    pdf = pd.DataFrame({
        "user_idx": np.arange(users.shape[0], dtype=np.int64),
        "vec": list(users.astype(np.float32)),
        "seen": [seen.indices[seen.indptr[u]:seen.indptr[u + 1]].astype(np.int64) for u in range(users.shape[0])],
    })
    frame = spark.createDataFrame(pdf, schema="user_idx long, vec array<float>, seen array<long>").repartition(parts)
    item_b = spark.sparkContext.broadcast(items.astype(np.float32))
    state = model._rank_state()  # noqa: SLF001 - the protocol's tie rule and prior, so lists match recommend()
    rank_b = spark.sparkContext.broadcast((model.tie_rank(), state["prior_z"], state["no_history"], float(model.prior_weight_)))
    try:
        out = frame.mapInPandas(_score_partition(item_b, rank_b, k), schema=SCHEMA).toPandas()
    finally:
        item_b.unpersist()
        rank_b.unpersist()
    return out.sort_values(["user_idx", "rank"], kind="stable").reset_index(drop=True)


def batch_score(model, model_version: str, out_dir: Path, store=None, k: int = 20, write_batch: int = 50_000) -> dict:
    """Run :func:`batch_recommend` and write the lists to Parquet (and the store).

    Args:
        model: fitted factor model (its snapshot gives the ids).
        model_version: the version tag written beside every row.
        out_dir: ``out_dir/recommendations.parquet`` is replaced atomically.
        store: a :class:`graph.store.GraphStore` to write them to as well (None = Parquet only).
        k: list length.
        write_batch: rows per store write.
    Returns:
        ``{"users", "rows", "k", "parquet", "seconds": {"score", "write_parquet", "write_store"}, "store_rows"}``.
    """
    snap = model._check_fitted()  # noqa: SLF001
    t0 = time.perf_counter()
    recs = batch_recommend(model, k=k)
    t1 = time.perf_counter()
    frame = pd.DataFrame({
        "user_id": np.asarray(snap.user_ids, dtype=object)[recs["user_idx"].to_numpy()],
        "rank": recs["rank"].to_numpy(),
        "item_id": np.asarray(snap.item_ids, dtype=object)[recs["item_idx"].to_numpy()],
        "score": recs["score"].to_numpy(),
        "model_version": model_version,
    })
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "recommendations.parquet"
    tmp = out_dir / f".recommendations.{time.time_ns()}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    tmp.replace(target)
    t2 = time.perf_counter()
    written = 0
    if store is not None:
        written = store.write_recommendations(frame, model_version, batch_size=write_batch)
    t3 = time.perf_counter()
    shutil.rmtree(out_dir / "_spark", ignore_errors=True)
    return {"users": int(frame["user_id"].nunique()), "rows": int(len(frame)), "k": int(k), "parquet": str(target),
            "seconds": {"score": round(t1 - t0, 3), "write_parquet": round(t2 - t1, 3), "write_store": round(t3 - t2, 3)},
            "store_rows": int(written)}
