"""The training snapshot: id maps, CSR matrices and node features read from a store.

A snapshot is what every model fits on. It is built from the canonical tables (see
``docs/data-model.md``) by :func:`build_snapshot`, which both stores call, so the same dataset read
from the embedded store and from Neo4j gives identical matrices.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

# The canonical column names of the tables a snapshot is built from (mirrors etl.schema).
INTERACTION_COLUMNS = ("user_id", "item_id", "kind", "value", "ts")
FOLLOW_COLUMNS = ("follower_id", "followee_id", "ts")
ITEM_COLUMNS = ("item_id", "category", "title", "brand", "text")


@dataclass(frozen=True)
class Snapshot:
    """An immutable training view of one dataset's graph.

    Attributes:
        dataset: dataset name, e.g. ``"ciao"``.
        user_ids: (n_users,) object array of (pseudonymised) user ids, sorted; row index = user index.
        item_ids: (n_items,) object array of item ids, sorted; column index = item index.
        interactions: (n_users, n_items) float32 CSR; entry = the interaction's value (rating 1-5,
            play count, purchase quantity, 1.0 for a view). One entry per (user, item) pair: the ETL
            resolves duplicates (latest wins). An explicit 0-valued rating is stored as a tiny
            positive value (1e-3) so it is still an observed interaction.
        timestamps: (n_users, n_items) float64 CSR with the same sparsity pattern as
            ``interactions``; entry = Unix time in seconds, NaN where unknown.
        follows: (n_users, n_users) float32 CSR; entry [u, v] = 1.0 when user u follows user v.
        item_category: (n_items,) int32 index into ``categories``, -1 when the item has none.
        categories: (n_categories,) object array of category names, sorted.
        item_text: (n_items,) object array of free text per item (title/brand/text joined), "" if none.
        kinds: tuple of the interaction kinds the snapshot holds (rating, purchase, play, view).
    """

    dataset: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    interactions: sp.csr_matrix
    timestamps: sp.csr_matrix
    follows: sp.csr_matrix
    item_category: np.ndarray
    categories: np.ndarray
    item_text: np.ndarray
    kinds: tuple[str, ...] = ()
    _user_index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _item_index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    # ------------------------------------------------------------------ sizes and id maps
    @property
    def n_users(self) -> int:
        """Number of users (rows of ``interactions``)."""
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns of ``interactions``)."""
        return int(self.item_ids.shape[0])

    @property
    def has_timestamps(self) -> bool:
        """True when at least one interaction carries a timestamp."""
        data = self.timestamps.data
        return bool(data.size and np.isfinite(data).any())

    def user_index(self, user_id: str) -> int | None:
        """Row index of a user id, or None when the user is not in the snapshot."""
        if self._user_index is None:
            object.__setattr__(self, "_user_index", {u: i for i, u in enumerate(self.user_ids)})
        return self._user_index.get(user_id)

    def item_index(self, item_id: str) -> int | None:
        """Column index of an item id, or None when the item is not in the snapshot."""
        if self._item_index is None:
            object.__setattr__(self, "_item_index", {v: i for i, v in enumerate(self.item_ids)})
        return self._item_index.get(item_id)

    def with_interactions(self, interactions: sp.csr_matrix) -> "Snapshot":
        """A copy whose interactions are replaced, e.g. by a training fold.

        Args:
            interactions: (n_users, n_items) CSR with a subset of this snapshot's entries.
        Returns:
            A new Snapshot; ``timestamps`` is masked to the new sparsity pattern.
        Raises:
            ValueError: if the shape differs.
        """
        if interactions.shape != self.interactions.shape:
            raise ValueError(f"shape {interactions.shape} != {self.interactions.shape}")
        inter = sp.csr_matrix(interactions, dtype=np.float32)
        inter.sum_duplicates()
        inter.sort_indices()
        ts = _align(self.timestamps, inter)
        return dataclasses.replace(self, interactions=inter, timestamps=ts)

    def save(self, path: str | os.PathLike) -> None:
        """Write the snapshot to one ``.npz`` file (atomically: temp file + rename).

        Args:
            path: target file, e.g. ``.../snapshot.npz``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "dataset": np.array(self.dataset),
            "user_ids": self.user_ids.astype(str),
            "item_ids": self.item_ids.astype(str),
            "item_category": self.item_category,
            "categories": self.categories.astype(str),
            "item_text": self.item_text.astype(str),
            "kinds": np.array(self.kinds, dtype=str),
        }
        for key in ("interactions", "timestamps", "follows"):
            m = getattr(self, key).tocsr()
            arrays[f"{key}_data"], arrays[f"{key}_indices"], arrays[f"{key}_indptr"] = m.data, m.indices, m.indptr
            arrays[f"{key}_shape"] = np.array(m.shape)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Snapshot":
        """Read a snapshot written by :meth:`save`. Raises FileNotFoundError, KeyError."""
        with np.load(Path(path), allow_pickle=False) as z:
            mats = {
                key: sp.csr_matrix(
                    (z[f"{key}_data"], z[f"{key}_indices"], z[f"{key}_indptr"]), shape=tuple(z[f"{key}_shape"])
                )
                for key in ("interactions", "timestamps", "follows")
            }
            return cls(
                dataset=str(z["dataset"]),
                user_ids=z["user_ids"].astype(object),
                item_ids=z["item_ids"].astype(object),
                item_category=z["item_category"].astype(np.int32),
                categories=z["categories"].astype(object),
                item_text=z["item_text"].astype(object),
                kinds=tuple(str(k) for k in z["kinds"]),
                **mats,
            )

    def fingerprint(self) -> dict:
        """Small summary used to compare snapshots across stores: counts and checksums."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "nnz": int(self.interactions.nnz),
            "value_sum": float(np.round(self.interactions.data.astype(np.float64).sum(), 3)),
            "follows_nnz": int(self.follows.nnz),
            "n_categories": int(self.categories.shape[0]),
        }


def _align(ts: sp.csr_matrix, pattern: sp.csr_matrix) -> sp.csr_matrix:
    """Timestamps of ``ts`` at the non-zeros of ``pattern`` (NaN where absent). Both (n, m) CSR."""
    coo = pattern.tocoo()
    lookup = ts.tocsr()
    out = np.full(coo.nnz, np.nan)
    if lookup.nnz:
        keys_ts = lookup.tocoo()
        key_a = keys_ts.row.astype(np.int64) * ts.shape[1] + keys_ts.col
        order = np.argsort(key_a)
        key_a = key_a[order]
        vals = keys_ts.data[order]
        key_b = coo.row.astype(np.int64) * ts.shape[1] + coo.col
        pos = np.searchsorted(key_a, key_b)
        pos = np.clip(pos, 0, max(len(key_a) - 1, 0))
        hit = key_a[pos] == key_b if len(key_a) else np.zeros(coo.nnz, bool)
        out[hit] = vals[pos[hit]]
    return sp.csr_matrix((out, (coo.row, coo.col)), shape=pattern.shape)


#: Weight of one interaction of each kind in the confidence, when a dataset mixes kinds
#: (``SOCIALREC_KIND_WEIGHTS`` overrides, e.g. ``purchase=1,rating=1,play=1,view=0.25``).
#: Counted kinds (purchase quantity, play count) contribute weight x value; a rating or a view
#: contributes its weight once (a 1-5 rating is a preference level, not a count to add).
DEFAULT_KIND_WEIGHTS: dict[str, float] = {"purchase": 1.0, "rating": 1.0, "play": 1.0, "view": 0.25}
COUNTED_KINDS = ("purchase", "play")


def kind_weighted_values(kinds: np.ndarray, values: np.ndarray, weights: dict[str, float] | None = None) -> np.ndarray:
    """Per-row confidence contributions of a mixed-kind interaction table.

    Args:
        kinds: (n,) kind names. values: (n,) raw values (> 0).
        weights: kind -> weight (missing kinds: :data:`DEFAULT_KIND_WEIGHTS`, then 1.0).
    Returns:
        (n,) float64: ``w_kind * value`` for counted kinds, ``w_kind`` otherwise; the snapshot sums
        them per (user, item), so purchase 2 + view + rating 5 = 2 + 0.25 + 1, not 8.
    """
    w = {**DEFAULT_KIND_WEIGHTS, **(weights or {})}
    kinds = np.asarray(kinds, dtype=object)
    weight = np.array([w.get(k, 1.0) for k in kinds], dtype=np.float64)
    counted = np.isin(kinds, np.array(COUNTED_KINDS, dtype=object))
    return np.where(counted, weight * values, weight)


def build_snapshot(
    dataset: str,
    users: pd.DataFrame,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    follows: pd.DataFrame,
    kind_weights: dict[str, float] | None = None,
) -> Snapshot:
    """Build a :class:`Snapshot` from canonical tables.

    Both stores call this on the rows they hold, so identical rows give identical matrices.

    Args:
        dataset: dataset name.
        users: table with column ``user_id`` (str).
        items: table with ``item_id`` (str) and optional ``category``, ``title``, ``brand``, ``text``.
        interactions: table with ``user_id``, ``item_id``, ``kind``, ``value`` (float), ``ts``
            (float seconds, NaN unknown). In a table of one kind the raw values are kept;
            when kinds are mixed each row contributes :func:`kind_weighted_values` and the
            contributions of one pair are summed; the latest timestamp is kept.
        kind_weights: per-kind weights for mixed tables (default :data:`DEFAULT_KIND_WEIGHTS`).
        follows: table with ``follower_id``, ``followee_id``.
    Returns:
        The snapshot. Users and items referenced by interactions/follows but missing from the node
        tables are added (the ETL never produces such rows; this keeps snapshots total).
    Raises:
        KeyError: if a required column is missing.
    """
    user_ids = pd.Index(users["user_id"].astype(str))
    user_ids = user_ids.union(pd.Index(interactions["user_id"].astype(str)))
    if len(follows):
        user_ids = user_ids.union(pd.Index(follows["follower_id"].astype(str)))
        user_ids = user_ids.union(pd.Index(follows["followee_id"].astype(str)))
    user_ids = user_ids.unique().sort_values()
    item_ids = pd.Index(items["item_id"].astype(str)).union(pd.Index(interactions["item_id"].astype(str)))
    item_ids = item_ids.unique().sort_values()

    n_u, n_i = len(user_ids), len(item_ids)
    if len(interactions):
        rows = user_ids.get_indexer(interactions["user_id"].astype(str))
        cols = item_ids.get_indexer(interactions["item_id"].astype(str))
        vals = interactions["value"].astype(np.float64).fillna(1.0).to_numpy()
        vals = np.where(vals <= 0, 1e-3, vals)
        if "kind" in interactions and interactions["kind"].nunique() > 1:
            vals = kind_weighted_values(interactions["kind"].astype(str).to_numpy(), vals, kind_weights)
        ts = interactions["ts"].astype(np.float64).to_numpy() if "ts" in interactions else np.full(len(rows), np.nan)
        frame = pd.DataFrame({"r": rows, "c": cols, "v": vals, "t": ts})
        agg = frame.groupby(["r", "c"], sort=True).agg(v=("v", "sum"), t=("t", "max")).reset_index()
        r, c = agg["r"].to_numpy(), agg["c"].to_numpy()
        inter = sp.csr_matrix((agg["v"].to_numpy(np.float32), (r, c)), shape=(n_u, n_i), dtype=np.float32)
        tsm = sp.csr_matrix((agg["t"].to_numpy(np.float64), (r, c)), shape=(n_u, n_i))
        kinds = tuple(sorted(interactions["kind"].astype(str).unique())) if "kind" in interactions else ()
    else:
        inter = sp.csr_matrix((n_u, n_i), dtype=np.float32)
        tsm = sp.csr_matrix((n_u, n_i), dtype=np.float64)
        kinds = ()
    inter.sort_indices()
    tsm.sort_indices()

    if len(follows):
        fr = user_ids.get_indexer(follows["follower_id"].astype(str))
        fc = user_ids.get_indexer(follows["followee_id"].astype(str))
        fol = sp.csr_matrix((np.ones(len(fr), np.float32), (fr, fc)), shape=(n_u, n_u))
        fol.sum_duplicates()
        fol.data[:] = 1.0
        fol.sort_indices()
    else:
        fol = sp.csr_matrix((n_u, n_u), dtype=np.float32)

    items_by_id = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id", keep="last")
    items_by_id = items_by_id.set_index("item_id").reindex(item_ids)
    cat_col = items_by_id["category"] if "category" in items_by_id else pd.Series(index=item_ids, dtype=object)
    cat_values = cat_col.astype(object).where(cat_col.notna(), None)
    categories = np.array(sorted({str(c) for c in cat_values if c is not None and c == c}), dtype=object)
    cat_index = pd.Index(categories)
    item_category = np.array(
        [cat_index.get_loc(str(c)) if c is not None and c == c else -1 for c in cat_values], dtype=np.int32
    )
    text_parts = []
    for col in ("title", "brand", "text"):
        if col in items_by_id:
            text_parts.append(items_by_id[col].fillna("").astype(str))
    if text_parts:
        joined = text_parts[0]
        for part in text_parts[1:]:
            joined = joined.str.cat(part, sep=" ")
        item_text = joined.str.strip().to_numpy(dtype=object)
    else:
        item_text = np.full(n_i, "", dtype=object)

    return Snapshot(
        dataset=dataset,
        user_ids=np.asarray(user_ids, dtype=object),
        item_ids=np.asarray(item_ids, dtype=object),
        interactions=inter,
        timestamps=tsm,
        follows=fol,
        item_category=item_category,
        categories=categories,
        item_text=item_text,
        kinds=kinds,
    )
