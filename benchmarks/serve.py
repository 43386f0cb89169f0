"""Serving benchmark: throughput and p50/p99 latency of the recommendations endpoint vs a bare FastAPI endpoint.

Usage (a promoted version must exist under SOCIALREC_HOME, e.g. after
``socialrec etl --dataset ciao`` and ``socialrec train --dataset ciao --models popular,als --no-tune``)::

    SOCIALREC_HOME=... python -m benchmarks.serve --dataset ciao --concurrency 1,8 --rate 200 --workers 1,2

What it does, all on loopback (127.0.0.1):

1. for each worker count, starts ``socialrec serve --workers N`` (auth on, a fresh storefront
   key) and a *bare* FastAPI app whose endpoint at the same path returns a constant body of the
   same shape (same uvicorn, same number of workers) — the baseline;
2. for each concurrency, runs a closed-loop load generator in a **second process** (an async
   ``httpx`` client with C connections in flight) against each server in turn, ``repeats``
   times, and takes the medians of throughput, p50 and p99. The load generator is pinned to the
   last CPU (``taskset``; ``--no-pin`` to let it float), and beside the client-side figures the
   benchmark reads the **server's own histogram** (``/metrics``: the mean time the server spent
   per recommendation request during the run), which the load generator sharing the cores does
   not distort, and the CPU seconds the server's processes used per request (``cpu ms``, from
   ``/proc``: what a request costs the machine, nearly independent of how busy it is; ``cpu r.``
   is the bare endpoint's over ours, the throughput ratio an idle server-bound machine would show);
3. with ``--rate R``, runs an open-loop test at a fixed R requests/s (latency measured from each
   request's scheduled send time, so a stalled server cannot hide queueing: no coordinated
   omission) and reports p50/p99 against the goal p99 <= 5 ms at 200 req/s;
4. with ``--swap`` (default), promotes a copy of the served version and measures the server's
   memory (sum of PSS over the server's processes, from ``/proc/<pid>/smaps_rollup``: shared
   pages are counted once) before, at the peak of, and after the hot swap of every worker;
5. prints a table with the machine's load average (``/proc/loadavg``) beside every figure, the
   ratio against the bare endpoint measured in the same run, the scaling of N workers against
   one, and writes ``benchmarks/results/serve-<dataset>-<utc>.json``.

On a shared machine absolute figures move with the load; the ratios (same run, same client)
are what to compare.

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
import shutil
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


def _loadavg() -> float:
    """The 1-minute load average (``/proc/loadavg``; NaN where there is none)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _server_histogram(url: str) -> tuple[float, float] | None:
    """``(count, sum_seconds)`` of the recommendations route in the server's ``/metrics`` (None for
    a server without them, the bare one)."""
    import httpx

    try:
        r = httpx.get(f"{url}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    text = r.text
    count = total = 0.0  # no line yet: no recommendation request so far
    for line in text.splitlines():
        if "socialrec_http_request_duration_seconds" in line and "recommendations" in line:
            name, _, value = line.rpartition(" ")
            if name.startswith("socialrec_http_request_duration_seconds_count"):
                count = float(value)
            elif name.startswith("socialrec_http_request_duration_seconds_sum"):
                total = float(value)
    return count, total


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process tree so far (None without a pid)."""
    if pid is None:
        return None
    import psutil

    total = 0.0
    for p in _tree(pid):
        try:
            t = psutil.Process(p).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _load(url: str, key: str, users: int, concurrency: int = 8, rate: float = 0.0, duration: float = 5.0,
          pin: bool = True, server_pid: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.serve", "_load", "--url", url, "--users", str(users),
           "--concurrency", str(concurrency), "--rate", str(rate), "--duration", str(duration), "--key", key]
    if pin and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", str((os.cpu_count() or 1) - 1)] + cmd
    before = _server_histogram(url)
    cpu0 = _cpu_seconds(server_pid)
    load0 = _loadavg()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration * 4 + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["loadavg"] = round(max(load0, _loadavg()), 2)
    cpu1 = _cpu_seconds(server_pid)
    if cpu0 is not None and cpu1 is not None and result["requests"]:
        # CPU the server's processes spent per request (warm-up requests included, ~1 %): what a
        # request costs the machine, nearly independent of how busy the cores are
        result["server_cpu_ms"] = round((cpu1 - cpu0) / result["requests"] * 1000, 3)
    after = _server_histogram(url)
    if before is not None and after is not None and after[0] > before[0]:
        result["server_mean_ms"] = round((after[1] - before[1]) / (after[0] - before[0]) * 1000, 3)
    return result


def _median(runs: list[dict]) -> dict:
    keys = ("throughput", "p50_ms", "p90_ms", "p99_ms", "loadavg")
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    for key in ("server_mean_ms", "server_cpu_ms"):
        vals = [r[key] for r in runs if key in r]
        if vals:
            med[key] = round(statistics.median(vals), 3)
    med["errors"] = sum(r["errors"] for r in runs)
    med["requests"] = sum(r["requests"] for r in runs)
    return med


# --------------------------------------------------------------------------- memory during a hot swap
def _tree(pid: int) -> list[int]:
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc.pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.Error:
        return []


def _memory(pid: int) -> dict:
    """``{"pss_mb", "rss_mb"}`` summed over a process tree (PSS counts shared pages once)."""
    pss = rss = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return {"pss_mb": round(pss / 1024, 1), "rss_mb": round(rss / 1024, 1)}


def _swap_memory(home: Path, dataset: str, proc: subprocess.Popen, log_path: Path, workers: int, timeout: float = 600) -> dict:
    """Promote a copy of the served version and sample the server's memory until every worker
    has swapped (its log says so) and the memory settled. The copy is removed afterwards and
    the original version promoted again."""
    from recsys.versions import models_dir, promote, promoted_state

    root = models_dir(home, dataset)
    original = promoted_state(home, dataset)["current"]
    copy_id = f"{original}-benchswap{int(time.time())}"
    shutil.copytree(root / original, root / copy_id, ignore=shutil.ignore_patterns("serving-cache"))
    manifest = json.loads((root / copy_id / "manifest.json").read_text())
    manifest["version"] = copy_id
    (root / copy_id / "manifest.json").write_text(json.dumps(manifest, indent=2))
    steady = []
    for _ in range(10):
        steady.append(_memory(proc.pid))
        time.sleep(0.1)
    seen0 = log_path.read_text(errors="replace").count("hot swap: now serving")
    samples = []
    t0 = time.monotonic()
    promote(home, dataset, copy_id)
    done_at = None
    try:
        while time.monotonic() - t0 < timeout:
            samples.append(_memory(proc.pid))
            swapped = log_path.read_text(errors="replace").count("hot swap: now serving") - seen0
            if swapped >= workers and done_at is None:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > 3.0:
                break
            time.sleep(0.05)
    finally:
        promote(home, dataset, original)
    after = samples[-10:] or steady
    steady_pss = statistics.median(m["pss_mb"] for m in steady)
    peak = max(samples, key=lambda m: m["pss_mb"]) if samples else steady[-1]
    return {"steady_pss_mb": steady_pss, "peak_pss_mb": peak["pss_mb"], "after_pss_mb": statistics.median(m["pss_mb"] for m in after),
            "steady_rss_mb": statistics.median(m["rss_mb"] for m in steady), "peak_rss_mb": max(m["rss_mb"] for m in samples or steady),
            "peak_ratio": round(peak["pss_mb"] / max(steady_pss, 1e-9), 3), "swap_s": round((done_at or time.monotonic()) - t0, 1),
            "workers_swapped": done_at is not None, "copy_version": copy_id}


def _run_workers(a, workers: int, key: str, env: dict, concurrencies: list[int]) -> dict:
    """Every measurement for one worker count: closed loop, open loop, swap memory."""
    out: dict = {"closed_loop": {}, "open_loop": {}}
    servers = {}
    try:
        for kind in ("socialrec", "bare"):
            port = _free_port()
            proc = _start(kind, port, workers, env)
            servers[kind] = (proc, f"http://127.0.0.1:{port}", RESULTS / f".{kind}-{port}.log")
            _wait_ready(servers[kind][1], proc)
        for c in concurrencies:
            row = {}
            for kind, (_, url, _) in servers.items():
                runs = [_load(url, key, a.users, concurrency=c, duration=a.duration, pin=a.pin, server_pid=servers[kind][0].pid)
                        for _ in range(a.repeats)]
                row[kind] = {**_median(runs), "runs": runs}
            row["throughput_ratio"] = round(row["socialrec"]["throughput"] / max(row["bare"]["throughput"], 1e-9), 3)
            if "server_cpu_ms" in row["socialrec"] and "server_cpu_ms" in row["bare"]:
                row["cpu_ratio"] = round(row["bare"]["server_cpu_ms"] / max(row["socialrec"]["server_cpu_ms"], 1e-9), 3)
            out["closed_loop"][str(c)] = row
            print(f"  workers {workers}, concurrency {c}: socialrec {row['socialrec']['throughput']} req/s, "
                  f"bare {row['bare']['throughput']} req/s (load {row['socialrec']['loadavg']})", file=sys.stderr, flush=True)
        if a.rate > 0:
            for kind, (_, url, _) in servers.items():
                runs = [_load(url, key, a.users, rate=a.rate, duration=a.duration, pin=a.pin, server_pid=servers[kind][0].pid)
                        for _ in range(a.repeats)]
                out["open_loop"][kind] = {"rate": a.rate, **_median(runs), "runs": runs}
        if a.swap:
            proc, _, log_path = servers["socialrec"]
            out["swap_memory"] = _swap_memory(Path(env["SOCIALREC_HOME"]), a.dataset, proc, log_path, workers)
            print(f"  workers {workers}, swap memory: {out['swap_memory']}", file=sys.stderr, flush=True)
    finally:
        for proc, _, _ in servers.values():
            _stop(proc)
        if "swap_memory" in out:
            from recsys.versions import models_dir

            shutil.rmtree(models_dir(env["SOCIALREC_HOME"], a.dataset) / out["swap_memory"]["copy_version"], ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_load":
        return _load_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=os.environ.get("SOCIALREC_DATASET", "ciao"))
    p.add_argument("--concurrency", default="1,8", help="closed-loop concurrencies")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting (medians reported)")
    p.add_argument("--rate", type=float, default=200.0, help="open-loop rate in req/s (0 = skip)")
    p.add_argument("--workers", default="1", help="server worker processes (both servers); a list (1,2) measures each")
    p.add_argument("--users", type=int, default=7000, help="raw user ids 1..N are requested")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the load generator to the last CPU")
    p.add_argument("--no-swap", dest="swap", action="store_false", help="skip the hot-swap memory measurement")
    a = p.parse_args(argv)

    from api.security import new_key

    key, line = new_key("storefront")
    env = {**os.environ, "SOCIALREC_DATASET": a.dataset, "SOCIALREC_API_KEYS": line,
           "SOCIALREC_RELOAD_POLL_SECONDS": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("SOCIALREC_MODE", "demo")
    from api.settings import Settings

    env["SOCIALREC_HOME"] = str(Settings().home)
    concurrencies = [int(c) for c in a.concurrency.split(",") if c.strip()]
    worker_counts = [int(w) for w in str(a.workers).split(",") if w.strip()]
    results: dict = {"dataset": a.dataset, "workers": worker_counts, "duration_s": a.duration, "repeats": a.repeats,
                     "pinned_load_generator": a.pin, "loadavg_start": _loadavg(),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                     "by_workers": {}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    for w in worker_counts:
        results["by_workers"][str(w)] = _run_workers(a, w, key, env, concurrencies)
    results["loadavg_end"] = _loadavg()
    results["goal"] = _goals(results)
    print(_table(results))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"serve-{a.dataset}-w{'-'.join(map(str, worker_counts))}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")
    return 0


P99_GOAL_MS = 5.0


def _goals(r: dict) -> dict:
    """The issue's goals, each with the figure that decides it."""
    goal: dict = {}
    for w, res in r["by_workers"].items():
        g = {}
        ratios = {c: row["throughput_ratio"] for c, row in res["closed_loop"].items()}
        g["throughput_ratio_vs_bare"] = ratios
        g["throughput_ratio_met"] = all(v >= 0.8 for v in ratios.values()) if ratios else None
        g["cpu_ratio_vs_bare"] = {c: row["cpu_ratio"] for c, row in res["closed_loop"].items() if "cpu_ratio" in row}
        if "socialrec" in res["open_loop"]:
            p99 = res["open_loop"]["socialrec"]["p99_ms"]
            g.update(p99_ms_at_rate=p99, p99_goal_ms=P99_GOAL_MS, p99_met=p99 <= P99_GOAL_MS)
        if "swap_memory" in res:
            g.update(swap_peak_ratio=res["swap_memory"]["peak_ratio"], swap_peak_met=res["swap_memory"]["peak_ratio"] <= 1.5)
        goal[f"workers={w}"] = g
    ws = sorted(r["by_workers"], key=int)
    if len(ws) > 1:
        one, many = r["by_workers"][ws[0]], r["by_workers"][ws[-1]]
        scale = {c: round(many["closed_loop"][c]["socialrec"]["throughput"] / max(one["closed_loop"][c]["socialrec"]["throughput"], 1e-9), 3)
                 for c in one["closed_loop"] if c in many["closed_loop"]}
        bare = {c: round(many["closed_loop"][c]["bare"]["throughput"] / max(one["closed_loop"][c]["bare"]["throughput"], 1e-9), 3)
                for c in one["closed_loop"] if c in many["closed_loop"]}
        goal["scaling"] = {"workers": f"{ws[-1]} vs {ws[0]}", "socialrec": scale, "bare": bare,
                           "met": max(scale.values(), default=0) >= 1.7}
    return goal


def _table(r: dict) -> str:
    lines = [f"serving benchmark: {r['dataset']}, {r['machine']['cpus']} CPUs, medians of {r['repeats']} x {r['duration_s']}s runs; "
             f"load generator in a second process on loopback{' pinned to the last CPU' if r['pinned_load_generator'] else ''}; "
             f"load average {r['loadavg_start']} at start, {r['loadavg_end']} at end",
             f"{'workers':<8}{'load':<12}{'server':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv ms':>8}{'cpu ms':>8}{'errors':>7}{'ratio':>7}{'cpu r.':>7}{'loadavg':>8}"]
    for w, res in r["by_workers"].items():
        for c, row in res["closed_loop"].items():
            for kind in ("socialrec", "bare"):
                m = row[kind]
                ratio = f"{row['throughput_ratio']:.2f}" if kind == "socialrec" else ""
                srv = f"{m['server_mean_ms']:.2f}" if "server_mean_ms" in m else ""
                cpu = f"{m['server_cpu_ms']:.2f}" if "server_cpu_ms" in m else ""
                cratio = f"{row['cpu_ratio']:.2f}" if kind == "socialrec" and "cpu_ratio" in row else ""
                lines.append(f"{w:<8}{'C=' + c:<12}{kind:<11}{m['throughput']:>9.1f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{srv:>8}{cpu:>8}{m['errors']:>7}{ratio:>7}{cratio:>7}{m['loadavg']:>8.2f}")
        for kind, m in res["open_loop"].items():
            srv = f"{m['server_mean_ms']:.2f}" if "server_mean_ms" in m else ""
            cpu = f"{m['server_cpu_ms']:.2f}" if "server_cpu_ms" in m else ""
            lines.append(f"{w:<8}{'rate=' + str(int(m['rate'])) + '/s':<12}{kind:<11}{m['throughput']:>9.1f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{srv:>8}{cpu:>8}{m['errors']:>7}{'':>7}{'':>7}{m['loadavg']:>8.2f}")
        if "swap_memory" in res:
            sm = res["swap_memory"]
            lines.append(f"{w:<8}hot swap: PSS steady {sm['steady_pss_mb']} MB, peak {sm['peak_pss_mb']} MB ({sm['peak_ratio']}x), "
                         f"after {sm['after_pss_mb']} MB; RSS sum steady {sm['steady_rss_mb']} MB, peak {sm['peak_rss_mb']} MB; {sm['swap_s']} s")
    lines.append(f"goal: {json.dumps(r['goal'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
