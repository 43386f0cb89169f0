"""``lightgcn``: PyG's LightGCN (He et al., SIGIR 2020), optionally over the follow graph too.

Full-batch propagation (the graphs here are small: lastfm 19.5k nodes, ciao 112k nodes), BPR loss
with uniformly sampled negatives, early stopping on validation recall@10.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from gnn.data import Propagator, normalized_adjacency, seed_everything, select_device, set_threads
from gnn.training import PairSet, holdout_validation, recall_at_k, sample_negatives
from graph.snapshot import Snapshot
from recsys.protocol import FactorModel

log = logging.getLogger(__name__)


class LightGCNModel(FactorModel):
    """LightGCN: embeddings smoothed over the user-item graph, scored by dot product.

    ``e^(k+1) = A_hat e^(k)`` with the symmetrically normalised adjacency ``A_hat`` of the
    user+item graph (no weights, no non-linearity); the final embedding is the mean of layers
    0..K (``torch_geometric.nn.models.LightGCN`` with ``alpha = 1/(K+1)``). With
    ``social_weight > 0`` the (symmetrised) follow graph is added as user-user edges of that weight
    — a "social LightGCN" in the spirit of SocialLGN (Liao et al., 2022) — so friends' tastes are
    smoothed into a user's vector.

    Loss: BPR (Rendle et al., UAI 2009), one uniform negative per observed pair per epoch, L2 on
    the layer-0 embeddings of the batch (``recommendation_loss``). Early stopping: validation
    recall@10 every ``eval_every`` epochs, best epoch kept, stop after ``patience`` evaluations
    without improvement. The validation set is the harness's when it is disjoint from training,
    else ``validation_fraction`` of the training entries (seeded). With ``refit`` the model is
    then retrained on all training interactions for the best number of epochs.

    Args:
        embedding_dim: d. num_layers: K propagation layers.
        social_weight: weight of follow edges in the adjacency; 0 = plain LightGCN.
        lr: Adam learning rate. reg: L2 weight (lambda). batch_size: triples per step.
        epochs: maximum epochs. eval_every: epochs between validation checks. patience: checks.
        validation_fraction: hold-out share for early stopping (0 = no early stopping).
        refit: retrain on all training data for the best epoch count.
        seed: seeds initialisation and sampling. num_threads: torch CPU threads.
    """

    name = "lightgcn"
    param_grid = [
        {"num_layers": 2, "social_weight": 0.0},
    ]

    def __init__(
        self,
        embedding_dim: int = 64,
        num_layers: int = 2,
        social_weight: float = 0.0,
        lr: float = 0.01,
        reg: float = 1e-4,
        batch_size: int = 4096,
        epochs: int = 200,
        eval_every: int = 5,
        patience: int = 4,
        validation_fraction: float = 0.1,
        refit: bool = False,
        seed: int = 0,
        num_threads: int = 1,
    ):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.social_weight = social_weight
        self.lr = lr
        self.reg = reg
        self.batch_size = batch_size
        self.epochs = epochs
        self.eval_every = eval_every
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.seed = seed
        self.num_threads = num_threads

    # ------------------------------------------------------------------ training
    def _train(self, snapshot: Snapshot, fit: sp.csr_matrix, validation: sp.csr_matrix | None, epochs: int):
        from torch_geometric.nn.models import LightGCN

        rng = seed_everything(self.seed)
        device = select_device()
        n_u, n_i = snapshot.n_users, snapshot.n_items
        follows = snapshot.follows if self.social_weight > 0 else None
        adj = Propagator(normalized_adjacency(fit, follows, self.social_weight), device)
        model = LightGCN(n_u + n_i, self.embedding_dim, self.num_layers, normalize=False).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        coo = fit.tocoo()
        users_all, items_all = coo.row.astype(np.int64), coo.col.astype(np.int64)
        positives = PairSet(fit)
        best = (-1.0, 0, None)
        bad = 0
        history = []
        for epoch in range(1, epochs + 1):
            model.train()
            order = rng.permutation(users_all.size)
            neg_all = sample_negatives(rng, users_all[order], positives, n_i, 1)[:, 0]
            total = 0.0
            for start in range(0, order.size, self.batch_size):
                sel = order[start : start + self.batch_size]
                u = torch.from_numpy(users_all[sel]).to(device)
                p = torch.from_numpy(items_all[sel] + n_u).to(device)
                q = torch.from_numpy(neg_all[start : start + self.batch_size] + n_u).to(device)
                emb = _propagate(model, adj)
                pos = (emb[u] * emb[p]).sum(-1)
                neg = (emb[u] * emb[q]).sum(-1)
                node_id = torch.cat([u, p, q])
                loss = model.recommendation_loss(pos, neg, node_id=node_id, lambda_reg=self.reg)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * sel.size
            if validation is not None and (epoch % self.eval_every == 0 or epoch == epochs):
                uvec, ivec = self._embeddings(model, adj, n_u)
                rec = recall_at_k(uvec, ivec, fit, validation, seed=self.seed)
                history.append({"epoch": epoch, "loss": total / order.size, "recall@10": rec})
                log.debug("lightgcn epoch %d loss %.4f val recall@10 %.4f", epoch, total / order.size, rec)
                if rec > best[0]:
                    best = (rec, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
                    bad = 0
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        if best[2] is not None:
            model.load_state_dict(best[2])
        return model, adj, best[1] if best[2] is not None else epochs, history

    @staticmethod
    @torch.no_grad()
    def _embeddings(model, adj, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        emb = _propagate(model, adj).detach().cpu().numpy().astype(np.float32)
        return emb[:n_users], emb[n_users:]

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        set_threads(self.num_threads)
        t0 = time.perf_counter()
        fit, val = holdout_validation(snapshot.interactions, validation, self.validation_fraction, self.seed)
        model, adj, best_epoch, history = self._train(snapshot, fit, val, self.epochs)
        if self.refit and val is not None and fit.nnz != snapshot.interactions.nnz:
            model, adj, _, _ = self._train(snapshot, snapshot.interactions, None, best_epoch)
        else:
            # propagate over every training interaction (the held-out ones included) at inference
            follows = snapshot.follows if self.social_weight > 0 else None
            adj = Propagator(normalized_adjacency(snapshot.interactions, follows, self.social_weight), adj.device)
        self.user_factors_, self.item_factors_ = self._embeddings(model, adj, snapshot.n_users)
        # layer-wise item/user embeddings for fold-in of new users
        with torch.no_grad():
            x = model.embedding.weight
            layers = [x]
            for _ in range(self.num_layers):
                x = adj(x)
                layers.append(x)
        self.layers_ = [t.detach().cpu().numpy().astype(np.float32) for t in layers]
        self.best_epoch_ = best_epoch
        self.history_ = history
        self.fit_seconds_ = time.perf_counter() - t0

    # ------------------------------------------------------------------ scoring
    def embed_new_users(self, follows: list[np.ndarray], interactions: list[np.ndarray]) -> np.ndarray:
        """Fold users unseen in training into the embedding space, without retraining.

        A new user has no layer-0 vector (taken as 0); its layer-k vector is propagated from its
        items' (and, with ``social_weight > 0``, its followees') layer-(k-1) vectors with the
        same symmetric normalisation as training, and the final vector is the layer mean.

        Args:
            follows: per new user, (m,) int user indices they follow (may be empty).
            interactions: per new user, (m,) int item indices they interacted with.
        Returns:
            (n, embedding_dim) float32; all zeros for a user with neither.
        Raises:
            ValueError: the lists differ in length.
        """
        snap = self._check_fitted()
        if len(follows) != len(interactions):
            raise ValueError("follows and interactions must have one entry per new user")
        n_u = snap.n_users
        item_deg = np.asarray((snap.interactions != 0).sum(axis=0)).ravel().astype(np.float64)
        fol = snap.follows.tocsr()
        user_deg = np.diff(snap.interactions.indptr).astype(np.float64)
        if self.social_weight > 0:
            sym = ((fol + fol.T) > 0).astype(np.float64)
            user_deg = user_deg + self.social_weight * np.asarray(sym.sum(axis=1)).ravel()
        out = np.zeros((len(follows), self.embedding_dim), np.float32)
        for r, (f, items) in enumerate(zip(follows, interactions)):
            items = np.unique(np.asarray(items, np.int64))
            f = np.unique(np.asarray(f, np.int64)) if self.social_weight > 0 else np.zeros(0, np.int64)
            deg = items.size + self.social_weight * f.size
            if deg == 0:
                continue
            acc = np.zeros(self.embedding_dim)
            for k in range(1, len(self.layers_)):
                prev = self.layers_[k - 1]
                v = np.zeros(self.embedding_dim)
                if items.size:
                    w = 1.0 / np.sqrt(deg * np.maximum(item_deg[items] + 1, 1))
                    v += w @ prev[n_u + items]
                if f.size:
                    w = self.social_weight / np.sqrt(deg * np.maximum(user_deg[f] + 1, 1))
                    v += w @ prev[f]
                acc += v
            out[r] = acc / len(self.layers_)
        return out


def _propagate(model, adj: Propagator) -> torch.Tensor:
    """``model.get_embedding`` of PyG's LightGCN: sum_k alpha_k A^k E (LGConv without normalisation
    is exactly ``A @ x``; on CUDA PyG's own convs run, on CPU the faster scipy product)."""
    if adj.torch is not None:
        return model.get_embedding(adj.torch)
    x = model.embedding.weight
    out = x * model.alpha[0]
    for i in range(model.num_layers):
        x = adj(x)
        out = out + x * model.alpha[i + 1]
    return out
