"""Campaign routes (role ``admin``): create, read, report, export assignments.

* ``POST /v1/campaigns`` — assign a two-arm campaign by salted hash over an audience (raw user
  ids, a stored segment, or the top-K of the written-back ``uplift`` score) and store it; 201.
* ``GET /v1/campaigns/{id}`` — the campaign document (arms, sizes, salt, launch, balance table).
* ``GET /v1/campaigns/{id}/report`` — lift with 95 % CIs, CUPED, SRM, incremental revenue and
  ROI (:func:`recsys.campaigns.analysis.analyze_campaign`); ``?format=html`` for the HTML report.
* ``GET /v1/campaigns/{id}/assignments?format=csv`` — ``user_id,arm,stratum`` (pseudonymised ids).

The dataset is the ``dataset`` query/body field, else the served one. Errors are problem+json:
404 unknown campaign, 409 a campaign of that name exists, 422 bad input (nothing is stored).
Routes are plain ``def``: the store and the statistics are blocking work for the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.problems import PROBLEM_JSON
from etl.validate import ID_PATTERN

#: dataset names the stores accept (a known name, or csv:/parquet: exports); never "." or ".."
DATASET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,299}$"
router = APIRouter(tags=["campaigns"])
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MAX_AUDIENCE = 1_000_000
CampaignId = Annotated[str, Path(pattern=NAME_PATTERN, description="campaign id")]
_ERRORS = {404: {"content": {PROBLEM_JSON: {}}}, 409: {"content": {PROBLEM_JSON: {}}},
           422: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}}


class CampaignCreate(BaseModel):
    """A new two-arm campaign; exactly one of ``audience``, ``segment``, ``uplift_top``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="campaign id")
    dataset: str | None = Field(default=None, pattern=DATASET_PATTERN, description="default: the served dataset")
    audience: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        default=None, max_length=MAX_AUDIENCE, description="the shop's raw user ids")
    segment: str | None = Field(default=None, max_length=200)
    uplift_top: int | None = Field(default=None, ge=2, le=MAX_AUDIENCE)
    treatment_share: float = Field(default=0.5, gt=0, lt=1)
    stratify: Literal["segment"] | None = None
    salt: str | None = Field(default=None, max_length=200, description="default: the name")
    launched_at: float | None = Field(default=None, ge=0, le=4_102_444_800, description="Unix seconds; default now")
    cost_per_contact: float = Field(default=0.0, ge=0, le=1e6)
    margin: float = Field(default=1.0, gt=0, le=1)


def _dataset(request: Request, dataset: str | None) -> str:
    state = getattr(request.app.state, "socialrec", None)
    settings = request.app.state.settings
    ds = dataset or getattr(state, "dataset", None) or settings.dataset
    if not ds:
        raise HTTPException(422, "no dataset: pass 'dataset' (nothing is served yet)")
    return ds


def _store(request: Request, dataset: str):
    from graph.store import open_store

    try:
        return open_store(dataset, **request.app.state.settings.store_kwargs())
    except ValueError as exc:
        raise HTTPException(422, f"dataset {dataset!r}: {exc}") from None


def _pseudonymise(request: Request):
    state = getattr(request.app.state, "socialrec", None)
    fn = getattr(state, "pseudonymise", None)
    if callable(fn):
        return fn
    from etl.pseudonymise import Pseudonymiser

    return Pseudonymiser(request.app.state.settings.resolved_pseudonym_key()).user


@router.post("/v1/campaigns", status_code=201, responses=_ERRORS)
def create_campaign(body: CampaignCreate, request: Request) -> dict:
    """Assign and store a campaign; returns its document, arm sizes and covariate balance."""
    from recsys.campaigns.assignment import create_campaign as create, segment_audience, uplift_audience

    chosen = [x for x in (body.audience, body.segment, body.uplift_top) if x is not None]
    if len(chosen) != 1:
        raise HTTPException(422, "give exactly one of audience, segment, uplift_top")
    dataset = _dataset(request, body.dataset)
    store = _store(request, dataset)
    try:
        if store.read_campaign(body.name) is not None:
            raise HTTPException(409, f"campaign {body.name!r} already exists in {dataset!r}")
        try:
            if body.audience is not None:
                pseudo = _pseudonymise(request)
                ids = [pseudo(u) for u in body.audience]
                if len(set(ids)) != len(ids):
                    seen: set[str] = set()
                    first = next(i for i, u in enumerate(ids) if u in seen or seen.add(u))
                    raise HTTPException(422, f"audience[{first}]: user listed twice")
                known = set(store.read_table("users")["user_id"])
                missing = [i for i, u in enumerate(ids) if known and u not in known]
                if missing:
                    raise HTTPException(422, f"audience[{missing[0]}]: unknown user ({len(missing)} unknown in all)")
                source = "api:audience"
            elif body.segment is not None:
                ids, source = segment_audience(store, body.segment), f"segment:{body.segment}"
            else:
                ids, source = uplift_audience(store, body.uplift_top), f"uplift-top:{body.uplift_top}"
            out = create(store, body.name, ids, treatment_share=body.treatment_share, stratify=body.stratify,
                         salt=body.salt, launched_at=body.launched_at, source=source,
                         cost_per_contact=body.cost_per_contact, margin=body.margin)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    finally:
        store.close()
    return JSONResponse(status_code=201, content={"dataset": dataset, **out})


@router.get("/v1/campaigns/{campaign_id}", responses=_ERRORS)
def get_campaign(request: Request, campaign_id: CampaignId,
                 dataset: Annotated[str | None, Query(pattern=DATASET_PATTERN)] = None) -> dict:
    """The campaign's document."""
    ds = _dataset(request, dataset)
    store = _store(request, ds)
    try:
        doc = store.read_campaign(campaign_id)
    finally:
        store.close()
    if doc is None:
        raise HTTPException(404, f"no campaign {campaign_id!r} in {ds!r}")
    return {"dataset": ds, **doc}


@router.get("/v1/campaigns/{campaign_id}/report", responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/html": {}}}})
def campaign_report(
    request: Request,
    campaign_id: CampaignId,
    dataset: Annotated[str | None, Query(pattern=DATASET_PATTERN)] = None,
    treatment: Annotated[str | None, Query(max_length=200)] = None,
    until: Annotated[float | None, Query(ge=0, le=4_102_444_800)] = None,
    by: Annotated[str | None, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="lift per level of this column, e.g. segment")] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
):
    """Lift per outcome with 95 % CIs (difference in means and CUPED), SRM check, revenue, ROI."""
    from recsys.campaigns.analysis import analyze_campaign, write_report

    ds = _dataset(request, dataset)
    store = _store(request, ds)
    try:
        try:
            result = analyze_campaign(store, campaign_id, treatment=treatment, until=until, by=by)
        except KeyError:
            raise HTTPException(404, f"no campaign {campaign_id!r} in {ds!r}") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        doc = store.read_campaign(campaign_id)
    finally:
        store.close()
    if format == "html":
        import pathlib
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = write_report({**result, "campaign": doc}, pathlib.Path(tmp) / "report.html", f"Campaign {campaign_id} ({ds})")
            return HTMLResponse(path.read_text())
    return result


@router.get("/v1/campaigns/{campaign_id}/assignments", responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/json": {}}}})
def campaign_assignments(
    request: Request,
    campaign_id: CampaignId,
    dataset: Annotated[str | None, Query(pattern=DATASET_PATTERN)] = None,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
):
    """The assignments (pseudonymised user ids), as CSV for an e-mail tool or as JSON."""
    from recsys.campaigns.assignment import assignments_csv

    ds = _dataset(request, dataset)
    store = _store(request, ds)
    try:
        try:
            frame = store.read_assignments(campaign_id)
        except KeyError:
            raise HTTPException(404, f"no campaign {campaign_id!r} in {ds!r}") from None
    finally:
        store.close()
    if format == "json":
        cols = [c for c in ("user_id", "arm", "stratum") if c in frame.columns]
        return {"dataset": ds, "campaign": campaign_id, "assignments": frame[cols].to_dict("records")}
    return Response(assignments_csv(frame), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{campaign_id}-assignments.csv"'})
