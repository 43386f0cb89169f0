"""``hybrid``: candidates from several recommenders, re-ranked by a LightGBM LambdaRank model
with social features.

Stage 1 (candidates): the top-``candidates`` unseen items of each generator (EASE, ALS, item-CF,
the social-embedding user-kNN, optionally LightGCN/GraphSAGE) are pooled per user.
Stage 2 (re-rank): a ``lightgbm.LGBMRanker`` (LambdaRank, NDCG@10) scores each (user, candidate)
from generator scores and ranks, item popularity, how many of the user's followees and followers
interacted with the item (and how heavily), the share of the user's history in the item's
category, and user activity. It is trained on held-out interactions carved from the TRAINING data
only: base models are fitted on the rest, the ranker learns to put the held-out items first, and
the base models are then refitted on all training data (when the harness hands over a validation
set disjoint from training, as in ``random-80-10-10``, that set is used instead and no refit is
needed).

Sources: EASE — Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019;
LambdaRank/LightGBM — Burges 2010, Ke et al., NeurIPS 2017; two-stage candidate generation and
re-ranking — Covington et al., RecSys 2016.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from graph.snapshot import Snapshot
from recsys.evaluation import random_holdout
from recsys.protocol import Recommender

log = logging.getLogger(__name__)

GENERATORS = ("ease", "ease_log", "userknn", "als", "itemcf", "social", "lightgcn", "graphsage", "popular")


class EaseScorer(Recommender):
    """EASE^R item-item model (Steck, WWW 2019): B = I - P diag(1/diag(P)), P = (X^T X + lambda I)^-1.

    Used as a candidate generator inside the hybrid (not registered as a model of its own). The
    dense inverse is restricted to the ``max_items`` most popular items with at least
    ``min_count`` interactions (others score 0), which keeps it to seconds on lastfm (~7k items).

    Args:
        lam: L2 penalty lambda. min_count: minimum item count. max_items: cap on modelled items.
        weighting: ``binary`` (x = 1 per interaction) or ``log`` (x = log1p(value), e.g. play counts).
    """

    name = "ease"

    def __init__(self, lam: float = 100.0, min_count: int = 2, max_items: int = 8000, weighting: str = "binary"):
        super().__init__()
        self.lam = lam
        self.min_count = min_count
        self.max_items = max_items
        self.weighting = weighting

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        import torch

        x = (sp.csr_matrix(snapshot.interactions) != 0).astype(np.float32).tocsr()
        counts = np.asarray(x.sum(axis=0)).ravel()
        if self.weighting == "log":
            x = sp.csr_matrix(snapshot.interactions, dtype=np.float32).copy()
            x.data = np.log1p(np.maximum(x.data, 0)).astype(np.float32)
        keep = np.flatnonzero(counts >= self.min_count)
        if keep.size > self.max_items:
            keep = np.sort(keep[np.argsort(-counts[keep], kind="stable")[: self.max_items]])
        self.items_ = keep
        xk = x[:, keep]
        gram = torch.from_numpy((xk.T @ xk).toarray().astype(np.float64))
        gram += self.lam * torch.eye(keep.size, dtype=torch.float64)
        p = torch.linalg.inv(gram)
        b = -p / torch.diag(p)
        b.fill_diagonal_(0.0)
        self.b_ = b.numpy().astype(np.float32)
        self.x_ = x

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(user_idx)
        out = np.zeros((users.size, self.x_.shape[1]), np.float32)
        if self.items_.size:
            out[:, self.items_] = self.x_[users][:, self.items_] @ self.b_
        return out


class UserKNNScorer(Recommender):
    """User-based CF: score(u, i) = sum over the k most cosine-similar users v of sim(u, v)^alpha * x_vi.

    A candidate generator inside the hybrid (binary interactions; Herlocker et al., SIGIR 1999).

    Args:
        neighbours: k. alpha: similarity exponent (> 1 sharpens towards the closest users).
    """

    name = "userknn"

    def __init__(self, neighbours: int = 100, alpha: float = 1.0):
        super().__init__()
        self.neighbours = neighbours
        self.alpha = alpha

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        x = (sp.csr_matrix(snapshot.interactions) != 0).astype(np.float32).tocsr()
        norm = np.sqrt(np.maximum(np.diff(x.indptr), 1)).astype(np.float32)
        self.x_ = x
        self.xn_ = sp.diags(1.0 / norm) @ x
        self.xn_t_ = self.xn_.T.tocsr()

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, np.int64))
        sim = np.asarray((self.xn_[users] @ self.xn_t_).todense(), dtype=np.float32)
        sim[np.arange(users.size), users] = 0.0
        k = min(self.neighbours, sim.shape[1])
        if k < sim.shape[1]:
            cut = np.partition(sim, sim.shape[1] - k, axis=1)[:, sim.shape[1] - k][:, None]
            sim[sim < cut] = 0.0
        if self.alpha != 1.0:
            sim = np.power(sim, self.alpha)
        return np.asarray((sp.csr_matrix(sim) @ self.x_).todense(), dtype=np.float32)


def _build_generator(name: str, seed: int) -> Recommender:
    """A candidate generator by name, with settings that worked on validation data."""
    if name == "ease":
        return EaseScorer(max_items=3000)  # 3k most popular items: the dense inverse stays ~1 s
    if name == "ease_log":
        return EaseScorer(lam=2000.0, weighting="log")
    if name == "userknn":
        return UserKNNScorer()
    if name == "als":
        from recsys.models.als import AlternatingLeastSquaresModel

        return AlternatingLeastSquaresModel(factors=64, regularization=0.05, alpha=2.0, weighting="log", seed=seed)
    if name == "itemcf":
        from recsys.models.itemcf import ItemCFModel

        return ItemCFModel(similarity="bm25", neighbours=300, weighting="log")
    if name == "social":
        from recsys.models.social import SocialEmbeddingModel

        return SocialEmbeddingModel(seed=seed)
    if name == "lightgcn":
        from gnn.lightgcn import LightGCNModel

        return LightGCNModel(seed=seed)
    if name == "graphsage":
        from gnn.graphsage import GraphSAGEModel

        return GraphSAGEModel(seed=seed)
    if name == "popular":
        from recsys.models.popular import PopularModel

        return PopularModel()
    raise ValueError(f"unknown generator {name!r}; expected one of {', '.join(GENERATORS)}")


class _Context:
    """Per-fit matrices the features are computed from (one snapshot's training interactions)."""

    def __init__(self, snapshot: Snapshot, generators: dict[str, Recommender]):
        x = sp.csr_matrix(snapshot.interactions, dtype=np.float32)
        self.seen = x
        self.binary = (x != 0).astype(np.float32).tocsr()
        logx = self.binary.copy()
        logx.data = np.log1p(np.maximum(x.data, 0)).astype(np.float32)
        self.log = logx
        fol = (sp.csr_matrix(snapshot.follows) != 0).astype(np.float32).tocsr()
        self.followees = fol
        self.followers = fol.T.tocsr()
        self.item_pop = np.asarray(self.binary.sum(axis=0)).ravel().astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.item_mean_log = np.nan_to_num(np.asarray(logx.sum(axis=0)).ravel() / self.item_pop).astype(np.float32)
        self.user_n = np.diff(self.binary.indptr).astype(np.float32)
        self.user_followees = np.diff(fol.indptr).astype(np.float32)
        cat = snapshot.item_category
        self.has_categories = bool((cat >= 0).any())
        if self.has_categories:
            n_cat = int(cat.max()) + 1
            items = np.flatnonzero(cat >= 0)
            onehot = sp.csr_matrix((np.ones(items.size, np.float32), (items, cat[items])), shape=(x.shape[1], n_cat))
            self.user_cat = (self.binary @ onehot).tocsr()
        self.item_category = cat
        # recency: days from the item's last interaction to the newest one, and the share of its
        # interactions in the newest 10 % of the time span (0 when the data has no timestamps)
        self.has_time = bool(snapshot.has_timestamps)
        self.item_days_since = np.zeros(x.shape[1], np.float32)
        self.item_recent_share = np.zeros(x.shape[1], np.float32)
        if self.has_time:
            ts = snapshot.timestamps.tocsc()
            t = ts.data
            fin = np.isfinite(t)
            if fin.any():
                t_max, t_min = float(t[fin].max()), float(t[fin].min())
                cut = t_max - 0.1 * (t_max - t_min)
                col = np.repeat(np.arange(ts.shape[1]), np.diff(ts.indptr))
                last = np.full(ts.shape[1], t_min)
                np.maximum.at(last, col[fin], t[fin])
                self.item_days_since = ((t_max - last) / 86400.0).astype(np.float32)
                recent = np.bincount(col[fin & (t >= cut)], minlength=ts.shape[1])
                self.item_recent_share = (recent / np.maximum(self.item_pop, 1)).astype(np.float32)
        self.generators = generators
        self.n_items = x.shape[1]


def _feature_names(gens: list[str], has_categories: bool) -> list[str]:
    names = []
    for g in gens:
        names += [f"{g}_score", f"{g}_rank", f"{g}_rel"]
    names += [
        "item_pop_log", "item_mean_log_plays", "user_n_log", "user_followees_log",
        "followees_interacted", "followees_interacted_share", "followees_log_plays",
        "followers_interacted", "two_hop_interacted_log", "social_cos",
    ]
    if has_categories:
        names += ["user_category_share", "item_has_category"]
    names += ["item_days_since_last_log", "item_recent_share"]
    return names


def _candidates_and_features(ctx: _Context, users: np.ndarray, n_cand: int, gens: list[str]):
    """Pool candidates for ``users`` and compute their features.

    Returns:
        ``(rows, items, features)``: (p,) row index into ``users``, (p,) item index, (p, f) float32;
        plus the (n, n_items) fallback scores of the first generator.
    """
    n = users.size
    seen = ctx.seen[users]
    s_r = np.repeat(np.arange(n), np.diff(seen.indptr))
    scores, tops = {}, []
    for g in gens:
        s = np.asarray(ctx.generators[g].score(users), dtype=np.float32).copy()
        s[s_r, seen.indices] = -np.inf
        k = min(n_cand, ctx.n_items)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        tv = np.take_along_axis(s, top, axis=1)
        top = np.where(np.isfinite(tv), top, -1)
        scores[g] = s
        tops.append(top)
    pool = np.concatenate(tops, axis=1)
    rows = np.repeat(np.arange(n), pool.shape[1])
    items = pool.ravel()
    ok = items >= 0
    key = np.unique(rows[ok].astype(np.int64) * ctx.n_items + items[ok])
    rows, items = (key // ctx.n_items).astype(np.int64), (key % ctx.n_items).astype(np.int64)

    bounds = np.searchsorted(rows, np.arange(n + 1))  # rows are sorted
    feats = []
    for g in gens:
        s = scores[g]
        v = s[rows, items]
        # rank among all unseen items = number with a higher score (exact for top candidates)
        m = min(max(4 * n_cand, 1), s.shape[1])
        srt = np.take_along_axis(s, np.argpartition(-s, m - 1, axis=1)[:, :m], axis=1)
        srt = -np.sort(-srt, axis=1)
        rank = np.empty(rows.size, np.float32)
        for r in range(n):
            a, b = bounds[r], bounds[r + 1]
            rank[a:b] = np.searchsorted(-srt[r], -v[a:b], side="left")
        top1 = srt[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(np.abs(top1[rows]) > 1e-12, v / top1[rows], 0.0)
        feats += [np.nan_to_num(v, neginf=-1e3), np.log1p(rank), np.nan_to_num(rel)]
    fallback = scores[gens[0]]
    fol = ctx.followees[users]
    fcount = np.asarray((fol @ ctx.binary)[rows, items]).ravel()
    flog = np.asarray((fol @ ctx.log)[rows, items]).ravel()
    frs = np.asarray((ctx.followers[users] @ ctx.binary)[rows, items]).ravel()
    two_hop = (fol @ ctx.followees)
    two_hop.data[:] = 1.0
    thc = np.asarray((two_hop @ ctx.binary)[rows, items]).ravel()
    n_fol = ctx.user_followees[users][rows]
    social = ctx.generators.get("social")
    if social is not None and getattr(social, "item_vectors_", None) is not None:
        uv = social.user_vectors_[users][rows]
        iv = social.item_vectors_[items]
        cos = (uv * iv).sum(1) / np.maximum(np.linalg.norm(uv, axis=1) * np.linalg.norm(iv, axis=1), 1e-12)
    else:
        cos = np.zeros(rows.size, np.float32)
    feats += [
        np.log1p(ctx.item_pop[items]), ctx.item_mean_log[items], np.log1p(ctx.user_n[users][rows]),
        np.log1p(n_fol), fcount, fcount / np.maximum(n_fol, 1), flog, frs, np.log1p(thc), cos,
    ]
    if ctx.has_categories:
        cat = ctx.item_category[items]
        share = np.zeros(rows.size, np.float32)
        has = cat >= 0
        uc = ctx.user_cat[users]
        share[has] = np.asarray(uc[rows[has], cat[has]]).ravel() / np.maximum(ctx.user_n[users][rows[has]], 1)
        feats += [share, has.astype(np.float32)]
    feats += [np.log1p(ctx.item_days_since[items]), ctx.item_recent_share[items]]
    return rows, items, np.stack(feats, axis=1).astype(np.float32), fallback


def _mask_rows(scores: np.ndarray, rows: sp.csr_matrix) -> None:
    from recsys.protocol import _mask

    _mask(scores, rows)


class HybridModel(Recommender):
    """Candidate generation + LightGBM LambdaRank re-ranking with social features.

    Args:
        generators: candidate generators, by name (see :data:`GENERATORS`); the first also ranks
            the items outside every candidate list (fallback order).
        candidates: top-N unseen items taken from each generator per user.
        validation_fraction: share of the training interactions held out to train the ranker
            (when the harness gives no disjoint validation set).
        max_train_users: users sampled (seeded) from those with held-out items to train the ranker.
        n_estimators, learning_rate, num_leaves, min_child_samples: LightGBM settings (trees
            early-stopped on 20% of the training users by NDCG@10).
        min_label_share: a validation set handed to ``fit`` trains the ranker only when it holds
            at least ``min_label_share * validation_fraction`` times as many interactions as
            training (else too few labels: the ranker learns from a held-out part of training).
        seed: seeds the hold-out, the sample, the generators and LightGBM (deterministic mode).
    Attributes:
        generators_: fitted generators. ranker_: the ``LGBMRanker``. feature_names_: its inputs.
        mode_: ``"ranker"``, or the name of the generator that serves alone because the ranker
            did not beat it on the held-out users of the ranker's training data (NDCG@10, full
            ranking) — the hybrid is never worse there than its best generator.
        holdout_ndcg_: held-out NDCG@10 of the ranker and of each generator (that choice).
    """

    name = "hybrid"
    param_grid = [{"candidates": 50}]

    def __init__(
        self,
        generators: tuple[str, ...] = ("ease", "userknn", "als", "itemcf", "popular"),
        candidates: int = 50,
        validation_fraction: float = 0.15,
        max_train_users: int = 2000,
        n_estimators: int = 200,
        learning_rate: float = 0.1,
        num_leaves: int = 15,
        min_child_samples: int = 200,
        min_label_share: float = 0.5,
        seed: int = 0,
    ):
        super().__init__()
        self.generators = tuple(generators)
        self.candidates = candidates
        self.validation_fraction = validation_fraction
        self.max_train_users = max_train_users
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.min_label_share = min_label_share
        self.seed = seed

    def _fit_generators(self, snapshot: Snapshot) -> dict[str, Recommender]:
        out = {}
        for g in self.generators:
            t = time.perf_counter()
            out[g] = _build_generator(g, self.seed).fit(snapshot)
            self.timings_[f"fit_{g}"] = self.timings_.get(f"fit_{g}", 0.0) + time.perf_counter() - t
        return out

    def _fit(self, snapshot: Snapshot, validation: sp.csr_matrix | None) -> None:
        import lightgbm as lgb

        if not self.generators:
            raise ValueError("hybrid needs at least one generator")
        self.timings_: dict[str, float] = {}
        train = sp.csr_matrix(snapshot.interactions)
        disjoint = (validation is not None and validation.nnz >= self.min_label_share * self.validation_fraction * train.nnz
                    and train.multiply(validation != 0).nnz == 0)
        if disjoint:
            inner_snap, held = snapshot, sp.csr_matrix(validation)
        else:
            rest, held = random_holdout(sp.csr_matrix(train), self.validation_fraction, np.random.default_rng(self.seed))
            inner_snap = snapshot.with_interactions(rest)
        gens = self._fit_generators(inner_snap)
        ctx = _Context(inner_snap, gens)
        users = np.flatnonzero(np.diff(held.indptr) > 0)
        rng = np.random.default_rng(self.seed)
        if users.size > self.max_train_users:
            users = np.sort(rng.choice(users, self.max_train_users, replace=False))
        t = time.perf_counter()
        rows_all, labels_all, feats_all, groups = [], [], [], []
        gen_names = list(self.generators)
        for start in range(0, users.size, 256):
            block = users[start : start + 256]
            rows, items, feats, _ = _candidates_and_features(ctx, block, self.candidates, gen_names)
            lab = np.asarray((held[block] != 0)[rows, items]).ravel().astype(np.float32)
            rows_all.append(rows + start)
            labels_all.append(lab)
            feats_all.append(feats)
        rows = np.concatenate(rows_all)
        labels = np.concatenate(labels_all)
        feats = np.concatenate(feats_all)
        self.timings_["features"] = time.perf_counter() - t
        # keep users with at least one positive candidate (others carry no ranking signal)
        pos_per_user = np.bincount(rows, weights=labels, minlength=users.size)
        keep_users = np.flatnonzero(pos_per_user > 0)
        self.candidate_recall_ = float(pos_per_user.sum() / max(held[users].nnz, 1))
        perm_users = rng.permutation(keep_users)
        n_eval = max(1, int(0.2 * perm_users.size)) if perm_users.size >= 10 else 0
        eval_users, fit_users = np.sort(perm_users[:n_eval]), np.sort(perm_users[n_eval:])

        def subset(us):
            mask = np.isin(rows, us)
            g = np.bincount(rows[mask], minlength=users.size)
            return feats[mask], labels[mask], g[g > 0]

        x_fit, y_fit, g_fit = subset(fit_users)
        self.feature_names_ = _feature_names(gen_names, ctx.has_categories)
        ranker = lgb.LGBMRanker(
            objective="lambdarank",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.seed,
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        t = time.perf_counter()
        kwargs = {}
        if n_eval:
            x_ev, y_ev, g_ev = subset(eval_users)
            import inspect

            if "eval_X" in inspect.signature(ranker.fit).parameters:  # lightgbm >= 4.6
                kwargs = dict(eval_X=(x_ev,), eval_y=(y_ev,))
            else:
                kwargs = dict(eval_set=[(x_ev, y_ev)])
            kwargs.update(eval_group=[g_ev], eval_at=[10], callbacks=[lgb.early_stopping(100, verbose=False)])
        ranker.fit(x_fit, y_fit, group=g_fit, feature_name=self.feature_names_, **kwargs)
        self.timings_["ranker"] = time.perf_counter() - t
        self.ranker_ = ranker
        self.best_iteration_ = int(ranker.best_iteration_ or self.n_estimators)
        # never worse than the best generator: compare on the held-out users the ranker did not
        # fit on (all users with held-out items when there are too few for a split)
        self.mode_ = "ranker"
        self._ctx, self.generators_ = ctx, gens
        check = eval_users if n_eval else keep_users
        check_users = users[check] if check.size else users[:0]
        self.holdout_ndcg_ = self._holdout_ndcg(check_users, inner_snap, held, gens)
        best_gen = max(gens, key=lambda g: self.holdout_ndcg_[g])
        if check_users.size and self.holdout_ndcg_[best_gen] >= self.holdout_ndcg_["ranker"]:
            self.mode_ = best_gen
        if disjoint:
            self.generators_ = gens
            self._ctx = ctx
        elif self.mode_ == "ranker":
            self.generators_ = self._fit_generators(snapshot)
            self._ctx = _Context(snapshot, self.generators_)
        else:
            keep = self.generators
            self.generators = (self.mode_,)
            try:
                self.generators_ = self._fit_generators(snapshot)
            finally:
                self.generators = keep
            self._ctx = None
        log.info("hybrid: candidate recall %.3f, %d trees, mode %s (held-out ndcg@10 %s), timings %s",
                 self.candidate_recall_, self.best_iteration_, self.mode_,
                 {k: round(v, 4) for k, v in self.holdout_ndcg_.items()}, {k: round(v, 1) for k, v in self.timings_.items()})

    def _holdout_ndcg(self, users: np.ndarray, snap: Snapshot, held: sp.csr_matrix, gens: dict) -> dict[str, float]:
        """Expected NDCG@10 (full ranking, seen items masked) of the ranker and each generator."""
        from recsys.metrics import MetricAccumulator
        from recsys.protocol import _mask

        out = {}
        scorers = {"ranker": self._ranker_scores, **{g: m.score for g, m in gens.items()}}
        for name, fn in scorers.items():
            acc = MetricAccumulator((10,))
            for start in range(0, users.size, 256):
                block = users[start : start + 256]
                sc = np.array(fn(block), dtype=np.float32, copy=True)
                _mask(sc, snap.interactions[block])
                acc.add(sc, held[block])
            out[name] = acc.result()["ndcg@10"]
        return out

    # ------------------------------------------------------------------ scoring
    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Re-ranked candidates score in [1, 2]; every other item keeps the first generator's
        order, squeezed into [-1, 0) (finite, always below the candidates). In a fallback
        :attr:`mode_` the scores of that generator."""
        self._check_fitted()
        users = np.atleast_1d(np.asarray(user_idx, np.int64))
        mode = getattr(self, "mode_", "ranker")
        if mode != "ranker":
            return self._generator_scores(mode, users)
        return self._ranker_scores(users)

    def _generator_scores(self, name: str, users: np.ndarray) -> np.ndarray:
        """One generator's order in the ranker's score layout: its top ``candidates`` unseen items
        in [1, 2], the rest in [-1, 0) (a per-user monotone map, so the ranking is the generator's)."""
        s = np.array(self.generators_[name].score(users), dtype=np.float32, copy=True)
        lo = s.min(axis=1, keepdims=True)
        hi = s.max(axis=1, keepdims=True)
        norm = (s - lo) / np.maximum(hi - lo, 1e-12)
        masked = s.copy()
        _mask_rows(masked, self.snapshot_.interactions[users])
        k = min(self.candidates, s.shape[1])
        top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(masked, top, axis=1).min(axis=1, keepdims=True)
        out = np.clip(norm - 1.0, -1.0, -1e-6)
        inside = (masked >= kth) & np.isfinite(masked)
        out[inside] = 1.0 + norm[inside]
        return out.astype(np.float32)

    def _ranker_scores(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.atleast_1d(np.asarray(user_idx, np.int64))
        rows, items, feats, fallback = _candidates_and_features(self._ctx, users, self.candidates, list(self.generators))
        fb = np.where(np.isfinite(fallback), fallback, np.nan)
        lo = np.nanmin(fb, axis=1, keepdims=True) if fb.size else 0
        hi = np.nanmax(fb, axis=1, keepdims=True) if fb.size else 1
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (np.nan_to_num(fb, nan=lo.min() if np.size(lo) else 0) - lo) / np.maximum(hi - lo, 1e-12) - 1.0
        out = np.clip(np.nan_to_num(out, nan=-1.0), -1.0, -1e-6).astype(np.float32)
        if rows.size:
            pred = self.ranker_.booster_.predict(feats, num_iteration=self.best_iteration_)
            lo_r = np.full(users.size, np.inf)
            hi_r = np.full(users.size, -np.inf)
            np.minimum.at(lo_r, rows, pred)
            np.maximum.at(hi_r, rows, pred)
            out[rows, items] = 1.0 + (pred - lo_r[rows]) / np.maximum(hi_r[rows] - lo_r[rows], 1e-12)
        return out

    def feature_importance(self) -> dict[str, float]:
        """Gain importance of each ranker feature (sums to 1)."""
        gain = self.ranker_.booster_.feature_importance("gain")
        return dict(zip(self.feature_names_, (gain / max(gain.sum(), 1e-12)).round(4).tolist()))

    def user_embeddings(self) -> np.ndarray | None:
        first = self.generators_.get("als") or next(iter(self.generators_.values()))
        return first.user_embeddings()

    def item_embeddings(self) -> np.ndarray | None:
        first = self.generators_.get("als") or next(iter(self.generators_.values()))
        return first.item_embeddings()
