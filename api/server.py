"""The serving processes: ``socialrec serve [--workers N]``.

One worker serves in this process. With ``--workers N`` (N > 1) the server *pre-forks*:

1. prometheus-client is switched to multiprocess mode (:func:`api.metrics.enable_multiprocess`,
   one mmap file per worker under ``PROMETHEUS_MULTIPROC_DIR`` when set, else a fresh temporary
   folder; emptied at start), so ``/metrics`` on any worker reports every worker's requests;
2. the promoted model version is loaded **once**, here, and its large arrays (factor tables,
   per-user candidate lists) are memory-mapped from the version's ``serving-cache/`` folder
   (:func:`recsys.serving.map_model_arrays`, :meth:`RecommendationService.warm`);
3. N workers are forked and all accept on one listening socket (the kernel spreads the
   connections). They share the loaded model copy-on-write, and the mapped arrays through the
   page cache — also after a hot swap, when each worker maps the new version's files, which the
   first worker to get there wrote once (so N workers hold about one copy of a version, and a
   swap adds only the new version's mapped files and Python objects, not N full copies);
4. each worker follows the shared event journal (:mod:`api.follower`), so every worker sees
   every event and registration before its next answer;
5. the parent then drops its own reference to the model (the workers keep theirs), so once every
   worker swapped, the old version is gone from memory; workers load a new version one at a
   time (a host-wide lock in :meth:`api.app.VersionWatcher.reload`), so a swap's peak is the
   old version plus one worker's loading transient;
6. the parent forwards SIGTERM/SIGINT, restarts a worker that died (after a pause, so a crash
   loop cannot spin; the new worker loads the promoted version before it serves), and removes
   a dead worker's live metrics (``multiprocess.mark_process_dead``).

Uvicorn's access log is off — it would log raw paths with user ids;
:class:`api.metrics.ObservabilityMiddleware` logs route templates.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import tempfile
import time

log = logging.getLogger(__name__)


def serve(settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the API with uvicorn; with ``workers > 1`` pre-fork them after loading the model once.

    Args:
        settings: :class:`api.settings.Settings`.
        host, port: where to listen.
        workers: worker processes (1 = serve in this process).
        log_level: uvicorn log level.
    """
    import uvicorn

    if workers > 1:
        from api.metrics import enable_multiprocess

        # prometheus-client's own variable names the folder when set; else a fresh temporary one
        enable_multiprocess(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="socialrec-metrics-"))
    from api.app import create_app, load_state

    state = load_state(settings)
    app = create_app(settings, state)
    if workers <= 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:  # worker: default signal handling, uvicorn on the shared socket
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 0
            try:
                # N workers on the cores: BLAS threads inside each would only contend (tiny
                # per-request products; implicit's fold-in asks for one thread as well)
                from threadpoolctl import threadpool_limits

                threadpool_limits(1)
                if app.state.socialrec.service is None:  # a restarted worker: the parent holds no model
                    app.state.watcher.reload()
                config = uvicorn.Config(app, log_level=log_level, access_log=False)
                uvicorn.Server(config).run(sockets=[sock])
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
                log.exception("worker failed")
                code = 1
            os._exit(code)
        return pid

    # everything loaded so far goes to gc's permanent generation: a worker's collections then never
    # write to the (copy-on-write shared) headers of the model's objects
    gc.collect()
    gc.freeze()
    children = {spawn() for _ in range(workers)}
    # the workers hold the model now (copy-on-write); the parent lets go of its references, so
    # after a hot swap the old version's memory is freed instead of staying in the parent
    state.service, state.value = None, None
    gc.collect()
    log.info("serving on http://%s:%d with %d pre-forked workers (pids %s)", host, port, workers, sorted(children))
    stopping = False

    def forward(signum, frame):
        nonlocal stopping
        stopping = True
        for child in list(children):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    from prometheus_client import multiprocess

    while children:
        try:
            pid, status = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            break
        children.discard(pid)
        multiprocess.mark_process_dead(pid)
        if not stopping:
            log.warning("worker %d exited (status %d); starting a new one", pid, status)
            time.sleep(1.0)
            if not stopping:
                children.add(spawn())
    sock.close()
