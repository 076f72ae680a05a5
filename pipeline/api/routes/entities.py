"""GET /api/v1/entities (most active or most negative) and /api/v1/entities/{entity}/series."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from pipeline.api.context import ApiContext, api_context
from pipeline.api.errors import error_responses, not_found, unprocessable
from pipeline.api.guards import READ
from pipeline.api.params import (
    JUST_AFTER,
    EntityInPath,
    Paging,
    Since,
    Until,
    anchored,
    data_end,
    paging,
    width_seconds,
    window_request,
)
from pipeline.api.schemas import EntityItem, EntityPage, Series, SeriesPoint
from pipeline.api.values import moment, number
from pipeline.durations import duration_text
from pipeline.entities import entity_name
from pipeline.moments import moment_text

ENTITIES_SPAN = timedelta(days=7)
SERIES_SPAN = timedelta(days=2)
MAX_FILLED_BUCKETS = 20_000
"""A filled series is one item per bucket whether or not it has news: a bound on the answer's size."""

Context = Annotated[ApiContext, Depends(api_context)]


def entity_routes(bucket_widths: tuple[int, ...]) -> APIRouter:
    """The routes, with `?width=` listing the stored widths (FINSENT_BUCKET_WIDTHS) in the spec."""
    router = APIRouter(tags=["entities"], dependencies=READ, responses=error_responses(401, 422))
    labels = [duration_text(width) for width in bucket_widths]

    @router.get("/entities", response_model=EntityPage)
    def list_entities(
        context: Context,
        page: Annotated[Paging, Depends(paging)],
        order: Annotated[Literal["active", "negative"], Query(description="active: most articles first; "
                                                                          "negative: highest negative share first")] = "active",
        since: Since = None,
        until: Until = None,
    ) -> EntityPage:
        """Entities with articles in the window (default: the 7 days up to the newest article)."""
        from storage.api_queries import latest_emotion_indexes
        from storage.queries import entity_summary

        start, end = anchored(window_request(since, until), lambda: data_end(context.engine), ENTITIES_SPAN)
        frame = entity_summary(context.engine, start, end)
        if order == "negative":
            frame = frame.sort_values(["negative_share", "articles", "entity"], ascending=[False, False, True],
                                      na_position="last", kind="stable")
        shown = frame.iloc[page.offset: page.offset + page.limit]
        indexes = latest_emotion_indexes(context.engine, list(shown["entity"]), min(context.bucket_widths), end)
        items = [
            EntityItem(entity=row.entity, articles=int(row.articles), negative_share=number(row.negative_share),
                       mean_sentiment=number(row.mean_sentiment), emotion_index=number(indexes.get(row.entity)),
                       last_published_at=moment(row.last_published_at), firing_alerts=int(row.firing_alerts))
            for row in shown.itertuples(index=False)
        ]
        return EntityPage(items=items, limit=page.limit, offset=page.offset, total=len(frame))

    @router.get("/entities/{entity}/series", response_model=Series, responses=error_responses(404))
    def entity_series(
        context: Context,
        entity: EntityInPath,
        since: Since = None,
        until: Until = None,
        fill: Annotated[bool, Query(description="true: every bucket of the window, empty ones with article_count 0, "
                                                "null means and the emotion index carried")] = False,
        # A default rather than Annotated: the annotation is a string here and could not see `labels`.
        width: str | None = Query(None, max_length=16, json_schema_extra={"enum": labels},
                                  description="bucket width, one of FINSENT_BUCKET_WIDTHS (default: the smallest)"),
    ) -> Series:
        """The entity's buckets oldest first (default window: the 2 days up to its newest article)."""
        from storage.queries import entity_last_published, filled_series, stored_buckets

        name = entity_name(entity, context.market_entity)
        seconds = width_seconds(width, context.bucket_widths)
        request = window_request(since, until)
        newest = entity_last_published(context.engine, name)
        if newest is None:
            not_found(f"no articles about {name!r}: GET /api/v1/entities lists the entities with data")
        after_newest = newest + JUST_AFTER
        start, end = anchored(request, lambda: after_newest, SERIES_SPAN)
        if fill:
            _check_filled_size(start, end, seconds)
            frame = filled_series(context.engine, name, seconds, start, end)
        else:
            frame = stored_buckets(context.engine, name, seconds, start, end)
        items = [
            SeriesPoint(bucket_start=row.bucket_start.to_pydatetime(), article_count=int(row.article_count),
                        negative_share=number(row.negative_share), mean_sentiment=number(row.mean_sentiment),
                        emotion_index=number(row.emotion_index), mean_p_negative=number(row.mean_p_negative),
                        mean_p_neutral=number(row.mean_p_neutral), mean_p_positive=number(row.mean_p_positive))
            for row in frame.itertuples(index=False)
        ]
        return Series(entity=name, width_seconds=seconds, items=items)

    return router


def _check_filled_size(start: datetime, end: datetime, seconds: int) -> None:
    buckets = (end - start) // timedelta(seconds=seconds)
    if buckets > MAX_FILLED_BUCKETS:
        unprocessable(f"since={moment_text(start)} to until={moment_text(end)} holds {buckets} buckets of {duration_text(seconds)}, "
                      f"more than {MAX_FILLED_BUCKETS} with fill=true: narrow the window, choose a wider width or drop fill")
