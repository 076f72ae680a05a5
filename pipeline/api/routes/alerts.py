"""GET /api/v1/alerts, GET /api/v1/alerts/{id} and POST /api/v1/alerts/{id}/ack."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from pipeline.api.context import ApiContext, api_context
from pipeline.api.errors import error_responses, not_found
from pipeline.api.guards import READ, WRITE
from pipeline.api.params import EntityFilter, Paging, RowId, paging
from pipeline.api.schemas import AlertItem, AlertPage
from pipeline.api.values import number
from pipeline.entities import entity_name

router = APIRouter(tags=["alerts"], responses=error_responses(401, 422))
Context = Annotated[ApiContext, Depends(api_context)]


@router.get("/alerts", response_model=AlertPage, dependencies=READ)
def list_alerts(
    context: Context,
    page: Annotated[Paging, Depends(paging)],
    state: Annotated[Literal["firing", "resolved"] | None, Query(description="only firing or only resolved alerts")] = None,
    entity: EntityFilter = None,
    acknowledged: Annotated[bool | None, Query(description="true: only acknowledged alerts; false: only the others")] = None,
) -> AlertPage:
    """Alerts, newest first (by the bucket that fired them)."""
    from storage.api_queries import alert_page

    name = None if entity is None else entity_name(entity, context.market_entity)
    found = alert_page(context.engine, state=state, entity=name, acknowledged=acknowledged, limit=page.limit, offset=page.offset)
    return AlertPage(items=[alert_item(row) for row in found.rows], limit=page.limit, offset=page.offset, total=found.total)


@router.get("/alerts/{alert_id}", response_model=AlertItem, dependencies=READ, responses=error_responses(404))
def get_alert(context: Context, alert_id: RowId) -> AlertItem:
    return alert_item(_stored(context, alert_id))


@router.post("/alerts/{alert_id}/ack", response_model=AlertItem, dependencies=WRITE, responses=error_responses(403, 404))
def acknowledge(context: Context, alert_id: RowId) -> AlertItem:
    """Acknowledge the alert: no repeated notifications while it fires. Acking again keeps the first time."""
    from storage.alerts import acknowledge_alert

    if acknowledge_alert(context.engine, alert_id, context.clock()) is None:
        not_found(f"no alert with id {alert_id}: GET /api/v1/alerts lists them")
    return alert_item(_stored(context, alert_id))


def _stored(context: ApiContext, alert_id: int) -> dict[str, Any]:
    from storage.api_queries import alert_row

    row = alert_row(context.engine, alert_id)
    if row is None:
        not_found(f"no alert with id {alert_id}: GET /api/v1/alerts lists them")
    return row


def alert_item(row: dict[str, Any]) -> AlertItem:
    """A stored alert in the API's names (acked_at is acknowledged_at; the horizon comes from its evidence)."""
    evidence = row["evidence"] or {}
    horizon = evidence.get("horizon")
    return AlertItem(
        id=row["id"], entity=row["entity"], rule=row["rule"], severity=row["severity"], state=row["state"],
        width_seconds=row["width_seconds"], bucket_start=row["bucket_start"], last_bucket_start=row["last_bucket_start"],
        fired_at=row["fired_at"], resolved_at=row["resolved_at"],
        acknowledged_at=row["acked_at"], silenced=bool(row["silenced"]), value=number(row["value"]), baseline=number(row["baseline"]),
        horizon=None if horizon is None else str(horizon), evidence=evidence,
    )
