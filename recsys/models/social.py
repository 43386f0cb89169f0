"""``social``: DeepWalk/node2vec embeddings of the social graph with ``gensim`` Word2Vec.

Random walks over the follow graph (symmetrised: friendship is evidence both ways), optionally
joined with the user-item interaction graph so items share the space (DeepWalk, Perozzi et al.,
KDD 2014; second-order p/q-biased walks as in node2vec, Grover & Leskovec, KDD 2016), are fed to
skip-gram Word2Vec with negative sampling. The vectors are usable as features
(:meth:`SocialEmbeddingModel.user_embeddings`, :meth:`SocialEmbeddingModel.item_embeddings`,
:meth:`SocialEmbeddingModel.neighbours`) and as a recommender of their own: a user's items are
scored by their nearest users in the embedding space (user-kNN) plus, when items are embedded,
the user-item cosine.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.protocol import Recommender

log = logging.getLogger(__name__)


def _sym_binary(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    out = ((m + m.T) != 0).astype(np.float32).tocsr()
    out.setdiag(0)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def walk_graph(snapshot: Snapshot, interactions: sp.csr_matrix | None, item_edges: bool) -> sp.csr_matrix:
    """Adjacency the walks run on: users 0..n_users-1, then items (when ``item_edges``).

    Args:
        snapshot: provides the follow graph and sizes.
        interactions: (n_users, n_items) CSR interaction edges (default the snapshot's).
        item_edges: join user-item edges (items become walk nodes).
    Returns:
        Symmetric binary CSR, (n_users [+ n_items])^2, sorted indices.
    """
    fol = _sym_binary(snapshot.follows)
    if not item_edges:
        return fol
    r = sp.csr_matrix(snapshot.interactions if interactions is None else interactions, dtype=np.float32)
    r = (r != 0).astype(np.float32)
    a = sp.bmat([[fol, r], [r.T, None]], format="csr", dtype=np.float32)
    a.sort_indices()
    return a


def random_walks(
    adj: sp.csr_matrix,
    starts: np.ndarray,
    walks_per_node: int,
    walk_length: int,
    p: float,
    q: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vectorised (node2vec) random walks.

    First-order uniform walks when p = q = 1 (DeepWalk); otherwise the second-order bias of
    node2vec — weight 1/p to return to the previous node, 1 to a common neighbour of the previous
    node, 1/q to move away — by rejection sampling (up to 8 proposals, then the last is kept).

    Args:
        adj: (n, n) symmetric CSR with sorted indices.
        starts: (m,) start nodes; each starts ``walks_per_node`` walks.
        walk_length: nodes per walk (>= 1). p, q: node2vec return / in-out parameters.
        rng: numpy Generator.
    Returns:
        (m * walks_per_node, walk_length) int64; a walk stuck at an isolated node repeats it.
    """
    indptr, indices = adj.indptr, adj.indices
    deg = np.diff(indptr)
    cur = np.tile(np.asarray(starts, np.int64), walks_per_node)
    walks = np.empty((cur.size, walk_length), np.int64)
    walks[:, 0] = cur
    prev = np.full(cur.size, -1, np.int64)
    keys = None
    if p != 1.0 or q != 1.0:
        coo = adj.tocoo()
        keys = np.sort(coo.row.astype(np.int64) * adj.shape[0] + coo.col)
    max_w = max(1.0, 1.0 / p, 1.0 / q)

    def propose(nodes: np.ndarray) -> np.ndarray:
        d = deg[nodes]
        off = (rng.random(nodes.size) * np.maximum(d, 1)).astype(np.int64)
        nxt = indices[np.minimum(indptr[nodes] + off, max(indices.size - 1, 0))] if indices.size else nodes
        return np.where(d > 0, nxt, nodes)

    for step in range(1, walk_length):
        nxt = propose(cur)
        if keys is not None and step > 1:
            pending = np.ones(cur.size, bool)
            for _ in range(8):
                idx = np.flatnonzero(pending)
                if idx.size == 0:
                    break
                cand = nxt[idx]
                w = np.full(idx.size, 1.0 / q)
                q_keys = prev[idx] * adj.shape[0] + cand
                pos = np.minimum(np.searchsorted(keys, q_keys), keys.size - 1)
                w[keys[pos] == q_keys] = 1.0
                w[cand == prev[idx]] = 1.0 / p
                accept = rng.random(idx.size) < w / max_w
                pending[idx[accept]] = False
                retry = idx[~accept]
                if retry.size:
                    nxt[retry] = propose(cur[retry])
        prev, cur = cur, nxt
        walks[:, step] = cur
    return walks


class SocialEmbeddingModel(Recommender):
    """Social graph embeddings (DeepWalk / node2vec walks + gensim Word2Vec) and a user-kNN on them.

    Score of item i for user u: ``sum_{v in kNN(u)} cos(u, v)^+ * x_vi`` (x binary; the k most
    similar users by embedding cosine) normalised to max 1 per user, plus ``item_weight * cos(u, i)``
    when items are embedded (``item_edges``).

    Args:
        dim: vector size. walks_per_node: walks started per user. walk_length: nodes per walk.
        window: skip-gram window. epochs: Word2Vec epochs. negative: negative samples.
        p, q: node2vec return / in-out parameters (1, 1 = DeepWalk).
        item_edges: walk over interactions as well as follows (items get vectors).
        neighbors: k of the user-kNN. item_weight: weight of the user-item cosine term.
        seed: seeds walks and Word2Vec (one worker thread, so fits are deterministic).
    Attributes:
        user_vectors_: (n_users, dim) float32. item_vectors_: (n_items, dim) float32 or None.
    """

    name = "social"
    param_grid = [{"item_edges": True, "neighbors": 50}]

    def __init__(
        self,
        dim: int = 64,
        walks_per_node: int = 10,
        walk_length: int = 40,
        window: int = 5,
        epochs: int = 3,
        negative: int = 5,
        p: float = 1.0,
        q: float = 1.0,
        item_edges: bool = True,
        neighbors: int = 50,
        item_weight: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.walks_per_node = walks_per_node
        self.walk_length = walk_length
        self.window = window
        self.epochs = epochs
        self.negative = negative
        self.p = p
        self.q = q
        self.item_edges = item_edges
        self.neighbors = neighbors
        self.item_weight = item_weight
        self.seed = seed

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        from gensim.models import Word2Vec

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        adj = walk_graph(snapshot, None, self.item_edges)
        starts = np.flatnonzero(np.diff(adj.indptr) > 0)
        starts = starts[starts < snapshot.n_users]  # walks start at users; items are visited
        walks = random_walks(adj, starts, self.walks_per_node, self.walk_length, self.p, self.q, rng)
        sentences = [list(map(str, w)) for w in walks.tolist()]
        w2v = Word2Vec(
            sentences,
            vector_size=self.dim,
            window=self.window,
            min_count=1,
            sg=1,
            negative=self.negative,
            workers=1,
            seed=self.seed,
            epochs=self.epochs,
        )
        n_nodes = adj.shape[0]
        vectors = np.zeros((n_nodes, self.dim), np.float32)
        for key, row in w2v.wv.key_to_index.items():
            vectors[int(key)] = w2v.wv.vectors[row]
        self.user_vectors_ = vectors[: snapshot.n_users]
        self.item_vectors_ = vectors[snapshot.n_users :] if self.item_edges else None
        self._binary = (sp.csr_matrix(snapshot.interactions) != 0).astype(np.float32).tocsr()
        self.fit_seconds_ = time.perf_counter() - t0
        log.debug("social: %d walks, fitted in %.1fs", walks.shape[0], self.fit_seconds_)

    # ------------------------------------------------------------------ scoring
    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def neighbours(self, user_vectors: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Most similar training users by cosine of the social vectors.

        Args:
            user_vectors: (n, dim). k: neighbours per row. exclude: (n,) user index to leave out
                (the user itself) or -1.
        Returns:
            ``(users (n, k) int64, similarity (n, k) float32)``, best first.
        """
        self._check_fitted()
        sims = self._unit(np.asarray(user_vectors, np.float32)) @ self._unit(self.user_vectors_).T
        if exclude is not None:
            ok = exclude >= 0
            sims[np.flatnonzero(ok), exclude[ok]] = -np.inf
        k = min(k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-vals, axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(vals, order, axis=1)

    def _score_vectors(self, vecs: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        nb, sim = self.neighbours(vecs, self.neighbors, exclude)
        sim = np.maximum(sim, 0)
        n = vecs.shape[0]
        w = sp.csr_matrix((sim.ravel(), nb.ravel(), np.arange(0, n * nb.shape[1] + 1, nb.shape[1])), shape=(n, self.user_vectors_.shape[0]))
        scores = np.asarray((w @ self._binary).todense(), dtype=np.float32)
        scores /= np.maximum(scores.max(axis=1, keepdims=True), 1e-12)
        if self.item_weight and self.item_vectors_ is not None:
            scores += self.item_weight * (self._unit(vecs) @ self._unit(self.item_vectors_).T)
        return scores.astype(np.float32)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, np.int64))
        return self._score_vectors(self.user_vectors_[users], users)

    def user_embeddings(self) -> np.ndarray:
        return self.user_vectors_

    def item_embeddings(self) -> np.ndarray | None:
        return self.item_vectors_

    def embed_new_users(self, follows: list[np.ndarray], interactions: list[np.ndarray]) -> np.ndarray:
        """Vectors for users unseen in training: the mean of their followees' vectors and (when items
        are embedded) their items' vectors, the DeepWalk neighbourhood a walk from them would see.

        Args:
            follows: per new user, (m,) int user indices they follow.
            interactions: per new user, (m,) int item indices.
        Returns:
            (n, dim) float32; zeros for a user with neither.
        Raises:
            ValueError: the lists differ in length.
        """
        self._check_fitted()
        if len(follows) != len(interactions):
            raise ValueError("follows and interactions must have one entry per new user")
        out = np.zeros((len(follows), self.dim), np.float32)
        for r, (f, items) in enumerate(zip(follows, interactions)):
            parts = [self.user_vectors_[np.asarray(f, np.int64)]] if len(f) else []
            if self.item_vectors_ is not None and len(items):
                parts.append(self.item_vectors_[np.asarray(items, np.int64)])
            if parts:
                out[r] = np.concatenate(parts).mean(axis=0)
        return out

    def score_embeddings(self, user_vectors: np.ndarray) -> np.ndarray:
        """(n, n_items) float32 scores of arbitrary user vectors (user-kNN + item cosine)."""
        self._check_fitted()
        return self._score_vectors(np.asarray(user_vectors, np.float32), None)
