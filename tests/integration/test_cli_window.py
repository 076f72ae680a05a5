"""One window and one entity spelling in every command: `--since 6h`, `--from/--to` and `--entity pfe`
mean the same in scores, entities, articles, alerts, plot and backtest (parsing and resolution, mostly
without a database), and a bad value is one `finsent: error:` line."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine

import storage.queries
from pipeline.cli import main
from pipeline.cli.main import build_parser
from pipeline.cli.window import JUST_AFTER, Window, WindowRequest, resolve_window, window_request
from pipeline.entities import entity_name
from pipeline.errors import UserError

NEWEST = datetime(2026, 3, 2, 14, 17, tzinfo=timezone.utc)
EARLIEST = datetime(1980, 1, 1, tzinfo=timezone.utc)
FROM, TO = "2026-03-02T09:00Z", "2026-03-02"
FROM_MOMENT = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
TO_MOMENT = datetime(2026, 3, 2, tzinfo=timezone.utc)
FROM_TO_MOMENTS = (datetime(2026, 3, 1, 9, tzinfo=timezone.utc), datetime(2026, 3, 2, tzinfo=timezone.utc))

WINDOWED = {
    "series": ["series", "--entity", "pfe"],
    "entities": ["entities"],
    "articles": ["articles", "--entity", "pfe"],
    "alerts": ["alerts", "--entity", "pfe"],
    "plot": ["plot", "--entity", "pfe"],
}
"""Every command with --since/--from/--to, with its --entity where it has one."""
WITH_ENTITY = {**{name: words for name, words in WINDOWED.items() if "--entity" in words},
               "backtest": ["backtest", "--entity", "pfe", "--from", "2026-03-01", "--to", "2026-03-02"]}


def parsed(words: list[str]) -> Any:
    return build_parser().parse_args(words)


class ClockOnly:
    """An engine stand-in: resolve_window only opens a connection to read the data clock."""

    def connect(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@pytest.fixture
def clock_reads(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """The data clock answers NEWEST (a replayed database: not now); each read is counted."""
    reads: list[None] = []

    def data_clock(_connection: object) -> tuple[datetime, bool]:
        reads.append(None)
        return NEWEST, False

    monkeypatch.setattr(storage.queries, "data_clock", data_clock)
    return reads


def resolved(words: list[str]) -> Window:
    return resolve_window(ClockOnly(), window_request(parsed(words)), EARLIEST)  # type: ignore[arg-type]


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_since_6h_is_the_same_request_in_every_command(command: str) -> None:
    assert window_request(parsed([*WINDOWED[command], "--since", "6h"])) == WindowRequest(since_seconds=6 * 3600)


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_from_to_is_the_same_request_in_every_command(command: str) -> None:
    request = window_request(parsed([*WINDOWED[command], "--from", "2026-03-01T09:00+00:00", "--to", TO]))
    assert request == WindowRequest(None, *FROM_TO_MOMENTS)


def test_backtest_from_to_is_the_same_request() -> None:
    words = ["backtest", "--from", "2026-03-01T09:00+00:00", "--to", TO]
    assert window_request(parsed(words)) == WindowRequest(None, *FROM_TO_MOMENTS)


@pytest.mark.parametrize("command", sorted(WITH_ENTITY))
def test_entity_pfe_is_PFE_in_every_command(command: str) -> None:
    arguments = parsed(WITH_ENTITY[command])
    entities = arguments.entity if isinstance(arguments.entity, list) else [arguments.entity]
    assert [entity_name(entity, "MARKET") for entity in entities] == ["PFE"]


def test_entity_names_keep_the_market_entity_as_configured() -> None:
    assert entity_name("  pfe ", "Market") == "PFE"
    assert entity_name("market", "Market") == "Market"
    assert entity_name("bank*", "MARKET") == "BANK*"


def test_only_the_query_commands_have_a_default_since() -> None:
    defaults = {command: parsed(words).default_since for command, words in WINDOWED.items()}
    assert defaults == {"series": "6h", "entities": "24h", "articles": "1h", "alerts": None, "plot": None}


# --- resolution ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_since_counts_back_from_just_after_the_newest_article(command: str, clock_reads: list[None]) -> None:
    window = resolved([*WINDOWED[command], "--since", "6h"])
    end = NEWEST + JUST_AFTER
    assert (window.start, window.end, window.anchor) == (end - timedelta(hours=6), end, "ending at the newest article")
    assert len(clock_reads) == 1, "the data clock is read once"


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_from_to_is_taken_as_given_without_reading_the_clock(command: str, clock_reads: list[None]) -> None:
    window = resolved([*WINDOWED[command], "--from", FROM, "--to", "2026-03-03"])
    assert (window.start, window.end) == (FROM_MOMENT, TO_MOMENT + timedelta(days=1))
    assert clock_reads == []


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_since_with_to_counts_back_from_to(command: str, clock_reads: list[None]) -> None:
    window = resolved([*WINDOWED[command], "--since", "6h", "--to", TO])
    assert (window.start, window.end) == (TO_MOMENT - timedelta(hours=6), TO_MOMENT) and clock_reads == []


@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_from_alone_ends_at_the_data_clock(command: str, clock_reads: list[None]) -> None:
    window = resolved([*WINDOWED[command], "--from", FROM])
    assert (window.start, window.end) == (FROM_MOMENT, NEWEST + JUST_AFTER) and len(clock_reads) == 1


def test_without_options_the_queries_use_their_default_and_alerts_and_plot_everything(clock_reads: list[None]) -> None:
    end = NEWEST + JUST_AFTER
    assert resolved(WINDOWED["entities"]).bounds() == (end - timedelta(hours=24), end)
    for command in ("alerts", "plot"):
        window = resolved(WINDOWED[command])
        assert (window.start, window.end) == (None, None)
    assert len(clock_reads) == 1


def test_a_since_longer_than_the_news_starts_at_the_earliest_news(clock_reads: list[None]) -> None:
    assert resolved(["alerts", "--since", "99999999d"]).start == EARLIEST


def test_on_a_live_stream_the_window_ends_now(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(timezone.utc)
    monkeypatch.setattr(storage.queries, "data_clock", lambda _connection: (now, True))
    window = resolved(["series", "--entity", "PFE", "--since", "1h"])
    assert (window.start, window.end, window.anchor) == (now - timedelta(hours=1), now, "up to now")


def test_from_after_the_newest_article_is_refused(clock_reads: list[None]) -> None:
    with pytest.raises(UserError, match="--from 2026-03-03T00:00:00Z is not before the window's end 2026-03-02T14:17:00Z"):
        resolved(["plot", "--from", "2026-03-03"])


@pytest.mark.parametrize(("words", "message"), [
    (["--since", "6x"], "--since '6x' is not a duration: use a positive one such as 30m, 6h or 7d"),
    (["--since", "6h", "--from", FROM], "--since 6h and --from 2026-03-02T09:00Z both set the start: give one of them"),
    (["--from", "2026-03-02T09:00"], "--from '2026-03-02T09:00' has no time zone; add Z for UTC"),
    (["--to", "yesterday"], "--to 'yesterday' is not a date or time; use ISO 8601"),
    (["--from", "2026-03-02", "--to", "2026-03-01"], "--to 2026-03-01T00:00:00Z must be after --from 2026-03-02T00:00:00Z: swap them"),
])
@pytest.mark.parametrize("command", sorted(WINDOWED))
def test_the_same_mistake_is_the_same_error_in_every_command(command: str, words: list[str], message: str) -> None:
    with pytest.raises(UserError) as refused:
        window_request(parsed([*WINDOWED[command], *words]))
    assert str(refused.value).startswith(message)


# --- as the user sees it ---------------------------------------------------------------------


@pytest.mark.parametrize("words", [
    *([*words, "--since", "6x"] for words in WINDOWED.values()),
    ["backtest", "--from", "soon", "--to", "2026-03-02"],
    ["backtest", "--from", "2026-03-02"],
    ["silence", "PFE", "--for", "6x"],
    ["plot", "--top", "0"],
    ["ack", "forty-two"],
], ids=" ".join)
def test_a_bad_value_is_one_error_line_and_exit_2(words: list[str], capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENT_DATABASE_URL", "postgresql://finsent@127.0.0.1:1/finsent")  # never reached
    code: int | str | None
    try:
        code = main(words)
    except SystemExit as exit_:  # argparse's own refusals (a converter, a missing option)
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finsent: error: "), captured.err
    assert "usage:" not in captured.err and captured.out == ""


def test_help_lists_every_command_in_its_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    for group in ("run:", "query:", "operate:", "model:"):
        assert f"\n{group}\n" in shown
    query = shown.split("\nquery:\n")[1].split("\n\n")[0]
    assert [line.split()[0] for line in query.splitlines() if not line.startswith("   ")] == [
        "series", "entities", "articles", "alerts", "plot"]


# --- through a real database -----------------------------------------------------------------


@pytest.mark.integration
def test_every_command_resolves_the_same_window_on_a_database(engine: Engine, database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.test_query_cli import STORIES, write_stories

    write_stories(engine, STORIES)
    newest = max(story.published_at for story in STORIES)
    windows = {command: resolve_window(engine, window_request(parsed([*words, "--since", "6h"])), EARLIEST)
               for command, words in WINDOWED.items()}
    assert {(window.start, window.end) for window in windows.values()} == {(newest + JUST_AFTER - timedelta(hours=6),
                                                                           newest + JUST_AFTER)}
    monkeypatch.setenv("FINSENT_DATABASE_URL", database_url)
    monkeypatch.delenv("FINSENT_BUCKET_WIDTHS", raising=False)
    described = set()
    for words in (WINDOWED["series"], WINDOWED["articles"]):
        assert main([*words, "--since", "6h", "--format", "csv"]) == 0
        err = capsys.readouterr().err
        assert err.startswith("PFE: "), err
        described.add(err.split(", ", 1)[1].strip())
    assert described == {windows["series"].describe()}
