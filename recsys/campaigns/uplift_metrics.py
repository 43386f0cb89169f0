"""Uplift evaluation metrics on a randomised held-out part, with (Poisson) bootstrap weights.

All metrics rank customers by a score (predicted uplift, best first) and read the randomised
arms inside each top fraction. Every function accepts optional bootstrap weights of shape
``(B, n)`` and then returns one value per resample, so a confidence interval is a percentile of
the ``(B,)`` result and paired comparisons (model vs baseline on the same resample) come free.

Definitions (unit weights reproduce scikit-uplift 0.5's ``qini_curve``, ``uplift_curve``,
``qini_auc_score`` and ``uplift_at_k(strategy="overall")`` exactly for binary outcomes; the tests
pin this; unlike those, these also take money outcomes and weights):

* Qini curve (Radcliffe 2007): after the top k customers, ``Q(k) = Y_T(k) - Y_C(k) N_T(k) / N_C(k)``
  (incremental outcomes among the treated of the top k). Points at the end of each run of tied
  scores, starting at (0, 0).
* ``qini``: the Qini coefficient as scikit-uplift normalises it: (area under Q - area under the
  random line from (0,0) to (N, Q(N))) / (the same for the perfect ranking ``y*t - y*(1-t)``).
  Random targeting = 0, the perfect ranking = 1 (a ranking worse than random is negative).
* ``qini_area``: the unnormalised area between the Qini curve and the random line with both axes
  per customer (x = fraction targeted, y = Q / N): incremental outcomes per customer, averaged
  over targeting depths. 0 = random.
* ``auuc``: the same area for the uplift curve ``U(k) = (Y_T(k)/N_T(k) - Y_C(k)/N_C(k)) k`` (per
  customer, minus the random line). 0 = random.
* ``uplift@p``: mean outcome of the treated minus mean outcome of the controls among the top
  ``int(n p)`` customers (the "overall" strategy): the effect of the campaign on the targeted part.

Source: N. J. Radcliffe (2007), "Using control groups to target on predicted lift", Direct
Marketing Analytics Journal 3; Devriendt, Guns & Verbeke (2020), arXiv:2002.05897; the Poisson
bootstrap: Hanley & MacGibbon (2006), Comput. Methods Programs Biomed. 83(1).
"""

from __future__ import annotations

import numpy as np

#: Default top fractions for ``uplift@p``.
TOP_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3)


def poisson_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(1) bootstrap weights.

    Args:
        n: rows. n_boot: resamples. rng: the generator (seeded by the caller).
    Returns:
        (n_boot, n) float32 counts.
    """
    return rng.poisson(1.0, size=(n_boot, n)).astype(np.float32)


def perfect_scores(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The perfect ranking's score (scikit-uplift's ``perfect_qini_curve`` with negative effects):
    treated responders first (largest outcome first), control responders last."""
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    return y * t - y * (1.0 - t)


def _order_and_ends(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(score, kind="mergesort")[::-1]
    s = score[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    return order, ends


def _sums(y, t, order, ends, weights):
    """Cumulative (n_all, n_t, n_c, y_t, y_c) at the tie ends, shape (..., len(ends))."""
    ys, ts = y[order], t[order]
    if weights is None:
        w = np.ones((1, ys.size), dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)[:, order]
    wt = w * ts
    wc = w - wt
    n_all = np.cumsum(w, axis=1)[:, ends]
    n_t = np.cumsum(wt, axis=1)[:, ends]
    n_c = n_all - n_t
    y_t = np.cumsum(wt * ys, axis=1)[:, ends]
    y_c = np.cumsum(wc * ys, axis=1)[:, ends]
    return n_all, n_t, n_c, y_t, y_c


def _div(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _with_origin(x, v):
    z = np.zeros((x.shape[0], 1))
    return np.concatenate([z, x], axis=1), np.concatenate([z, v], axis=1)


#: Rank bins at which bootstrap resamples evaluate the curves (exact at every 0.5 % of the ranking).
BOOT_BINS = 200


def _binned_cumsums(y, t, score, weights, bins: int = BOOT_BINS):
    """Cumulative (n_all, n_t, n_c, y_t, y_c) at the end of each of ``bins`` rank bins, (B, bins) each.

    Rows go to the bin of their rank (a run of tied scores to the bin where it starts), so each
    resample costs one sparse product instead of sorting copies of the (B, n) weights.
    """
    from scipy import sparse

    n = y.size
    order, ends = _order_and_ends(score)
    starts = np.r_[0, ends[:-1] + 1]
    group_start = np.repeat(starts, ends - starts + 1)
    row_bin = np.empty(n, dtype=np.int64)
    row_bin[order] = np.minimum(group_start * bins // n, bins - 1)
    cols = np.concatenate([row_bin + q * bins for q in range(4)])
    rows = np.tile(np.arange(n), 4)
    data = np.concatenate([np.ones(n), t, t * y, (1.0 - t) * y])
    m = sparse.csr_matrix((data, (rows, cols)), shape=(n, 4 * bins))
    sums = np.asarray((m.T @ np.asarray(weights, dtype=np.float64).T).T)  # (B, 4 bins)
    sums = np.cumsum(sums.reshape(-1, 4, bins), axis=2)
    n_all, n_t, y_t, y_c = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    return n_all, n_t, n_all - n_t, y_t, y_c


def curves(y, t, score, weights=None) -> dict[str, np.ndarray]:
    """Qini and uplift curves.

    Args:
        y: (n,) outcome (0/1 or money >= 0). t: (n,) 0/1 treated flag. score: (n,) ranking score,
            higher = target first. weights: optional (B, n) bootstrap weights.
    Returns:
        ``{"x": (B, m+1) customers targeted, "qini": (B, m+1), "uplift": (B, m+1)}``, starting at 0:
        without weights B = 1 and one point per distinct score (exact); with weights one point per
        rank bin (:data:`BOOT_BINS`).
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if weights is None:
        order, ends = _order_and_ends(score)
        sums = _sums(y, t, order, ends, weights)
    else:
        sums = _binned_cumsums(y, t, score, weights)
    return _curves_from_sums(*sums)


def _curves_from_sums(n_all, n_t, n_c, y_t, y_c) -> dict[str, np.ndarray]:
    qini = y_t - y_c * _div(n_t, n_c)
    upl = (_div(y_t, n_t) - _div(y_c, n_c)) * n_all
    x, qini = _with_origin(n_all, qini)
    _, upl = _with_origin(n_all, upl)
    return {"x": x, "qini": qini, "uplift": upl}


def _area_above_random(x, v):
    """Trapezoid area under v(x) minus the chord from (0,0) to the last point, per row."""
    area = np.sum((x[:, 1:] - x[:, :-1]) * (v[:, 1:] + v[:, :-1]) / 2.0, axis=1)
    return area - x[:, -1] * v[:, -1] / 2.0


def perfect_qini_area(y, t, weights=None) -> np.ndarray:
    """Area between the perfect ranking's Qini curve and the random line, (B,) (the normaliser of ``qini``)."""
    p = curves(y, t, perfect_scores(y, t), weights)
    return _area_above_random(p["x"], p["qini"])


def ranking_metrics(y, t, score, weights=None, fractions: tuple[float, ...] = TOP_FRACTIONS,
                    perfect_area: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All ranking metrics of one score on the held-out part.

    Args:
        y, t, score, weights: as in :func:`curves`.
        fractions: top fractions p for ``uplift@p`` (0 < p <= 1).
        perfect_area: :func:`perfect_qini_area` of the same ``y, t, weights`` when already computed.
    Returns:
        ``{"qini", "qini_area", "auuc", "uplift@10", ...}``, each a (B,) float64 array (B = 1
        without weights). Definitions in the module docstring.
    Raises:
        ValueError: a fraction outside (0, 1], or shapes that disagree.
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if not (y.shape == t.shape == score.shape) or y.ndim != 1:
        raise ValueError(f"y, t, score must be (n,) arrays of one length, got {y.shape}, {t.shape}, {score.shape}")
    if weights is not None and np.shape(weights)[1] != y.size:
        raise ValueError(f"weights must be (B, {y.size}), got {np.shape(weights)}")
    if weights is not None:
        n_all, n_t, n_c, y_t, y_c = _binned_cumsums(y, t, score, weights)
        c = _curves_from_sums(n_all, n_t, n_c, y_t, y_c)
    else:
        c = curves(y, t, score)
    x, total = c["x"], c["x"][:, -1]
    model_q = _area_above_random(x, c["qini"])
    perfect_q = perfect_qini_area(y, t, weights) if perfect_area is None else perfect_area
    out = {
        "qini": _div(model_q, perfect_q),
        "qini_area": model_q / total**2,
        "auuc": _area_above_random(x, c["uplift"]) / total**2,
    }
    if weights is None:
        order = np.argsort(score, kind="mergesort")[::-1]
        ys, ts = y[order], t[order]
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"top fraction must be in (0, 1], got {f}")
        if weights is not None:
            j = max(int(round(f * BOOT_BINS)) - 1, 0)
            out[f"uplift@{round(f * 100)}"] = _div(y_t[:, j], n_t[:, j]) - _div(y_c[:, j], n_c[:, j])
            continue
        size = int(y.size * f)
        yy, tt = ys[:size], ts[:size]
        mean_t = (tt * yy).sum() / tt.sum() if tt.sum() else 0.0
        mean_c = ((1 - tt) * yy).sum() / (1 - tt).sum() if (1 - tt).sum() else 0.0
        out[f"uplift@{round(f * 100)}"] = np.array([mean_t - mean_c])
    return out


def incremental_at(y, t, score, fractions, weights=None) -> np.ndarray:
    """Incremental outcome per customer of the population when the top fraction is treated.

    The arm difference inside the selected group times its share: ``(mean_T(sel) - mean_C(sel)) *
    |sel| / n`` — an unbiased estimate under randomisation of what treating that group adds, per
    customer of the whole population (0 for fraction 0).

    Args:
        y, t, score, weights: as in :func:`curves`. fractions: (F,) in [0, 1].
    Returns:
        (B, F) float64 (B = 1 without weights; with weights the cut is the nearest rank bin of
        :data:`BOOT_BINS`, exact for fractions on the 0.5 % grid).
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if weights is not None:
        n_all, n_t, n_c, y_t, y_c = _binned_cumsums(y, t, score, weights)
        out = np.zeros((n_all.shape[0], len(fractions)))
        for j, f in enumerate(fractions):
            b = int(round(f * BOOT_BINS)) - 1
            if b < 0:
                continue
            effect = _div(y_t[:, b], n_t[:, b]) - _div(y_c[:, b], n_c[:, b])
            out[:, j] = effect * n_all[:, b] / n_all[:, -1]
        return out
    order = np.argsort(score, kind="mergesort")[::-1]
    ys, ts = y[order], t[order]
    out = np.zeros((1, len(fractions)))
    for j, f in enumerate(fractions):
        cut = int(round(f * y.size))
        if cut == 0:
            continue
        yy, tt = ys[:cut], ts[:cut]
        n_t = tt.sum()
        effect = ((tt * yy).sum() / n_t if n_t else 0.0) - (((1 - tt) * yy).sum() / (cut - n_t) if cut - n_t else 0.0)
        out[0, j] = effect * cut / y.size
    return out


__all__ = ["TOP_FRACTIONS", "curves", "incremental_at", "perfect_qini_area", "perfect_scores", "poisson_weights", "ranking_metrics"]
