"""The API's bodies as pydantic models: FastAPI validates every answer against them and /openapi.json
publishes them, so the spec the tests fuzz is the one the code keeps.

Times are UTC and serialise as ISO 8601 with a Z (`Moment`): PostgreSQL hands them back in the
session's zone, which need not be UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


Moment = Annotated[datetime, AfterValidator(_utc)]
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
"""Entity names and globs: any text but control characters (PostgreSQL text cannot hold NUL)."""


class ErrorBody(BaseModel):
    detail: str = Field(description="one line naming the value and the fix")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]


class PageFields(BaseModel):
    limit: int
    offset: int
    total: int = Field(description="how many items match in all, over every page")


class EntityItem(BaseModel):
    entity: str
    articles: int
    negative_share: float | None = Field(description="share of scored articles whose top label is negative")
    mean_sentiment: float | None
    emotion_index: float | None = Field(description="latest stored decayed emotion index of the smallest bucket width")
    last_published_at: Moment | None
    firing_alerts: int


class EntityPage(PageFields):
    items: list[EntityItem]


class SeriesPoint(BaseModel):
    bucket_start: Moment
    article_count: int
    negative_share: float | None
    mean_sentiment: float | None
    emotion_index: float | None
    mean_p_negative: float | None
    mean_p_neutral: float | None
    mean_p_positive: float | None


class Series(BaseModel):
    entity: str
    width_seconds: int
    items: list[SeriesPoint] = Field(description="oldest first")


class ArticleItem(BaseModel):
    id: str
    published_at: Moment
    headline: str
    source: str | None
    url: str | None
    entities: list[str]
    p_negative: float | None
    p_neutral: float | None
    p_positive: float | None
    sentiment: float | None
    model_version: str | None = Field(description="the model that gave the newest score; null while unscored")


class ArticlePage(PageFields):
    items: list[ArticleItem]


class AlertItem(BaseModel):
    id: int
    entity: str
    rule: str
    severity: str
    state: Literal["firing", "resolved"]
    width_seconds: int
    bucket_start: Moment = Field(description="event time: the start of the bucket the alert fired in")
    last_bucket_start: Moment | None = Field(description="event time: the start of the latest bucket judged")
    fired_at: Moment = Field(description="wall clock: when the detection pass stored the alert")
    resolved_at: Moment | None
    acknowledged_at: Moment | None
    silenced: bool
    value: float | None
    baseline: float | None
    horizon: str | None = Field(description="the span the adverse stories were counted over, e.g. 6h")
    evidence: dict[str, Any] = Field(description="the stored evidence: first, peak and latest moments with their top articles")


class AlertPage(PageFields):
    items: list[AlertItem]


class SilenceItem(BaseModel):
    id: int
    entity_glob: str
    ends_at: Moment
    reason: str
    created_at: Moment
    active: bool


class SilencePage(PageFields):
    items: list[SilenceItem]


class SilenceCreated(SilenceItem):
    matched_entities: list[str] = Field(description="the entities with stored articles that the glob covers")


class SilenceRequest(BaseModel):
    """Give `duration` or `ends_at`, not both."""

    model_config = ConfigDict(extra="forbid")

    entity: str = Field(min_length=1, max_length=256, pattern=NAME_PATTERN, description="entity or glob, e.g. PFE or BANK*")
    duration: str | None = Field(default=None, max_length=32, description="how long, e.g. 2h; at most FINSENT_SILENCE_MAX")
    ends_at: str | None = Field(default=None, max_length=64, description="when it ends, ISO 8601 with a zone")
    reason: str = Field(default="", max_length=1000, pattern=r"^[^\x00]*$", description="why, for the record")
