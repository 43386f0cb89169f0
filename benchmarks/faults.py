"""Fault injection: SIGKILL at seeded random points of ETL, train, retrain and write-back, then one rerun.

Usage::

    python -m benchmarks.faults --trials 20 --seed 0        # the README's figure

Each trial copies a clean baseline ``SOCIALREC_HOME`` (filmtrust, embedded store: ETL done and one
version promoted), starts one command in a subprocess and SIGKILLs it at a random moment (seeded):

* ``etl``        — ``socialrec etl --dataset filmtrust --replace`` killed within its measured duration;
* ``train``      — ``socialrec train --models popular,als --no-tune``;
* ``retrain``    — ``socialrec retrain --models popular,als --no-tune --no-value``;
* ``write_back`` — the same retrain, killed a random 0–1.5 s after ``status.json`` says ``write_back``.

Then it reruns the same command once to completion and checks, from the store and the version
folders: table counts identical to the clean baseline; the promoted version loads; the store's
write-back is exactly one slot, that of the promoted version, and every vector/score a reader
sees carries that version's tag (no mixed-version vectors); no ``.tmp-*`` folder; no version
folder left by a killed retrain; ``status.json`` not ``running``. A trial passes when all hold.

Prints one JSON object (also ``benchmarks/results/faults-<utc>.json``): trials, passed, and per
trial the phase, the kill time, whether the kill landed before the command ended, and failures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASET = "filmtrust"
COMMANDS = {
    "etl": ["etl", "--dataset", DATASET, "--replace", "--store", "embedded", "--json", "--no-progress"],
    "train": ["train", "--dataset", DATASET, "--models", "popular,als", "--no-tune", "--store", "embedded", "--json", "--no-progress"],
    "retrain": ["retrain", "--dataset", DATASET, "--models", "popular,als", "--no-tune", "--no-value", "--store", "embedded",
                "--json", "--no-progress"],
}
COMMANDS["write_back"] = COMMANDS["retrain"]
PHASES = ("etl", "train", "retrain", "write_back")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update({"SOCIALREC_HOME": str(home), "SOCIALREC_MODE": "test", "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"})
    if os.environ.get("SOCIALREC_DATA_DIR"):
        env["SOCIALREC_DATA_DIR"] = os.environ["SOCIALREC_DATA_DIR"]
    return env


def _run(home: Path, phase: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "api.cli", *COMMANDS[phase]], capture_output=True, text=True,
                       env=_env(home), cwd=ROOT, timeout=timeout)
    return r, time.monotonic() - t0


def _counts(home: Path) -> dict:
    from graph.store import EmbeddedStore

    store = EmbeddedStore(home / "store", DATASET)
    return {t: int(len(store.read_table(t))) for t in ("users", "items", "interactions", "follows", "reviews")}


def _check(home: Path, clean_counts: dict, phase: str = "retrain") -> list[str]:
    """Every invariant a rerun must restore; returns the failures (empty = pass). After an
    ``etl --replace`` the store holds no write-back at all (a cleared namespace), clean or not."""
    from graph.store import EmbeddedStore, version_slot
    from recsys.retrain import read_status
    from recsys.versions import current_version, load_version, models_dir, promoted_state

    failures = []
    counts = _counts(home)
    if counts != clean_counts:
        failures.append(f"counts {counts} != clean {clean_counts}")
    try:
        version = current_version(home, DATASET)
        load_version(home, DATASET)
    except Exception as exc:  # noqa: BLE001 - reported
        return failures + [f"promoted version does not load: {type(exc).__name__}: {exc}"]
    store = EmbeddedStore(home / "store", DATASET)
    state = store.write_back_state()
    if phase == "etl":
        if state or store.read_vectors("User", "als_embedding")[2] is not None:
            failures.append("a replaced store still holds a write-back")
        return failures
    if state.get("current") != version_slot(version):
        failures.append(f"write-back slot {state.get('current')} is not the promoted version's {version_slot(version)}")
    if set(state.get("staged", {})) != {state.get("current")}:
        failures.append(f"slots left behind: {sorted(state.get('staged', {}))}")
    tags = set()
    for label in ("User", "Item"):
        _, vecs, tag = store.read_vectors(label, "als_embedding")
        tags.add(tag.split("/")[0] if tag else None)
    for label, col in (("User", "top_items_version"), ("Item", "popularity_version")):
        scores = store.read_scores(label)
        if col in scores:
            tags |= {str(v).split("/")[0] for v in scores[col].dropna().unique()}
    if tags != {version}:
        failures.append(f"readers see versions {sorted(map(str, tags))}, promoted is {version}")
    root = models_dir(home, DATASET)
    if list(root.glob(".tmp-*")):
        failures.append("a .tmp-* version folder is left")
    known = set(promoted_state(home, DATASET).get("history", []))
    strays = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in known]
    made_by = {p: json.loads((root / p / "manifest.json").read_text()).get("made_by") for p in strays if (root / p / "manifest.json").exists()}
    if any(m == "retrain" for m in made_by.values()):
        failures.append(f"version folder(s) of killed retrains left: {[p for p, m in made_by.items() if m == 'retrain']}")
    if read_status(home).get("state") == "running":
        failures.append("status.json still says running")
    return failures


def run(trials: int, seed: int) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="socialrec-faults-"))
    base = work / "base"
    base.mkdir()
    durations = {}
    for phase in ("etl", "train", "retrain"):
        r, dt = _run(base, phase)
        if r.returncode != 0:
            raise RuntimeError(f"clean {phase} failed: {r.stderr[-2000:]}")
        durations[phase] = dt
    clean = _counts(base)
    if _check(base, clean):
        raise RuntimeError(f"the clean baseline fails its own checks: {_check(base, clean)}")
    results = []
    for i in range(trials):
        phase = PHASES[i % len(PHASES)] if i < len(PHASES) else rng.choice(PHASES)
        home = work / f"trial-{i:02d}"
        shutil.copytree(base, home)
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", *COMMANDS[phase]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=_env(home), cwd=ROOT)
        t0 = time.monotonic()
        if phase == "write_back":
            status = home / "retrain" / "status.json"
            while proc.poll() is None and time.monotonic() - t0 < 600:
                try:
                    if json.loads(status.read_text()).get("step") == "write_back":
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.02)
            delay = rng.uniform(0.0, 1.5)
        else:
            delay = rng.uniform(0.0, durations[phase] * 1.1)
        time.sleep(max(0.0, delay - (time.monotonic() - t0 if phase != "write_back" else 0.0)))
        killed = proc.poll() is None
        if killed:
            proc.kill()
        proc.wait()
        kill_at = round(time.monotonic() - t0, 2)
        r, _ = _run(home, phase)
        failures = [] if r.returncode == 0 else [f"rerun exited {r.returncode}: {r.stderr[-500:]}"]
        failures += _check(home, clean, phase)
        results.append({"trial": i, "phase": phase, "kill_at_s": kill_at, "killed_mid_run": killed, "failures": failures})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return {"trials": trials, "passed": sum(not r["failures"] for r in results),
            "killed_mid_run": sum(r["killed_mid_run"] for r in results), "seed": seed,
            "clean_durations_s": {k: round(v, 1) for k, v in durations.items()}, "clean_counts": clean,
            "loadavg": open("/proc/loadavg").read().split()[:3], "results": results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = run(args.trials, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"faults-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=2))
    return 0 if out["passed"] == out["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
