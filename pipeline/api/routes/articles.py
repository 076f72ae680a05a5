"""GET /api/v1/articles: stored articles with their newest scores, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from pipeline.api.context import ApiContext, api_context
from pipeline.api.errors import error_responses
from pipeline.api.guards import READ
from pipeline.api.params import EntityFilter, Paging, Since, Until, paging, window_request
from pipeline.api.schemas import ArticleItem, ArticlePage
from pipeline.api.values import number
from pipeline.entities import entity_name

router = APIRouter(tags=["articles"], dependencies=READ, responses=error_responses(401, 422))


@router.get("/articles", response_model=ArticlePage)
def list_articles(
    context: Annotated[ApiContext, Depends(api_context)],
    page: Annotated[Paging, Depends(paging)],
    entity: EntityFilter = None,
    since: Since = None,
    until: Until = None,
) -> ArticlePage:
    """Articles published in [since, until) (open where not given), about `entity` if given; scores
    are null while an article is not scored yet."""
    from storage.api_queries import article_page

    window = window_request(since, until)
    name = None if entity is None else entity_name(entity, context.market_entity)
    found = article_page(context.engine, name, window.start, window.end, page.limit, page.offset)
    items = [
        ArticleItem(id=row["id"], published_at=row["published_at"], headline=row["headline"], source=row["source"],
                    url=row["url"], entities=row["entities"], p_negative=number(row["p_negative"]),
                    p_neutral=number(row["p_neutral"]), p_positive=number(row["p_positive"]),
                    sentiment=number(row["sentiment"]), model_version=row["model_version"])
        for row in found.rows
    ]
    return ArticlePage(items=items, limit=page.limit, offset=page.offset, total=found.total)
