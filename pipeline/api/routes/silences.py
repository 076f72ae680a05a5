"""GET and POST /api/v1/silences, DELETE /api/v1/silences/{id}: alerts of matching entities are
recorded but not notified while a silence lasts (the same silences as `finsent silence`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response, status

from pipeline.api.context import ApiContext, api_context
from pipeline.api.errors import error_responses, not_found, unprocessable
from pipeline.api.guards import READ, WRITE
from pipeline.api.params import Paging, RowId, paging
from pipeline.api.schemas import SilenceCreated, SilenceItem, SilencePage, SilenceRequest
from pipeline.durations import duration_text, parse_duration_seconds
from pipeline.entities import entity_name
from pipeline.moments import moment_text, parse_moment
from storage.alerts import StoredSilence

router = APIRouter(tags=["silences"], responses=error_responses(401, 422))
Context = Annotated[ApiContext, Depends(api_context)]
_EXAMPLE = {"entity": "PFE", "duration": "2h", "reason": "known recall story"}


@router.get("/silences", response_model=SilencePage, dependencies=READ)
def list_silences(context: Context, page: Annotated[Paging, Depends(paging)]) -> SilencePage:
    """Silences, newest first; ended ones too, with active false."""
    from storage.api_queries import silence_page

    rows, total = silence_page(context.engine, page.limit, page.offset)
    now = context.clock()
    return SilencePage(items=[_item(row, now) for row in rows], limit=page.limit, offset=page.offset, total=total)


@router.post("/silences", response_model=SilenceCreated, status_code=status.HTTP_201_CREATED, dependencies=WRITE,
             responses=error_responses(403))
def create_silence(context: Context, request: Annotated[SilenceRequest, Body(examples=[_EXAMPLE])]) -> SilenceCreated:
    """Silence an entity or glob (BANK* covers every entity starting with BANK) for `duration` or until `ends_at`."""
    from pipeline.alerting.alert_store import is_silenced
    from storage.alerts import create_silence as store_silence

    glob = entity_name(request.entity, context.market_entity)
    if not glob:
        unprocessable("body field entity is blank: give an entity or glob such as PFE or BANK*")
    now = context.clock()
    ends_at = _ends_at(request, now, context.silence_max_seconds)
    stored, known = store_silence(context.engine, glob, ends_at, request.reason)
    matched = [entity for entity in known if is_silenced(entity, [glob])]
    return SilenceCreated(**_item(stored, now).model_dump(), matched_entities=matched)


@router.delete("/silences/{silence_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, dependencies=WRITE,
               responses={204: {"description": "the silence has ended"}, **error_responses(403, 404)})
def end_silence(context: Context, silence_id: RowId) -> Response:
    """End the silence now (one already over stays as it was)."""
    from storage.alerts import end_silence as store_end

    if not store_end(context.engine, silence_id, context.clock()):
        not_found(f"no silence with id {silence_id}: GET /api/v1/silences lists them")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _ends_at(request: SilenceRequest, now: datetime, silence_max: int) -> datetime:
    """When the silence ends: `duration` after now or `ends_at`, in the future and at most FINSENT_SILENCE_MAX away."""
    longest = f"FINSENT_SILENCE_MAX={duration_text(silence_max)}"
    if (request.duration is None) == (request.ends_at is None):
        unprocessable("give either body field duration (e.g. \"2h\") or ends_at (ISO 8601), not both and not neither")
    if request.duration is not None:
        try:
            seconds = parse_duration_seconds(request.duration)
        except ValueError:
            unprocessable(f"body field duration={request.duration!r} is not a duration: use a positive one such as 30m, 2h or 7d")
        if seconds > silence_max:
            unprocessable(f"body field duration={request.duration} is longer than {longest}: silence for at most that long, "
                          "and renew it if need be")
        try:
            return now + timedelta(seconds=seconds)
        except OverflowError:
            unprocessable(f"body field duration={request.duration} ends after the year 9999: silence for less")
    assert request.ends_at is not None
    try:
        ends_at = parse_moment(request.ends_at)
    except ValueError as error:
        unprocessable(f"body field ends_at: {error}")
    except OverflowError:
        unprocessable(f"body field ends_at={request.ends_at!r} is outside the years 1 to 9999 in UTC")
    if ends_at <= now:
        unprocessable(f"body field ends_at={moment_text(ends_at)} is not in the future: give a later time")
    if ends_at - now > timedelta(seconds=silence_max):
        unprocessable(f"body field ends_at={moment_text(ends_at)} is further away than {longest}: give an earlier time")
    return ends_at


def _item(silence: StoredSilence, now: datetime) -> SilenceItem:
    return SilenceItem(id=silence.id, entity_glob=silence.entity_glob, ends_at=silence.ends_at, reason=silence.reason,
                       created_at=silence.created_at, active=silence.ends_at > now)
