"""Serving benchmark: throughput and p50/p99 latency of the recommendations endpoint vs a bare FastAPI endpoint.

Usage (a promoted version must exist under SOCIALREC_HOME, e.g. after
``SOCIALREC_MODE=demo socialrec train --dataset ciao --models als --no-tune``)::

    SOCIALREC_HOME=... SOCIALREC_MODE=demo python -m benchmarks.serve --dataset ciao \\
        --concurrency 1,8,32 --duration 8 --repeats 3 --rate 200 --workers 1

What it does, all on loopback (127.0.0.1):

1. starts ``socialrec serve`` (auth on, a fresh storefront key) and a *bare* FastAPI app whose
   endpoint at the same path returns a constant body of the same shape (same uvicorn, same
   number of workers) — the baseline;
2. for each concurrency, runs a closed-loop load generator in a **second process** (an async
   ``httpx`` client with C connections in flight) against each server in turn, ``repeats``
   times, and takes the medians of throughput, p50 and p99;
3. with ``--rate R``, runs an open-loop test at a fixed R requests/s (latency measured from each
   request's scheduled send time, so a stalled server cannot hide queueing: no coordinated
   omission) and reports p50/p99 against the goal p99 <= 10 ms at 200 req/s;
4. prints a table and writes ``benchmarks/results/serve-<dataset>-<utc>.json``.

Users are raw shop ids ``1..--users`` (ciao's raw ids are integers), so most requests hit
personalised users and some fall back to popularity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PATH = "/v1/users/{}/recommendations"


# --------------------------------------------------------------------------- the bare baseline
def _bare_app():
    from fastapi import FastAPI

    app = FastAPI()
    body = {
        "user_id": "0",
        "model_version": "bare",
        "strategy": "personalized",
        "items": [{"item_id": str(i), "score": 1.0 - i / 10, "reasons": ["bare endpoint"]} for i in range(10)],
    }

    @app.get("/v1/users/{user_id}/recommendations")
    def recommendations(user_id: str, k: int = 10) -> dict:
        return {**body, "user_id": user_id}

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    return app


bare_app = _bare_app() if os.environ.get("SOCIALREC_BENCH_BARE") == "1" else None


# --------------------------------------------------------------------------- load generator (2nd process)
async def _closed_loop(url: str, users: int, k: int, concurrency: int, duration: float, headers: dict) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        rng = random.Random(0)
        # warm-up: one request per connection
        await asyncio.gather(*(client.get(PATH.format(rng.randint(1, users)), params={"k": k}) for _ in range(concurrency)))
        deadline = time.perf_counter() + duration

        async def worker():
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await client.get(PATH.format(rng.randint(1, users)), params={"k": k})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return _summary(latencies, errors, elapsed)


async def _open_loop(url: str, users: int, k: int, rate: float, duration: float, headers: dict) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
        rng = random.Random(1)
        await asyncio.gather(*(client.get(PATH.format(rng.randint(1, users)), params={"k": k}) for _ in range(16)))
        n = int(rate * duration)
        start = time.perf_counter() + 0.05

        async def one(i: int):
            nonlocal errors
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            r = await client.get(PATH.format(rng.randint(1, users)), params={"k": k})
            latencies.append(time.perf_counter() - scheduled)  # from the scheduled send time
            if r.status_code != 200:
                errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - t0
    return _summary(latencies, errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000 if lat else float("nan")

    return {"requests": len(lat), "errors": errors, "seconds": round(elapsed, 3),
            "throughput": round(len(lat) / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(pct(50), 3), "p90_ms": round(pct(90), 3), "p99_ms": round(pct(99), 3)}


def _load_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--users", type=int, default=7000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--key", default="")
    a = p.parse_args(argv)
    headers = {"Authorization": f"Bearer {a.key}"} if a.key else {}
    if a.rate > 0:
        out = asyncio.run(_open_loop(a.url, a.users, a.k, a.rate, a.duration, headers))
    else:
        out = asyncio.run(_closed_loop(a.url, a.users, a.k, a.concurrency, a.duration, headers))
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- orchestration
def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def _start(kind: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    if kind == "socialrec":
        cmd = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "benchmarks.serve:bare_app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        env = {**env, "SOCIALREC_BENCH_BARE": "1"}
    # the server's log goes to a file: an unread pipe would fill up and stall the server
    log = open(RESULTS / f".{kind}-{port}.log", "wb")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _load(url: str, key: str, users: int, concurrency: int = 8, rate: float = 0.0, duration: float = 5.0) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.serve", "_load", "--url", url, "--users", str(users),
           "--concurrency", str(concurrency), "--rate", str(rate), "--duration", str(duration), "--key", key]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration * 4 + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    keys = ("throughput", "p50_ms", "p90_ms", "p99_ms")
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    med["errors"] = sum(r["errors"] for r in runs)
    med["requests"] = sum(r["requests"] for r in runs)
    return med


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_load":
        return _load_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=os.environ.get("SOCIALREC_DATASET", "ciao"))
    p.add_argument("--concurrency", default="1,8,32", help="closed-loop concurrencies")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting (medians reported)")
    p.add_argument("--rate", type=float, default=200.0, help="open-loop rate in req/s (0 = skip)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (both servers)")
    p.add_argument("--users", type=int, default=7000, help="raw user ids 1..N are requested")
    a = p.parse_args(argv)

    from api.security import new_key

    key, line = new_key("storefront")
    env = {**os.environ, "SOCIALREC_DATASET": a.dataset, "SOCIALREC_API_KEYS": line,
           "SOCIALREC_RELOAD_POLL_SECONDS": "5", "PYTHONPATH": str(ROOT)}
    env.setdefault("SOCIALREC_MODE", "demo")
    concurrencies = [int(c) for c in a.concurrency.split(",") if c.strip()]
    results: dict = {"dataset": a.dataset, "workers": a.workers, "duration_s": a.duration, "repeats": a.repeats,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                     "closed_loop": {}, "open_loop": {}}
    servers = {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        for kind in ("socialrec", "bare"):
            port = _free_port()
            proc = _start(kind, port, a.workers, env)
            servers[kind] = (proc, f"http://127.0.0.1:{port}")
            _wait_ready(servers[kind][1], proc)
        for c in concurrencies:
            row = {}
            for kind, (_, url) in servers.items():
                runs = [_load(url, key, a.users, concurrency=c, duration=a.duration) for _ in range(a.repeats)]
                row[kind] = {**_median(runs), "runs": runs}
            row["throughput_ratio"] = round(row["socialrec"]["throughput"] / max(row["bare"]["throughput"], 1e-9), 3)
            results["closed_loop"][str(c)] = row
            print(f"  concurrency {c}: socialrec {row['socialrec']['throughput']} req/s, bare {row['bare']['throughput']} req/s",
                  file=sys.stderr, flush=True)
        if a.rate > 0:
            for kind, (_, url) in servers.items():
                runs = [_load(url, key, a.users, rate=a.rate, duration=a.duration) for _ in range(a.repeats)]
                results["open_loop"][kind] = {"rate": a.rate, **_median(runs), "runs": runs}
    finally:
        for proc, _ in servers.values():
            _stop(proc)

    if a.rate > 0:
        ol = results["open_loop"]["socialrec"]
        results["goal"] = {"p99_ms_at_rate": ol["p99_ms"], "rate": a.rate, "p99_goal_ms": 10.0, "p99_met": ol["p99_ms"] <= 10.0}
    best = max(results["closed_loop"].values(), key=lambda r: r["socialrec"]["throughput"], default=None)
    if best is not None:
        results.setdefault("goal", {})["best_throughput_ratio"] = round(
            best["socialrec"]["throughput"] / max(max(r["bare"]["throughput"] for r in results["closed_loop"].values()), 1e-9), 3)

    print(_table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"serve-{a.dataset}-w{a.workers}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")
    return 0


def _table(r: dict) -> str:
    lines = [f"serving benchmark: {r['dataset']}, {r['workers']} worker(s), {r['machine']['cpus']} CPUs, "
             f"medians of {r['repeats']} x {r['duration_s']}s runs; load generator in a second process on loopback",
             f"{'load':<14}{'server':<11}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}"]
    for c, row in r["closed_loop"].items():
        for kind in ("socialrec", "bare"):
            m = row[kind]
            ratio = f"{row['throughput_ratio']:.2f}" if kind == "socialrec" else ""
            lines.append(f"{'C=' + c:<14}{kind:<11}{m['throughput']:>9.1f}{m['p50_ms']:>9.2f}{m['p90_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['errors']:>8}{ratio:>8}")
    for kind, m in r["open_loop"].items():
        lines.append(f"{'rate=' + str(int(m['rate'])) + '/s':<14}{kind:<11}{m['throughput']:>9.1f}{m['p50_ms']:>9.2f}{m['p90_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['errors']:>8}{'':>8}")
    if "goal" in r:
        lines.append(f"goal: {json.dumps(r['goal'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
