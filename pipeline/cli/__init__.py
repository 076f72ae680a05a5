"""The `finsent` command line: every argparse definition and handler, and nothing else imports it.

Handlers stay thin: they turn options into values (window, values), open the database for the
command (database) and call the domain and storage code that does the work."""

from pipeline.cli.main import main

__all__ = ["main"]
