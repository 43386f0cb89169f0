"""Bounded loopback soak: a fixed request rate with concurrent events, registrations and two hot swaps.

Usage::

    python -m benchmarks.soak --duration 600 --rate 20          # the README's figure (10 minutes)
    python -m benchmarks.soak --duration 120 --rate 20          # a shorter run

What it does, all on 127.0.0.1 in a temporary ``SOCIALREC_HOME`` (embedded store, test mode):

1. ``socialrec train --dataset filmtrust --models popular,als --no-tune`` (version 1), then starts
   ``socialrec serve`` (watcher polling every second, replayer every 0.5 s);
2. an open-loop load generator sends ``--rate`` requests/s for ``--duration`` seconds from a
   thread pool: 80 % ``GET /v1/users/{id}/recommendations`` (a fixed set of *probe* users that
   never send events, plus random users), 15 % ``POST /v1/events`` (1–3 view events each, every
   (user, item) pair unique, so each accepted event is one row in the store), 5 %
   ``POST /v1/users`` (a new user following two known users);
3. at 1/3 and 2/3 of the run it trains and promotes a new version in a subprocess: the server
   hot-swaps twice under load;
4. at the end it waits until the journal is delivered, stops the server and counts, from the
   store itself: events accepted (202, not duplicate) vs interaction rows of the soak users in
   the store, registrations accepted (201) vs those users' ``users`` rows and ``FOLLOWS``;
5. consistency: every probe response names one ``model_version``; the soak re-computes, offline,
   that version's recommendation for the probe user and counts responses whose items differ
   (a response mixing two versions' factor tables would differ from both).

Prints one JSON object (also written to ``benchmarks/results/soak-<utc>.json``) with the load
average beside the figures. Not a test: it takes minutes and its counts are the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATASET = "filmtrust"


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALREC_")}
    env.update({"SOCIALREC_HOME": str(home), "SOCIALREC_MODE": "test", "SOCIALREC_DATASET": DATASET,
                "SOCIALREC_RELOAD_POLL_SECONDS": "1", "SOCIALREC_REPLAY_INTERVAL_SECONDS": "0.5",
                "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"})
    if os.environ.get("SOCIALREC_DATA_DIR"):
        env["SOCIALREC_DATA_DIR"] = os.environ["SOCIALREC_DATA_DIR"]
    return env


def _train(home: Path, seed_note: str) -> str:
    r = subprocess.run([sys.executable, "-m", "api.cli", "train", "--dataset", DATASET, "--models", "popular,als",
                        "--no-tune", "--store", "embedded", "--json", "--no-progress"],
                       capture_output=True, text=True, env=_env(home), cwd=ROOT, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"train ({seed_note}) failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)["version"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, proc, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready")


def run(duration: float, rate: float, seed: int = 0, keep_home: bool = False) -> dict:
    import httpx
    import pandas as pd

    from api.settings import Settings
    from etl.pseudonymise import Pseudonymiser

    rng = random.Random(seed)
    home = Path(tempfile.mkdtemp(prefix="socialrec-soak-"))
    load_before = open("/proc/loadavg").read().split()[:3]
    t_start = time.time()
    versions = [_train(home, "v1")]
    data_dir = Path(os.environ.get("SOCIALREC_DATA_DIR", ROOT.parent / "shared" / "data"))
    ratings = pd.read_csv(data_dir / DATASET / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])
    users = [str(u) for u in ratings["u"].unique()]
    items = [str(i) for i in ratings["i"].unique()]
    probes = users[:20]
    others = users[20:]

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(home / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, env=_env(home), cwd=ROOT, start_new_session=True)
    stats = Counter()
    lock = threading.Lock()
    probe_answers: list[tuple[str, str, list[str]]] = []
    versions_seen = Counter()
    accepted_events: list[tuple[str, str]] = []
    registered: list[tuple[str, list[str]]] = []
    try:
        _wait_ready(base, server)
        client = httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_connections=32))

        def one(n: int) -> None:
            r_kind = rng.random()
            try:
                if r_kind < 0.80:
                    user = probes[n % len(probes)] if n % 2 == 0 else rng.choice(others)
                    resp = client.get(f"/v1/users/{user}/recommendations", params={"k": 10})
                    if resp.status_code == 200:
                        body = resp.json()
                        with lock:
                            versions_seen[body["model_version"]] += 1
                            if user in probes:
                                probe_answers.append((user, body["model_version"], [it["item_id"] for it in body["items"]]))
                    kind = "recommendations"
                elif r_kind < 0.95:
                    soak_user = f"soak-u{n}"
                    evs = [{"user_id": soak_user, "item_id": it, "kind": "view", "ts": time.time()}
                           for it in rng.sample(items, rng.randint(1, 3))]
                    resp = client.post("/v1/events", json={"events": evs}, headers={"Idempotency-Key": f"soak-{uuid.uuid4().hex}"})
                    if resp.status_code == 202 and not resp.json()["duplicate"]:
                        with lock:
                            accepted_events.extend((soak_user, e["item_id"]) for e in evs)
                    kind = "events"
                else:
                    new_user = f"soak-reg-{n}"
                    follows = rng.sample(users, 2)
                    resp = client.post("/v1/users", json={"user_id": new_user, "follows": follows})
                    if resp.status_code == 201:
                        with lock:
                            registered.append((new_user, follows))
                    kind = "registrations"
                with lock:
                    stats[f"{kind}:{resp.status_code}"] += 1
            except httpx.HTTPError as exc:
                with lock:
                    stats[f"error:{type(exc).__name__}"] += 1

        swaps_at = [duration / 3, 2 * duration / 3]
        swap_threads = []

        def swap(note: str) -> None:
            v = _train(home, note)
            with lock:
                versions.append(v)

        t0 = time.monotonic()
        n = 0
        with ThreadPoolExecutor(max_workers=16) as pool:
            while (now := time.monotonic() - t0) < duration:
                while swaps_at and now >= swaps_at[0]:
                    swaps_at.pop(0)
                    t = threading.Thread(target=swap, args=(f"swap{len(swap_threads) + 1}",))
                    t.start()
                    swap_threads.append(t)
                target = t0 + n / rate
                if target > time.monotonic():
                    time.sleep(target - time.monotonic())
                pool.submit(one, n)
                n += 1
        for t in swap_threads:
            t.join()
        # let the watcher pick the last promotion up, then drain the journal
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            q = client.get("/v1/admin/events").json()
            ready = client.get("/ready").json()
            if q.get("pending", 1) == 0 and ready.get("model_version", "").startswith(versions[-1]):
                break
            time.sleep(0.5)
        final_queue = client.get("/v1/admin/events").json()
        client.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()

    # ---- what reached the store
    from graph.store import EmbeddedStore

    pseudo = Pseudonymiser(Settings(mode="test", home=home).resolved_pseudonym_key()).user
    store = EmbeddedStore(home / "store", DATASET)
    inter = store.read_table("interactions")
    follows_t = store.read_table("follows")
    users_t = set(store.read_table("users")["user_id"])
    expected = {(pseudo(u), i) for u, i in accepted_events}
    stored = set(zip(inter["user_id"], inter["item_id"])) & expected
    soak_pseudos = {pseudo(u) for u, _ in accepted_events}
    soak_rows = int(inter["user_id"].isin(soak_pseudos).sum())
    reg_pseudos = {pseudo(u) for u, _ in registered}
    reg_follows_expected = {(pseudo(u), pseudo(f)) for u, fs in registered for f in fs}
    reg_follows_stored = set(zip(follows_t["follower_id"], follows_t["followee_id"])) & reg_follows_expected

    # ---- consistency: each probe answer equals its version's offline answer
    from recsys.serving import RecommendationService
    from recsys.versions import load_version

    offline: dict[tuple[str, str], list[str]] = {}
    mismatched = 0
    by_version: dict[str, RecommendationService] = {}
    for user, mv, got in probe_answers:
        vid = mv.split("/")[0]
        if vid not in by_version:
            by_version[vid] = RecommendationService(load_version(home, DATASET, vid), pseudo)
        key = (vid, user)
        if key not in offline:
            offline[key] = [it["item_id"] for it in by_version[vid].recommend(user, k=10)["items"]]
        mismatched += offline[key] != got
    non_2xx = sum(v for k, v in stats.items() if not k.split(":")[1].startswith("2"))
    out = {
        "duration_s": duration, "rate_per_s": rate, "requests_sent": n, "by_kind_and_status": dict(sorted(stats.items())),
        "non_2xx": non_2xx,
        "events": {"accepted": len(accepted_events), "delivered_to_store": len(stored), "soak_rows_in_store": soak_rows,
                   "equal": len(stored) == len(expected) == soak_rows},
        "registrations": {"accepted": len(registered), "users_in_store": len(reg_pseudos & users_t),
                          "follows_expected": len(reg_follows_expected), "follows_in_store": len(reg_follows_stored),
                          "equal": len(reg_pseudos & users_t) == len(registered) and reg_follows_stored == reg_follows_expected},
        "versions_promoted": versions, "model_versions_answering": dict(versions_seen),
        "probe_responses": len(probe_answers), "probe_responses_not_matching_their_version": mismatched,
        "journal_at_end": final_queue, "loadavg_before": load_before, "loadavg_after": open("/proc/loadavg").read().split()[:3],
        "wall_s": round(time.time() - t_start, 1), "home": str(home) if keep_home else None,
    }
    if not keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-home", action="store_true")
    args = p.parse_args(argv)
    out = run(args.duration, args.rate, args.seed, args.keep_home)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    ok = out["non_2xx"] == 0 and out["events"]["equal"] and out["registrations"]["equal"] \
        and out["probe_responses_not_matching_their_version"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
