"""Cold-start routes: ``POST /v1/users`` and ``POST /v1/items`` (``INTERFACES.md``).

Thin by design: each route validates, calls one :class:`recsys.serving.RecommendationService`
method (:meth:`~recsys.serving.RecommendationService.register_user` /
:meth:`~recsys.serving.RecommendationService.register_item`) and shapes the answer. The new user
or item is served at once — ``GET /v1/users/{user_id}/recommendations`` answers with ``strategy:
cold_start_social`` (or ``cold_start_content`` / ``popular_fallback``), and
``GET /v1/items/{item_id}/similar`` works for the new item — until the next model version.

Status codes:

* ``201`` — registered; ``200`` — the same id was registered before since the served version
  was loaded (its follows/attributes or category/title are replaced: a retry is harmless);
  either way the registration is journalled durably (:mod:`recsys.events`) *before* the
  answer, replayed to the store exactly once (``User``/``Item`` nodes, ``FOLLOWS``), and
  re-applied when a hot swap or a restart loads a version that does not know it yet;
* ``409`` — the user already has training history / the item is already in the catalogue;
* ``422`` — validation (problem+json; a user following themselves is its own reason);
  ``503`` — no model version loaded, or the journal is unavailable (nothing was registered
  durably: retry).

Dependency placeholder :func:`get_coldstart_service` (alias :data:`get_service_state`) reads
``request.app.state.socialrec.service`` (the app's :class:`api.app.AppState`); the app may
override it with ``app.dependency_overrides``. Raw user ids are pseudonymised by the service with
the ETL's keyed HMAC before any lookup and never logged.
"""

from __future__ import annotations

from typing import Annotated, Union

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.problems import PROBLEM_JSON, problem

from etl.validate import ID_PATTERN, canonical_id  # noqa: E402 - the ETL's id rule, so every loaded id can be served
TEXT_PATTERN = r"^[^\x00-\x1f]*$"
MAX_FOLLOWS = 5000

router = APIRouter(tags=["cold start"])


def get_coldstart_service(request: Request):
    """The :class:`~recsys.serving.RecommendationService` of the served version.

    Placeholder wiring: ``request.app.state.socialrec.service``; 503 when none is loaded.

    Raises:
        HTTPException: 503 when no model version is loaded.
    """
    state = getattr(request.app.state, "socialrec", None)
    service = getattr(state, "service", None) if state is not None else None
    if service is None:
        raise HTTPException(503, "no model version is loaded yet; run `socialrec train`")
    return service


#: The name the cold-start brief gives the placeholder; the same function object.
get_service_state = get_coldstart_service

Service = Annotated[object, Depends(get_coldstart_service)]
UserId = Annotated[str, Field(pattern=ID_PATTERN, description="the shop's raw user id")]
AttributeValue = Union[str, int, float, bool, list[Annotated[str, Field(max_length=200)]]]


class NewUser(BaseModel):
    """``POST /v1/users`` body."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    follows: list[UserId] = Field(default_factory=list, max_length=MAX_FOLLOWS,
                                  description="raw ids of the users this user follows")
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] | None = Field(
        default=None, max_length=50,
        description='optional context; "categories": [names] (or "category") ranks those categories first '
        "while the user has no usable followee")

    @model_validator(mode="after")
    def _no_self_follow(self) -> "NewUser":
        if canonical_id(self.user_id) in {canonical_id(f) for f in self.follows}:
            raise ValueError("a user cannot follow themselves (follows contains user_id)")
        return self


class NewUserRegistered(BaseModel):
    user_id: str
    strategy: str = Field(description="the strategy recommendations for the user use now")
    known_followees: int
    unknown_followees: list[str] = Field(description="followee ids found nowhere (ignored, not an error)")
    created: bool


class NewItem(BaseModel):
    """``POST /v1/items`` body."""

    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[str, Field(pattern=ID_PATTERN), AfterValidator(canonical_id)]
    category: Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)] | None = Field(
        description="category name as in the catalogue (unknown names are kept; only text can place them)")
    title: Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)] | None = None
    brand: Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN)] | None = None
    text: Annotated[str, Field(max_length=5000, pattern=TEXT_PATTERN)] | None = None


class NewItemRegistered(BaseModel):
    item_id: str
    strategy: str | None = Field(description="cold_start_content when the item got a content vector, else null")
    category_known: bool
    category_items: int = Field(description="warm items of the category its vector averages")
    text_neighbours: int = Field(description="items nearest by title/brand/text that shaped its vector")
    created: bool


_ERRORS = {409: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}}


def _journal(request: Request, prefix: str, rows: list) -> None:
    """Journal a registration durably (before the answer); 503 when the journal is unavailable."""
    from recsys.events import registration_key

    ctx = getattr(getattr(request.app.state, "socialrec", None), "events", None)
    if ctx is None:
        raise HTTPException(503, "the event journal is not available; the registration was not recorded durably, retry")
    ctx.queue.enqueue(registration_key(prefix, rows), rows)
    ctx.replayer.kick()


@router.post("/v1/users", status_code=201, response_model=NewUserRegistered, responses={200: {"model": NewUserRegistered}, **_ERRORS})
def register_user(body: NewUser, service: Service, response: Response, request: Request):
    """Register a new user with the people they follow; recommendations use their followees at once."""

    from recsys.events import USER_REGISTRATION_PREFIX, user_registration_rows
    from recsys.serving import UserExistsError

    try:
        out = service.register_user(body.user_id, body.follows, body.attributes)
    except UserExistsError:
        return problem(409, "the user already has history in the served model; send interactions to POST /v1/events")
    unknown = set(out["unknown_followees"])
    pseudo = service.pseudonymise
    rows = user_registration_rows(pseudo(body.user_id), [pseudo(f) for f in body.follows if f not in unknown],
                                  body.attributes, ts=None)
    _journal(request, USER_REGISTRATION_PREFIX, rows)
    if not out["created"]:
        response.status_code = 200
    return out


@router.post("/v1/items", status_code=201, response_model=NewItemRegistered, responses={200: {"model": NewItemRegistered}, **_ERRORS})
def register_item(body: NewItem, service: Service, response: Response, request: Request):
    """Register a new item with its category (and title/brand/text); it is placed by its content neighbours."""
    from recsys.events import ITEM_REGISTRATION_PREFIX, item_registration_rows
    from recsys.serving import ItemExistsError

    text = " ".join(t for t in (body.brand, body.text) if t) or None
    try:
        out = service.register_item(body.item_id, body.category, body.title, text)
    except ItemExistsError:
        return problem(409, f"item {body.item_id!r} is already in the served catalogue")
    _journal(request, ITEM_REGISTRATION_PREFIX, item_registration_rows(body.item_id, body.category, body.title, text))
    if not out["created"]:
        response.status_code = 200
    return out
