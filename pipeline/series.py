"""Per-entity, per-bucket emotion series: what a bucket holds and how the decayed index runs.

Definitions (the contract every reader of `buckets` relies on):

- Buckets use event time (`articles.published_at`) aligned to the Unix epoch:
  bucket_start = floor(epoch_seconds / width) * width, for each configured width in seconds
  (default 300 and 3600). Alignment to the epoch makes bucket boundaries the same in every
  worker and every recomputation, whatever batch an article arrived in.
- Per bucket of an entity: `article_count`; `mean_p_negative`, `mean_p_neutral`,
  `mean_p_positive` (means of the articles' probabilities); `negative_share`, the share of
  articles whose top label is negative (argmax of the three probabilities, ties going to the
  earlier of negative, neutral, positive); `mean_sentiment`, the mean of p_positive - p_negative.
- Stories, what alerting counts: `story_count`, the bucket's distinct stories, and
  `adverse_count`, those that are adverse (top label negative, or tagged with a risk event:
  risk_score >= 0.6, pipeline/scoring/risk_events.py). An article weighs 0 when the entity had
  a copy of its story (same story key, pipeline/stories.py) in the day before it, else 1/n when
  n of the entity's articles came from one source at one instant (a feed dumping old headlines
  with one timestamp counts as one story). `risk_count`: the same over articles whose risk-event
  match names the event (risk_score 1).
- Decayed running emotion index, the seed's Score_t = f(x_1..x_t): for bucket t with end
  E_t = bucket_start + width, every article i of the entity with published_at < E_t (all its
  history, not only the bucket) weighs w_i = 2 ** (-(E_t - published_at_i) / half_life_seconds);
  `decay_sum` S_t = sum w_i * sentiment_i, `decay_weight` W_t = sum w_i, and
  `emotion_index` = S_t / W_t. Incrementally, S_t = S_prev * 2 ** (-(E_t - E_prev) / half_life)
  + sum over the bucket's own articles of w_i * sentiment_i (W likewise), which is why S and W
  are stored: the next bucket continues from them instead of re-reading all history. Across
  empty buckets the index is unchanged (S and W decay by the same factor) while W, the evidence
  behind it, decays.
- Only scores of ONE model version feed a series: the worker's current model version. A new
  version starts its own decay history (it never continues another model's state); a bucket row
  holds one version, the last writer's, so run one model version at a time.

Idempotence: `update_series` recomputes, from the stored scores and the stored state just
before them, every bucket an article of the batch can change: from the article's bucket to its
influence horizon, `INFLUENCE_HALF_LIVES` half-lives plus one width later. Past that horizon an
article's weight is under 2**-60 of the least weight a bucket's own articles carry (a stored bucket
always has articles of its own), below float64 resolution (2**-52): the buckets there would be
recomputed to the same values. A replayed batch therefore rewrites identical values, a late article
costs a bounded recompute (about 2.5 days at the default 1h half-life) however old it is, and the
results equal a single pass over all articles to float precision.

Appending: where every article of the batch about an entity comes after the latest article its
latest bucket holds (`latest_published_at`, in every width, of this model version), nothing
stored changes but that bucket and the ones after it: an article's story weight depends only on
earlier articles and on the same source at the same instant, and no stored article is that late.
Then only the batch's articles are read (with their story weights, by the same query), and added
to that bucket's sums (means times counts) and continued from its decay state: a live stream's
batch costs its own size, not its entities' current hour (the market entity's holds every article
of the hour). The read is checked to hold exactly the batch's articles, or the entity is
recomputed as above. Sums rebuilt from means agree with a recomputation to float precision, not
to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import Connection

from pipeline.scoring.risk_events import NAMES_THE_EVENT, TAG_THRESHOLD
from storage.locks import lock_entities
from storage.series_store import (
    STORY_MEMORY,
    BucketRow,
    MentionColumns,
    decay_states_before,
    latest_buckets,
    scored_mentions_in,
    upsert_buckets,
)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROS = 1_000_000
# 2**-1000 is still a normal float; a bucket's own articles must never weigh less at its end,
# or the decay weight underflows to 0 and the index becomes 0/0.
_MAX_WIDTH_PER_HALF_LIFE = 1000
INFLUENCE_HALF_LIVES = 60
"""Half-lives after which an article no longer changes a later bucket's stored values (see above)."""


@dataclass(frozen=True)
class SeriesConfig:
    """Bucket widths (seconds) and the half-life (seconds) of the decayed index."""

    widths: tuple[int, ...] = (300, 3600)
    half_life_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not self.widths or any(not isinstance(w, int) or w <= 0 for w in self.widths):
            raise ValueError(f"bucket widths must be positive whole seconds, got {self.widths!r}")
        if not self.half_life_seconds > 0:
            raise ValueError(f"half-life must be a positive number of seconds, got {self.half_life_seconds!r}")
        if max(self.widths) / self.half_life_seconds > _MAX_WIDTH_PER_HALF_LIFE:
            raise ValueError(
                f"half-life {self.half_life_seconds!r}s is too short for a {max(self.widths)}s bucket: "
                f"weights would underflow; use a half-life of at least {max(self.widths) / _MAX_WIDTH_PER_HALF_LIFE}s"
            )


@dataclass
class DecayState:
    """The decayed sums at the end of a stored bucket, to continue the index from."""

    bucket_end: datetime
    decay_sum: float
    decay_weight: float

    @staticmethod
    def after(row: BucketRow) -> DecayState:
        """The state at the end of a stored bucket."""
        return DecayState(row.bucket_start + timedelta(seconds=row.width_seconds), row.decay_sum, row.decay_weight)


@dataclass(frozen=True)
class ScoredMention:
    """One scored article about an entity: its event time, its three probabilities, its risk-event
    score and its weight as a story (storage/series_store.py: 0 for a copy, 1/n in a dump of n)."""

    published_at: datetime
    p_negative: float
    p_neutral: float
    p_positive: float
    risk_score: float = 0.0
    story_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.published_at.utcoffset() is None:
            raise ValueError(f"published_at {self.published_at!r} has no time zone; buckets need absolute times")


def epoch_micros(moment: datetime) -> int:
    """Whole microseconds since the Unix epoch; integers keep bucket boundaries exact."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def bucket_start(moment: datetime, width: int) -> datetime:
    """Start of the epoch-aligned bucket of `width` seconds that holds `moment` (UTC)."""
    return EPOCH + timedelta(microseconds=(epoch_micros(moment) // (width * _MICROS)) * width * _MICROS)


def compute_buckets(
    mentions: Sequence[ScoredMention],
    width: int,
    half_life_seconds: float,
    previous: DecayState | None,
    *,
    entity: str,
    model_version: str,
    into: BucketRow | None = None,
) -> list[BucketRow]:
    """One row per non-empty bucket of `mentions`, oldest first, continuing the index from `previous`.

    `mentions` must hold every article of the entity from the first bucket onwards, and `previous`
    the state of the last bucket before them (None: no earlier history); or every article after
    those of `into`, the stored first bucket they join (see bucket_rows).
    """
    columns = MentionColumns(
        np.array([epoch_micros(m.published_at) for m in mentions], dtype=np.int64),
        np.array([(m.p_negative, m.p_neutral, m.p_positive) for m in mentions], dtype=np.float64).reshape(-1, 3),
        np.array([m.risk_score for m in mentions], dtype=np.float64),
        np.array([m.story_weight for m in mentions], dtype=np.float64),
    )
    return bucket_rows(columns, width, half_life_seconds, previous, entity=entity, model_version=model_version, into=into)


def bucket_rows(
    columns: MentionColumns,
    width: int,
    half_life_seconds: float,
    previous: DecayState | None,
    *,
    entity: str,
    model_version: str,
    into: BucketRow | None = None,
) -> list[BucketRow]:
    """compute_buckets over mentions held as columns (what the database read returns), in any order.

    `into`: the stored row of the first bucket, whose articles all come before these (see
    "Appending" in the module docstring); the first row then holds both, and the index continues
    from it (`previous` is unused).
    """
    if not len(columns):
        return []
    order = np.argsort(columns.micros, kind="stable")
    micros, probabilities = columns.micros[order], columns.probabilities[order]
    risk, story_weights = columns.risk[order], columns.story_weight[order]

    width_micros = width * _MICROS
    bucket_ids = micros // width_micros
    firsts = np.flatnonzero(np.r_[True, bucket_ids[1:] != bucket_ids[:-1]])
    counts = np.diff(np.r_[firsts, len(micros)])
    ends = (bucket_ids[firsts] + 1) * width_micros
    latest = micros[np.r_[firsts[1:], len(micros)] - 1]
    first_start = EPOCH + timedelta(microseconds=int(ends[0]) - width_micros)
    if into is not None:
        previous = _continued_from(into, first_start, width, int(micros[0]))
    elif previous is not None and previous.bucket_end > first_start:
        raise ValueError(
            f"decay state ending {previous.bucket_end.isoformat()} overlaps the first bucket, starting "
            f"{first_start.isoformat()}: pass the state of the last bucket before the mentions"
        )

    sentiment = probabilities[:, 2] - probabilities[:, 0]
    weights = np.exp2(-((np.repeat(ends, counts) - micros) / _MICROS) / half_life_seconds)
    probability_sums = np.add.reduceat(probabilities, firsts, axis=0)
    negative = np.argmax(probabilities, axis=1) == 0
    negative_counts = np.add.reduceat(negative.astype(np.int64), firsts)
    story_counts = np.add.reduceat(story_weights, firsts)
    adverse_counts = np.add.reduceat(story_weights * (negative | (risk >= TAG_THRESHOLD)), firsts)
    risk_counts = np.add.reduceat(story_weights * (risk >= NAMES_THE_EVENT), firsts)
    sentiment_sums = np.add.reduceat(sentiment, firsts)
    weighted_sums = np.add.reduceat(weights * sentiment, firsts)
    weight_sums = np.add.reduceat(weights, firsts)
    if into is not None:  # the first bucket's stored articles, as sums
        stored = into.article_count
        counts[0] += stored
        probability_sums[0] += np.array([into.mean_p_negative, into.mean_p_neutral, into.mean_p_positive]) * stored
        negative_counts[0] += round(into.negative_share * stored)
        sentiment_sums[0] += into.mean_sentiment * stored
        story_counts[0] += into.story_count
        adverse_counts[0] += into.adverse_count
        risk_counts[0] += into.risk_count

    rows: list[BucketRow] = []
    decay_sum, decay_weight = (previous.decay_sum, previous.decay_weight) if previous else (0.0, 0.0)
    previous_end = epoch_micros(previous.bucket_end) if previous else None
    for k, end in enumerate(ends.tolist()):
        if previous_end is not None:
            factor = float(np.exp2(-((end - previous_end) / _MICROS) / half_life_seconds))
            decay_sum, decay_weight = decay_sum * factor, decay_weight * factor
        decay_sum += float(weighted_sums[k])
        decay_weight += float(weight_sums[k])
        previous_end = end
        count = int(counts[k])
        rows.append(
            BucketRow(
                entity=entity,
                width_seconds=width,
                bucket_start=EPOCH + timedelta(microseconds=end - width_micros),
                model_version=model_version,
                article_count=count,
                mean_p_negative=float(probability_sums[k, 0]) / count,
                mean_p_neutral=float(probability_sums[k, 1]) / count,
                mean_p_positive=float(probability_sums[k, 2]) / count,
                negative_share=int(negative_counts[k]) / count,
                mean_sentiment=float(sentiment_sums[k]) / count,
                emotion_index=decay_sum / decay_weight,
                decay_sum=decay_sum,
                decay_weight=decay_weight,
                story_count=float(story_counts[k]),
                adverse_count=float(adverse_counts[k]),
                risk_count=float(risk_counts[k]),
                latest_published_at=EPOCH + timedelta(microseconds=int(latest[k])),
            )
        )
    return rows


def _continued_from(into: BucketRow, first_start: datetime, width: int, first_micros: int) -> DecayState:
    """The decay state to continue from when the first bucket is `into`, after checking it is."""
    if into.width_seconds != width or into.bucket_start != first_start:
        raise ValueError(f"bucket {into.bucket_start.isoformat()} ({into.width_seconds}s) is not the first bucket "
                         f"of the mentions, {first_start.isoformat()} ({width}s)")
    if into.latest_published_at is None or epoch_micros(into.latest_published_at) >= first_micros:
        raise ValueError(f"bucket {into.bucket_start.isoformat()} holds articles at or after the first mention: "
                         "only later articles can be added to a stored bucket")
    return DecayState.after(into)


def recompute_spans(times: Iterable[datetime], width: int, half_life_seconds: float) -> list[tuple[datetime, datetime]]:
    """The [start, end) spans of whole buckets that articles at `times` can change, merged.

    Each article changes its own bucket and every later one up to its influence horizon (or, if
    longer, the day in which it makes later copies of its story count 0); nothing beyond that (see
    the module docstring). Overlapping or touching spans merge into one, so one recompute
    continues across them.
    """
    reach = max(timedelta(seconds=INFLUENCE_HALF_LIVES * half_life_seconds), STORY_MEMORY) + timedelta(seconds=width)
    step = timedelta(seconds=width)
    spans: list[tuple[datetime, datetime]] = []
    for moment in sorted(times):
        start = bucket_start(moment, width)
        end = bucket_start(_capped_sum(moment, reach), width) + step
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


_LATEST_REACHABLE = datetime(9999, 1, 1, tzinfo=timezone.utc)
"""Spans end here at the latest: a bucket end past it would overflow datetime."""


def _capped_sum(moment: datetime, delta: timedelta) -> datetime:
    try:
        return min(moment + delta, _LATEST_REACHABLE)
    except OverflowError:
        return _LATEST_REACHABLE


def merged_ranges(spans: Sequence[tuple[str, int, datetime, datetime]]) -> list[tuple[str, datetime, datetime]]:
    """Per entity, the union of its spans over every width as disjoint (entity, since, until) ranges.

    The widths' spans of one entity overlap almost entirely (the 5-minute span of a live article lies
    inside its hour's span), so reading each range once and slicing it per span reads each article
    once instead of once per width. Bounds stay bucket-aligned, so every instant lies whole in one range.
    """
    merged: list[tuple[str, datetime, datetime]] = []
    for entity, _, start, end in sorted(spans, key=lambda span: (span[0], span[2], span[3])):
        if merged and merged[-1][0] == entity and start <= merged[-1][2]:
            merged[-1] = (entity, merged[-1][1], max(merged[-1][2], end))
        else:
            merged.append((entity, start, end))
    return merged


def update_series(
    connection: Connection, touched: Mapping[str, Iterable[datetime]], model_version: str, config: SeriesConfig
) -> int:
    """Bring every bucket the batch's articles can change up to date, per entity and width.

    `touched` maps each entity of the batch to the event times of the batch's articles about it.
    Runs inside the caller's transaction, after the batch's articles, mentions and scores were
    written; locks all touched entities first (in one shared order), so concurrent workers
    serialise per entity. Returns the number of bucket rows inserted or changed.

    Cost: where an entity's batch articles all come after its latest bucket's articles (a live
    stream), only they are read and added ("Appending" above); otherwise the entity's articles are
    re-read from the start of the earliest touched bucket (a late one's up to its influence horizon).
    """
    if not touched:
        return 0
    times = {entity: list(moments) for entity, moments in touched.items()}
    for entity, moments in times.items():
        for moment in moments:
            if moment.utcoffset() is None:
                raise ValueError(f"touched time of {entity!r} ({moment!r}) has no time zone")
    lock_entities(connection, times)
    tails = latest_buckets(connection, sorted(times), config.widths)
    firsts = {entity: min(moments) for entity, moments in sorted(times.items())}
    appending = {entity: first for entity, first in firsts.items() if _appends(tails, entity, first, config.widths, model_version)}
    rows: list[BucketRow] = []
    recompute = {entity: moments for entity, moments in times.items() if entity not in appending}
    ranges = [(entity, since, _LATEST_REACHABLE) for entity, since in appending.items()]
    for entity, columns in zip(appending, scored_mentions_in(connection, ranges, model_version), strict=True):
        if len(columns) != len(times[entity]):  # scored articles the batch does not know of: re-read instead
            recompute[entity] = times[entity]
            continue
        for width in config.widths:
            rows += _appended_rows(tails[(entity, width)], columns, width, config.half_life_seconds)
    return upsert_buckets(connection, rows + _recomputed_rows(connection, recompute, model_version, config))


def _appends(tails: Mapping[tuple[str, int], BucketRow], entity: str, since: datetime, widths: Sequence[int],
             model_version: str) -> bool:
    """Whether the entity's articles from `since` on can be added to its stored buckets unread:
    in every width its latest bucket is this model's and holds only earlier articles."""
    for width in widths:
        tail = tails.get((entity, width))
        if tail is None or tail.model_version != model_version or tail.latest_published_at is None \
                or tail.latest_published_at >= since:
            return False
    return True


def _appended_rows(tail: BucketRow, columns: MentionColumns, width: int, half_life_seconds: float) -> list[BucketRow]:
    """The buckets of `columns`, all later than the articles of `tail`: the first joins `tail` if it
    falls in its bucket, else the index continues from `tail`'s state."""
    first = EPOCH + timedelta(microseconds=int(columns.micros.min()))
    joins = bucket_start(first, width) == tail.bucket_start
    return bucket_rows(columns, width, half_life_seconds, None if joins else DecayState.after(tail), entity=tail.entity,
                       model_version=tail.model_version, into=tail if joins else None)


def _recomputed_rows(connection: Connection, times: Mapping[str, list[datetime]], model_version: str,
                     config: SeriesConfig) -> list[BucketRow]:
    """Every bucket the articles at `times` can change, recomputed from the stored scores and the state before them."""
    if not times:
        return []
    spans = [
        (entity, width, start, end)
        for entity, moments in sorted(times.items())
        for width in config.widths
        for start, end in recompute_spans(moments, width, config.half_life_seconds)
    ]
    ranges = merged_ranges(spans)
    read: dict[str, list[tuple[datetime, datetime, MentionColumns]]] = {}
    for (entity, since, until), columns in zip(ranges, scored_mentions_in(connection, ranges, model_version), strict=True):
        read.setdefault(entity, []).append((since, until, columns))
    states = decay_states_before(connection, [(entity, width, start) for entity, width, start, _ in spans], model_version)
    rows: list[BucketRow] = []
    for entity, width, start, end in spans:
        covering = next(columns for since, until, columns in read[entity] if since <= start and end <= until)
        state = states.get((entity, width, start))
        rows += bucket_rows(
            covering.between(epoch_micros(start), epoch_micros(end)),
            width,
            config.half_life_seconds,
            DecayState(*state) if state else None,
            entity=entity,
            model_version=model_version,
        )
    return rows
