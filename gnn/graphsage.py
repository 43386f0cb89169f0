"""``graphsage``: a heterogeneous GraphSAGE (Hamilton et al., NeurIPS 2017) for top-K retrieval.

Graph (:mod:`gnn.data`): users, items and categories; interaction, follow and category edges, each
with its reverse. Every node type receives messages, so none drops out of ``HeteroConv``'s output.

Trained with PyG's ``LinkNeighborLoader`` (mini-batches of interaction edges, their endpoints'
sampled neighbourhoods, ``negatives`` uniform negative items per positive: ``NegativeSampling("triplet")``)
and the BPR loss; the supervised edges are removed from their own batch's message graph so the
model cannot read the answer off the edge. Early-stopped on validation recall@10 with full-graph
inference. Inductive: a node's input is its (optional) ID embedding plus a projection of
structural features; ID embeddings are dropped at random during training (``id_dropout``) so
that a user or item unseen in training is embedded from its features and neighbours alone.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from gnn.data import (
    CATEGORY,
    INTERACTS,
    ITEM,
    REV_INTERACTS,
    USER,
    FallbackNeighborSampler,
    seed_everything,
    select_device,
    set_threads,
    to_hetero_data,
)
from gnn.training import bpr_loss, holdout_validation, recall_at_k
from graph.snapshot import Snapshot
from recsys.protocol import FactorModel

log = logging.getLogger(__name__)


class HeteroSAGE(nn.Module):
    """Encoder: input embeddings + ``num_layers`` of ``HeteroConv({edge type: SAGEConv})``.

    Input of node v of type t: ``id_emb_t[v] + W_t x_v`` (x = log-degree features), with a shared
    learnt "unknown" row for nodes whose ID is dropped or unseen. Each layer: per edge type a mean
    SAGEConv (root weight included), summed over edge types into the destination type, then
    ReLU (not after the last layer). Output: the mean of the input and every layer's output
    (layer-wise skip connections help collaborative filtering, as in LightGCN), L2-normalised and
    scaled by ``scale`` for the dot product.
    """

    def __init__(self, n_users: int, n_items: int, n_categories: int, metadata, dim: int, num_layers: int, scale: float):
        super().__init__()
        from torch_geometric.nn import HeteroConv, SAGEConv

        self.dim = dim
        self.scale = scale
        self.emb = nn.ModuleDict(
            {USER: nn.Embedding(n_users + 1, dim), ITEM: nn.Embedding(n_items + 1, dim)}
            | ({CATEGORY: nn.Embedding(max(n_categories, 1), dim)} if CATEGORY in metadata[0] else {})
        )
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.feat = nn.ModuleDict({USER: nn.Linear(3, dim), ITEM: nn.Linear(2, dim)})
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv((dim, dim), dim, aggr="mean") for et in metadata[1]}, aggr="sum")
            for _ in range(num_layers)
        )

    def inputs(self, node_id: dict, x: dict, unknown: dict | None = None) -> dict:
        """Layer-0 representations. ``unknown[t]`` = bool mask of nodes using the unknown ID row."""
        h = {}
        for t, ids in node_id.items():
            ids = ids.clone()
            if t in (USER, ITEM):
                if unknown is not None and t in unknown:
                    ids[unknown[t]] = self.emb[t].num_embeddings - 1
                h[t] = self.emb[t](ids) + self.feat[t](x[t])
            else:
                h[t] = self.emb[t](ids)
        return h

    def forward(self, node_id: dict, x: dict, edge_index: dict, unknown: dict | None = None) -> dict:
        h = self.inputs(node_id, x, unknown)
        outs = {t: [v] for t, v in h.items()}
        for i, conv in enumerate(self.convs):
            new = conv(h, edge_index)
            h = {t: (F.relu(new[t]) if i < len(self.convs) - 1 else new[t]) if t in new else h[t] for t in h}
            for t in h:
                outs[t].append(h[t])
        if self.scale <= 0:  # plain dot product of the layer means
            return {t: torch.stack(v).mean(0) for t, v in outs.items()}
        return {t: self.scale * F.normalize(torch.stack(v).mean(0), dim=-1) for t, v in outs.items()}


class GraphSAGEModel(FactorModel):
    """Heterogeneous GraphSAGE over users, items, categories and the follow graph (BPR-trained).

    Args:
        embedding_dim: d of every node type and layer.
        num_layers: message-passing layers (= sampled hops).
        num_neighbors: neighbours sampled per hop and edge type (one entry per layer).
        use_follows: include ``follows``/``followed_by`` edges. use_categories: category nodes.
        id_dropout: probability a node's ID embedding is replaced by the "unknown" row in training.
        scale: output vectors are L2-normalised then multiplied by this (a softmax temperature);
            0 = raw dot product.
        negatives: uniform negative items per positive edge (BPR against each).
        lr: Adam learning rate. weight_decay: Adam L2. batch_size: positive edges per batch.
        epochs: maximum epochs. patience: epochs without validation improvement before stopping.
        validation_fraction: hold-out share for early stopping when the harness gives none usable.
        seed: seeds initialisation, loader order and sampling. num_threads: torch CPU threads.
    Attributes:
        user_factors_: (n_users, d) float32. item_factors_: (n_items, d) float32.
        best_epoch_, history_: the early-stopping trace.
    """

    name = "graphsage"
    param_grid = [{"num_layers": 2}]

    def __init__(
        self,
        embedding_dim: int = 64,
        num_layers: int = 2,
        num_neighbors: tuple[int, ...] = (20, 10),
        use_follows: bool = True,
        use_categories: bool = True,
        id_dropout: float = 0.3,
        scale: float = 0.0,
        negatives: int = 4,
        lr: float = 0.005,
        weight_decay: float = 1e-5,
        batch_size: int = 1024,
        epochs: int = 30,
        patience: int = 3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        num_threads: int = 1,
    ):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_neighbors = tuple(num_neighbors)
        self.use_follows = use_follows
        self.use_categories = use_categories
        self.id_dropout = id_dropout
        self.scale = scale
        self.negatives = negatives
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.num_threads = num_threads

    # ------------------------------------------------------------------ graph helpers
    def _graph(self, snapshot: Snapshot, interactions: sp.csr_matrix):
        return to_hetero_data(snapshot, interactions, self.use_follows, self.use_categories)

    def _fanout(self) -> list[int]:
        fan = list(self.num_neighbors)[: self.num_layers]
        return fan + [fan[-1] if fan else 10] * (self.num_layers - len(fan))

    @torch.no_grad()
    def _full_forward(self, model: HeteroSAGE, data, device, unknown_users: np.ndarray | None = None) -> dict:
        model.eval()
        node_id = {t: data[t].node_id.to(device) for t in data.node_types}
        x = {t: data[t].x.to(device) for t in data.node_types}
        ei = {et: data[et].edge_index.to(device) for et in data.edge_types}
        unknown = None
        if unknown_users is not None:
            mask = torch.zeros(data[USER].num_nodes, dtype=torch.bool, device=device)
            mask[torch.as_tensor(unknown_users, device=device)] = True
            unknown = {USER: mask}
        out = model(node_id, x, ei, unknown)
        return {t: v.cpu().numpy().astype(np.float32) for t, v in out.items()}

    # ------------------------------------------------------------------ training
    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        from torch_geometric.loader import LinkNeighborLoader
        from torch_geometric.sampler import NegativeSampling

        set_threads(self.num_threads)
        t0 = time.perf_counter()
        rng = seed_everything(self.seed)
        device = select_device()
        fit, val = holdout_validation(snapshot.interactions, validation, self.validation_fraction, self.seed)
        data = self._graph(snapshot, fit)
        model = HeteroSAGE(
            snapshot.n_users, snapshot.n_items, int(snapshot.categories.shape[0]), data.metadata(),
            self.embedding_dim, self.num_layers, self.scale,
        ).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        label_index = data[INTERACTS].edge_index
        generator = torch.Generator().manual_seed(self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "without pyg-lib is deprecated" — we bring our own sampler
            sampler = FallbackNeighborSampler(data, num_neighbors=self._fanout(), seed=self.seed)
            loader = LinkNeighborLoader(
                data,
                num_neighbors=self._fanout(),
                edge_label_index=(INTERACTS, label_index),
                neg_sampling=NegativeSampling("triplet", amount=self.negatives),
                batch_size=self.batch_size,
                shuffle=True,
                neighbor_sampler=sampler,
                generator=generator,
            )
        best, bad, history, best_state = -1.0, 0, [], None
        self.best_epoch_ = 0
        for epoch in range(1, self.epochs + 1):
            model.train()
            total, n = 0.0, 0
            for batch in loader:
                batch = batch.to(device)
                ei = {}
                sup = batch[INTERACTS].input_id
                for et in batch.edge_types:
                    e = batch[et].edge_index
                    if et in (INTERACTS, REV_INTERACTS):  # drop the supervised edges from message passing
                        keep = ~torch.isin(batch[et].e_id, sup)
                        e = e[:, keep]
                    ei[et] = e
                unknown = {
                    t: torch.from_numpy(rng.random(batch[t].num_nodes) < self.id_dropout).to(device)
                    for t in (USER, ITEM)
                }
                out = model({t: batch[t].node_id for t in batch.node_types}, {t: batch[t].x for t in batch.node_types}, ei, unknown)
                src = out[USER][batch[USER].src_index]
                pos = (src * out[ITEM][batch[ITEM].dst_pos_index]).sum(-1)
                neg_index = batch[ITEM].dst_neg_index.view(src.size(0), -1)
                neg = (src[:, None, :] * out[ITEM][neg_index]).sum(-1)
                loss = bpr_loss(pos, neg)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * pos.numel()
                n += pos.numel()
            if val is None:
                continue
            emb = self._full_forward(model, data, device)
            rec = recall_at_k(emb[USER], emb[ITEM], fit, val, seed=self.seed)
            history.append({"epoch": epoch, "loss": total / max(n, 1), "recall@10": rec})
            log.debug("graphsage epoch %d loss %.4f val recall@10 %.4f (%.0fs)", epoch, total / max(n, 1), rec, time.perf_counter() - t0)
            if rec > best:
                best, bad, self.best_epoch_ = rec, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model_ = model.cpu()
        self.history_ = history
        # inference over every training interaction (held-out validation edges included)
        emb = self._full_forward(self.model_, self._graph(snapshot, snapshot.interactions), torch.device("cpu"))
        self.user_factors_, self.item_factors_ = emb[USER], emb[ITEM]
        self.fit_seconds_ = time.perf_counter() - t0

    # ------------------------------------------------------------------ scoring
    def embed_new_users(self, follows: list[np.ndarray], interactions: list[np.ndarray]) -> np.ndarray:
        """Embed users unseen in training from their neighbours (inductive, no retraining).

        The new users are appended to the training graph as extra ``user`` nodes with the
        "unknown" ID embedding, their log-degree features, their follow edges (both directions)
        and interaction edges, and one full-graph forward pass gives their vectors.

        Args:
            follows: per new user, (m,) int indices of existing users they follow.
            interactions: per new user, (m,) int item indices they interacted with.
        Returns:
            (n, embedding_dim) float32 vectors for :meth:`score_embeddings`.
        Raises:
            ValueError: the lists differ in length.
        """
        snap = self._check_fitted()
        if len(follows) != len(interactions):
            raise ValueError("follows and interactions must have one entry per new user")
        n_new, n_u = len(follows), snap.n_users
        if n_new == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        rows_f = np.concatenate([np.full(len(f), n_u + r) for r, f in enumerate(follows)] + [np.zeros(0)]).astype(np.int64)
        cols_f = np.concatenate([np.asarray(f, np.int64) for f in follows] + [np.zeros(0, np.int64)])
        rows_i = np.concatenate([np.full(len(i), r) for r, i in enumerate(interactions)] + [np.zeros(0)]).astype(np.int64)
        cols_i = np.concatenate([np.asarray(i, np.int64) for i in interactions] + [np.zeros(0, np.int64)])
        n_all = n_u + n_new
        fol = sp.vstack([snap.follows, sp.csr_matrix((np.ones(rows_f.size, np.float32), (rows_f - n_u, cols_f)), shape=(n_new, n_u))])
        fol = sp.hstack([fol, sp.csr_matrix((n_all, n_new), dtype=np.float32)]).tocsr()
        fol.data[:] = 1.0
        new_inter = sp.csr_matrix((np.ones(rows_i.size, np.float32), (rows_i, cols_i)), shape=(n_new, snap.n_items))
        inter = sp.vstack([snap.interactions, new_inter]).tocsr()
        inter.data[:] = 1.0
        extended = _ExtendedSnapshot(snap, n_all, fol)
        data = to_hetero_data(extended, inter, self.use_follows, self.use_categories)  # type: ignore[arg-type]
        model = self.model_
        # node ids beyond the embedding table map to the unknown row
        data[USER].node_id = torch.clamp(data[USER].node_id, max=model.emb[USER].num_embeddings - 1)
        emb = self._full_forward(model, data, torch.device("cpu"), unknown_users=np.arange(n_u, n_all))
        return emb[USER][n_u:]


class _ExtendedSnapshot:
    """The attributes :func:`gnn.data.to_hetero_data` reads, for a snapshot with extra users."""

    def __init__(self, snap: Snapshot, n_users: int, follows: sp.csr_matrix):
        self.n_users = n_users
        self.n_items = snap.n_items
        self.follows = follows
        self.item_category = snap.item_category
        self.categories = snap.categories
        self.interactions = None
