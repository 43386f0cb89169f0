"""Campaign analysis benchmark: ``campaign analyze`` on Hillstrom's 64,000 customers (goal < 30 s).

Usage::

    python -m benchmarks.campaign                    # embedded store, 3 repeats
    python -m benchmarks.campaign --store neo4j      # also through the configured Neo4j (a fresh namespace, cleared after)

What is timed (median of ``--repeats`` runs, wall seconds), each in the same process and run:

* ``analyze`` — :func:`recsys.campaigns.analysis.analyze_campaign` on the stored campaign: read
  the 64,000 assignments with their outcomes back from the store, Welch lift + CUPED for three
  outcomes and two treatment arms, SRM, revenue/ROI;
* ``analyze+report`` — the same plus the HTML report with its plots (what ``socialrec campaign
  analyze`` does after start-up);
* ``baseline`` — the least any analysis must do: read the same assignments and take the arm
  means of the three outcomes with pandas (``groupby().mean()``); the ratio says what the
  statistics and the report cost on top.

The import (reading and checking the CSV, writing the campaign) is timed once and reported
beside them. Results go to ``benchmarks/results/campaign-<utc>.json`` with the load average
(the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _time(fn, repeats: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs


def bench(store, frame, spec, repeats: int, workdir: Path) -> dict:
    from recsys.campaigns.analysis import analyze_campaign, write_report
    from recsys.campaigns.assignment import import_campaign

    t = time.perf_counter()
    import_campaign(store, "hillstrom-bench", frame, list(spec.arms), spec.control, list(spec.outcomes),
                    list(spec.numeric_covariates), pre="history", cost_per_contact=0.1, margin=0.3)
    imported = time.perf_counter() - t

    def analyze():
        return analyze_campaign(store, "hillstrom-bench", treatment="Mens E-Mail")

    def analyze_report():
        result = analyze()
        write_report({**result, "campaign": store.read_campaign("hillstrom-bench")}, workdir / "report.html", "bench")

    def baseline():
        a = store.read_assignments("hillstrom-bench")
        return a.groupby("arm")[list(spec.outcomes)].mean()

    out = {"import_s": imported}
    for name, fn in (("baseline", baseline), ("analyze", analyze), ("analyze+report", analyze_report)):
        med, runs = _time(fn, repeats)
        out[name] = {"median_s": med, "runs_s": runs}
    out["ratio_analyze_report_vs_baseline"] = out["analyze+report"]["median_s"] / out["baseline"]["median_s"]
    res = analyze()
    out["check"] = {o: res["outcomes"][o]["lift"] for o in spec.outcomes}
    out["n_customers"] = int(res["n"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--store", choices=["embedded", "neo4j", "both"], default="embedded")
    args = p.parse_args(argv)

    from etl.campaign import load_campaign_table
    from graph.store import EmbeddedStore

    data_dir = Path(os.environ.get("SOCIALREC_DATA_DIR", ROOT.parent / "shared" / "data"))
    load0 = os.getloadavg()
    t = time.perf_counter()
    frame, spec = load_campaign_table("hillstrom", data_dir=data_dir)
    read_s = time.perf_counter() - t
    result = {"benchmark": "campaign analyze (hillstrom, 64,000 customers)", "goal_s": 30.0, "read_table_s": read_s,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load0}, "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.store in ("embedded", "both"):
            result["stores"]["embedded"] = bench(EmbeddedStore(Path(tmp) / "store", "hillstrom"), frame, spec, args.repeats, Path(tmp))
        if args.store in ("neo4j", "both"):
            from graph.neo4j_store import Neo4jStore

            store = Neo4jStore(os.environ["SOCIALREC_NEO4J_URI"], os.environ.get("SOCIALREC_NEO4J_USER", "neo4j"),
                               os.environ.get("SOCIALREC_NEO4J_PASSWORD", ""), f"bench-{uuid.uuid4().hex[:8]}")
            try:
                result["stores"]["neo4j"] = bench(store, frame, spec, args.repeats, Path(tmp))
            finally:
                store.clear()
                store.close()
    result["machine"]["loadavg_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"campaign-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    for name, r in result["stores"].items():
        print(f"{name:<9} import {r['import_s']:.1f}s  baseline {r['baseline']['median_s']:.2f}s  analyze {r['analyze']['median_s']:.2f}s  "
              f"analyze+report {r['analyze+report']['median_s']:.2f}s (goal < 30 s; x{r['ratio_analyze_report_vs_baseline']:.1f} the baseline)")
    print(f"read+check table {read_s:.1f}s; loadavg {load0} -> {result['machine']['loadavg_after']}; {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
