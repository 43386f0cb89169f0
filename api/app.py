"""The FastAPI application: thin routes that validate, call one domain function, shape the answer.

``create_app(settings)`` loads the newest promoted model version at start-up; tests pass a ready
:class:`AppState` instead. What the storefront relies on (``docs/serving.md``):

* **Auth** — ``Authorization: Bearer <key>``; roles ``storefront`` (recommendations, similar
  items, customer value), ``events`` (events, user/item registration), ``admin`` (reload, retrain
  status; may call everything). No key → 401, wrong role → 403. ``/health``, ``/ready``,
  ``/metrics`` and the OpenAPI docs are open. See :mod:`api.security` for when auth applies.
* **Limits** — ``k`` ≤ ``max_k``, request bodies ≤ ``max_body_bytes`` (413), event batches ≤
  ``max_batch_events`` (422), strict validation (unknown fields are 422); every error is
  ``application/problem+json``.
* **Never blocking** — scoring routes are plain ``def`` (Starlette's thread pool), the event loop
  only parses and routes.
* **Hot swap** — a watcher thread polls ``promoted.json``; a newly promoted version is loaded and
  warmed completely in the background, then swapped in with one reference assignment
  (:meth:`AppState.swap`). A request holds the service it started with, so in-flight requests
  finish on the old version and none fails. ``POST /v1/admin/reload`` does the same on demand.
* **Events** — ``POST /v1/events`` (``api/routes/events.py``) journals to the durable queue
  and folds the events into the served state at once; a replayer thread writes them to the store.
"""

# no `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases at import time

import logging
import os
import signal
import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Callable

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import AUTH_ERRORS, get_service, get_state, require_role
from api.metrics import BodyLimitMiddleware, ObservabilityMiddleware, ServingMetrics
from api.problems import PROBLEM_JSON, install_problem_handlers
from api.security import load_keyring
from api.settings import ConfigError, Settings
from recsys.serving import ItemNotFoundError, RecommendationService

log = logging.getLogger(__name__)
MAX_K = 100
from etl.validate import ID_PATTERN  # noqa: E402 - the ETL's id rule, so every loaded id can be served
CATEGORY_PATTERN = r"^[^\x00-\x1f]{1,200}$"
MAX_FILTER_VALUES = 100
CANDIDATES = 200  # per-user candidate list precomputed at load (RecommendationService.warm)


@dataclass
class AppState:
    """What the routes need, swapped atomically when a new version is promoted.

    Attributes:
        service: the recommendation service of the serving version (None until loaded).
        value: the customer-value result (None until computed), for the value/segment routes.
        pseudonymise: raw shop user id -> pseudonym (the ETL's keyed HMAC).
        dataset: the dataset served (None until a version is promoted).
        lock: guards swaps; readers take a reference and never see a half-built service.
        events: the :class:`EventsContext` (queue + replayer) once the app started, else None.
        swaps: number of swaps so far.
    """

    service: RecommendationService | None = None
    value: object | None = None
    pseudonymise: object | None = None
    dataset: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: object | None = None
    swaps: int = 0
    on_swap: Callable[[RecommendationService], None] | None = field(default=None, repr=False)

    def swap(self, service: RecommendationService, value: object | None = None) -> None:
        """Replace the serving service in one reference assignment.

        Live-event state of the old service (items users interacted with since its snapshot) is
        carried over, so a swap never makes a just-bought item reappear.
        """
        with self.lock:
            old = self.service
            if old is not None and hasattr(old, "_recent") and hasattr(service, "_recent"):
                with old._recent_lock:
                    service._recent.update(old._recent)
            if value is not None:
                self.value = value
            self.service = service
            self.dataset = service.snapshot.dataset
            self.swaps += 1
        if self.on_swap is not None:
            self.on_swap(service)


def build_service(settings: Settings, dataset: str, pseudonymise, version: str | None = None, candidates: int = CANDIDATES) -> RecommendationService:
    """Load a model version completely (models, snapshot, candidate cache) into a service."""
    from recsys.versions import load_version

    loaded = load_version(settings.home, dataset, version)
    built_with = loaded.manifest.get("pseudonym_key_id")
    if built_with and built_with != settings.pseudonym_key_id():
        raise ConfigError(
            f"model version {loaded.version} of {dataset} was built with another SOCIALREC_PSEUDONYM_KEY "
            f"(key id {built_with}, this server's is {settings.pseudonym_key_id()}): its users could never be "
            "found. Serve it with the key (or SOCIALREC_MODE) it was built with, or retrain with this key."
        )
    service = RecommendationService(loaded, pseudonymise)
    if hasattr(service, "warm"):
        service.warm(candidates)
    return service


def load_state(settings: Settings, candidates: int = CANDIDATES) -> AppState:
    """Load the newest promoted model version (``SOCIALREC_DATASET`` or the latest promoted one).

    Returns an :class:`AppState` whose ``service`` is None when nothing is promoted yet (the
    server still starts; ``/ready`` says 503 until a version exists, and the watcher picks the
    first promotion up).
    """
    from etl.pseudonymise import Pseudonymiser
    from recsys.versions import VersionNotFoundError, promoted_datasets

    pseudo = Pseudonymiser(settings.resolved_pseudonym_key())
    state = AppState(pseudonymise=pseudo.user, dataset=settings.dataset)
    dataset = settings.dataset
    if dataset is None:
        promoted = promoted_datasets(settings.home)
        dataset = promoted[0][1] if promoted else None
    if dataset is None:
        log.warning("no promoted model version under %s; run `socialrec train` first", settings.home)
        return state
    state.dataset = dataset
    try:
        state.service = build_service(settings, dataset, pseudo.user, candidates=candidates)
    except VersionNotFoundError as exc:
        log.warning("%s", exc)
        return state
    version = state.service.version
    log.info("serving %s version %s (model %s)", version.dataset, version.version, version.serving_model)
    state.value = _load_value(settings, version)
    return state


def _load_value(settings: Settings, version) -> object | None:
    """The customer-value result saved beside the version, if any (see recsys.value)."""
    try:
        from recsys.value.pipeline import load_result  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return load_result(settings.home, version.dataset)
    except (FileNotFoundError, OSError, ValueError):
        return None


# ============================================================================ hot swap
class VersionWatcher:
    """Polls ``promoted.json`` and swaps in a newly promoted version without a restart.

    Args:
        settings: configuration (``home``, ``reload_poll_seconds``).
        state: the app state to swap.
        candidates: candidate-cache length of new services.
    """

    def __init__(self, settings: Settings, state: AppState, candidates: int = CANDIDATES):
        self.settings = settings
        self.state = state
        self.candidates = candidates
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reload_lock = threading.Lock()
        self.last_error: str | None = None

    def promoted_version(self) -> tuple[str | None, str | None]:
        """``(dataset, version)`` promoted now (the served dataset, or the newest promoted one)."""
        from recsys.versions import promoted_datasets, promoted_state

        dataset = self.state.dataset or self.settings.dataset
        if dataset is None:
            promoted = promoted_datasets(self.settings.home)
            dataset = promoted[0][1] if promoted else None
        if dataset is None:
            return None, None
        return dataset, promoted_state(self.settings.home, dataset).get("current")

    def reload(self) -> dict:
        """Swap in the promoted version if it differs from the served one.

        Returns:
            ``{"swapped", "model_version", "previous"}``.
        Raises:
            Exception: loading failed (the served version stays).
        """
        with self._reload_lock:
            dataset, version = self.promoted_version()
            current = self.state.service
            previous = current.model_version if current is not None else None
            if version is None or (current is not None and current.version.version == version and current.snapshot.dataset == dataset):
                return {"swapped": False, "model_version": previous, "previous": previous}
            t0 = time.perf_counter()
            service = build_service(self.settings, dataset, self.state.pseudonymise, version, self.candidates)
            self.state.swap(service, _load_value(self.settings, service.version))
            log.info("hot swap: now serving %s (was %s), loaded in %.1fs", service.model_version, previous, time.perf_counter() - t0)
            return {"swapped": True, "model_version": service.model_version, "previous": previous}

    def start(self) -> "VersionWatcher":
        if self.settings.reload_poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="socialrec-version-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.reload_poll_seconds):
            try:
                self.reload()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - keep serving the old version
                if self.last_error != str(exc):
                    log.warning("hot swap failed, still serving the old version: %s", exc)
                self.last_error = str(exc)


# ============================================================================ the app
def create_app(settings: Settings | None = None, state: AppState | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: configuration (default: from the environment).
        state: a prepared state (tests); default: :func:`load_state`.
    """
    settings = settings or Settings()
    keyring = load_keyring(settings)
    state = state if state is not None else load_state(settings)
    metrics = ServingMetrics()
    state.on_swap = lambda svc: (metrics.swaps.inc(), _set_model_metric(metrics, svc))
    if state.service is not None:
        _set_model_metric(metrics, state.service)
    watcher = VersionWatcher(settings, state)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        events = _start_events(settings, state, metrics)
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()
            if events is not None:
                events.close()

    app = FastAPI(
        title="socialrec",
        version="0.1.0",
        description="Social recommendations and customer value over a heterogeneous graph. "
        "Errors are application/problem+json (RFC 9457). Authenticate with `Authorization: Bearer <api key>`.",
        responses={422: {"description": "Invalid parameters", "content": {PROBLEM_JSON: {}}}},
        lifespan=lifespan,
    )
    app.state.socialrec = state
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.metrics = metrics
    app.state.watcher = watcher
    from recsys.campaigns.experiments import ExperimentHook

    experiments = app.state.experiments = ExperimentHook(settings.home)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)

    require = require_role
    app.state.require = require
    storefront = [Depends(require("storefront"))]
    admin = [Depends(require("admin"))]
    auth_errors = AUTH_ERRORS

    State = Annotated[AppState, Depends(get_state)]
    Service = Annotated[RecommendationService, Depends(get_service)]
    K = Annotated[int, Query(ge=1, le=min(MAX_K, settings.max_k), description=f"number of items, 1..{min(MAX_K, settings.max_k)}")]
    ItemList = Annotated[list[str] | None, Query(max_length=MAX_FILTER_VALUES)]

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"content": {PROBLEM_JSON: {}}}})
    def ready(state: State) -> dict:
        """Readiness: a model version is loaded. The store's state is reported, not required:
        recommendations are served from memory and events wait in the durable queue."""
        service = state.service
        if service is None:
            raise HTTPException(503, "no model version loaded")
        out = {"status": "ready", "model_version": service.model_version, "dataset": service.snapshot.dataset}
        events = state.events
        if events is not None:
            out["events"] = events.health()
        return out

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics: request counts and latency histograms per route, model version, event queue."""
        events = request.app.state.socialrec.events
        if events is not None:
            metrics.events_pending.set(events.queue.stats()["pending"])
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get(
        "/v1/users/{user_id}/recommendations",
        tags=["recommendations"],
        dependencies=storefront,
        responses={**auth_errors, 503: {"content": {PROBLEM_JSON: {}}}},
    )
    def recommendations(
        service: Service,
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="the shop's raw user id")],
        k: K = 10,
        exclude_purchased: Annotated[bool, Query(description="drop items the user already interacted with (history and live events)")] = True,
        exclude_items: Annotated[ItemList, Query(description="item ids never to return (repeat the parameter)")] = None,
        categories: Annotated[ItemList, Query(description="only items in these categories")] = None,
        exclude_categories: Annotated[ItemList, Query(description="never items in these categories")] = None,
        max_per_category: Annotated[int | None, Query(ge=1, le=MAX_K, description="diversity: at most N items per category")] = None,
    ) -> dict:
        """Top-k items for a user with reasons; unknown users get ``strategy: popular_fallback``."""
        _check_values("exclude_items", exclude_items, ID_PATTERN)
        _check_values("categories", categories, CATEGORY_PATTERN)
        _check_values("exclude_categories", exclude_categories, CATEGORY_PATTERN)
        filters = {}
        if not exclude_purchased:
            filters["exclude_purchased"] = False
        if categories is not None:
            filters["categories"] = categories
        if exclude_categories:
            filters["exclude_categories"] = exclude_categories
        if max_per_category is not None:
            filters["max_per_category"] = max_per_category
        # a plain JSONResponse: the service already returns JSON types, so FastAPI's generic
        # jsonable_encoder pass (a third of the per-request cost on ciao) is skipped
        # A/B experiments (recsys.campaigns.experiments): the variant's model, logged; else plain
        return JSONResponse(experiments.recommend(service, user_id, k=k, exclude_items=exclude_items, **filters))

    @app.get(
        "/v1/items/{item_id}/similar",
        tags=["recommendations"],
        dependencies=storefront,
        responses={**auth_errors, 404: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}},
    )
    def similar(
        service: Service,
        item_id: Annotated[str, Path(pattern=ID_PATTERN)],
        k: K = 10,
    ) -> dict:
        """Items similar to an item."""
        try:
            return service.similar(item_id, k=k)
        except ItemNotFoundError:
            raise HTTPException(404, f"unknown item {item_id!r}") from None

    @app.post("/v1/admin/reload", tags=["admin"], dependencies=admin,
              responses={**auth_errors, 503: {"content": {PROBLEM_JSON: {}}}})
    def admin_reload(request: Request) -> dict:
        """Load the promoted version now (normally the watcher does it) and swap it in."""
        try:
            return request.app.state.watcher.reload()
        except Exception as exc:  # noqa: BLE001 - the old version keeps serving
            log.warning("reload failed: %s", exc)
            raise HTTPException(503, f"reload failed, the previous version keeps serving: {type(exc).__name__}") from None

    @app.get("/v1/admin/retrain", tags=["admin"], dependencies=admin, responses=auth_errors)
    def admin_retrain_status(state: State) -> dict:
        """The nightly retrain's last status (``state``: running, promoted, rejected, failed,
        interrupted) and the served version."""
        from recsys.retrain import is_locked, read_status

        service = state.service
        return {
            "serving": service.model_version if service is not None else None,
            "swaps": state.swaps,
            "running": is_locked(settings.home),
            "last": read_status(settings.home),
        }

    @app.get("/v1/admin/events", tags=["admin"], dependencies=admin, responses=auth_errors)
    def admin_events(state: State) -> dict:
        """The durable event queue: pending/delivered rows and the store's last error."""
        if state.events is None:
            return {"enabled": False}
        return {"enabled": True, **state.events.health()}

    from api.routes import events as event_routes

    app.include_router(event_routes.router, dependencies=[Depends(require("events"))])
    from api.routes import campaigns as campaign_routes

    app.include_router(campaign_routes.router, dependencies=[Depends(require("admin"))], responses=AUTH_ERRORS)
    _include_optional_routers(app, lambda request: request.app.state.socialrec, require)
    return app


def _check_values(name: str, values: list[str] | None, pattern: str) -> None:
    import re

    if not values:
        return
    rx = re.compile(pattern)
    for v in values:
        if not rx.match(v):
            raise HTTPException(422, f"{name}: invalid value (expected to match {pattern})")


def _set_model_metric(metrics: ServingMetrics, service: RecommendationService) -> None:
    metrics.set_model(service.snapshot.dataset, service.version.version, service.model.name)


def _start_events(settings: Settings, state: AppState, metrics: ServingMetrics):
    """Open the durable queue and start its replayer (None when it cannot be opened)."""
    from api.routes.events import EventsContext

    try:
        ctx = EventsContext.open(settings, state, metrics)
    except Exception as exc:  # noqa: BLE001 - serving must start even if the queue cannot
        log.error("event queue unavailable (%s); POST /v1/events answers 503", exc)
        return None
    state.events = ctx
    return ctx


def _include_optional_routers(app: FastAPI, get_state, require=None) -> None:
    """Mount the optional routers whose modules are installed: customer value (role
    ``storefront``) and cold start (``POST /v1/users``, ``POST /v1/items``; role ``events``).
    Absent modules are skipped."""
    import importlib

    def auth(role: str) -> list:
        return [Depends(require(role))] if require is not None else []

    try:
        value_routes = importlib.import_module("api.routes.value")
    except ImportError:
        value_routes = None
    if value_routes is not None:

        def get_value_state(request: Request):
            value = get_state(request).value
            if value is None:
                raise HTTPException(503, "customer value has not been computed; run `socialrec value --dataset ...`")
            return value

        if hasattr(value_routes, "get_value_state"):
            app.dependency_overrides[value_routes.get_value_state] = get_value_state
        app.include_router(value_routes.router, dependencies=auth("storefront"))

    try:
        coldstart_routes = importlib.import_module("api.routes.coldstart")
    except ImportError:
        coldstart_routes = None
    if coldstart_routes is not None and hasattr(coldstart_routes, "router"):
        # its own dependency placeholders read app.state.socialrec (AppState), like the value routes
        for name in ("get_service", "get_coldstart_service", "get_coldstart_state"):
            dep = getattr(coldstart_routes, name, None)
            if callable(dep):
                app.dependency_overrides[dep] = _coldstart_dependency(get_state)
                break
        app.include_router(coldstart_routes.router, dependencies=auth("events"))


def _coldstart_dependency(get_state):
    def get_coldstart_service(request: Request):
        service = get_state(request).service
        if service is None:
            raise HTTPException(503, "no model version is loaded yet; run `socialrec train`")
        return service

    return get_coldstart_service


# ============================================================================ serving processes
def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the API with uvicorn; with ``workers > 1`` pre-fork them after loading the model.

    The model version is loaded (and its candidate cache built) once in the parent, then the
    workers are forked: NumPy buffers are shared copy-on-write, so N workers hold one copy of the
    model until a hot swap loads a newer version in each. Uvicorn's access log is off — it would
    log raw paths with user ids; :class:`api.metrics.ObservabilityMiddleware` logs route templates.

    Args:
        settings: configuration.
        host, port: where to listen.
        workers: worker processes (1 = serve in this process).
        log_level: uvicorn log level.
    """
    import uvicorn

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
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # worker
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            config = uvicorn.Config(app, log_level=log_level, access_log=False)
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)
    log.info("serving on http://%s:%d with %d pre-forked workers (pids %s)", host, port, workers, children)

    def forward(signum, frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    sock.close()
