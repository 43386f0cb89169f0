"""Cold-start benchmark: the cold protocols of INTERFACES.md against popularity baselines and S²-MHCN.

Usage::

    python -m benchmarks.coldstart --seeds 0,1,2         # every default job, tuned on validation
    python -m benchmarks.coldstart --jobs lastfm-cold-users --no-tune

Every number goes through :func:`recsys.evaluation.evaluate` — the same splits, seen-item
filtering and validation-only tuning as every model — with ``cold_start=True`` (users/items
without training history are ranked through :mod:`recsys.coldstart`). Models:

* ``popular`` — distinct-user popularity (the baseline of the targets);
* ``segment_popular`` — popularity among the user's tie-weighted followees and follow-graph
  community (the segment-popularity baseline);
* ``als`` — ALS, cold users scored with their followees' propagated vectors, cold items with
  their category's mean vector (the plain cold-start wrapper, ``social_weight=0``);
* ``coldstart`` — the wrapper with its own settings tuned on validation: the social blend for
  users with sparse history (``social_weight``/``shrinkage``) and the ALS size; on ``cold-items``
  run untuned with ``content_norm=0.9`` (the service's new-item exposure), reported separately
  because the protocol rewards any boost of cold items (see ``docs/cold-start.md``).

Published reference (``PAPER_RESULTS.md`` §2a, MHCN Table 4, primary): S²-MHCN on
lastfm-hetrec2011, 5-fold CV, full ranking, test users with < 20 interactions: recall@10
0.24431, ndcg@10 0.19138. Their folds and cold-user definition are not ours exactly (ours:
< 20 interactions in the whole dataset, seed 0), so the comparison is indicative.

The table prints the protocol beside every number; the JSON (``benchmarks/results/coldstart-<utc>.json``)
holds the full ``evaluate`` results, timings and the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

PUBLISHED = {
    ("lastfm-hetrec2011", "cold-lt20"): {
        "model": "S2-MHCN (published)",
        "source": "PAPER_RESULTS.md 2a: Yu et al., WWW 2021, Table 4 (5-fold CV, users < 20 interactions)",
        "recall@10": 0.24431,
        "ndcg@10": 0.19138,
    },
}

#: name -> (dataset, protocol, models, fixed params per model)
JOBS: dict[str, tuple[str, str, list[str], dict]] = {
    "lastfm-cold-lt20": ("lastfm-hetrec2011", "cold-lt20", ["popular", "segment_popular", "als", "coldstart"], {}),
    "lastfm-cold-users": ("lastfm-hetrec2011", "cold-users", ["popular", "segment_popular", "als", "coldstart"], {}),
    "ciao-cold-users": ("ciao", "cold-users", ["popular", "segment_popular", "als", "coldstart"], {}),
    "lastfm-cold-items": ("lastfm-hetrec2011", "cold-items", ["popular", "als"], {}),
    "lastfm-cold-items-exposure": ("lastfm-hetrec2011", "cold-items", ["coldstart"],
                                   {"coldstart": {"content_norm": 0.9, "social_weight": 0.0}}),
    "ciao-cold-items": ("ciao", "cold-items", ["popular", "als"], {}),
    "ciao-cold-items-exposure": ("ciao", "cold-items", ["coldstart"], {"coldstart": {"content_norm": 0.9, "social_weight": 0.0}}),
}
DEFAULT_JOBS = ("lastfm-cold-lt20", "lastfm-cold-users", "ciao-cold-users", "lastfm-cold-items", "lastfm-cold-items-exposure")
METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def load_snapshot(dataset: str, home: Path, data_dir: Path):
    """The dataset through the real ETL into an embedded store under ``home`` (cached there)."""
    from etl.pipeline import run_etl
    from graph.snapshot import Snapshot
    from graph.store import EmbeddedStore

    cached = home / f"{dataset}.snapshot.npz"
    if cached.exists():
        return Snapshot.load(cached)
    store = EmbeddedStore(home / "store", dataset)
    run_etl(dataset, store, data_dir, home / "cache", b"benchmark-key", home / "quarantine", progress=False)
    snap = store.snapshot()
    snap.save(cached)
    return snap


def run(jobs: list[str], tune: bool, seeds: list[int], home: Path, data_dir: Path) -> dict:
    """Run the jobs once per seed (a seed picks the folds / cold users / cold items).

    Returns:
        ``{"jobs": {name: {"dataset", "protocol", "runs": [evaluate-result + seconds per seed],
        "models": {model: {metric: mean, metric + "_sd": sd over seeds, "n_users"}}}}}``.
    """
    import numpy as np

    from recsys.evaluation import evaluate

    out = {}
    snaps = {}
    for name in jobs:
        dataset, protocol, models, params = JOBS[name]
        if dataset not in snaps:
            snaps[dataset] = load_snapshot(dataset, home, data_dir)
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            result = evaluate(snaps[dataset], protocol, models, ks=(10, 20), seed=seed, tune_params=tune, params=params)
            result["seconds"] = time.perf_counter() - t0
            runs.append(result)
            print(f"[{name} seed {seed}] done in {result['seconds']:.0f}s", file=sys.stderr, flush=True)
        summary = {}
        for model in models:
            rows = [r["models"][model] for r in runs]
            summary[model] = {"n_users": int(np.mean([r["n_users"] for r in rows]))}
            for key in METRICS:
                vals = [r[key] for r in rows]
                summary[model][key] = float(np.mean(vals))
                summary[model][key + "_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        out[name] = {"dataset": dataset, "protocol": protocol, "fixed_params": params, "seeds": seeds,
                     "models": summary, "runs": runs}
    return {"jobs": out}


def table(payload: dict) -> str:
    """Plain-text table: dataset, protocol, model, metrics (mean ± sd over seeds), ratio to popular recall@20."""
    rows = [("dataset", "protocol", "model", *METRICS, "R@20 / popular", "users")]
    for name, res in payload["jobs"].items():
        pop = None
        for job in payload["jobs"].values():
            if job["dataset"] == res["dataset"] and job["protocol"] == res["protocol"] and "popular" in job["models"]:
                pop = job["models"]["popular"]["recall@20"]
        label = " (content_norm=0.9)" if name.endswith("exposure") else ""
        for model, m in res["models"].items():
            ratio = f"{m['recall@20'] / pop:.2f}x" if pop else "-"
            cells = (f"{m[k]:.4f}" + (f"±{m[k + '_sd']:.3f}" if len(res["seeds"]) > 1 else "") for k in METRICS)
            rows.append((res["dataset"], res["protocol"], model + label, *cells, ratio, str(m["n_users"])))
        ref = PUBLISHED.get((res["dataset"], res["protocol"]))
        if ref:
            rows.append((res["dataset"], res["protocol"], ref["model"], f"{ref['recall@10']:.4f}", f"{ref['ndcg@10']:.4f}",
                         "-", "-", "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default=",".join(DEFAULT_JOBS), help=f"comma-separated, from {', '.join(JOBS)}")
    parser.add_argument("--no-tune", action="store_true", help="first param_grid entries instead of validation tuning")
    parser.add_argument("--seeds", default="0", help="comma-separated split seeds; metrics are means (± sd) over them")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SOCIALREC_HOME", ".socialrec")) / "benchmark-coldstart")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SOCIALREC_DATA_DIR", ROOT.parent / "shared" / "data")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        parser.error(f"unknown jobs {unknown}; known: {', '.join(JOBS)}")
    args.home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    payload = run(jobs, not args.no_tune, seeds, args.home, args.data_dir)
    payload.update({
        "tuned": not args.no_tune,
        "seeds": seeds,
        "published": {f"{d}/{p}": v for (d, p), v in PUBLISHED.items()},
        "seconds": time.perf_counter() - t0,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "command": "python -m benchmarks.coldstart " + " ".join(argv if argv is not None else sys.argv[1:]),
    })
    print(table(payload))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"coldstart-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
