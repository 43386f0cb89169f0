"""Uplift benchmark: the whole ``socialrec uplift`` job on hillstrom, timed, with its quality figures.

Usage::

    python -m benchmarks.uplift                              # Mens E-Mail, outcome visit (the target run)
    python -m benchmarks.uplift --outcomes visit,conversion,spend --repeats 1

Each run is exactly what ``socialrec uplift --dataset hillstrom --treatment "Mens E-Mail" --outcome O
--json`` does (all models, 3 seeds, 1000 bootstrap resamples per seed, the policy table and the
report). Reported per outcome: wall-clock seconds (median over ``--repeats``), CPU seconds of this
process (the machine is shared: wall time depends on the load, so the load average before and
after is recorded beside it), the target (under 300 s on the 2-core machine), and as a baseline
measured in the same run the T-learner alone (1 seed) with its ratio. Quality: each model's Qini
with CI, the random and response baselines, the selected model and the recommended policy.

Writes ``benchmarks/results/uplift-<utc>.json`` (the summary plus each outcome's full JSON result)
and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 300.0


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(outcomes: list[str], repeats: int, data_dir: Path | None, treatment: str, reports: Path) -> dict:
    from etl.campaign import load_campaign_table
    from recsys.campaigns.uplift import run_uplift
    from recsys.campaigns.uplift_report import write_uplift_report

    figures = {}
    for outcome in outcomes:
        walls, cpus, loads, result = [], [], [], None
        for _ in range(repeats):
            before = _loadavg()

            def job():
                frame, spec = load_campaign_table("hillstrom", data_dir=data_dir, cache_dir=reports.parent / "cache")
                r = run_uplift(frame, spec, treatment, outcome, progress=False)
                curves = r.pop("_curves", None)
                r["report"] = {k: str(v) for k, v in write_uplift_report(r, curves, reports).items()}
                return r

            result, wall, cpu = _timed(job)
            walls.append(wall)
            cpus.append(cpu)
            loads.append({"before": before, "after": _loadavg()})
        frame_spec = load_campaign_table("hillstrom", data_dir=data_dir, cache_dir=reports.parent / "cache")
        _, b_wall, b_cpu = _timed(lambda: run_uplift(*frame_spec, treatment, outcome, models=("t_learner",), seeds=1,
                                                     progress=False, keep_curves=False))
        wall = statistics.median(walls)
        figures[outcome] = {
            "command": f'socialrec uplift --dataset hillstrom --treatment "{treatment}" --outcome {outcome} --json',
            "wall_seconds": round(wall, 1), "wall_seconds_all": [round(w, 1) for w in walls],
            "cpu_seconds": round(statistics.median(cpus), 1), "loadavg": loads,
            "target_seconds": TARGET_SECONDS, "meets_target": wall < TARGET_SECONDS,
            "baseline_t_learner_1seed": {"wall_seconds": round(b_wall, 1), "cpu_seconds": round(b_cpu, 1),
                                         "ratio_wall": round(wall / b_wall, 2)},
            "models": {m: {"qini": round(b["qini"], 4), "qini_ci": [round(v, 4) for v in b["qini_ci"]],
                           "uplift@30": round(b["uplift@30"], 4)} for m, b in result["models"].items()},
            "baselines": {m: {"qini": round(b["qini"], 4), "qini_ci": [round(v, 4) for v in b["qini_ci"]]}
                          for m, b in result["baselines"].items()},
            "selected_model": result["selected_model"],
            "separates_from_random": result["separates_from_random"],
            "policy": {"recommended": result["policy"]["recommended"], "reason": result["policy"]["reason"],
                       "profit": {p: round(v.get("profit", float("nan")), 0) for p, v in result["policy"]["policies"].items()},
                       "profit_ci": {p: [round(x, 0) for x in v.get("profit_ci", [])] for p, v in result["policy"]["policies"].items()}},
            "report": result["report"],
            "result": result,
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.uplift", description=__doc__.split("\n")[0])
    p.add_argument("--outcomes", default="visit")
    p.add_argument("--treatment", default="Mens E-Mail")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    data_dir = Path(os.environ["SOCIALREC_DATA_DIR"]) if os.environ.get("SOCIALREC_DATA_DIR") else None
    home = Path(os.environ.get("SOCIALREC_HOME", ".socialrec"))
    figures = run([o.strip() for o in args.outcomes.split(",")], args.repeats, data_dir, args.treatment, home / "reports")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = {"benchmark": "uplift", "utc": stamp, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                              "python": sys.version.split()[0]}, "results": figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"uplift-{stamp}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    for outcome, f in figures.items():
        print(f"{outcome}: wall {f['wall_seconds']} s (target < {TARGET_SECONDS:.0f}: {f['meets_target']}), cpu {f['cpu_seconds']} s, "
              f"load {f['loadavg'][0]['before']} -> {f['loadavg'][0]['after']}; T-learner 1 seed {f['baseline_t_learner_1seed']}")
        for m, b in {**f["models"], **{f"baseline:{k}": v for k, v in f["baselines"].items()}}.items():
            print(f"  {m:<24} qini {b['qini']:>8.4f} CI {b['qini_ci']}")
        print(f"  selected {f['selected_model']}, separates {f['separates_from_random']}; policy {f['policy']['recommended']}: {f['policy']['reason']}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
