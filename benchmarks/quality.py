"""Quality benchmark: every model through the evaluation harness, beside the published numbers.

Usage::

    python -m benchmarks.quality                       # lastfm cv5-full + cold-lt20, ciao 80/10/10
    python -m benchmarks.quality --datasets lastfm-hetrec2011 --models lightgcn,hybrid --resume
    python -m benchmarks.quality --table               # print the cached table only
    python -m benchmarks.quality --selection           # the model `socialrec train` promotes, per dataset

``--selection`` answers "is the model the product serves ever below popularity?": on each shared
dataset with interactions it holds out a random 10 % of interactions as TEST (seeded), runs
:func:`recsys.training.train_models` — exactly what ``socialrec train`` runs: validation-only
tuning (param grid + popularity back-off weight) on a random 10 % of the rest, then the choice of
serving model among all candidates, ``popular`` included — on the other 90 %, and scores every
fitted model on the test interactions (full ranking, tie-aware). It prints per dataset each
model's validation and test recall/NDCG@10, fit and tuning seconds, the chosen model, whether it
beats popular on validation and test (or is popular), and the hybrid/ALS fit-time ratio. Results
are cached in ``benchmarks/results/selection.json`` after each dataset (``--resume`` skips
cached datasets).

For lastfm-hetrec2011 under ``cv5-full`` and ``cold-lt20`` (MHCN/SEPT protocols) and ciao under
``random-80-10-10`` (DICER protocol, full ranking) it prints each model's P@10 / R@10 / NDCG@10
next to the best published figure, the ratio ours / best published, and each model's mean fit
and tuning time on this machine. Results are cached in ``benchmarks/results/quality.json``
(updated after every model, so an interrupted run keeps what it finished; ``--resume`` skips what
is cached).

Only :mod:`recsys.evaluation` (the harness) is used: its splits, its validation-only tuning, its
shared ``recommend`` filtering and its metrics. ``cold-lt20`` is ``cv5-full`` with the metrics
restricted to users with fewer than 20 interactions; its folds are identical (checked), so each
fold's model is fitted once and scored under both protocols. The one difference from two separate
``evaluate`` calls: hyper-parameters are tuned on all validation users, not only the cold ones.

Published numbers: ``../shared/data/PAPER_RESULTS.md`` §2a/2b (lastfm; MHCN WWW 2021 Tables 3-4,
SEPT KDD 2021 Table 2) and §1d (ciao; DICER WWW 2021 Table 4, which does not report precision and
does not say whether it ranks all items).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "quality.json"
MODELS = ("popular", "als", "itemcf", "social", "lightgcn", "graphsage", "hybrid")
RUNS = {"lastfm-hetrec2011": ("cv5-full", "cold-lt20"), "ciao": ("random-80-10-10",)}

# (model, P@10, R@10, N@10) as fractions; None = not reported.
PUBLISHED = {
    ("lastfm-hetrec2011", "cv5-full"): {
        "source": "MHCN (Yu et al., WWW 2021) Table 3; SEPT (Yu et al., KDD 2021) Table 2 — 5-fold CV, full ranking",
        "rows": [
            ("BPR", 0.15606, 0.15821, 0.18953),
            ("LightGCN (2 layers)", 0.19205, 0.19480, 0.23392),
            ("DiffNet++", 0.18485, 0.18737, 0.22310),
            ("MHCN", 0.19625, 0.19945, 0.23834),
            ("S2-MHCN", 0.20052, 0.20375, 0.24395),
            ("SEPT (2 layers)", 0.20191, 0.20488, 0.24507),
        ],
        "targets": {"recall@10": 0.215, "ndcg@10": 0.257},
    },
    ("lastfm-hetrec2011", "cold-lt20"): {
        "source": "MHCN (Yu et al., WWW 2021) Table 4 — cold-start users (< 20 interactions)",
        "rows": [
            ("BPR", 0.03784, 0.15240, 0.12460),
            ("LightGCN", 0.04809, 0.20361, 0.15044),
            ("DiffNet++", 0.05102, 0.21365, 0.16031),
            ("MHCN", 0.05466, 0.23354, 0.17218),
            ("S2-MHCN", 0.05759, 0.24431, 0.19138),
        ],
        "targets": {},
    },
    ("ciao", "random-80-10-10"): {
        "source": "DICER (Fu et al., WWW 2021) Table 4 — random 80/10/10 (ranking set not stated)",
        "rows": [
            ("BPR", None, 0.2143, 0.1720),
            ("NGCF", None, 0.2821, 0.2212),
            ("DiffNet++", None, 0.2844, 0.2226),
            ("DICER", None, 0.3151, 0.2437),
        ],
        "targets": {"recall@10": 0.3151, "ndcg@10": 0.2437},
    },
}
METRICS = ("precision@10", "recall@10", "ndcg@10")

log = logging.getLogger("benchmarks.quality")


def best_published(dataset: str, protocol: str) -> dict[str, tuple[str, float]]:
    """Best published value per metric: ``{metric: (method, value)}``."""
    rows = PUBLISHED[(dataset, protocol)]["rows"]
    out = {}
    for j, metric in enumerate(METRICS):
        vals = [(r[0], r[1 + j]) for r in rows if r[1 + j] is not None]
        if vals:
            out[metric] = max(vals, key=lambda x: x[1])
    return out


def load_snapshot(dataset: str, data_dir: Path):
    """The dataset through the real ETL (read, validate, pseudonymise) as a snapshot."""
    from etl.datasets import read_dataset
    from etl.pseudonymise import Pseudonymiser
    from graph.snapshot import build_snapshot

    cache = REPO / ".socialrec" / "bench-cache"  # ignored; only used when a dataset must be downloaded
    loaded = read_dataset(dataset, data_dir, Pseudonymiser(b"socialrec-benchmark-key"), cache)
    t = loaded.tables
    return build_snapshot(dataset, t["users"], t["items"], t["interactions"], t["follows"])


def evaluate_protocols(
    snapshot, protocols: tuple[str, ...], model: str, seed: int, tune_params: bool, max_folds: int | None, params: dict | None = None
) -> dict:
    """Fit ``model`` once per split and score it under each protocol (protocols must share splits).

    Returns:
        ``{protocol: summary}`` with the harness's metric keys, ``fit_seconds``/``tune_seconds``
        (means over splits), ``params`` per split and ``folds``.
    """
    from recsys.evaluation import _rank_metrics, make_splits, tune
    from recsys.registry import build_model, model_class

    split_lists = [list(make_splits(snapshot, p, seed=seed)) for p in protocols]
    per = {p: [] for p in protocols}
    chosen = []
    for i, splits in enumerate(zip(*split_lists)):
        if max_folds is not None and i >= max_folds:
            break
        base = splits[0]
        for other in splits[1:]:
            if (other.train != base.train).nnz or (other.test != base.test).nnz:
                raise RuntimeError(f"protocols {protocols} do not share split {i}; run them separately")
        fixed = dict(params or {})
        if "seed" in inspect.signature(model_class(model).__init__).parameters:
            fixed.setdefault("seed", seed)
        t0 = time.perf_counter()
        if tune_params:
            best, _ = tune(model, snapshot, base, fixed, users=base.users)
        else:
            grid = model_class(model).param_grid
            best = {**(grid[0] if grid else {}), **fixed}
        t1 = time.perf_counter()
        train_snap = snapshot.with_interactions(base.train)
        fitted = build_model(model, **best).fit(train_snap, validation=base.validation)
        fit_s = time.perf_counter() - t1
        chosen.append(best)
        for p, split in zip(protocols, splits):
            m = _rank_metrics(fitted, train_snap, split.users, split.test, split.exclude, (10, 20), snapshot.n_items)
            m["fit_seconds"], m["tune_seconds"] = fit_s, t1 - t0
            per[p].append(m)
            log.info("%s %s %s %s recall@10=%.4f ndcg@10=%.4f fit=%.0fs tune=%.0fs", snapshot.dataset, p, split.name, model,
                     m["recall@10"], m["ndcg@10"], fit_s, t1 - t0)
    out = {}
    for p, rows in per.items():
        summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        summary["n_users"] = int(round(summary["n_users"]))
        summary["folds"] = len(rows)
        summary["params"] = chosen
        summary["per_fold"] = [{k: r[k] for k in ("precision@10", "recall@10", "ndcg@10", "fit_seconds")} for r in rows]
        out[p] = summary
    return out


def machine() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def format_table(results: dict) -> str:
    """The benchmark table (text) from cached results."""
    lines = []
    for (dataset, protocol), pub in PUBLISHED.items():
        block = results.get("runs", {}).get(f"{dataset}/{protocol}")
        if not block:
            continue
        best = best_published(dataset, protocol)
        lines.append(f"\n## {dataset} — {protocol}  ({pub['source']})")
        hdr = f"{'model':<26} {'P@10':>8} {'R@10':>8} {'NDCG@10':>8} {'P ratio':>8} {'R ratio':>8} {'N ratio':>8} {'fit s':>8} {'tune s':>8}"
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for name, p_, r_, n_ in pub["rows"]:
            f = lambda v: f"{v:8.4f}" if v is not None else f"{'—':>8}"  # noqa: E731
            lines.append(f"{'[pub] ' + name:<26} {f(p_)} {f(r_)} {f(n_)}")
        for model, m in block["models"].items():
            ratios = []
            for metric in METRICS:
                ratios.append(f"{m[metric] / best[metric][1]:8.3f}" if metric in best else f"{'—':>8}")
            lines.append(
                f"{model:<26} {m['precision@10']:8.4f} {m['recall@10']:8.4f} {m['ndcg@10']:8.4f} "
                + " ".join(ratios)
                + f" {m['fit_seconds']:8.1f} {m['tune_seconds']:8.1f}"
            )
        bests = ", ".join(f"{k}: {v[0]} {v[1]:.4f}" for k, v in best.items())
        lines.append(f"ratio = ours / best published ({bests}); times = mean seconds per fold on {results.get('machine', {}).get('device', '?')}")
        for metric, target in pub["targets"].items():
            top = max(block["models"].items(), key=lambda kv: kv[1][metric])
            verdict = "met" if top[1][metric] >= target else "MISSED"
            lines.append(f"target {metric} >= {target}: best ours {top[0]} {top[1][metric]:.4f} -> {verdict}")
    return "\n".join(lines)


SELECTION_DATASETS = ("filmtrust", "lastfm-hetrec2011", "amazon-hin", "yelp-hin", "ciao", "epinions")
SELECTION_MODELS = ("popular", "als", "itemcf", "hybrid")
SELECTION_RESULTS = REPO / "benchmarks" / "results" / "selection.json"


def selection_run(snapshot, models: list[str], seed: int, tune_params: bool, max_test_users: int | None,
                  params: dict | None = None) -> dict:
    """Hold out 10 % as test, run ``train_models`` on the rest, score every model on the test set.

    Returns:
        ``{"chosen", "selection", "verdict", "models": {name: {"validation_recall@10",
        "validation_ndcg@10", "test_recall@10", "test_ndcg@10", "fit_seconds", "tune_seconds",
        "params"}}, "n_test_users", "protocol", "candidates"}``.
    """
    from recsys.evaluation import _rank_metrics, random_holdout
    from recsys.training import train_models

    inter = snapshot.interactions.tocsr()
    dev, test = random_holdout(inter, 0.1, np.random.default_rng(seed + 4242))
    dev_snap = snapshot.with_interactions(dev)
    result = train_models(dev_snap, models, seed=seed, tune_params=tune_params, params=params)
    out = {"protocol": "random 90/10 interactions; train_models on the 90% (its own 10% validation holdout), test = the 10%",
           "candidates": "full", "models": {}}
    for name, model in result.models.items():
        m = _rank_metrics(model, dev_snap, None, test, None, (10,), snapshot.n_items, max_users=max_test_users, seed=seed)
        out["n_test_users"] = m["n_users"]
        out["models"][name] = {
            "validation_recall@10": result.validation[name]["recall@10"],
            "validation_ndcg@10": result.validation[name]["ndcg@10"],
            "test_recall@10": m["recall@10"],
            "test_ndcg@10": m["ndcg@10"],
            "fit_seconds": result.fit_seconds[name],
            "tune_seconds": result.tune_seconds.get(name, 0.0),
            "params": result.params[name],
        }
        log.info("%s %-8s validation recall@10=%.4f test recall@10=%.4f ndcg@10=%.4f fit=%.1fs", snapshot.dataset, name,
                 result.validation[name]["recall@10"], m["recall@10"], m["ndcg@10"], result.fit_seconds[name])
    chosen = result.serving_model
    pop, ch = out["models"]["popular"], out["models"][chosen]
    ok = chosen == "popular" or (ch["validation_recall@10"] > pop["validation_recall@10"] and ch["test_recall@10"] > pop["test_recall@10"])
    out.update(chosen=chosen, selection=result.selection, verdict="ok" if ok else "BELOW POPULAR ON TEST")
    return out


def format_selection(results: dict) -> str:
    """The selection table (text)."""
    lines = ["", "## The model `socialrec train` promotes vs popular (full ranking over all unseen items; "
             "validation = train_models' own holdout, test = a held-out 10% of interactions)"]
    hdr = f"{'dataset':<18} {'model':<8} {'val R@10':>9} {'val N@10':>9} {'test R@10':>9} {'test N@10':>9} {'fit s':>8} {'tune s':>8}"
    lines += [hdr, "-" * len(hdr)]
    for ds, run in results.get("datasets", {}).items():
        for name, m in run["models"].items():
            mark = " <- chosen" if name == run["chosen"] else ""
            lines.append(f"{ds:<18} {name:<8} {m['validation_recall@10']:9.4f} {m['validation_ndcg@10']:9.4f} "
                         f"{m['test_recall@10']:9.4f} {m['test_ndcg@10']:9.4f} {m['fit_seconds']:8.1f} {m['tune_seconds']:8.1f}{mark}")
        ms = run["models"]
        ratio = f"; hybrid/als fit time {ms['hybrid']['fit_seconds'] / max(ms['als']['fit_seconds'], 1e-9):.1f}x" if {"hybrid", "als"} <= set(ms) else ""
        lines.append(f"{ds:<18} chosen {run['chosen']}: {run['verdict']} (test users {run.get('n_test_users')}{ratio}; "
                     f"load {run.get('loadavg', '?')}; settings {run.get('settings', '')})")
    return "\n".join(lines)


def load_selection() -> dict:
    """Every cached ``benchmarks/results/selection*.json`` merged (per dataset, newest wins)."""
    merged: dict = {"datasets": {}}
    for path in sorted(SELECTION_RESULTS.parent.glob("selection*.json")):
        for ds, run in json.loads(path.read_text()).get("datasets", {}).items():
            if ds not in merged["datasets"] or run.get("updated", "") > merged["datasets"][ds].get("updated", ""):
                merged["datasets"][ds] = run
    order = {d: i for i, d in enumerate(SELECTION_DATASETS)}
    merged["datasets"] = dict(sorted(merged["datasets"].items(), key=lambda kv: order.get(kv[0], 99)))
    return merged


def selection_main(args) -> int:
    from recsys import evaluation

    out = args.out if args.out != RESULTS else SELECTION_RESULTS
    results = json.loads(out.read_text()) if out.exists() else {"datasets": {}}
    if args.table:
        print(format_selection(load_selection()))
        return 0
    if args.tune_users:
        evaluation.MAX_TUNE_USERS = args.tune_users
    models = [m for m in args.models.split(",") if m] if args.models != ",".join(MODELS) else list(SELECTION_MODELS)
    datasets = [d for d in args.datasets.split(",") if d] if args.datasets != ",".join(RUNS) else list(SELECTION_DATASETS)
    results["machine"] = machine()
    for dataset in datasets:
        if args.resume and dataset in results["datasets"]:
            continue
        load0 = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
        t0 = time.perf_counter()
        snapshot = load_snapshot(dataset, args.data_dir)
        run = selection_run(snapshot, models, args.seed, not args.no_tune, args.max_test_users, args.params)
        load1 = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
        run.update(loadavg=f"{load0}->{load1}", seconds=time.perf_counter() - t0,
                   settings=f"models={','.join(models)} tune={not args.no_tune} tune_users={evaluation.MAX_TUNE_USERS} "
                            f"test_users={args.max_test_users or 'all'} seed={args.seed}",
                   command="python -m benchmarks.quality " + " ".join(sys.argv[1:]),
                   updated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        results["datasets"][dataset] = run
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=float))
        log.info("%s selection done in %.0fs: chosen %s (%s)", dataset, run["seconds"], run["chosen"], run["verdict"])
    print(format_selection(load_selection()))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(RUNS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-folds", type=int, default=None, help="first N folds only (smoke runs)")
    ap.add_argument("--no-tune", action="store_true", help="skip param_grid tuning (first grid entry)")
    ap.add_argument("--resume", action="store_true", help="skip dataset/protocol/model results already cached")
    ap.add_argument("--table", action="store_true", help="print the cached table and exit")
    ap.add_argument("--params", type=json.loads, default={}, help='fixed hyper-parameters per model, JSON: {"graphsage": {"epochs": 8}}')
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--selection", action="store_true", help="the serving-model choice vs popular on every shared dataset")
    ap.add_argument("--max-test-users", type=int, default=None, help="--selection: score a seeded sample of test users")
    ap.add_argument("--tune-users", type=int, default=None, help="validation users per tuning trial (default recsys.evaluation.MAX_TUNE_USERS)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SOCIALREC_DATA_DIR", REPO.parent / "shared" / "data")))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("gensim", "implicit", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if args.selection:
        return selection_main(args)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    if args.table:
        print(format_table(results))
        if SELECTION_RESULTS.exists():
            print(format_selection(json.loads(SELECTION_RESULTS.read_text())))
        return 0
    results["machine"] = machine()
    results["command"] = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    models = [m for m in args.models.split(",") if m]
    for dataset in [d for d in args.datasets.split(",") if d]:
        protocols = RUNS[dataset]
        snapshot = load_snapshot(dataset, args.data_dir)
        for model in models:
            keys = [f"{dataset}/{p}" for p in protocols]
            if args.resume and all(model in results["runs"].get(k, {}).get("models", {}) for k in keys):
                continue
            t0 = time.perf_counter()
            out = evaluate_protocols(snapshot, protocols, model, args.seed, not args.no_tune, args.max_folds, args.params.get(model))
            for p, summary in out.items():
                run = results["runs"].setdefault(f"{dataset}/{p}", {"dataset": dataset, "protocol": p, "models": {}})
                run["models"][model] = summary
                run["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                run["published"] = PUBLISHED[(dataset, p)]
            log.info("%s %s done in %.0fs", dataset, model, time.perf_counter() - t0)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, default=float))
    print(format_table(results))
    if list(SELECTION_RESULTS.parent.glob("selection*.json")):
        print(format_selection(load_selection()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
