"""Prometheus metrics, request limits and a privacy-safe access log, as pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``) keeps the per-request overhead to a few microseconds and
never buffers responses. Each app gets its own :class:`prometheus_client.CollectorRegistry`, so
several apps in one process (tests) do not collide.

Metrics (``GET /metrics``, text exposition format):

* ``socialrec_http_requests_total{method,route,status}`` — counter.
* ``socialrec_http_request_duration_seconds{method,route}`` — latency histogram (1 ms … 2.5 s).
* ``socialrec_model_info{dataset,version,model}`` — 1 for the serving version (the model version).
* ``socialrec_model_swaps_total`` — hot swaps since start.
* ``socialrec_events_accepted_total`` / ``socialrec_events_queue_pending`` — the event queue.

``route`` is the route *template* (``/v1/users/{user_id}/recommendations``), never the concrete
path, so neither the metrics nor the access log ever carry a raw user id; unmatched paths are
reported as ``<unmatched>``.

**Several workers** (``socialrec serve --workers N``, :mod:`api.server`): counters and the
histogram use prometheus-client's multiprocess mode (one mmap file per worker under
``PROMETHEUS_MULTIPROC_DIR``), and any worker's ``/metrics`` sums them across all workers;
``socialrec_model_swaps_total`` then counts worker swaps (N per promotion). The two gauges are
read from the answering worker's own state at scrape time (a custom collector), so a stale
version never lingers in a dead worker's file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily

from api.problems import PROBLEM_JSON

access_log = logging.getLogger("socialrec.access")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess_enabled() -> bool:
    """True once :func:`enable_multiprocess` ran in this process (or its parent before a fork)."""
    return bool(getattr(_values.ValueClass, "_multiprocess", False)) and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def enable_multiprocess(folder: str | os.PathLike) -> None:
    """Switch this process (and the workers it forks) to prometheus-client's multiprocess mode.

    Must run before any metric child is created (before :func:`api.app.create_app`). ``folder``
    is emptied: it holds one ``*.db`` file per worker pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    _values.ValueClass = _values.MultiProcessValue()


class _LiveGauge:
    """A gauge value kept in the process (``set``), exported by :class:`_StateCollector`."""

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)


class _StateCollector:
    """``socialrec_model_info`` and ``socialrec_events_queue_pending`` from this process's state."""

    def __init__(self, pending: _LiveGauge) -> None:
        self.model: tuple[str, str, str] | None = None
        self.pending = pending

    def collect(self):
        info = GaugeMetricFamily("socialrec_model_info", "The serving model version (value 1)",
                                 labels=("dataset", "version", "model"))
        if self.model is not None:
            info.add_metric(list(self.model), 1.0)
        yield info
        yield GaugeMetricFamily("socialrec_events_queue_pending",
                                "Events in the durable queue not yet written to the store", value=self.pending.value)


class ServingMetrics:
    """The metric objects of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "socialrec_http_requests", "HTTP requests by route template and status",
            ("method", "route", "status"), registry=self.registry,
        )
        self.latency = Histogram(
            "socialrec_http_request_duration_seconds", "Request latency by route template",
            ("method", "route"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.swaps = Counter("socialrec_model_swaps", "Hot swaps of the serving model version", registry=self.registry)
        self.events_accepted = Counter("socialrec_events_accepted", "Events accepted by POST /v1/events", registry=self.registry)
        self.events_pending = _LiveGauge()
        self._state = _StateCollector(self.events_pending)
        self.registry.register(self._state)
        self._children: dict[tuple[str, str, str], tuple] = {}

    def set_model(self, dataset: str, version: str, model: str) -> None:
        """Point ``socialrec_model_info`` at the serving version (one labelled series at a time)."""
        self._state.model = (dataset, version, model)

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count and time one request (the labelled children are looked up once per label set)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, status), self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """``(body, content_type)`` of the exposition (summed over all workers in multiprocess mode)."""
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self._state)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_TEMPLATES: dict[str, str] = {}
#: the OpenAPI schema and the interactive docs (fixed paths, no user data): own metric labels
DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def _route_template(scope) -> str:
    """The matched route's template without path converters (``/v1/users/{user_id}/recommendations``
    also for a ``{user_id:path}`` route), so metric labels and log lines keep their documented names."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not path:
        # FastAPI's own documentation routes set no scope["route"]: label them as themselves
        return scope.get("path") if scope.get("path") in DOC_PATHS else "<unmatched>"
    template = _TEMPLATES.get(path)
    if template is None:
        template = _TEMPLATES[path] = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
    return template


class ObservabilityMiddleware:
    """Counts and times every request by route template and logs one line per request.

    The log line holds method, route template, status and milliseconds — no path parameters,
    query strings or headers (so no raw user id and no API key ever reaches a log).
    """

    def __init__(self, app, metrics: ServingMetrics, log_requests: bool = True):
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.observe(method, route, str(status), elapsed)
            if self.log_requests and access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %d %.1fms", method, route, status, elapsed * 1000)


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with a 413 problem+json.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is
    counted while it streams and cut off once it passes the limit.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await _send_problem(send, 413, f"request body larger than {self.max_bytes} bytes")
                    return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # Buffer the body (at most max_bytes) before the app sees it: a chunked body that grows
        # past the limit is answered 413 without reaching validation.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            received += len(body)
            if received > self.max_bytes:
                await _send_problem(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return buffered
            return await receive()

        await self.app(scope, replay, send)


async def _send_problem(send, status: int, detail: str) -> None:
    titles = {400: "Bad Request", 413: "Payload Too Large"}
    body = json.dumps({"type": "about:blank", "title": titles.get(status, "Error"), "status": status, "detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
