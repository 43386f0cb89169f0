"""The FastAPI application: thin routes that validate, call one domain function, shape the answer.

``create_app(settings)`` loads the newest promoted model version at start-up; tests pass a ready
:class:`AppState` instead.
"""

# no `from __future__ import annotations`: FastAPI must resolve the local Annotated aliases at import time

import logging
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from api.problems import PROBLEM_JSON, install_problem_handlers
from api.settings import Settings
from recsys.serving import ItemNotFoundError, RecommendationService

log = logging.getLogger(__name__)
MAX_K = 100
ID_PATTERN = r"^[A-Za-z0-9_.:@\-]{1,128}$"


@dataclass
class AppState:
    """What the routes need, swapped atomically when a new version is promoted.

    Attributes:
        service: the recommendation service of the serving version (None until loaded).
        value: the customer-value result (None until computed), for the value/segment routes.
        lock: guards swaps; readers take a reference and never see a half-built service.
    """

    service: RecommendationService | None = None
    value: object | None = None
    pseudonymise: object | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def swap(self, service: RecommendationService) -> None:
        """Replace the serving service in one reference assignment."""
        with self.lock:
            self.service = service


def load_state(settings: Settings) -> AppState:
    """Load the newest promoted model version (``SOCIALREC_DATASET`` or the latest promoted one).

    Returns an :class:`AppState` whose ``service`` is None when nothing is promoted yet (the
    server still starts; ``/ready`` says 503 until a version exists).
    """
    from etl.pseudonymise import Pseudonymiser
    from recsys.versions import VersionNotFoundError, load_version, promoted_datasets

    pseudo = Pseudonymiser(settings.resolved_pseudonym_key())
    state = AppState(pseudonymise=pseudo.user)
    dataset = settings.dataset
    if dataset is None:
        promoted = promoted_datasets(settings.home)
        dataset = promoted[0][1] if promoted else None
    if dataset is None:
        log.warning("no promoted model version under %s; run `socialrec train` first", settings.home)
        return state
    try:
        version = load_version(settings.home, dataset)
    except VersionNotFoundError as exc:
        log.warning("%s", exc)
        return state
    state.service = RecommendationService(version, pseudo.user)
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


def create_app(settings: Settings | None = None, state: AppState | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: configuration (default: from the environment).
        state: a prepared state (tests); default: :func:`load_state`.
    """
    settings = settings or Settings()
    state = state if state is not None else load_state(settings)
    app = FastAPI(
        title="socialrec",
        version="0.1.0",
        description="Social recommendations and customer value over a heterogeneous graph. "
        "Errors are application/problem+json (RFC 9457).",
        responses={422: {"description": "Invalid parameters", "content": {PROBLEM_JSON: {}}}},
    )
    app.state.socialrec = state
    install_problem_handlers(app)

    def get_state(request: Request) -> AppState:
        return request.app.state.socialrec

    def get_service(state: Annotated[AppState, Depends(get_state)]) -> RecommendationService:
        service = state.service
        if service is None:
            raise HTTPException(503, "no model version is loaded yet; run `socialrec train`")
        return service

    State = Annotated[AppState, Depends(get_state)]
    Service = Annotated[RecommendationService, Depends(get_service)]
    K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of items, 1..{MAX_K}")]

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"content": {PROBLEM_JSON: {}}}})
    def ready(state: State) -> dict:
        """Readiness: a model version is loaded."""
        if state.service is None:
            raise HTTPException(503, "no model version loaded")
        return {"status": "ready", "model_version": state.service.model_version, "dataset": state.service.snapshot.dataset}

    @app.get("/v1/users/{user_id}/recommendations", tags=["recommendations"], responses={503: {"content": {PROBLEM_JSON: {}}}})
    def recommendations(
        service: Service,
        user_id: Annotated[str, Path(pattern=ID_PATTERN, description="the shop's raw user id")],
        k: K = 10,
    ) -> dict:
        """Top-k items for a user with reasons; unknown users get ``strategy: popular_fallback``."""
        return service.recommend(user_id, k=k)

    @app.get(
        "/v1/items/{item_id}/similar",
        tags=["recommendations"],
        responses={404: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}},
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

    _include_optional_routers(app, get_state)
    return app


def _include_optional_routers(app: FastAPI, get_state) -> None:
    """Mount the customer-value routes when their module is installed."""
    try:
        from api.routes import value as value_routes
    except ImportError:
        return

    def get_value_state(request: Request):
        value = get_state(request).value
        if value is None:
            raise HTTPException(503, "customer value has not been computed; run `socialrec value --dataset ...`")
        return value

    if hasattr(value_routes, "get_value_state"):
        app.dependency_overrides[value_routes.get_value_state] = get_value_state
    app.include_router(value_routes.router)
