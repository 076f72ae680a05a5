"""One settings object, read from `FINSENT_*` environment variables and an optional TOML file.

Precedence: environment variable > TOML file (`FINSENT_CONFIG`, keys are the variable names
without the prefix, lower-case) > documented default. Every value a command uses is checked when
it starts (its SECTIONS), so a typo fails with one line naming the variable and the expected form,
never deep inside a worker.

Each setting is one line of `Settings`: its type, section, default as typed, parser and meaning.
Why not pydantic-settings (pydantic is installed through transformers, pydantic-settings is not):
the parts that make this module are the ones it would need custom code for anyway: errors that
name the variable or the TOML key they came from without echoing a secret, `5m`-style durations,
values printed back as typed, and sections checked per command with the rest failing only when
read. Plain parsers keep that in one place, with no extra dependency.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from consumers.schema import TimeWindow
from pipeline.api.auth import parse_api_tokens
from pipeline.durations import duration_text, milliseconds_text, parse_duration_seconds, parse_milliseconds
from pipeline.errors import ConfigError
from pipeline.redaction import (
    SECRET_MASK,
    Secret,
    redacted_database_url,
    redacted_secret_url,
    redacted_webhook_url,
)
from pipeline.scoring.model_choice import MODEL_NAMES
from storage.connection import default_data_dir

ENV_PREFIX = "FINSENT_"
CONFIG_FILE_VARIABLE = "FINSENT_CONFIG"

_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


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


def _durations(example: str) -> Callable[[str], tuple[int, ...]]:
    """A parser of comma-separated durations, sorted and without repeats; `example` shows the form."""

    def parse(text: str) -> tuple[int, ...]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ValueError(f"expected a comma-separated list of durations such as {example}")
        return tuple(sorted({parse_duration_seconds(part) for part in parts}))

    return parse


_bucket_widths = _durations("5m,1h")
_horizons = _durations("1h,6h,1d,3d")


def _optional_bucket_widths(text: str) -> tuple[int, ...]:
    return _bucket_widths(text) if text.strip() else ()


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


def _model(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("expected fast, accurate, auto or a model directory")
    return value.lower() if value.lower() in MODEL_NAMES else str(Path(value).expanduser())


def _precision(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "fp32", "bf16"):
        raise ValueError("expected auto, fp32 or bf16")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a positive number such as 0.25") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number such as 0.25")
    return value


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _optional_text(text: str) -> str:
    return text.strip()


def _optional_url(text: str) -> str:
    text = text.strip()
    if text and not re.match(r"^https?://[^\s/]+", text):
        raise ValueError("expected an http:// or https:// URL, or leave it empty to turn the channel off")
    return text


def _email_list(text: str) -> tuple[str, ...]:
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    for address in addresses:
        if not re.match(r"^[^@\s]+@[^@\s]+$", address):
            raise ValueError(f"{address!r} is not an e-mail address; expected addresses such as risk@example.com, comma-separated")
    return addresses


def _optional_port(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("expected a TCP port between 1 and 65535 (e.g. 9108), or leave it empty for no metrics endpoint")
    return int(text)


def _utc_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("expected an ISO 8601 time with a zone such as 1980-01-01T00:00:00Z") from None
    if moment.utcoffset() is None:
        raise ValueError("expected an ISO 8601 time with a zone such as 1980-01-01T00:00:00Z (add Z)")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("expected a time between the years 1 and 9999 in UTC") from None


def _bind_host(text: str) -> str:
    value = text.strip()
    if not re.match(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*|[A-Za-z0-9.-]+)$", value):
        raise ValueError("expected an address to listen on such as 127.0.0.1 (this host only), 0.0.0.0 (every interface) or ::")
    return value.strip("[]")


def _port(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError("expected a TCP port between 1 and 65535 such as 8080")
    return int(value)


def _api_tokens(text: str) -> str:
    """Checked here (one line naming the entry, never the token); the API parses it again from the Secret."""
    parse_api_tokens(text)
    return text.strip()


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    for position, origin in enumerate(origins, start=1):
        if origin != "*" and not re.match(r"^https?://[^/\s?#@]+$", origin):
            raise ValueError(f"origin {position} ({origin!r}) is not scheme://host[:port]: "
                             "expected origins such as https://dash.example.com, comma-separated, or *")
    return origins


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return value


@dataclass(frozen=True)
class SettingSpec:
    section: str
    """The part of finsent it configures (SECTIONS); a command checks only the sections it uses."""
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    """A credential or a value carrying one: Settings holds it as a Secret, and no listing, error or log shows it."""
    redact: Callable[[str], str] | None = None
    """How a set value may be shown with its credentials hidden (a URL); without it a secret shows as <secret>."""

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.field.upper()

    def typed(self, value: Any) -> str:
        """The parsed value as one would type it in the variable (5m, 1h,6h, true, empty), secrets hidden."""
        if self.secret or self.redact:
            return self.shown(value)
        if self.parse in _DURATION_PARSERS:
            return duration_text(value)
        if self.parse is parse_milliseconds:
            return milliseconds_text(value)
        if self.parse in _DURATION_LIST_PARSERS:
            return ",".join(duration_text(item) for item in value)
        return _plain_text(value)

    def shown(self, value: Any) -> str:
        """The value as `finsent config`, error messages and reprs may print it: secrets never in clear."""
        text = value.reveal() if isinstance(value, Secret) else "" if value is None else str(value)
        if not text or not (self.secret or self.redact):
            return text
        return self.redact(text) if self.redact else SECRET_MASK


def _plain_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return ",".join(_plain_text(item) for item in value)
    return str(value)


_DURATION_PARSERS: tuple[Callable[[str], Any], ...] = (parse_duration_seconds,)
_DURATION_LIST_PARSERS: tuple[Callable[[str], Any], ...] = (_bucket_widths, _horizons, _optional_bucket_widths)

def setting(section: str, default: str, parse: Callable[[str], Any], help: str, *, secret: bool = False,
            redact: Callable[[str], str] | None = None) -> Any:
    """A Settings field with its spec (the field name is filled in from the class)."""
    return dataclasses.field(metadata={"spec": SettingSpec(section, "", default, parse, help, secret, redact)})


SECTIONS: tuple[str, ...] = (
    "kafka", "intake", "database", "model", "series", "service", "detection", "delivery", "channels", "api",
)
"""The parts of finsent the settings configure, in the order `finsent config` lists them."""



@dataclass(frozen=True)
class Settings:
    """Every setting, one line each: its section, default, parser and meaning (SETTING_SPECS is read from here)."""

    # kafka
    kafka_bootstrap: str = setting("kafka", "localhost:9092", _bootstrap, "Kafka bootstrap servers, comma-separated host:port")
    topic_news: str = setting("kafka", "news", _topic, "topic the news articles arrive on")
    topic_dead_letter: str = setting("kafka", "news.dlq", _topic, "topic rejected messages go to, with the reason in headers")
    topic_alerts: str = setting("kafka", "alerts", _topic, "topic alert notifications are published on")
    topic_partitions: int = setting("kafka", "4", _positive_int, "partitions for topics finsent creates (workers scale up to this)")
    consumer_group: str = setting("kafka", "finsent-worker", _non_empty, "Kafka consumer group of the scoring workers")
    kafka_session_timeout_ms: int = setting("kafka", "10s", parse_milliseconds, "consumer session timeout (group joins take about half of it)")
    kafka_heartbeat_interval_ms: int = setting("kafka", "3s", parse_milliseconds, "consumer heartbeat interval, under a third of the session timeout")
    kafka_connect_timeout_ms: int = setting("kafka", "30s", parse_milliseconds, "how long to wait for the broker at start before giving up")
    # intake
    batch_size: int = setting("intake", "256", _positive_int, "most messages written in one database transaction")
    batch_tokens: int = setting("intake", "32768", _positive_int, "most estimated tokens (message bytes / 4) in one batch, so that a batch of long articles costs the model about what one of headlines does")
    batch_max_wait_ms: int = setting("intake", "500ms", parse_milliseconds, "how long a batch may fill when the worker runs one batch at a time; with overlapped stages (the default) a batch goes as soon as a lane of the model is free and grows while every lane is busy")
    max_message_bytes: int = setting("intake", "1048576", _positive_int, "messages larger than this are dead-lettered as oversized")
    dead_letter_max_bytes: int = setting("intake", "1000000", _positive_int, "largest dead letter (key, value and headers); a longer original is cut to fit, its size and sha256 kept in headers (stay under the topic's max.message.bytes)")
    max_future_skew: int = setting("intake", "5m", parse_duration_seconds, "articles dated further than this past the wall clock are dead-lettered as bad_timestamp (a wrong producer clock or zone)")
    earliest_published_at: datetime = setting("intake", "1980-01-01T00:00:00Z", _utc_moment, "articles dated before this are dead-lettered as bad_timestamp (placeholder dates such as 1970-01-01); lower it to backfill older archives")
    # database
    database_url: Secret = setting("database", "", _database_url, "PostgreSQL URL; empty starts the embedded PostgreSQL under the data dir",
        secret=True, redact=redacted_database_url)
    database_connect_timeout_ms: int = setting("database", "30s", parse_milliseconds, "how long to wait for PostgreSQL at start before giving up")
    data_dir: Path = setting("database", "", _path, "where the embedded PostgreSQL keeps its data (default: the user data dir)")
    # model
    model: str = setting("model", "auto", _model, "fast (MiniLM, shipped), accurate (mpnet; run `finsent model install` once), auto (accurate where installed and bf16 is native: CUDA, AMX or AVX512-BF16 CPUs; else fast) or a local model directory")
    model_path: Path | None = setting("model", "", _optional_path, "older name for FINSENT_MODEL=<directory>: a local finsent or Hugging Face model dir")
    model_device: str = setting("model", "auto", _device, "auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps")
    model_labels: tuple[str, ...] = setting("model", "", _label_list, "label names of a Hugging Face model in output order, when its config does not say (e.g. positive,negative,neutral)")
    model_quantize: str = setting("model", "none", _quantize, "none, or int8 for dynamic int8 quantization on the CPU")
    model_precision: str = setting("model", "auto", _precision, "auto (bf16 on CUDA and on CPUs with AMX or AVX512-BF16, else fp32), fp32 or bf16")
    torch_threads: int = setting("model", "0", _non_negative_int, "CPU threads for the model; 0 uses every core")
    model_lanes: int = setting("model", "0", _non_negative_int, "batches the model scores at once, each on its share of the CPU threads; 0: 2 on a CPU with 2 or more threads, 1 on a GPU")
    # series
    bucket_widths: tuple[int, ...] = setting("series", "5m,1h", _bucket_widths, "bucket widths of the per-entity emotion series")
    emotion_half_life: int = setting("series", "1h", parse_duration_seconds, "half-life of the decayed emotion index")
    entities_file: Path | None = setting("series", "", _optional_path, "CSV of ticker,name,aliases (aliases separated by |); empty uses the shipped list")
    market_entity: str = setting("series", "MARKET", _non_empty, "entity every article also counts towards (market-wide series)")
    # service
    log_level: str = setting("service", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR")
    metrics_port: int | None = setting("service", "", _optional_port, "port of the Prometheus /metrics endpoint of finsent worker and finsent scheduler; empty: none")
    metrics_host: str = setting("service", "127.0.0.1", _bind_host, "address the /metrics endpoint listens on: 127.0.0.1 keeps it on this host; 0.0.0.0 for scrapers and health checks on other hosts (containers)")
    # detection
    alert_interval: int = setting("detection", "1m", parse_duration_seconds, "how often the scheduler runs a detection pass")
    alert_widths: tuple[int, ...] = setting("detection", "", _optional_bucket_widths, "bucket widths detection judges, each one of FINSENT_BUCKET_WIDTHS (empty: the smallest)")
    alert_lateness: int = setting("detection", "2m", parse_duration_seconds, "how long after its end a bucket may still receive late articles before it is judged")
    alert_idle_close: int = setting("detection", "10m", parse_duration_seconds, "with no article ingested for this long, buckets up to the wall clock count as closed")
    alert_horizons: tuple[int, ...] = setting("detection", "1h,6h,1d,3d", _horizons, "windows over which an entity's adverse stories are counted, each a multiple of the judged bucket width")
    alert_trailing: int = setting("detection", "28d", parse_duration_seconds, "trailing event-time window of an entity's expected rate of adverse stories (whole hours)")
    alert_prior_weight: int = setting("detection", "7d", parse_duration_seconds, "days of history the market-wide prior counts as, against an entity's own history")
    alert_false_alarms_per_year: float = setting("detection", "1", _positive_float, "alarm budget: expected false alarms per entity-year under the count model; sets the tail-probability threshold")
    alert_min_stories: float = setting("detection", "3", _positive_float, "least distinct adverse stories within a horizon for an alert")
    alert_resolve_buckets: int = setting("detection", "3", _positive_int, "consecutive quiet buckets that resolve a firing alert")
    alert_repeat_interval: int = setting("detection", "4h", parse_duration_seconds, "a firing alert is notified again after this long (unless acknowledged)")
    # delivery
    silence_max: int = setting("delivery", "30d", parse_duration_seconds, "longest `finsent silence --for`: a forgotten silence hides alerts for at most this long")
    alert_routes: str = setting("delivery", "", _optional_text, "CHANNEL:ENTITY-GLOB:MIN-SEVERITY routes separated by ';' (empty: every channel, every alert); checked by the commands that deliver")
    delivery_max_attempts: int = setting("delivery", "8", _positive_int, "attempts per delivery before it is marked failed")
    delivery_backoff: int = setting("delivery", "5s", parse_duration_seconds, "first retry delay; doubles each attempt, with jitter")
    delivery_backoff_max: int = setting("delivery", "15m", parse_duration_seconds, "longest retry delay")
    delivery_timeout: int = setting("delivery", "10s", parse_duration_seconds, "timeout of one delivery attempt")
    # channels
    alert_webhook_url: str = setting("channels", "", _optional_url, "JSON webhook URL; empty turns the channel off",
        redact=redacted_webhook_url)
    alert_webhook_secret: Secret = setting("channels", "", _optional_text, "HMAC-SHA256 key for the webhook's X-Finsent-Signature header",
        secret=True)
    alert_slack_webhook_url: Secret = setting("channels", "", _optional_url, "Slack-compatible incoming-webhook URL; empty turns the channel off",
        secret=True, redact=redacted_secret_url)
    alert_smtp_host: str = setting("channels", "", _optional_text, "SMTP server for e-mail alerts; empty turns the channel off")
    alert_smtp_port: int = setting("channels", "587", _positive_int, "SMTP port")
    alert_smtp_starttls: bool = setting("channels", "true", _boolean, "upgrade the SMTP connection with STARTTLS")
    alert_smtp_user: str = setting("channels", "", _optional_text, "SMTP login user; empty skips login")
    alert_smtp_password: Secret = setting("channels", "", _optional_text, "SMTP login password", secret=True)
    alert_email_from: str = setting("channels", "finsent@localhost", _non_empty, "sender address of alert e-mails")
    alert_email_to: tuple[str, ...] = setting("channels", "", _email_list, "recipients of alert e-mails, comma-separated")
    alert_kafka: bool = setting("channels", "true", _boolean, "publish alerts as JSON on the alerts topic")
    alertmanager_url: Secret = setting("channels", "", _optional_url, "Alertmanager base URL (alerts go to its /api/v2/alerts); empty turns the channel off",
        secret=True, redact=redacted_secret_url)
    alertmanager_resend: int = setting("channels", "1m", parse_duration_seconds, "how often a firing alert is posted to Alertmanager again; each post lasts 4 times this")
    # api
    api_tokens: Secret = setting("api", "", _api_tokens, "tokens of `finsent serve`: comma-separated read:TOKEN and write:TOKEN pairs (write implies read); empty: no authentication, allowed only on a loopback host",
        secret=True)
    api_host: str = setting("api", "127.0.0.1", _bind_host, "address `finsent serve` listens on: 127.0.0.1 keeps it on this host; 0.0.0.0 (every interface) needs FINSENT_API_TOKENS")
    api_port: int = setting("api", "8080", _port, "port `finsent serve` listens on")
    api_cors_origins: tuple[str, ...] = setting("api", "", _origins, "browser origins allowed to call the API from other sites, comma-separated (e.g. https://dash.example.com); empty: CORS off")

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if type(value) is _Unchecked:
            raise value.error  # a section this command did not check, used after all
        return value

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, *, sections: Iterable[str] | None = None) -> Settings:
        """Read the TOML file named by FINSENT_CONFIG (if any), then the environment on top.

        `sections`: the SECTIONS the caller uses (default: all). Only their values are checked at
        load; a bad value elsewhere fails only if it is read, so a typo in an alert channel never
        stops `finsent scores`."""
        environ = os.environ if environ is None else environ
        raw: dict[str, tuple[str, str]] = {}
        config_file = environ.get(CONFIG_FILE_VARIABLE, "").strip()
        if config_file:
            for key, value in _read_toml(Path(config_file).expanduser()).items():
                raw[key] = (value, f"{key} in {config_file}")
        for spec in SETTING_SPECS:
            if spec.env_name in environ:
                raw[spec.field] = (environ[spec.env_name], spec.env_name)
        return cls.from_raw(raw, sections)

    @classmethod
    def from_raw(cls, raw: Mapping[str, tuple[str, str]], sections: Iterable[str] | None = None) -> Settings:
        checked = _checked_sections(sections)
        values: dict[str, Any] = {}
        for spec in SETTING_SPECS:
            text, origin = raw.get(spec.field, (spec.default, f"default of {spec.env_name}"))
            if spec.field == "data_dir" and not text:
                text = str(default_data_dir())
            try:
                value = spec.parse(text)
            except ValueError as error:
                invalid = ConfigError(f"{origin}={spec.shown(text)!r} is invalid: {error}")
                if spec.section in checked:
                    raise invalid from None
                values[spec.field] = _Unchecked(invalid)
                continue
            values[spec.field] = Secret(value) if spec.secret else value
        settings = cls(**values)
        settings._check_consistency(checked)
        return settings

    @property
    def judged_widths(self) -> tuple[int, ...]:
        """The widths detection judges: FINSENT_ALERT_WIDTHS, or else the smallest bucket width."""
        return self.alert_widths or self.bucket_widths[:1]

    @property
    def time_window(self) -> TimeWindow:
        """The event times a message may carry (FINSENT_MAX_FUTURE_SKEW, FINSENT_EARLIEST_PUBLISHED_AT)."""
        return TimeWindow(timedelta(seconds=self.max_future_skew), self.earliest_published_at)

    def replace(self, **changes: Any) -> Settings:
        values = {spec.field: object.__getattribute__(self, spec.field) for spec in SETTING_SPECS}
        return type(self)(**{**values, **changes})

    def __repr__(self) -> str:
        """Every field, secrets as <secret> and URLs with their credentials hidden: safe to log."""
        shown = (
            f"{spec.field}=<invalid>" if type(object.__getattribute__(self, spec.field)) is _Unchecked
            else f"{spec.field}={spec.shown(getattr(self, spec.field))!r}" if spec.secret or spec.redact
            else f"{spec.field}={getattr(self, spec.field)!r}"
            for spec in SETTING_SPECS
        )
        return f"Settings({', '.join(shown)})"

    def _check_consistency(self, sections: frozenset[str]) -> None:
        """The rules between values, each run when the section it belongs to is checked."""
        if "kafka" in sections:
            if self.kafka_heartbeat_interval_ms * 3 > self.kafka_session_timeout_ms:
                raise ConfigError(
                    f"FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS={self.kafka_heartbeat_interval_ms} is too long for "
                    f"FINSENT_KAFKA_SESSION_TIMEOUT_MS={self.kafka_session_timeout_ms}: keep it at most a third of it"
                )
            if len({self.topic_news, self.topic_dead_letter, self.topic_alerts}) < 3:
                raise ConfigError(
                    "FINSENT_TOPIC_NEWS, FINSENT_TOPIC_DEAD_LETTER and FINSENT_TOPIC_ALERTS must be three different topics"
                )
        if "model" in sections:
            if self.model_quantize == "int8" and self.model_device not in ("auto", "cpu"):
                raise ConfigError("FINSENT_MODEL_QUANTIZE=int8 runs on the CPU only; set FINSENT_MODEL_DEVICE=cpu or drop int8")
            if self.model_quantize == "int8" and self.model == "accurate":
                raise ConfigError("FINSENT_MODEL_QUANTIZE=int8 ruins the accurate model (measured in bench/scoring.py): "
                                  "drop int8 (bf16 is faster where the CPU has AMX or AVX512-BF16) or set FINSENT_MODEL=fast")
            if self.model_quantize == "int8" and self.model_precision == "bf16":
                raise ConfigError("FINSENT_MODEL_QUANTIZE=int8 keeps fp32 activations: drop FINSENT_MODEL_PRECISION=bf16 or int8")
            if self.model_labels and len(self.model_labels) != 3:
                raise ConfigError(f"FINSENT_MODEL_LABELS={','.join(self.model_labels)!r} must name exactly three labels")
            _check_exists("model_path", self.model_path)
            if self.model not in MODEL_NAMES:
                _check_exists("model", Path(self.model))
            if self.model_path is not None and self.model != "auto":
                raise ConfigError(f"FINSENT_MODEL={self.model} and FINSENT_MODEL_PATH={str(self.model_path)!r} are both set: keep one")
        if "series" in sections:
            _check_exists("entities_file", self.entities_file)
        if "detection" in sections:
            self._check_detection()
        if "delivery" in sections and self.delivery_backoff > self.delivery_backoff_max:
            raise ConfigError(
                f"FINSENT_DELIVERY_BACKOFF={self.delivery_backoff}s is longer than FINSENT_DELIVERY_BACKOFF_MAX="
                f"{self.delivery_backoff_max}s: lower the first or raise the second"
            )
        if "channels" in sections:
            if self.alert_smtp_host and not self.alert_email_to:
                raise ConfigError(
                    f"FINSENT_ALERT_SMTP_HOST={self.alert_smtp_host!r} is set but FINSENT_ALERT_EMAIL_TO is empty: "
                    "name the recipients or unset the host"
                )
            if self.alert_smtp_user and not self.alert_smtp_password:
                raise ConfigError("FINSENT_ALERT_SMTP_USER is set but FINSENT_ALERT_SMTP_PASSWORD is empty: give both or neither")

    def _check_detection(self) -> None:
        missing = [width for width in self.alert_widths if width not in self.bucket_widths]
        if missing:
            raise ConfigError(
                f"FINSENT_ALERT_WIDTHS has {', '.join(f'{w}s' for w in missing)}, which FINSENT_BUCKET_WIDTHS "
                f"({', '.join(f'{w}s' for w in self.bucket_widths)}) does not keep: judge only kept widths or add them"
            )
        for width in self.judged_widths:
            uneven = [h for h in self.alert_horizons if h % width]
            if uneven:
                raise ConfigError(
                    f"FINSENT_ALERT_HORIZONS has {', '.join(f'{h}s' for h in uneven)}, not a multiple of the judged "
                    f"bucket width {width}s: use multiples of it (e.g. 1h,6h,1d,3d)"
                )
        if self.alert_trailing % 3600:
            raise ConfigError(f"FINSENT_ALERT_TRAILING={self.alert_trailing}s must be whole hours, e.g. 28d or 672h")


SETTING_SPECS: tuple[SettingSpec, ...] = tuple(
    dataclasses.replace(spec.metadata["spec"], field=spec.name) for spec in dataclasses.fields(Settings)
)
"""One spec per setting, in the order of the class (the order `finsent config` lists them in)."""


@dataclass(frozen=True)
class _Unchecked:
    """The place of a value that failed to parse in a section the command did not check: reading it raises."""

    error: ConfigError


def _checked_sections(sections: Iterable[str] | None) -> frozenset[str]:
    if sections is None:
        return frozenset(SECTIONS)
    chosen = frozenset(sections)
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown settings sections {sorted(unknown)}; expected some of {', '.join(SECTIONS)}")
    return chosen


def _check_exists(field: str, path: Path | None) -> None:
    if path is not None and not path.exists():
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}={str(path)!r} does not exist: fix the path or unset it")


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
