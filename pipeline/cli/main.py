"""The `finsent` parser and dispatch. Every user mistake, a bad option value included, prints one line
`finsent: error: ...` that names the value and the fix, and exits 2."""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import NoReturn

from consumers.embedded_broker import EmbeddedBrokerError
from consumers.kafka_clients import BrokerUnavailable
from consumers.replay import ReplayFileError
from pipeline.cli.alerts import add_alert_commands
from pipeline.cli.backtest import add_backtest_command
from pipeline.cli.model import add_model_commands
from pipeline.cli.operate import add_operate_commands
from pipeline.cli.plot import add_plot_command
from pipeline.cli.queries import add_query_commands
from pipeline.cli.runs import add_run_commands
from pipeline.cli.serve import add_serve_command
from pipeline.config import Settings
from pipeline.errors import EXIT_USER_ERROR, UserError
from pipeline.interruption import interrupted_exit, terminate_as_interrupt
from pipeline.logfmt import configure_logging
from storage.migrate import SchemaOutdated

_USER_ERRORS = (UserError, BrokerUnavailable, ReplayFileError, SchemaOutdated, EmbeddedBrokerError)

COMMAND_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("run", ("worker", "scheduler", "demo", "produce", "serve")),
    ("query", ("series", "entities", "articles", "alerts", "plot")),
    ("operate", ("ack", "silence", "backtest", "db", "topics", "config")),
    ("model", ("train", "eval", "model")),
)
"""How `finsent --help` lists the commands; every command is in exactly one group."""

_QUERY = ("database", "intake", "series")
COMMAND_SECTIONS: dict[str, tuple[str, ...] | None] = {
    "worker": ("kafka", "intake", "database", "model", "series"),
    "scheduler": ("kafka", "intake", "database", "series", "detection", "delivery", "channels"),
    "demo": None, "config": None,
    "produce": ("kafka", "intake"), "topics": ("kafka", "channels"),
    "series": _QUERY, "entities": _QUERY, "articles": _QUERY, "alerts": _QUERY, "plot": _QUERY,
    "ack": ("database",), "silence": ("database", "series", "delivery"), "db": ("database",),
    "backtest": (*_QUERY, "detection"),
    "serve": ("database", "series", "delivery", "api"),
    "train": ("model", "database"), "eval": ("model", "database"), "model": ("database",),
}
"""The settings sections each command uses (None: all), checked when it starts; "service" (the log
level) always. A bad value in another section fails only if it is read, so a typo in an alert
channel never stops `finsent scores`."""


class CommandLineParser(argparse.ArgumentParser):
    """argparse that reports a mistake (a bad value, an unknown option) as finsent's one error line
    instead of a usage block; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"finsent: error: {message.removeprefix('argument ')}; "
                                   f"`{self.prog} --help` lists the options\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "handler"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        with terminate_as_interrupt():
            settings = Settings.load(sections=_sections(arguments.command))
            configure_logging(settings.log_level)
            return int(arguments.handler(settings, arguments) or 0)
    except _USER_ERRORS as error:
        print(f"finsent: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interruption:
        code, word = interrupted_exit(interruption)
        print(f"finsent: {word}", file=sys.stderr)
        return code


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="finsent",
        usage="finsent [-h] COMMAND ...",
        description="Streaming financial-news sentiment monitor.\n"
                    "Settings come from FINSENT_* variables (see `finsent config`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(prog="finsent", dest="command", metavar="COMMAND", help=argparse.SUPPRESS)  # listed by group below
    add_run_commands(commands)
    add_serve_command(commands)
    add_backtest_command(commands)
    add_alert_commands(commands)
    add_query_commands(commands)
    add_plot_command(commands)
    add_operate_commands(commands)
    add_model_commands(commands)
    parser.epilog = grouped_commands(commands.choices)
    return parser


def _sections(command: str) -> tuple[str, ...] | None:
    sections = COMMAND_SECTIONS[command]
    return None if sections is None else ("service", *sections)


def grouped_commands(parsers: Mapping[str, argparse.ArgumentParser]) -> str:
    """The commands by group, each with its one-line description, for `finsent --help` (aliases left out)."""
    parsers = {name: parser for name, parser in parsers.items() if parser.prog.rsplit(" ", 1)[-1] == name}
    grouped = [name for _, names in COMMAND_GROUPS for name in names]
    if sorted(grouped) != sorted(parsers) or set(COMMAND_SECTIONS) != set(parsers):
        raise AssertionError(f"COMMAND_GROUPS and COMMAND_SECTIONS must name every command once: {sorted(parsers)}")
    indent = 2 + max(map(len, parsers)) + 2
    width = max(shutil.get_terminal_size().columns - 2, indent + 30)
    sections = []
    for title, names in COMMAND_GROUPS:
        lines = [textwrap.fill(parsers[name].description or "", width, initial_indent=f"  {name:<{indent - 4}}  ",
                               subsequent_indent=" " * indent) for name in names]
        sections.append(f"{title}:\n" + "\n".join(lines))
    return "\n\n".join(sections) + "\n\n`finsent COMMAND --help` shows a command's options."
