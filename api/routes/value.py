"""Customer-value routes: ``GET /v1/users/{user_id}/value``, ``GET /v1/segments[/{segment_id}]``.

Thin by design: each route pseudonymises/validates, asks the loaded
:class:`recsys.value.pipeline.CustomerValueResult`, and shapes the answer. Two dependencies
supply the state and can be overridden with ``app.dependency_overrides``:

* :func:`get_value_state` — the loaded result. It reads ``request.app.state.socialrec.value``
  (the app's :class:`api.app.AppState`) when there is one, and answers 503 otherwise.
* :func:`get_pseudonymise` — raw shop id -> pseudonym: ``app.state.socialrec.pseudonymise``
  when set, else an :class:`etl.pseudonymise.Pseudonymiser` keyed from :class:`api.settings.Settings`.

Errors are ``application/problem+json`` (RFC 9457): 404 for an unknown user or segment, 503 when
no result is loaded.
"""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from api.problems import PROBLEM_JSON, problem

from etl.validate import ID_PATTERN  # noqa: E402 - the ETL's id rule, so every loaded id can be served

router = APIRouter(tags=["customer value"])


def get_value_state(request: Request):
    """The loaded :class:`~recsys.value.pipeline.CustomerValueResult`.

    Placeholder wiring: the app's ``AppState.value`` when present; otherwise 503. The app may
    override this dependency with its own loader.

    Raises:
        HTTPException: 503 when no customer-value result is loaded.
    """
    state = getattr(request.app.state, "socialrec", None)
    value = getattr(state, "value", None) if state is not None else None
    if value is None:
        raise HTTPException(503, "customer value has not been computed; run `socialrec value --dataset ...`")
    return value


def get_pseudonymise(request: Request) -> Callable[[str], str]:
    """Raw user id -> pseudonym, exactly as the ETL computes it."""
    state = getattr(request.app.state, "socialrec", None)
    fn = getattr(state, "pseudonymise", None) if state is not None else None
    if callable(fn):
        return fn
    from api.settings import Settings
    from etl.pseudonymise import Pseudonymiser

    return Pseudonymiser(Settings().resolved_pseudonym_key()).user


ValueState = Annotated[object, Depends(get_value_state)]
Pseudonymise = Annotated[Callable[[str], str], Depends(get_pseudonymise)]
_ERRORS = {404: {"content": {PROBLEM_JSON: {}}}, 503: {"content": {PROBLEM_JSON: {}}}}


@router.get("/v1/users/{user_id:path}/value", responses=_ERRORS)
def user_value(
    result: ValueState,
    pseudonymise: Pseudonymise,
    user_id: Annotated[str, Path(pattern=ID_PATTERN, description="the shop's raw user id")],
):
    """CLV, influence, influence-weighted value, segment and explanation of one user.

    ``clv`` and ``weighted_value`` are in ``value_unit`` over the CLV horizon; ``influence`` is
    excess followers adopting per action beyond the timestamp-shuffle null (shrunk);
    ``influence_detected`` / ``influence_reason`` say whether influence passed its tests and so
    whether ``weighted_value`` differs from ``clv``; ``explanation`` lists the top SHAP
    contributions (log-odds) to the high-value-next-period prediction.
    """
    record = result.user(pseudonymise(user_id))
    if record is None:
        return problem(404, f"unknown user {user_id!r}")
    return {
        "user_id": user_id,
        "clv": record["clv"],
        "influence": record["influence"],
        "weighted_value": record["weighted_value"],
        "segment": record["segment_id"],
        "explanation": record["explanation"],
        "value_unit": result.value_unit,
        "pagerank": record["pagerank"],
        "rfm_segment": record["rfm_segment"],
        "churn_risk": record["churn_risk"],
        "p_alive": record["p_alive"],
        "propensity": record["propensity"],
        "influence_interval": ([record["influence_low"], record["influence_high"]]
                               if "influence_low" in record else None),
        **_influence_flags(result),
    }


def _influence_flags(result) -> dict:
    """``influence_detected`` and its reason, from the value job's influence test.

    ``weighted_value`` equals ``clv`` whenever ``influence_detected`` is false: influence weighs
    value only after it beat the timestamp-shuffle null, the reverse-edge placebo (directed
    graphs) and the out-of-time check (:func:`recsys.value.influence.assess_influence`).
    """
    infl = result.metrics.get("influence", {}) or {}
    detected = bool(infl.get("detected", False))
    reason = infl.get("reason") or "no influence test in this value result (recompute with `socialrec value`)"
    return {"influence_detected": detected, "influence_reason": reason}


@router.get("/v1/segments", responses=_ERRORS)
def segments(result: ValueState):
    """Every segment's profile, with the modularity of the follow-graph partition (null, with
    ``community_structure`` saying why, when no community structure was found)."""
    seg_metrics = result.metrics.get("segments", {})
    profiles = [result.segment(s) for s in result.segments["segment_id"]]
    keys = ("segment_id", "size", "total_value", "mean_value", "churn_risk_share", "share_of_value",
            "share_active_13w", "median_recency_weeks", "suggested_action")
    return {
        "value_unit": result.value_unit,
        "modularity": seg_metrics.get("modularity"),
        "community_structure": seg_metrics.get("community_structure", "found"),
        "segments": [{k: p[k] for k in keys if k in p} for p in profiles],
    }


@router.get("/v1/segments/{segment_id}", responses=_ERRORS)
def segment(result: ValueState, segment_id: Annotated[str, Path(pattern=ID_PATTERN)]):
    """One segment: size, total and mean value, top categories, top influencers, churn-risk share."""
    profile = result.segment(segment_id)
    if profile is None:
        return problem(404, f"unknown segment {segment_id!r}")
    return {"value_unit": result.value_unit, **profile}
