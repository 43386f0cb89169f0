"""Alternating A/B of ``Neo4jStore.load`` tuning knobs on slices of one dataset, plus a PROFILE.

On a shared, loaded machine two full loads minutes apart differ by 2x, so knobs are compared
within one run: the users and items of the dataset are loaded once into a private namespace, then
each round loads every variant in turn (a slice of ``reviews`` = review nodes + WROTE + REVIEWS, or
of ``interactions`` = RATED/PURCHASED/INTERACTED) and removes it again, so every variant writes a
fresh table with ``CREATE``, as a first load does. Report the per-round ratio against ``base``.

    SOCIALREC_NEO4J_URI=bolt://127.0.0.1:7687 SOCIALREC_NEO4J_PASSWORD=... \\
        python -m benchmarks.load_neo4j_ab --dataset ciao --rounds 3 [--profile]

Variants: ``base`` (batch 10,000, one worker), ``w2`` (two concurrent transactions), ``sorted``
(rows sorted by start node, so consecutive batches touch disjoint users), ``w2-sorted`` (both:
concurrent batches then lock disjoint start nodes) and ``b20k`` (batch 20,000). ``--profile`` also
prints the plan (operators, db hits) and the run/commit split of one 10,000-row CREATE batch of
each table. Output: one JSON line per timed load (seconds, relationships/s, load average, whether
the counts came out right), then the median per-round ratio of each variant to ``base``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from etl.datasets import read_dataset  # noqa: E402
from etl.pseudonymise import Pseudonymiser  # noqa: E402

VARIANTS = {  # name -> (load() keyword arguments, column to sort the slice by)
    "base": ({}, None),
    "w2": ({"workers": 2}, None),
    "sorted": ({}, "user_id"),
    "w2-sorted": ({"workers": 2}, "user_id"),
    "b20k": ({"batch_size": 20_000}, None),
}


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``), 0 without one."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _profile(store, tables, n: int = 10_000) -> None:
    """PROFILE one CREATE batch of each relationship-heavy table (the load's own Cypher)."""
    ds = store.dataset
    with store._session() as sess:
        ueid = {r[0]: r[1] for r in sess.run("MATCH (n:User {dataset: $ds}) RETURN n.id, elementId(n)", ds=ds)}
        ieid = {r[0]: r[1] for r in sess.run("MATCH (n:Item {dataset: $ds}) RETURN n.id, elementId(n)", ds=ds)}
        it, rv = tables["interactions"].iloc[:n], tables["reviews"].iloc[:n]
        nan = lambda xs: [None if x != x else x for x in xs]  # noqa: E731
        head = ("PROFILE UNWIND range(0, size($u) - 1) AS k MATCH (u) WHERE elementId(u) = $u[k] "
                "MATCH (i) WHERE elementId(i) = $i[k] ")
        cases = [
            ("interactions", head + "CREATE (u)-[r:RATED {value: $v[k], ts: $t[k]}]->(i)",
             {"u": [ueid[x] for x in it.user_id], "i": [ieid[x] for x in it.item_id],
              "v": nan(it.value.tolist()), "t": nan(it.ts.tolist())}, None),
            ("reviews", head + "CREATE (u)-[:WROTE]->(r:Review {dataset: $ds, id: $id[k], rating: $ra[k], "
             "helpfulness: $h[k], text: $te[k], ts: $t[k]})-[:REVIEWS]->(i)",
             {"ds": ds, "id": rv.review_id.tolist(), "u": [ueid.get(x) for x in rv.user_id],
              "i": [ieid.get(x) for x in rv.item_id], "ra": nan(rv.rating.tolist()),
              "h": nan(rv.helpfulness.tolist()), "te": [None] * len(rv), "t": nan(rv.ts.tolist())},
             "MATCH (r:Review {dataset: $ds}) DETACH DELETE r"),
        ]
        for name, query, params, undo in cases:
            started = time.perf_counter()
            with sess.begin_transaction() as tx:
                summary = tx.run(query, **params).consume()
                ran = time.perf_counter()
                tx.rollback() if undo is None else tx.commit()  # commit timed on reviews only
            done = time.perf_counter()
            print(f"PROFILE {name} ({n} rows): run {ran - started:.2f} s, "
                  f"{'commit' if undo else 'rollback'} {done - ran:.2f} s, load {_loadavg()}")

            def walk(plan, depth=0):
                print(f"  {'  ' * depth}{plan['operatorType'].split('@')[0]:28s} rows={plan.get('rows')} dbHits={plan.get('dbHits')}")
                for child in plan.get("children", []):
                    walk(child, depth + 1)

            walk(summary.profile)
            if undo:
                sess.run(undo, ds=ds).consume()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ciao")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="base,w2,sorted,w2-sorted,b20k")
    parser.add_argument("--reviews", type=int, default=60_000, help="rows of the reviews slice")
    parser.add_argument("--interactions", type=int, default=120_000, help="rows of the interactions slice")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--server-pid", type=int, help="the Neo4j JVM's pid: report its CPU us per relationship "
                        "(an upper bound on a shared server: other clients' work counts too)")
    parser.add_argument("--data-dir", default=os.environ.get("SOCIALREC_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--uri", default=os.environ.get("SOCIALREC_NEO4J_URI", "bolt://127.0.0.1:7687"))
    parser.add_argument("--user", default=os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"))
    parser.add_argument("--password", default=os.environ.get("SOCIALREC_NEO4J_PASSWORD"))
    args = parser.parse_args(argv)
    if not args.password:
        parser.error("set SOCIALREC_NEO4J_PASSWORD (or --password)")
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or "base" not in names:
        parser.error(f"variants must include base and come from {sorted(VARIANTS)}; got {unknown or names}")

    from graph.neo4j_store import Neo4jStore

    with tempfile.TemporaryDirectory() as cache:
        tables = read_dataset(args.dataset, Path(args.data_dir), Pseudonymiser(b"benchmark-key"), Path(cache)).tables
    store = Neo4jStore(args.uri, args.user, args.password, f"ab-{args.dataset}-{os.getpid()}")
    slices = {"reviews": tables["reviews"].iloc[: args.reviews], "interactions": tables["interactions"].iloc[: args.interactions]}
    seconds: dict[tuple[str, str, int], float] = {}
    try:
        store.clear()
        store.load({"users": tables["users"], "items": tables["items"]})
        if args.profile:
            _profile(store, tables)
        for rnd in range(args.rounds):
            for table, frame in slices.items():
                for name in names:
                    kwargs, sort = VARIANTS[name]
                    rows = frame.sort_values(sort, kind="stable") if sort else frame
                    load = _loadavg()
                    cpu0, started = _cpu_s(args.server_pid), time.perf_counter()
                    store.load({table: rows}, **kwargs)
                    took = seconds[(table, name, rnd)] = time.perf_counter() - started
                    server_cpu = _cpu_s(args.server_pid) - cpu0
                    rels = 2 * len(rows) if table == "reviews" else len(rows)
                    c = store.counts()
                    got = c["rel:WROTE"] + c["rel:REVIEWS"] if table == "reviews" else c["interactions"]
                    print(json.dumps({"round": rnd, "table": table, "variant": name, "s": round(took, 2),
                                      "rels_per_s": round(rels / took), "counts_ok": got == rels, "loadavg": load,
                                      **({"server_cpu_us_per_rel": round(1e6 * server_cpu / rels, 1)} if args.server_pid else {})}), flush=True)
                    # undo: the next variant loads the same rows into an empty table again
                    store._auto("MATCH (j:LoadJob|LoadCheckpoint {dataset: $ds}) DETACH DELETE j")
                    if table == "reviews":
                        store._auto("MATCH (r:Review {dataset: $ds}) CALL (r) { DETACH DELETE r } IN TRANSACTIONS OF 10000 ROWS")
                    else:
                        store._auto("MATCH (:User {dataset: $ds})-[x:RATED|PURCHASED|INTERACTED]->() "
                                    "CALL (x) { DELETE x } IN TRANSACTIONS OF 10000 ROWS")
    finally:
        store.clear()
        store.close()
    print("median over rounds of (variant s / base s in the same round); < 1 is faster")
    for table in slices:
        for name in names:
            ratios = [seconds[(table, name, r)] / seconds[(table, "base", r)] for r in range(args.rounds)]
            print(f"  {table:12s} {name:10s} {statistics.median(ratios):5.2f}  ({', '.join(f'{x:.2f}' for x in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
