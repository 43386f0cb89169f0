"""Cost curves: how time and memory grow with the data (``python -m benchmarks.scale``).

A seeded generator makes social-commerce data shaped like Ciao at several multiples of its size
(1x = 7,375 users, 105,114 items, 282,619 interactions, 111,781 follows): log-normal user
activity, Zipf item popularity, homophilous follows (users in communities follow mostly inside
them), categories that go with communities, timestamps over ten years. For each size it measures

* the ETL of the export (read, validate, pseudonymise) into the embedded store, and its size on disk;
* the Neo4j load, incremental (batched UNWIND over Bolt, into ``SOCIALREC_NEO4J_URI``) and bulk
  (``neo4j-admin database import full``, into a private server this benchmark starts);
* the fit of each model (default hyper-parameters, no tuning) and its peak memory;
* in-process recommendation latency at a fixed request rate (the model's own cost; no HTTP);

each step in a fresh child process (peak RSS = that process and its children, e.g. Spark's JVM).
It prints a table of medians over ``--repeats`` runs, the growth exponent of every figure (slope
of log cost against log size: 1 = linear) and writes ``benchmarks/results/scale.json`` and a PNG.

Usage::

    python -m benchmarks.scale --sizes 1,4,16 --repeats 3
    python -m benchmarks.scale --sizes 0.25,1 --repeats 1 --steps etl,fit --models als,itemcf   # quick look

The machine's load average is printed beside the figures: on a shared 2-core machine times
are noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
CIAO = {"users": 7375, "items": 105114, "interactions": 282619, "follows": 111781}
N_CATEGORIES = 28
STEPS = ("etl", "neo4j_incremental", "neo4j_bulk", "fit", "serve")
DEFAULT_MODELS = ("als", "itemcf", "hybrid", "spark_als")
KEY = b"socialrec-scale-benchmark-key-0123456789"


# ============================================================================ the generator
def generate(scale: float, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Canonical shop-export tables shaped like Ciao at ``scale`` times its size.

    Returns:
        ``{"users", "items", "interactions", "follows"}`` frames in the shop-export schema
        (``docs/shop-export.md``): raw ids, ``kind = rating`` with values 1-5, ``ts`` in Unix seconds.
    """
    rng = np.random.default_rng(seed)
    n_u, n_i = max(20, int(CIAO["users"] * scale)), max(20, int(CIAO["items"] * scale))
    n_x, n_f = max(50, int(CIAO["interactions"] * scale)), max(20, int(CIAO["follows"] * scale))
    n_comm = max(2, int(round(12 * scale ** 0.5)))
    community = rng.integers(0, n_comm, n_u)
    item_cat = rng.integers(0, N_CATEGORIES, n_i)
    comm_cat = rng.integers(0, N_CATEGORIES, n_comm)  # each community's favourite category
    # activity: log-normal per user; popularity: Zipf over a random item order
    activity = rng.lognormal(0.0, 1.2, n_u)
    activity /= activity.sum()
    pop = 1.0 / np.arange(1, n_i + 1) ** 0.9
    pop = pop[rng.permutation(n_i)]
    pop /= pop.sum()
    users = rng.choice(n_u, size=int(n_x * 1.15), p=activity)
    favourite = rng.random(len(users)) < 0.35  # a third of picks from the community's category
    items = rng.choice(n_i, size=len(users), p=pop)
    by_cat = [np.flatnonzero(item_cat == c) for c in range(N_CATEGORIES)]
    fav_cat = comm_cat[community[users[favourite]]]
    items[favourite] = [by_cat[c][rng.integers(len(by_cat[c]))] if len(by_cat[c]) else items[j]
                        for j, c in zip(np.flatnonzero(favourite), fav_cat)]
    pairs = pd.DataFrame({"u": users, "i": items}).drop_duplicates().iloc[:n_x]
    start = rng.uniform(1.0e9, 1.3e9, n_u)
    ts = start[pairs["u"].to_numpy()] + rng.exponential(3.0e7, len(pairs))
    inter = pd.DataFrame({
        "user_id": "u" + pairs["u"].astype(str), "item_id": "i" + pairs["i"].astype(str), "kind": "rating",
        "value": rng.integers(1, 6, len(pairs)).astype(float), "ts": np.minimum(ts, 1.6e9).round(),
    })
    # homophilous follows: 80 % inside the follower's community, followees by activity
    followers = rng.choice(n_u, size=int(n_f * 1.3), p=activity)
    inside = rng.random(len(followers)) < 0.8
    members = [np.flatnonzero(community == c) for c in range(n_comm)]
    followees = rng.choice(n_u, size=len(followers), p=activity)
    for c in range(n_comm):
        sel = inside & (community[followers] == c)
        if sel.any() and len(members[c]):
            w = activity[members[c]] / activity[members[c]].sum()
            followees[sel] = rng.choice(members[c], size=int(sel.sum()), p=w)
    f = pd.DataFrame({"a": followers, "b": followees})
    f = f[f["a"] != f["b"]].drop_duplicates().iloc[:n_f]
    follows = pd.DataFrame({"follower_id": "u" + f["a"].astype(str), "followee_id": "u" + f["b"].astype(str),
                            "ts": rng.uniform(1.1e9, 1.6e9, len(f)).round()})
    return {
        "users": pd.DataFrame({"user_id": "u" + pd.Series(np.arange(n_u)).astype(str)}),
        "items": pd.DataFrame({"item_id": "i" + pd.Series(np.arange(n_i)).astype(str),
                               "category": "cat-" + pd.Series(item_cat).astype(str)}),
        "interactions": inter,
        "follows": follows,
    }


def write_export(tables: dict[str, pd.DataFrame], directory: Path) -> Path:
    """Write the tables as a Parquet shop export (``parquet:DIR``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory


# ============================================================================ steps (child processes)
def _peak_rss_mb() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(me, kids) / 1024.0, 1)


def _du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


def _embedded(work: Path):
    from graph.store import EmbeddedStore

    return EmbeddedStore(work / "store", "scale")


def step_etl(work: Path) -> dict:
    from etl.pipeline import run_etl

    shutil.rmtree(work / "store", ignore_errors=True)
    store = _embedded(work)
    t = time.perf_counter()
    report = run_etl(f"parquet:{work / 'export'}", store, None, work / "cache", KEY, work / "quarantine", progress=False)
    seconds = time.perf_counter() - t
    rows = sum(v["loaded"] for v in report["tables"].values())
    return {"seconds": seconds, "rows_per_s": rows / seconds, "disk_mb": _du_mb(work / "store"), "rows": rows}


def _canonical(work: Path) -> dict[str, pd.DataFrame]:
    store = _embedded(work)
    return {t: store.read_table(t) for t in ("users", "items", "follows", "interactions", "reviews")}


def _n_rels(tables) -> int:
    return len(tables["follows"]) + len(tables["interactions"]) + int(tables["items"]["category"].notna().sum())


def step_neo4j_incremental(work: Path) -> dict:
    from graph.neo4j_store import Neo4jStore

    tables = _canonical(work)
    store = Neo4jStore(os.environ["SOCIALREC_NEO4J_URI"], os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"),
                       os.environ["SOCIALREC_NEO4J_PASSWORD"], dataset=f"scale-{uuid.uuid4().hex[:8]}")
    try:
        t = time.perf_counter()
        store.load(tables, workers=int(os.environ.get("SCALE_NEO4J_WORKERS", "2")))
        seconds = time.perf_counter() - t
    finally:
        store.clear()
        store.close()
    return {"seconds": seconds, "rels_per_s": _n_rels(tables) / seconds}


def step_neo4j_bulk(work: Path) -> dict:
    from graph.neo4j_import import empty_database
    from graph.neo4j_store import Neo4jStore

    tables = _canonical(work)
    home, uri, password = os.environ["SCALE_BULK_HOME"], os.environ["SCALE_BULK_URI"], os.environ["SCALE_BULK_PASSWORD"]
    store = Neo4jStore(uri, "neo4j", password, dataset="scale")
    try:
        empty_database(store)  # our private server
        report = store.bulk_import(tables, Path(home), password)
    finally:
        empty_database(store)
        store.close()
    s = report["seconds"]
    return {"seconds": s["import"], "importer_reported_s": s["importer_reported"], "total_s": s["total"],
            "rels_per_s": report["relationships_per_s"],
            "rels_per_s_importer": (report["relationships"] / s["importer_reported"]) if s["importer_reported"] else None}


def step_fit(work: Path, model: str) -> dict:
    from recsys.registry import build_model

    snap = _embedded(work).snapshot()
    m = build_model(model)
    t = time.perf_counter()
    m.fit(snap)
    seconds = time.perf_counter() - t
    device = getattr(m, "device_", None) or "cpu"
    if model == "spark_als":
        from recsys.spark.session import spark_master, stop_spark

        device = f"spark {spark_master()}"
        stop_spark()
    return {"seconds": seconds, "device": str(device)}


def step_serve(work: Path, rate: float = 200.0, n: int = 600) -> dict:
    from recsys.registry import build_model

    snap = _embedded(work).snapshot()
    m = build_model("als").fit(snap)
    rng = np.random.default_rng(0)
    users = rng.integers(0, snap.interactions.shape[0], n)
    lat = []
    period = 1.0 / rate
    nxt = time.perf_counter()
    for u in users:
        nxt += period
        t = time.perf_counter()
        m.recommend(np.array([u]), k=10)
        lat.append((time.perf_counter() - t) * 1000)
        pause = nxt - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "seconds": float(np.sum(lat)) / 1000}


def run_step(step: str, work: Path, model: str | None) -> dict:
    out = {"etl": step_etl, "neo4j_incremental": step_neo4j_incremental, "neo4j_bulk": step_neo4j_bulk,
           "serve": step_serve}.get(step)
    result = step_fit(work, model) if step == "fit" else out(work)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


# ============================================================================ the driver
def _child(step: str, work: Path, model: str | None, env: dict) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child-step", step, "--work", str(work)]
    if model:
        cmd += ["--model", model]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-800:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exponent(sizes: list[float], values: list[float]) -> float | None:
    """Slope of log(value) against log(size) (1.0 = linear growth); None with < 2 usable points."""
    pts = [(s, v) for s, v in zip(sizes, values) if v and v > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,4,16", help="multiples of Ciao's size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--work", default=None, help="working directory (default a temporary one)")
    p.add_argument("--child-step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_step:
        print(json.dumps(run_step(args.child_step, Path(args.work), args.model)))
        return 0

    from tqdm import tqdm

    sizes = [float(s) for s in args.sizes.split(",")]
    steps = [s for s in args.steps.split(",") if s]
    models = [m for m in args.models.split(",") if m]
    root = Path(args.work or f"/tmp/socialrec-scale-{uuid.uuid4().hex[:6]}")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    bulk_home = None
    if "neo4j_bulk" in steps:
        from graph import neo4j_server

        bulk_home = root / "bulk-neo4j"
        password = "scale-" + secrets.token_hex(8)
        uri = neo4j_server.start(bulk_home, password, bolt_port=_free_port(), heap="1g", pagecache="512m")
        env.update(SCALE_BULK_HOME=str(bulk_home), SCALE_BULK_URI=uri, SCALE_BULK_PASSWORD=password)
    if "neo4j_incremental" in steps and not os.environ.get("SOCIALREC_NEO4J_URI"):
        print("neo4j_incremental skipped: SOCIALREC_NEO4J_URI is not set", file=sys.stderr)
        steps.remove("neo4j_incremental")
    plan = [(size, step, model) for size in sizes for step in steps
            for model in (models if step == "fit" else [None])]
    results: dict = {"sizes": sizes, "rows": {}, "load_average": [], "repeats": args.repeats}
    try:
        bar = tqdm(total=len(plan) * args.repeats, desc="scale", unit="step", file=sys.stderr)
        for size in sizes:
            work = root / f"x{size:g}"
            t = time.perf_counter()
            tables = generate(size, seed=0)
            write_export(tables, work / "export")
            results.setdefault("data", {})[f"{size:g}"] = {k: len(v) for k, v in tables.items()}
            results.setdefault("generate_s", {})[f"{size:g}"] = time.perf_counter() - t
            del tables
            for step in steps:  # etl first: every other step reads its embedded store
                for model in (models if step == "fit" else [None]):
                    key = f"{step}:{model}" if model else step
                    runs = []
                    for _ in range(args.repeats):
                        bar.set_postfix_str(f"x{size:g} {key}")
                        runs.append(_child(step, work, model, env))
                        bar.update(1)
                    results["rows"].setdefault(key, {})[f"{size:g}"] = runs
            results["load_average"].append(os.getloadavg())
            shutil.rmtree(work, ignore_errors=True)
        bar.close()
    finally:
        if bulk_home is not None:
            from graph import neo4j_server

            neo4j_server.stop(bulk_home)
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    table = summarise(results)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, RESULTS / "scale.png")
    print(f"\nresults: {RESULTS / 'scale.json'}, plot: {RESULTS / 'scale.png'}")
    return 0


FIGURES = {"seconds": "s", "rels_per_s": "rel/s", "rows_per_s": "rows/s", "peak_rss_mb": "MiB", "disk_mb": "MiB",
           "p50_ms": "ms", "p99_ms": "ms", "importer_reported_s": "s"}


def _median(runs: list[dict], field: str) -> float | None:
    vals = [r[field] for r in runs if isinstance(r.get(field), (int, float))]
    return float(np.median(vals)) if vals else None


def summarise(results: dict) -> str:
    """The table: one line per (step, figure), medians per size, and the growth exponent."""
    sizes = results["sizes"]
    lines = [f"{'step':<24}{'figure':<22}" + "".join(f"{f'x{s:g}':>12}" for s in sizes) + f"{'exponent':>10}"]
    for key, by_size in results["rows"].items():
        errors = [r["error"] for runs in by_size.values() for r in runs if "error" in r]
        if errors:
            lines.append(f"{key:<24}{'ERROR':<22}{errors[0].strip().splitlines()[-1][:80]}")
        fields = sorted({f for runs in by_size.values() for r in runs for f in r if f in FIGURES})
        for field in fields:
            meds = [_median(by_size.get(f"{s:g}", []), field) for s in sizes]
            exp = exponent(sizes, meds)
            cells = "".join(f"{m:>12.4g}" if m is not None else f"{'-':>12}" for m in meds)
            lines.append(f"{key:<24}{field + ' (' + FIGURES[field] + ')':<22}{cells}{(f'{exp:.2f}' if exp is not None else '-'):>10}")
    lines.append("load average (1, 5, 15 min) after each size: " + "; ".join(
        ", ".join(f"{x:.1f}" for x in la) for la in results["load_average"]))
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Log-log plot of every step's median seconds against size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, by_size in results["rows"].items():
        meds = [_median(by_size.get(f"{s:g}", []), "seconds") for s in sizes]
        pts = [(s, m) for s, m in zip(sizes, meds) if m]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("data size (multiples of Ciao: 282,619 interactions, 111,781 follows)")
    ax.set_ylabel("median seconds")
    ax.set_title("socialrec cost curves")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
