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

import fcntl
import gc
import logging
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Callable, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from api.deps import AUTH_ERRORS, get_service, get_state, require_role
from api.metrics import BodyLimitMiddleware, ObservabilityMiddleware, ServingMetrics
from api.problems import PROBLEM_JSON, install_problem_handlers
from api.security import load_keyring
from api.settings import ConfigError, Settings
from recsys.serving import ItemNotFoundError, RecommendationService

log = logging.getLogger(__name__)
MAX_K = 100
from etl.validate import ID_PATTERN, canonical_id  # noqa: E402 - the ETL's id rule, so every loaded id can be served
CATEGORY_PATTERN = r"^[^\x00-\x1f]{1,200}$"
MAX_FILTER_VALUES = 100
CANDIDATES = 200  # per-user candidate list precomputed at load (RecommendationService.warm)
SERVING_CACHE = "serving-cache"  # folder in a version's directory: memory-mapped arrays shared by workers


class FastJSONResponse(JSONResponse):
    """JSON rendered by ``orjson`` (~10x faster than the standard library on a response of k
    items with reasons); the service already returns plain JSON types."""

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


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
        carried over, so a swap never makes a just-bought item reappear; users and items
        registered online that the new version does not know are re-applied from the journal
        (:func:`recsys.events.restore_registrations`) before it serves.
        """
        _restore_registrations(service, self.events)
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
    from recsys.serving import map_model_arrays
    from recsys.versions import models_dir

    # the version's own folder holds its serving cache: factor tables and candidate lists are
    # written once and memory-mapped by every worker and every later load (one copy in memory)
    cache = models_dir(settings.home, dataset) / loaded.version / SERVING_CACHE
    map_model_arrays(loaded.models, cache)
    service = RecommendationService(loaded, pseudonymise)
    if hasattr(service, "warm"):
        service.warm(candidates, cache_dir=cache)
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
            # one load at a time per host (the workers of `serve --workers N` take turns): a swap
            # then holds the old version plus one worker's loading transient, never N of them
            with _swap_lock(self.settings.home, dataset):
                service = build_service(self.settings, dataset, self.state.pseudonymise, version, self.candidates)
                self.state.swap(service, _load_value(self.settings, service.version))
                del current
                gc.collect()  # the old version's cycles (cold-start wrapper, overlay) go now, not at some later collection
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


@contextmanager
def _swap_lock(home, dataset: str):
    """An exclusive ``fcntl`` lock on ``models/<dataset>/.swap.lock`` (a no-op where it cannot be taken)."""
    from recsys.versions import models_dir

    try:
        folder = models_dir(home, dataset)
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".swap.lock", "a+")
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


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
    # the id/category rules are in the schema itself, so the contract says what the server rejects
    ItemList = Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]] | None, Query(max_length=MAX_FILTER_VALUES)]
    CategoryList = Annotated[list[Annotated[str, Field(pattern=CATEGORY_PATTERN)]] | None, Query(max_length=MAX_FILTER_VALUES)]

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
        if getattr(service, "unhealthy", None):
            raise HTTPException(503, f"model version {service.model_version} is unhealthy: non-finite vectors "
                                     f"{service.unhealthy}; affected users get popular_fallback until a healthy version is promoted")
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
        from recsys.retrain import retrain_metrics_text

        body += retrain_metrics_text(settings.home).encode()  # a rejected nightly is visible here
        return Response(body, media_type=content_type)

    @app.get(
        "/v1/users/{user_id:path}/recommendations",
        tags=["recommendations"],
        dependencies=storefront,
        responses={**auth_errors, 503: {"content": {PROBLEM_JSON: {}}}},
    )
    async def recommendations(
        state: State,
        service: Service,
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="the shop's raw user id")],
        k: K = 10,
        exclude_purchased: Annotated[bool, Query(description="drop items the user already interacted with (history and live events)")] = True,
        exclude_items: Annotated[ItemList, Query(description="item ids never to return (repeat the parameter)")] = None,
        categories: Annotated[CategoryList, Query(description="only items in these categories")] = None,
        exclude_categories: Annotated[CategoryList, Query(description="never items in these categories")] = None,
        max_per_category: Annotated[int | None, Query(ge=1, le=MAX_K, description="diversity: at most N items per category")] = None,
        include: Annotated[list[Literal["item"]] | None, Query(max_length=1, description="include=item: each item carries "
                                                               "its display fields (category, text; title for items registered online)")] = None,
    ) -> dict:
        """Top-k items for a user with reasons; unknown users get ``strategy: popular_fallback``."""
        _check_values("exclude_items", exclude_items, ID_PATTERN)
        if exclude_items:
            exclude_items = [canonical_id(i) for i in exclude_items]
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
        # async route: a request the precomputed candidate lists answer (~0.2 ms of NumPy) runs on
        # the event loop, saving the thread-pool round trip; one that scores the catalogue
        # (filters, live events, cold start) goes to the thread pool so the loop never blocks.
        # The response skips FastAPI's generic jsonable_encoder pass (orjson, plain JSON types).
        follower = getattr(state.events, "follower", None)
        if follower is not None and follower.behind():  # another worker journalled events: apply them first
            await run_in_threadpool(follower.catch_up)
        if experiments.active(service.snapshot.dataset) is not None:  # an A/B test: the variant's model, exposure logged
            out = await run_in_threadpool(experiments.recommend, service, user_id, k=k, exclude_items=exclude_items, **filters)
            return FastJSONResponse(with_item_fields(service, out) if include else out)
        if include:  # display fields beside each item (issue 14 item 19)
            out = await run_in_threadpool(service.recommend, user_id, k=k, exclude_items=exclude_items, **filters)
            return FastJSONResponse(with_item_fields(service, out))
        if service.answers_from_cache(user_id, exclude_purchased=exclude_purchased, categories=categories):
            return FastJSONResponse(service.recommend(user_id, k=k, exclude_items=exclude_items, **filters))
        return FastJSONResponse(await run_in_threadpool(service.recommend, user_id, k=k, exclude_items=exclude_items, **filters))

    @app.get(
        "/v1/items/{item_id:path}/similar",
        tags=["recommendations"],
        dependencies=storefront,
        responses={**auth_errors, 404: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}},
    )
    def similar(
        state: State,
        service: Service,
        item_id: Annotated[str, Path(pattern=ID_PATTERN)],
        k: K = 10,
    ) -> dict:
        """Items similar to an item."""
        follower = getattr(state.events, "follower", None)
        if follower is not None and follower.behind():  # an item registered on another worker
            follower.catch_up()
        item_id = canonical_id(item_id)
        try:
            return FastJSONResponse(service.similar(item_id, k=k))
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
    from api.routes import reports as report_routes

    app.include_router(report_routes.router)
    event_routes.publish_batch_limit(app, settings.max_batch_events)
    from api.routes import campaigns as campaign_routes

    app.include_router(campaign_routes.router, dependencies=[Depends(require("admin"))], responses=AUTH_ERRORS)
    _include_optional_routers(app, lambda request: request.app.state.socialrec, require)
    return app


def with_item_fields(service, out: dict) -> dict:
    """``?include=item``: add ``"item": {"category", "text", "title"?}`` to each recommended item, so
    a storefront needs no second lookup. ``text`` is the catalogue's display text (title, brand and
    description as loaded; the snapshot keeps them joined); items registered online also carry
    their ``title``. Missing fields are null."""
    snap = service.snapshot
    for it in out.get("items", []):
        j = snap.item_index(it["item_id"])
        fields = {"category": None, "text": None}
        if j is not None:
            c = int(snap.item_category[j]) if snap.item_category.size else -1
            fields["category"] = str(snap.categories[c]) if c >= 0 else None
            text = str(snap.item_text[j]).strip() if snap.item_text.size else ""
            fields["text"] = text or None
        else:
            new = service.overlay.get_item(it["item_id"])
            if new is not None:
                fields.update(category=new.category, title=new.title)
        it["item"] = fields
    return out


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
    if state.service is not None:
        _restore_registrations(state.service, ctx)
    try:  # every worker applies every worker's events and registrations (api/follower.py)
        from api.follower import JournalFollower

        ctx.follower = JournalFollower(ctx.queue, state, interval_s=settings.replay_interval_seconds)
    except Exception as exc:  # noqa: BLE001 - a single process still folds its own events in
        log.warning("journal follower unavailable (%s); events fold into this worker only", exc)
    return ctx


def _restore_registrations(service, events) -> None:
    """Re-apply journalled registrations to a service about to serve (never fails the load)."""
    if events is None or service is None:
        return
    from recsys.events import restore_registrations

    try:
        restore_registrations(service, events.queue)
    except Exception as exc:  # noqa: BLE001 - serving the version matters more; logged
        log.warning("could not restore registrations from the journal: %s", exc)


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
    # No app.dependency_overrides here: while any override is set, FastAPI rebuilds the dependant
    # of every sub-dependency on every request (inspect.signature and all), which was ~60 % of a
    # cached recommendation's CPU time. The routers' own dependencies read app.state.socialrec.
    if value_routes is not None:
        app.include_router(value_routes.router, dependencies=auth("storefront"), responses=AUTH_ERRORS)

    try:
        coldstart_routes = importlib.import_module("api.routes.coldstart")
    except ImportError:
        coldstart_routes = None
    if coldstart_routes is not None and hasattr(coldstart_routes, "router"):
        app.include_router(coldstart_routes.router, dependencies=auth("events"), responses=AUTH_ERRORS)


# ============================================================================ serving processes
def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Run the API (see :func:`api.server.serve`: one process, or ``workers`` pre-forked ones)."""
    from api.server import serve as run

    run(settings, host=host, port=port, workers=workers, log_level=log_level)
