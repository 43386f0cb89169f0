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


def curves(y, t, score, weights=None) -> dict[str, np.ndarray]:
    """Qini and uplift curves.

    Args:
        y: (n,) outcome (0/1 or money >= 0). t: (n,) 0/1 treated flag. score: (n,) ranking score,
            higher = target first. weights: optional (B, n) bootstrap weights.
    Returns:
        ``{"x": (B, m+1) customers targeted, "qini": (B, m+1), "uplift": (B, m+1)}`` (B = 1 without
        weights), starting at 0, one point per distinct score.
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    order, ends = _order_and_ends(np.asarray(score, dtype=np.float64))
    n_all, n_t, n_c, y_t, y_c = _sums(y, t, order, ends, weights)
    qini = y_t - y_c * _div(n_t, n_c)
    upl = (_div(y_t, n_t) - _div(y_c, n_c)) * n_all
    x, qini = _with_origin(n_all, qini)
    _, upl = _with_origin(n_all, upl)
    return {"x": x, "qini": qini, "uplift": upl}


def _area_above_random(x, v):
    """Trapezoid area under v(x) minus the chord from (0,0) to the last point, per row."""
    area = np.sum((x[:, 1:] - x[:, :-1]) * (v[:, 1:] + v[:, :-1]) / 2.0, axis=1)
    return area - x[:, -1] * v[:, -1] / 2.0


def ranking_metrics(y, t, score, weights=None, fractions: tuple[float, ...] = TOP_FRACTIONS) -> dict[str, np.ndarray]:
    """All ranking metrics of one score on the held-out part.

    Args:
        y, t, score, weights: as in :func:`curves`.
        fractions: top fractions p for ``uplift@p`` (0 < p <= 1).
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
    c = curves(y, t, score, weights)
    p = curves(y, t, perfect_scores(y, t), weights)
    x, total = c["x"], c["x"][:, -1]
    model_q = _area_above_random(x, c["qini"])
    perfect_q = _area_above_random(p["x"], p["qini"])
    out = {
        "qini": _div(model_q, perfect_q),
        "qini_area": model_q / total**2,
        "auuc": _area_above_random(x, c["uplift"]) / total**2,
    }
    order = np.argsort(score, kind="mergesort")[::-1]
    ys, ts = y[order], t[order]
    w = np.ones((1, y.size)) if weights is None else np.asarray(weights, dtype=np.float64)[:, order]
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"top fraction must be in (0, 1], got {f}")
        size = int(y.size * f)
        ww, yy, tt = w[:, :size], ys[:size], ts[:size]
        mean_t = _div((ww * tt * yy).sum(axis=1), (ww * tt).sum(axis=1))
        mean_c = _div((ww * (1 - tt) * yy).sum(axis=1), (ww * (1 - tt)).sum(axis=1))
        out[f"uplift@{round(f * 100)}"] = mean_t - mean_c
    return out


def incremental_at(y, t, score, fractions, weights=None) -> np.ndarray:
    """Incremental outcome per customer of the population when the top fraction is treated.

    The arm difference inside the selected group times its share: ``(mean_T(sel) - mean_C(sel)) *
    |sel| / n`` — an unbiased estimate under randomisation of what treating that group adds, per
    customer of the whole population (0 for fraction 0).

    Args:
        y, t, score, weights: as in :func:`curves`. fractions: (F,) in [0, 1].
    Returns:
        (B, F) float64 (B = 1 without weights).
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    order = np.argsort(np.asarray(score, dtype=np.float64), kind="mergesort")[::-1]
    ys, ts = y[order], t[order]
    w = np.ones((1, y.size)) if weights is None else np.asarray(weights, dtype=np.float64)[:, order]
    wt = w * ts
    cw = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w, axis=1)], axis=1)
    ct = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(wt, axis=1)], axis=1)
    cyt = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(wt * ys, axis=1)], axis=1)
    cyc = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum((w - wt) * ys, axis=1)], axis=1)
    cut = np.array([int(round(f * y.size)) for f in fractions])
    n_sel, n_t = cw[:, cut], ct[:, cut]
    effect = _div(cyt[:, cut], n_t) - _div(cyc[:, cut], n_sel - n_t)
    return effect * n_sel / cw[:, -1:]


__all__ = ["TOP_FRACTIONS", "curves", "incremental_at", "perfect_scores", "poisson_weights", "ranking_metrics"]
