"""The rooms and the one direction of imports, checked by walking every module's imports (lazy ones too).

cli -> demo -> worker/scheduler -> domain -> config -> consumers/storage. storage/ holds every
SQL statement; consumers/ and storage/ know nothing of pipeline/; the settings become components
only in the composition roots.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "consumers", "storage")
SQL_TYPES = {"Engine", "Connection"}
"""What code outside storage/ may take from sqlalchemy: handles to pass on, and its exceptions."""
SQL_TEXT = re.compile(r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|VIEW))", re.I)
SETTINGS_READERS = {
    "pipeline/worker.py", "pipeline/worker_processes.py", "pipeline/alerting/scheduler.py", "pipeline/demo.py",
    "pipeline/database.py", "pipeline/kafka_settings.py", "pipeline/api/app.py",
}
"""The composition roots (worker, a group of worker processes, scheduler, the demo that runs both, the HTTP
API's app) and the two settings adapters (database, Kafka options); the CLI wing reads settings too."""


def modules(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in relative:
                yield relative, ast.parse(path.read_text(encoding="utf-8"), relative)


def imported(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every import statement, at the top or inside a function."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def test_consumers_and_storage_know_nothing_of_pipeline() -> None:
    upward = [(path, module) for path, tree in modules("consumers", "storage")
              for module, _ in imported(tree) if module.split(".")[0] == "pipeline"]
    assert upward == []


def test_no_sql_outside_storage() -> None:
    built = []
    for path, tree in modules("pipeline", "consumers"):
        for module, names in imported(tree):
            if module == "sqlalchemy" and set(names) - SQL_TYPES:
                built.append((path, module, sorted(set(names) - SQL_TYPES)))
            elif module.startswith("sqlalchemy") and module not in ("sqlalchemy", "sqlalchemy.exc", "sqlalchemy.orm"):
                built.append((path, module, names))
            elif module == "sqlalchemy.orm" and set(names) != {"Session"}:
                built.append((path, module, names))
            elif module == "sqlalchemy" and not names:
                built.append((path, "import sqlalchemy", []))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and SQL_TEXT.search(node.value)):
                built.append((path, "SQL text", [node.value[:60]]))
    assert built == []


@pytest.mark.parametrize("leaf", ["pipeline/config.py", "pipeline/metrics.py"])
def test_config_and_metrics_import_no_component(leaf: str) -> None:
    """They sit under every component, so they import only leaf helpers, consumers and storage."""
    tree = ast.parse((ROOT / leaf).read_text(encoding="utf-8"))
    # model_choice is a leaf too: the model names and where they are, no torch (its base lookup is lazy);
    # api.auth is the grammar of FINSENT_API_TOKENS, standard library only.
    allowed = {"pipeline.errors", "pipeline.redaction", "pipeline.durations", "pipeline.scoring.model_choice",
               "pipeline.api.auth"}
    upward = [module for module, _ in imported(tree) if module.startswith("pipeline") and module not in allowed]
    assert upward == []


def test_settings_become_components_in_the_composition_roots_only() -> None:
    readers = {path for path, tree in modules("pipeline", "consumers", "storage")
               if any(module == "pipeline.config" for module, _ in imported(tree))}
    outside = sorted(path for path in readers - SETTINGS_READERS if not path.startswith("pipeline/cli/"))
    assert outside == []


def test_nothing_imports_the_cli_wing() -> None:
    importers = sorted({path for path, tree in modules("pipeline", "consumers", "storage")
                        if not path.startswith("pipeline/cli/")
                        and any(module.startswith("pipeline.cli") for module, _ in imported(tree))})
    bench = sorted({path for path, tree in modules("bench")
                    if any(module.startswith("pipeline.cli") for module, _ in imported(tree))})
    assert importers == [] and bench == []
