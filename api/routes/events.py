"""``POST /v1/events``: real-time events, journalled durably, then folded in and stored.

Flow of one request (the route is a plain ``def``, so the journal's fsync runs in the thread pool,
never on the event loop):

1. strict validation (unknown fields, bad kinds, a follow without ``followee_id``… are 422;
   more than ``max_batch_events`` events is 422; bodies over ``max_body_bytes`` are 413);
2. user ids are pseudonymised (:class:`etl.pseudonymise.Pseudonymiser`, the ETL's key) — raw ids
   never reach the journal, the store or a log;
3. the batch is journalled under its ``Idempotency-Key`` (:class:`recsys.events.EventQueue`)
   before the answer: 202 once it is durable. The same key with the same body again is
   acknowledged (``duplicate: true``) and changes nothing; with another body it is 409;
4. the events are folded into the served state, so the user's very next recommendation reflects
   them: ``RecommendationService.fold_in`` (cold start's embedding fold-in) when the service has
   it, and the live "seen" overlay (:meth:`RecommendationService.note_interactions`) always;
5. the replayer thread is kicked; it writes the rows to the store (Neo4j when configured) and
   retries with back-off while the store is down.
"""

from __future__ import annotations

import numpy as np

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.problems import PROBLEM_JSON

log = logging.getLogger(__name__)

from etl.validate import ID_PATTERN, canonical_id  # noqa: E402 - the ETL's id rule, so every loaded id can be served
IDEMPOTENCY_PATTERN = r"^[A-Za-z0-9_.:\-]{8,128}$"
SCHEMA_MAX_EVENTS = 10_000  # hard ceiling; the configured max_batch_events is the limit both enforced and published
INTERACTION_KINDS = ("rating", "purchase", "play", "view")
MAX_TS = 4_102_444_800.0  # 2100-01-01, Unix seconds

router = APIRouter(tags=["events"])


class Event(BaseModel):
    """One event: an interaction (``item_id``) or a follow (``followee_id``, kind ``follow``)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN, description="the shop's raw user id")
    item_id: str | None = Field(default=None, pattern=ID_PATTERN)
    followee_id: str | None = Field(default=None, pattern=ID_PATTERN, description="raw id of the followed user")
    kind: Literal["rating", "purchase", "play", "view", "follow"]
    value: float | None = Field(default=None, ge=-1e9, le=1e9, allow_inf_nan=False,
                                description="rating, play count or quantity (default 1)")
    ts: float | None = Field(default=None, ge=0, le=MAX_TS, allow_inf_nan=False,
                             description="Unix seconds (default: when the server received it)")

    @field_validator("item_id")
    @classmethod
    def _canonical_item(cls, v: str | None) -> str | None:
        return canonical_id(v) if v is not None else None

    @model_validator(mode="after")
    def _shape(self) -> "Event":
        if self.kind == "follow":
            if self.followee_id is None or self.item_id is not None:
                raise ValueError("a 'follow' event needs followee_id and no item_id")
            if self.followee_id == self.user_id:
                raise ValueError("a user cannot follow themselves")
        elif self.item_id is None or self.followee_id is not None:
            raise ValueError(f"a {self.kind!r} event needs item_id and no followee_id")
        return self


class EventBatch(BaseModel):
    """``{"events": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(max_length=SCHEMA_MAX_EVENTS,
                                description="at most SOCIALREC_MAX_BATCH_EVENTS events (the server's limit, also "
                                            "written into this schema's maxItems); an empty list is accepted (0 events)")


class EventsAccepted(BaseModel):
    """The answer: how many events were accepted, and whether the key was seen before."""

    accepted: int
    duplicate: bool
    status: Literal["queued"]


@dataclass
class EventsContext:
    """The durable queue, its replayer and what the route needs to fold events in."""

    queue: object
    replayer: object
    state: object
    metrics: object | None
    max_batch: int
    follower: object | None = None  # api.follower.JournalFollower: applies every worker's batches here

    @classmethod
    def open(cls, settings, state, metrics=None) -> "EventsContext":
        """Open the queue under ``settings.resolved_queue_dir()`` and start the replayer, which
        writes to the served dataset's store (:func:`graph.store.open_store`)."""
        from graph.store import open_store
        from recsys.events import EventQueue, EventReplayer

        queue = EventQueue(settings.resolved_queue_dir())

        def store_factory():
            dataset = state.dataset or settings.dataset
            if dataset is None:
                raise RuntimeError("no dataset is served yet; events wait in the queue")
            return open_store(dataset, **settings.store_kwargs())

        on_pending = metrics.events_pending.set if metrics is not None else None
        replayer = EventReplayer(queue, store_factory, interval_s=settings.replay_interval_seconds, on_pending=on_pending).start()
        return cls(queue, replayer, state, metrics, settings.max_batch_events)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()
        self.replayer.stop()
        self.queue.close()

    def health(self) -> dict:
        stats = self.queue.stats()
        return {**stats, "store": "ok" if self.replayer.last_error is None else "unreachable (events are queued)",
                "last_error": self.replayer.last_error}


def publish_batch_limit(app, max_batch: int) -> None:
    """Write the server's batch limit (``SOCIALREC_MAX_BATCH_EVENTS``) into the OpenAPI schema's
    ``EventBatch.events.maxItems``, so the contract and the check are one number."""
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            batch = schema.get("components", {}).get("schemas", {}).get("EventBatch", {})
            events = batch.get("properties", {}).get("events")
            if events is not None:
                events["maxItems"] = int(max_batch)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def get_events_context(request: Request) -> EventsContext:
    """The app's :class:`EventsContext` (503 until the app has started it)."""
    ctx = getattr(getattr(request.app.state, "socialrec", None), "events", None)
    if ctx is None:
        raise HTTPException(503, "the event queue is not available")
    return ctx


def _rows(batch: EventBatch, pseudonymise, now: float) -> list[tuple[str, dict]]:
    rows = []
    for e in batch.events:
        ts = e.ts if e.ts is not None else now
        if e.kind == "follow":
            rows.append(("follows", {"follower_id": pseudonymise(e.user_id), "followee_id": pseudonymise(e.followee_id), "ts": ts}))
        else:
            value = e.value if e.value is not None else 1.0
            rows.append(("interactions", {"user_id": pseudonymise(e.user_id), "item_id": e.item_id, "kind": e.kind,
                                          "value": value, "ts": ts}))
    return rows


def body_fingerprint(batch: EventBatch) -> str:
    """SHA-256 of the request's events as sent (before server defaults such as ``ts``)."""
    text = json.dumps(batch.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fold_in_events(service, batch: EventBatch) -> None:
    """Fold interactions into the served state, per user, so the next recommendation reflects them."""
    if service is None:
        return
    per_user: dict[str, tuple[list[str], list[float]]] = {}
    for e in batch.events:
        if e.item_id is not None:
            items, values = per_user.setdefault(e.user_id, ([], []))
            items.append(e.item_id)
            values.append(e.value if e.value is not None and math.isfinite(e.value) else 1.0)
    fold_in = getattr(service, "fold_in", None)
    note = getattr(service, "note_interactions", None)
    for raw_user, (items, values) in per_user.items():
        if callable(fold_in):
            try:
                fold_in(raw_user, items, values)
            except Exception as exc:  # noqa: BLE001 - folding is best effort; the events are durable
                log.warning("fold_in failed (%s); the event is stored and the next retrain learns it", type(exc).__name__)
        if callable(note):
            note(raw_user, items)


def event_problems(service, dataset: str | None, batch: EventBatch) -> list[str]:
    """Why events would be quarantined by the ETL: an item unknown to the served catalogue (and
    not registered with ``POST /v1/items``), or a value outside the dataset's range for its kind.

    Returns:
        One message per bad event, ``events[i]: ...``; empty when all are valid (or no model is
        loaded yet, when there is no catalogue to check against).
    """
    from etl.validate import DEFAULT_VALUE_RANGES

    ranges = dict(DEFAULT_VALUE_RANGES)
    if dataset:
        try:
            from etl.datasets import get_spec

            ranges.update(get_spec(dataset).rules.value_ranges)
        except (KeyError, ImportError):
            pass
    out = []
    for i, ev in enumerate(batch.events):
        if ev.kind == "follow":
            continue
        if ev.value is not None and ev.kind in ranges and ranges[ev.kind].outside(np.array([ev.value])).any():
            out.append(f"events[{i}]: {ev.kind} value {ev.value:g} outside {ranges[ev.kind].describe()}")
        if service is not None and not service.knows_item(ev.item_id):
            out.append(f"events[{i}]: unknown item {ev.item_id!r} (register it with POST /v1/items first)")
    return out


@router.post(
    "/v1/events",
    status_code=202,
    response_model=EventsAccepted,
    responses={409: {"content": {PROBLEM_JSON: {}}}, 413: {"content": {PROBLEM_JSON: {}}},
               401: {"content": {PROBLEM_JSON: {}}}, 403: {"content": {PROBLEM_JSON: {}}},
               503: {"content": {PROBLEM_JSON: {}}}},
)
def post_events(
    batch: EventBatch,
    ctx: Annotated[EventsContext, Depends(get_events_context)],
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_PATTERN,
                                           description="unique per batch (8-128 of A-Z a-z 0-9 _ . : -); a retry reuses it")],
) -> dict:
    """Record events durably and fold them into the user's state; 202 once journalled."""
    from recsys.events import IdempotencyConflict

    if len(batch.events) > ctx.max_batch:
        raise HTTPException(422, f"events: at most {ctx.max_batch} events per request, got {len(batch.events)}")
    if not batch.events:  # nothing to journal: accepted, trivially (issue 14 item 15)
        return {"accepted": 0, "duplicate": False, "status": "queued"}
    state = ctx.state
    pseudonymise = state.pseudonymise
    if pseudonymise is None:
        raise HTTPException(503, "pseudonymisation is not configured")
    problems = event_problems(state.service, state.dataset, batch)
    if problems:
        raise HTTPException(422, "events rejected by the ETL's rules (nothing was recorded): " + "; ".join(problems[:20]))
    rows = _rows(batch, pseudonymise, time.time())
    try:
        result = ctx.queue.enqueue(idempotency_key, rows, fingerprint=body_fingerprint(batch))
    except IdempotencyConflict as exc:
        raise HTTPException(409, str(exc)) from None
    if not result.duplicate:
        if ctx.follower is not None:  # from the journal, like every other worker (api.follower)
            ctx.follower.catch_up()
        else:
            fold_in_events(state.service, batch)
        if ctx.metrics is not None:
            ctx.metrics.events_accepted.inc(len(rows))
        ctx.replayer.kick()
    return {"accepted": result.rows, "duplicate": result.duplicate, "status": "queued"}
