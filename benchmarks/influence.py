"""Influence-test benchmark: 200 timestamp shuffles on ciao, against a per-item loop baseline.

Usage::

    python -m benchmarks.influence [--data-dir ../shared/data] [--repeats 3]

The goal (issue 10): the shuffle test with 200 seeded shuffles on ciao (282k dated ratings,
111k trust edges, ~225k co-adopting edge pairs) runs well under a minute. Reported: the median
wall time of :func:`recsys.value.influence.shuffle_test` (200 shuffles) over ``--repeats`` runs,
the per-shuffle time of a straightforward baseline measured in the same run (a Python loop
permuting each item's dates with ``rng.permutation``, then the same vectorised count), their
ratio, and the load average. JSON goes to ``benchmarks/results/influence-<utc>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def ciao_snapshot(folder: Path):
    """ciao ratings + trust as a snapshot (raw ids; latest rating of a duplicated pair)."""
    from graph.snapshot import build_snapshot

    ratings = pd.read_csv(folder / "ratings.csv.gz").sort_values("timestamp", kind="stable")
    ratings = ratings.drop_duplicates(["user_id", "item_id"], keep="last")
    trust = pd.read_csv(folder / "trust.csv.gz")
    users = pd.DataFrame({"user_id": pd.unique(np.concatenate(
        [ratings["user_id"], trust["truster_id"], trust["trustee_id"]])).astype(str)})
    items = pd.DataFrame({"item_id": pd.unique(ratings["item_id"]).astype(str), "category": "c"})
    inter = pd.DataFrame({"user_id": ratings["user_id"].astype(str), "item_id": ratings["item_id"].astype(str),
                          "kind": "rating", "value": ratings["rating"].astype(float),
                          "ts": ratings["timestamp"].astype(float)})
    follows = pd.DataFrame({"follower_id": trust["truster_id"].astype(str), "followee_id": trust["trustee_id"].astype(str)})
    return build_snapshot("ciao", users, items, inter, follows)


def baseline_shuffle_seconds(pairs, n: int = 3, seed: int = 0) -> float:
    """Per-shuffle seconds of the loop baseline: rng.permutation per item, then the same count."""
    times = pairs.times
    csc_order = np.argsort(times.indices, kind="stable")
    bounds = np.flatnonzero(np.diff(times.indices[csc_order])) + 1
    groups = np.split(csc_order, bounds)
    rng = np.random.default_rng(seed)
    t = times.data
    start = time.perf_counter()
    for _ in range(n):
        shuffled = t.copy()
        for g in groups:
            if g.size > 1:
                shuffled[g] = t[g[rng.permutation(g.size)]]
        delta = shuffled[pairs.pair_u] - shuffled[pairs.pair_v]
        int(np.count_nonzero((delta > 0) & (delta <= pairs.tau)))
    return (time.perf_counter() - start) / n


def main(argv=None) -> int:
    from recsys.value.influence import adoption_pairs, shuffle_test

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("SOCIALREC_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    snap = ciao_snapshot(Path(args.data_dir) / "ciao")
    pairs = adoption_pairs(snap, 30.0)
    runs = []
    for r in range(args.repeats):
        start = time.perf_counter()
        shuffle_test(pairs, n_shuffles=200, seed=r)
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    base = baseline_shuffle_seconds(pairs)
    out = {
        "benchmark": "influence shuffle test, ciao, 200 shuffles", "pairs": int(pairs.pair_edge.size),
        "events": int(pairs.times.nnz), "median_seconds_200_shuffles": median, "runs_seconds": runs,
        "baseline_seconds_per_shuffle": base, "baseline_seconds_200_shuffles_extrapolated": 200 * base,
        "speedup_vs_baseline": 200 * base / median, "loadavg": open("/proc/loadavg").read().split()[:3],
        "cpus": os.cpu_count(), "utc": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"influence-{out['utc']}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
