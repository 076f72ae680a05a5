"""`finsent plot`: the options turned into a PlotRequest for pipeline.picture, which reads and draws.

An open bound of the window (nothing given for it) is the whole stored span on that side."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.cli.database import opened_database
from pipeline.cli.values import stored_width
from pipeline.cli.window import add_window_arguments, resolve_window, window_request
from pipeline.config import Settings
from pipeline.counts import positive_int
from pipeline.entities import entity_name
from pipeline.picture import DEFAULT_TOP, TARGET_PLOT_BUCKETS, PlotRequest, check_writable, write_plot
from pipeline.tabular import clock_text


def add_plot_command(commands: Any) -> None:
    plot = commands.add_parser("plot", description="draw per-entity sentiment curves with the alerts marked, as a PNG")
    plot.add_argument("--entity", action="append", default=[], metavar="ENTITY",
                      help="plot this entity (repeat for several; default: entities with alerts, then the most active)")
    plot.add_argument("--width", help="bucket width, one of FINSENT_BUCKET_WIDTHS (default: picked from the window, "
                                      f"at most {TARGET_PLOT_BUCKETS:,} buckets, summed on read past the widest)")
    add_window_arguments(plot)
    plot.add_argument("--out", type=Path, default=Path("finsent.png"), help="PNG file to write (default finsent.png)")
    plot.add_argument("--top", type=positive_int, default=DEFAULT_TOP,
                      help=f"at most this many panels when choosing entities (default {DEFAULT_TOP})")
    plot.set_defaults(handler=run_plot)


def run_plot(settings: Settings, arguments: argparse.Namespace) -> int:
    window = window_request(arguments)
    request = PlotRequest(
        width_seconds=None if arguments.width is None else stored_width(arguments.width, settings.bucket_widths),
        market_entity=settings.market_entity,
        entities=tuple(dict.fromkeys(entity_name(entity, settings.market_entity) for entity in arguments.entity)),
        top=arguments.top,
        news_times=settings.time_window,
        stored_widths=settings.bucket_widths,
    )
    check_writable(arguments.out)
    with opened_database(settings) as engine:
        resolved = resolve_window(engine, window, settings.time_window.earliest)
        summary = write_plot(engine, replace(request, start=resolved.start, end=resolved.end), arguments.out)
    print(f"wrote {summary.out}: {len(summary.entities)} entities ({', '.join(summary.entities)}), {summary.alerts} alerts, "
          f"{clock_text(summary.start)} to {clock_text(summary.end)} UTC, {summary.resolution.text()}")
    if summary.left_out is not None:
        print(summary.left_out.note(), file=sys.stderr)
    return 0
