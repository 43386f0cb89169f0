"""Time every query of docs/cypher.md on a full dataset in Neo4j, and count its notifications.

    python -m benchmarks.cypher_cookbook --dataset ciao [--repeat 3] [--synthetic-writeback]

Needs the dataset loaded (``socialrec etl --dataset ciao --store neo4j``) on the server of
``SOCIALREC_NEO4J_URI``. Parameters are chosen like the test's (the user who follows the most
people, the most interacted-with item, segment ``s1``, k = 5, min_reviews = 3). Q2, Q3, Q6, Q11
and Q14 need written-back scores, segments and ALS item vectors; ``--synthetic-writeback`` writes
random ones (seed 11) so those queries have something to read (their timings then reflect the
graph's size, not a real model). Prints one JSON line per query: ``{"query", "median_s", "runs",
"rows", "notifications"}`` and the load average, and writes ``benchmarks/results/cypher-<ds>.json``.
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

from tests.graph.test_cypher_docs import EMBEDDING, QUERIES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ciao")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic-writeback", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated query numbers")
    args = ap.parse_args(argv)
    from graph.neo4j_store import Neo4jStore

    store = Neo4jStore(os.environ["SOCIALREC_NEO4J_URI"], os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"),
                       os.environ["SOCIALREC_NEO4J_PASSWORD"], dataset=args.dataset)
    if args.synthetic_writeback:
        rng = np.random.default_rng(11)
        users = np.sort(store.read_table("users")["user_id"].astype(str).to_numpy())
        items = np.sort(store.read_table("items")["item_id"].astype(str).to_numpy())
        store.write_scores("User", users, {"influence": rng.random(len(users)), "clv": rng.gamma(2.0, 50.0, len(users))}, "synthetic")
        seg = pd.DataFrame({"user_id": users, "segment_id": rng.choice(["s0", "s1", "s2"], len(users))})
        store.write_segments(seg, pd.DataFrame({"segment_id": ["s0", "s1", "s2"]}))
        store.write_vectors("Item", items, rng.normal(size=(len(items), 32)).astype(np.float32), EMBEDDING, "synthetic")
        store.await_indexes()
    follows = store.read_table("follows")
    inter = store.read_table("interactions")
    params = {"user_id": follows["follower_id"].value_counts().sort_index().idxmax(),
              "item_id": inter["item_id"].value_counts().sort_index().idxmax(),
              "segment_id": "s1", "k": 5, "min_reviews": 3}
    only = {int(x) for x in args.only.split(",") if x}
    out = []
    with store._driver.session() as session:  # noqa: SLF001 - timing needs the raw session
        for n, query in sorted(QUERIES.items()):
            if only and n not in only:
                continue
            times, rows, notes = [], 0, []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = session.run(query, ds=args.dataset, **params)
                rows = len(list(result))
                summary = result.consume()
                times.append(time.perf_counter() - t0)
                notes = [s.status_description for s in summary.gql_status_objects if s.is_notification]
            rec = {"query": f"Q{n}", "median_s": round(statistics.median(times), 3), "runs": len(times),
                   "rows": rows, "notifications": notes}
            print(json.dumps(rec), flush=True)
            out.append(rec)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(json.dumps({"loadavg": load}))
    res = Path(__file__).parent / "results" / f"cypher-{args.dataset}.json"
    res.write_text(json.dumps({"dataset": args.dataset, "loadavg": load, "queries": out}, indent=2))
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
