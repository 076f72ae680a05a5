"""One settings object, read from `FINSENT_*` environment variables and an optional TOML file.

Precedence: environment variable > TOML file (`FINSENT_CONFIG`, keys are the variable names
without the prefix, lower-case) > documented default. Every value is checked at start so a typo
fails with a message naming the variable and the expected form, never deep inside a worker.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from pipeline.errors import ConfigError

ENV_PREFIX = "FINSENT_"
CONFIG_FILE_VARIABLE = "FINSENT_CONFIG"

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def parse_duration_seconds(text: str) -> int:
    """'5m' -> 300. Raises ValueError with the expected form."""
    match = _DURATION_PATTERN.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError("expected a positive duration such as 30s, 5m, 1h or 1d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a positive whole number") from None
    if value <= 0:
        raise ValueError("expected a positive whole number")
    return value


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-empty value")
    return text.strip()


def _topic(text: str) -> str:
    if not _TOPIC_PATTERN.match(text):
        raise ValueError("expected a Kafka topic name: 1-249 characters of letters, digits, '.', '_' or '-'")
    return text


def _bootstrap(text: str) -> str:
    servers = [part.strip() for part in text.split(",") if part.strip()]
    if not servers or any(not re.match(r"^[^\s:]+:\d{1,5}$", server) for server in servers):
        raise ValueError("expected comma-separated host:port pairs such as localhost:9092")
    return ",".join(servers)


def _database_url(text: str) -> str:
    text = text.strip()
    if text and not text.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        raise ValueError(
            "expected a PostgreSQL URL such as postgresql://user:password@host:5432/finsent, "
            "or leave it empty for the embedded PostgreSQL"
        )
    return text


def _optional_path(text: str) -> Path | None:
    return Path(text).expanduser() if text.strip() else None


def _path(text: str) -> Path:
    return Path(_non_empty(text)).expanduser()


def _device(text: str) -> str:
    value = text.strip().lower()
    if value in ("auto", "cpu", "cuda", "mps") or re.match(r"^cuda:\d+$", value):
        return value
    raise ValueError("expected auto, cpu, cuda, cuda:N or mps")


def _bucket_widths(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError("expected a comma-separated list of durations such as 5m,1h")
    widths = tuple(sorted({parse_duration_seconds(part) for part in parts}))
    return widths


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a whole number, 0 or more") from None
    if value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def _label_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _quantize(text: str) -> str:
    value = text.strip().lower()
    if value not in ("none", "int8"):
        raise ValueError("expected none or int8")
    return value


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return value


@dataclass(frozen=True)
class SettingSpec:
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.field.upper()


def _default_data_dir() -> str:
    return platformdirs.user_data_dir("finsent")


SETTING_SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("kafka_bootstrap", "localhost:9092", _bootstrap, "Kafka bootstrap servers, comma-separated host:port"),
    SettingSpec("topic_news", "news", _topic, "topic the news articles arrive on"),
    SettingSpec("topic_dead_letter", "news.dlq", _topic, "topic rejected messages go to, with the reason in headers"),
    SettingSpec("topic_alerts", "alerts", _topic, "topic alert notifications are published on"),
    SettingSpec("topic_partitions", "4", _positive_int, "partitions for topics finsent creates (workers scale up to this)"),
    SettingSpec("consumer_group", "finsent-worker", _non_empty, "Kafka consumer group of the scoring workers"),
    SettingSpec("batch_size", "256", _positive_int, "most messages written in one database transaction"),
    SettingSpec("batch_max_wait_ms", "500", _positive_int, "longest wait to fill a batch before writing what has arrived"),
    SettingSpec("kafka_session_timeout_ms", "10000", _positive_int, "consumer session timeout (group joins take about half of it)"),
    SettingSpec("kafka_heartbeat_interval_ms", "3000", _positive_int, "consumer heartbeat interval, under a third of the session timeout"),
    SettingSpec("kafka_connect_timeout_ms", "30000", _positive_int, "how long to wait for the broker at start before giving up"),
    SettingSpec("max_message_bytes", "1048576", _positive_int, "messages larger than this are dead-lettered as oversized"),
    SettingSpec("database_url", "", _database_url, "PostgreSQL URL; empty starts the embedded PostgreSQL under the data dir"),
    SettingSpec("database_connect_timeout_ms", "30000", _positive_int, "how long to wait for PostgreSQL at start before giving up"),
    SettingSpec("data_dir", "", _path, "where the embedded PostgreSQL keeps its data (default: the user data dir)"),
    SettingSpec("model_path", "", _optional_path, "local Hugging Face model dir; empty uses the shipped model"),
    SettingSpec("model_device", "auto", _device, "auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps"),
    SettingSpec("model_labels", "", _label_list, "label names of a Hugging Face model in output order, when its config does not say (e.g. positive,negative,neutral)"),
    SettingSpec("model_quantize", "none", _quantize, "none, or int8 for dynamic int8 quantization on the CPU"),
    SettingSpec("torch_threads", "0", _non_negative_int, "CPU threads for the model; 0 uses every core"),
    SettingSpec("bucket_widths", "5m,1h", _bucket_widths, "timestep widths of the per-entity emotion series"),
    SettingSpec("emotion_half_life", "1h", parse_duration_seconds, "half-life of the decayed emotion index"),
    SettingSpec("entities_file", "", _optional_path, "CSV of ticker,name,aliases (aliases separated by |); empty uses the shipped list"),
    SettingSpec("market_entity", "MARKET", _non_empty, "entity every article also counts towards (market-wide series)"),
    SettingSpec("log_level", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR"),
)


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    topic_news: str
    topic_dead_letter: str
    topic_alerts: str
    topic_partitions: int
    consumer_group: str
    batch_size: int
    batch_max_wait_ms: int
    kafka_session_timeout_ms: int
    kafka_heartbeat_interval_ms: int
    kafka_connect_timeout_ms: int
    max_message_bytes: int
    database_url: str
    database_connect_timeout_ms: int
    data_dir: Path
    model_path: Path | None
    model_device: str
    model_labels: tuple[str, ...]
    model_quantize: str
    torch_threads: int
    bucket_widths: tuple[int, ...]
    emotion_half_life: int
    entities_file: Path | None
    market_entity: str
    log_level: str

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the TOML file named by FINSENT_CONFIG (if any), then the environment on top."""
        environ = os.environ if environ is None else environ
        raw: dict[str, tuple[str, str]] = {}
        config_file = environ.get(CONFIG_FILE_VARIABLE, "").strip()
        if config_file:
            for key, value in _read_toml(Path(config_file).expanduser()).items():
                raw[key] = (value, f"{key} in {config_file}")
        for spec in SETTING_SPECS:
            if spec.env_name in environ:
                raw[spec.field] = (environ[spec.env_name], spec.env_name)
        return cls.from_raw(raw)

    @classmethod
    def from_raw(cls, raw: Mapping[str, tuple[str, str]]) -> Settings:
        values: dict[str, Any] = {}
        for spec in SETTING_SPECS:
            text, origin = raw.get(spec.field, (spec.default, f"default of {spec.env_name}"))
            if spec.field == "data_dir" and not text:
                text = _default_data_dir()
            try:
                values[spec.field] = spec.parse(text)
            except ValueError as error:
                raise ConfigError(f"{origin}={text!r} is invalid: {error}") from None
        settings = cls(**values)
        settings._check_consistency()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def _check_consistency(self) -> None:
        if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
            raise ConfigError(
                f"FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS={self.kafka_heartbeat_interval_ms} is too long for "
                f"FINSENT_KAFKA_SESSION_TIMEOUT_MS={self.kafka_session_timeout_ms}: keep it at most a third of it"
            )
        if len({self.topic_news, self.topic_dead_letter, self.topic_alerts}) < 3:
            raise ConfigError(
                "FINSENT_TOPIC_NEWS, FINSENT_TOPIC_DEAD_LETTER and FINSENT_TOPIC_ALERTS must be three different topics"
            )
        if self.model_quantize == "int8" and self.model_device not in ("auto", "cpu"):
            raise ConfigError("FINSENT_MODEL_QUANTIZE=int8 runs on the CPU only; set FINSENT_MODEL_DEVICE=cpu or drop int8")
        if self.model_labels and len(self.model_labels) != 3:
            raise ConfigError(f"FINSENT_MODEL_LABELS={','.join(self.model_labels)!r} must name exactly three labels")
        for name in ("model_path", "entities_file"):
            path = getattr(self, name)
            if path is not None and not path.exists():
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}={str(path)!r} does not exist: fix the path or unset it")


def _read_toml(path: Path) -> dict[str, str]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_FILE_VARIABLE}={str(path)!r}: file not found; fix the path or unset it") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{CONFIG_FILE_VARIABLE}={str(path)!r} is not valid TOML: {error}") from None
    known = {spec.field for spec in SETTING_SPECS}
    values: dict[str, str] = {}
    for key, value in document.items():
        if key not in known:
            raise ConfigError(
                f"unknown key {key!r} in {path}: expected one of {', '.join(sorted(known))}"
            )
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        values[key] = str(value)
    return values
