"""Snapshot -> PyTorch Geometric graphs, and the neighbour sampler the GNNs train with.

Node types (``HeteroData``): ``user``, ``item`` and, when the snapshot has categories,
``category``. Edge types, each with its reverse so that every node type receives messages (a node
type without incoming edges silently disappears from the output of ``to_hetero``/``HeteroConv`` —
the PyG pitfall the GraphSAGE issue warns about):

=====================================  =========================================================
``(user, interacts, item)``             a training interaction (rating, play, purchase, view)
``(item, rev_interacts, user)``         its reverse
``(user, follows, user)``               u follows v
``(user, followed_by, user)``           the reverse direction (v is followed by u)
``(item, in_category, category)``       the item's category (only when categories exist)
``(category, has_item, item)``          its reverse
=====================================  =========================================================

Node features are small structural features (log degrees) so that the models stay inductive:
a node unseen in training still has features and neighbours.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch_geometric.typing as pyg_typing
from torch_geometric.data import HeteroData
from torch_geometric.sampler import HeteroSamplerOutput, NeighborSampler

from graph.snapshot import Snapshot

USER, ITEM, CATEGORY = "user", "item", "category"
INTERACTS = (USER, "interacts", ITEM)
REV_INTERACTS = (ITEM, "rev_interacts", USER)
FOLLOWS = (USER, "follows", USER)
FOLLOWED_BY = (USER, "followed_by", USER)
IN_CATEGORY = (ITEM, "in_category", CATEGORY)
HAS_ITEM = (CATEGORY, "has_item", ITEM)

N_USER_FEATURES = 3  # log1p(#interactions), log1p(#followees), log1p(#followers)
N_ITEM_FEATURES = 2  # log1p(#interactions), has-category flag


def select_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(n: int = 2) -> None:
    """Cap torch's intra-op threads (the CPU machines here have 2 cores shared with others)."""
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return a numpy Generator with the same seed."""
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def edge_index(m: sp.spmatrix) -> torch.Tensor:
    """(2, nnz) int64 ``[row; col]`` of the non-zeros of a sparse matrix."""
    coo = sp.coo_matrix(m)
    return torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))


def user_features(interactions: sp.csr_matrix, follows: sp.csr_matrix) -> np.ndarray:
    """(n_users, 3) float32: log1p of interaction, followee and follower counts."""
    n_inter = np.diff(interactions.tocsr().indptr)
    fol = follows.tocsr()
    n_out = np.diff(fol.indptr)
    n_in = np.asarray((fol != 0).sum(axis=0)).ravel()
    return np.log1p(np.stack([n_inter, n_out, n_in], axis=1)).astype(np.float32)


def item_features(interactions: sp.csr_matrix, item_category: np.ndarray) -> np.ndarray:
    """(n_items, 2) float32: log1p(interaction count), 1 if the item has a category."""
    n_inter = np.asarray((interactions != 0).sum(axis=0)).ravel()
    return np.stack([np.log1p(n_inter), (item_category >= 0).astype(np.float64)], axis=1).astype(np.float32)


def to_hetero_data(
    snapshot: Snapshot,
    interactions: sp.csr_matrix | None = None,
    use_follows: bool = True,
    use_categories: bool = True,
) -> HeteroData:
    """Build the heterogeneous graph of a snapshot.

    Args:
        snapshot: the snapshot (its follows and item categories are used).
        interactions: (n_users, n_items) CSR of the interaction edges to put in the graph; default
            the snapshot's own (pass a subset to hold supervision edges out of message passing).
        use_follows: add the ``follows``/``followed_by`` edges.
        use_categories: add ``category`` nodes (only when the snapshot has categories).
    Returns:
        ``HeteroData`` with ``x`` (log-degree features) and ``node_id`` on every node type and the
        edge types of the module docstring. Every node type present has incoming edges.
    """
    inter = snapshot.interactions if interactions is None else interactions
    inter = sp.csr_matrix(inter)
    data = HeteroData()
    data[USER].node_id = torch.arange(snapshot.n_users)
    data[USER].x = torch.from_numpy(user_features(inter, snapshot.follows))
    data[ITEM].node_id = torch.arange(snapshot.n_items)
    data[ITEM].x = torch.from_numpy(item_features(inter, snapshot.item_category))
    ei = edge_index(inter)
    data[INTERACTS].edge_index = ei
    data[REV_INTERACTS].edge_index = ei.flip(0)
    if use_follows:
        fol = edge_index(snapshot.follows)
        data[FOLLOWS].edge_index = fol
        data[FOLLOWED_BY].edge_index = fol.flip(0)
    n_cat = int(snapshot.categories.shape[0])
    if use_categories and n_cat and (snapshot.item_category >= 0).any():
        items = np.flatnonzero(snapshot.item_category >= 0)
        ic = torch.from_numpy(np.vstack([items, snapshot.item_category[items]]).astype(np.int64))
        data[CATEGORY].node_id = torch.arange(n_cat)
        data[CATEGORY].x = torch.ones(n_cat, 1)
        data[IN_CATEGORY].edge_index = ic
        data[HAS_ITEM].edge_index = ic.flip(0)
    return data


def normalized_adjacency(
    interactions: sp.csr_matrix,
    follows: sp.csr_matrix | None = None,
    social_weight: float = 1.0,
) -> sp.csr_matrix:
    """Symmetrically normalised adjacency D^-1/2 A D^-1/2 of the user+item graph (LightGCN).

    Args:
        interactions: (n_users, n_items) CSR; any non-zero is an edge.
        follows: optional (n_users, n_users) CSR; symmetrised and added as user-user edges.
        social_weight: weight of the user-user edges relative to interaction edges.
    Returns:
        (n_users + n_items, n_users + n_items) float32 CSR.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32).copy()
    r.data[:] = 1.0
    n_u, n_i = r.shape
    uu = sp.csr_matrix((n_u, n_u), dtype=np.float32)
    if follows is not None and social_weight > 0:
        s = sp.csr_matrix(follows, dtype=np.float32)
        s = ((s + s.T) > 0).astype(np.float32)
        s.setdiag(0)
        s.eliminate_zeros()
        uu = social_weight * s
    a = sp.bmat([[uu, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
    d = sp.diags(inv)
    return (d @ a @ d).tocsr().astype(np.float32)


def to_torch_sparse(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A scipy CSR as a torch sparse CSR tensor on ``device``."""
    m = sp.csr_matrix(m, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.from_numpy(m.indptr.astype(np.int64)),
        torch.from_numpy(m.indices.astype(np.int64)),
        torch.from_numpy(m.data),
        size=m.shape,
    ).to(device)


class _ScipySpMM(torch.autograd.Function):
    """``A @ x`` with a scipy CSR ``A`` on CPU (scipy's kernel is ~10x faster than torch.sparse here)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: sp.csr_matrix, a_t: sp.csr_matrix) -> torch.Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return torch.from_numpy(np.asarray(a @ x.detach().numpy(), dtype=np.float32))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return torch.from_numpy(np.asarray(ctx.a_t @ grad.contiguous().numpy(), dtype=np.float32)), None, None


class Propagator:
    """Sparse ``A @ x`` for full-batch propagation: scipy on CPU, ``torch.sparse`` on CUDA.

    Args:
        a: (n, n) scipy sparse matrix (e.g. :func:`normalized_adjacency`).
        device: where ``x`` lives.
    """

    def __init__(self, a: sp.spmatrix, device: torch.device):
        self.device = device
        self.a = sp.csr_matrix(a, dtype=np.float32)
        self.shape = self.a.shape
        if device.type == "cpu":
            self.a_t = self.a.T.tocsr()
            self.torch = None
        else:
            self.torch = to_torch_sparse(self.a, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.torch is not None:
            return torch.sparse.mm(self.torch, x)
        return _ScipySpMM.apply(x, self.a, self.a_t)


class FallbackNeighborSampler(NeighborSampler):
    """PyG's ``NeighborSampler`` that also works without ``pyg-lib``/``torch-sparse``.

    With either extension installed it defers to PyG. Without them (the CPU machines here have
    neither: neither ships wheels for this torch), heterogeneous sampling runs in numpy: per hop
    and edge type, every frontier node keeps all its in-neighbours when it has at most ``k`` of
    them, else ``k`` drawn uniformly (with replacement, then de-duplicated). It returns the same
    :class:`HeteroSamplerOutput` PyG's samplers return, so ``LinkNeighborLoader`` and the
    subgraph filtering are PyG's own. Pass an instance as ``neighbor_sampler=`` to the loader.

    Args:
        data: the ``HeteroData`` graph.
        num_neighbors: neighbours per hop (one list for every edge type).
        seed: seed of the numpy sampling generator (the loader's batch order is seeded via torch).
    """

    def __init__(self, data: HeteroData, num_neighbors: list[int], seed: int = 0, **kwargs):
        super().__init__(data, num_neighbors=num_neighbors, **kwargs)
        self._rng = np.random.default_rng(seed)
        self._np_csc = {k: (v.numpy(), self.row_dict[k].numpy()) for k, v in self.colptr_dict.items()}

    @staticmethod
    def native_available() -> bool:
        """True when PyG has a compiled neighbour sampler (pyg-lib or torch-sparse)."""
        return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)

    def _sample(self, seed, seed_time=None, **kwargs):
        if self.native_available() or not isinstance(seed, dict):
            return super()._sample(seed, seed_time, **kwargs)
        rng = self._rng
        fanouts = self.num_neighbors.get_mapped_values(self.edge_types)
        nodes = {t: [] for t in self.node_types}
        local = {}
        count = {t: 0 for t in self.node_types}
        frontier = {}
        for t in self.node_types:
            s = seed.get(t)
            local[t] = np.full(self.num_nodes[t], -1, dtype=np.int64)
            if s is None or s.numel() == 0:
                frontier[t] = np.zeros(0, np.int64)
                continue
            s = s.numpy().astype(np.int64)
            local[t][s] = np.arange(s.size)
            nodes[t].append(s)
            count[t] = s.size
            frontier[t] = s
        rows = {et: [] for et in self.edge_types}
        cols = {et: [] for et in self.edge_types}
        edges = {et: [] for et in self.edge_types}
        n_hops = max((len(v) for v in fanouts.values()), default=0)
        for hop in range(n_hops):
            nxt = {t: [] for t in self.node_types}
            for et in self.edge_types:
                src_t, _, dst_t = et
                k = fanouts[self.to_rel_type[et]][hop]
                dst = frontier[dst_t]
                if k == 0 or dst.size == 0:
                    continue
                colptr, row = self._np_csc[self.to_rel_type[et]]
                start, deg = colptr[dst], colptr[dst + 1] - colptr[dst]
                small = deg <= k if k >= 0 else np.ones(dst.size, bool)
                # every in-neighbour of the nodes with at most k of them
                n_small = np.where(small, deg, 0)
                d_small = np.repeat(np.arange(dst.size), n_small)
                offset = np.arange(d_small.size) - np.repeat(np.cumsum(n_small) - n_small, n_small)
                e_all, d_all = start[d_small] + offset, d_small
                # k uniform draws (with replacement, de-duplicated) for the others
                big = np.flatnonzero(~small)
                if big.size:
                    pick = (rng.random((big.size, k)) * deg[big, None]).astype(np.int64)
                    e_big = (start[big, None] + pick).ravel()
                    d_big = np.repeat(big, k)
                    keep = np.sort(np.unique(e_big, return_index=True)[1])
                    e_all = np.concatenate([e_all, e_big[keep]])
                    d_all = np.concatenate([d_all, d_big[keep]])
                if e_all.size == 0:
                    continue
                src_global = row[e_all]
                loc = local[src_t]
                new = np.unique(src_global[loc[src_global] < 0])
                if new.size:
                    loc[new] = count[src_t] + np.arange(new.size)
                    count[src_t] += new.size
                    nodes[src_t].append(new)
                    nxt[src_t].append(new)
                rows[et].append(loc[src_global])
                cols[et].append(local[dst_t][dst[d_all]])
                edges[et].append(e_all)
            frontier = {t: (np.concatenate(v) if v else np.zeros(0, np.int64)) for t, v in nxt.items()}

        def cat(parts):
            return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, dtype=torch.long)

        return HeteroSamplerOutput(
            node={t: cat(v) for t, v in nodes.items()},
            row={et: cat(v) for et, v in rows.items()},
            col={et: cat(v) for et, v in cols.items()},
            edge={et: cat(v) for et, v in edges.items()},
            batch=None,
            num_sampled_nodes=None,
            num_sampled_edges=None,
        )
