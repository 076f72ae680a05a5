"""Settings: defaults, environment over TOML over default, and one-line errors naming the variable and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import SECTIONS, SETTING_SPECS, Settings, SettingSpec
from pipeline.durations import parse_duration_seconds
from pipeline.errors import ConfigError


def test_defaults_from_empty_environment() -> None:
    settings = Settings.load({})
    assert settings.kafka_bootstrap == "localhost:9092"
    assert (settings.topic_news, settings.topic_dead_letter, settings.topic_alerts) == ("news", "news.dlq", "alerts")
    assert settings.batch_size == 256
    assert settings.bucket_widths == (300, 3600)
    assert settings.database_url.reveal() == ""
    assert isinstance(settings.data_dir, Path) and str(settings.data_dir)
    assert settings.model_path is None and settings.entities_file is None
    assert settings.log_level == "INFO"


def test_environment_overrides_defaults() -> None:
    settings = Settings.load(
        {
            "FINSENT_KAFKA_BOOTSTRAP": " broker-a:9092 , broker-b:9093 ",
            "FINSENT_BATCH_SIZE": "32",
            "FINSENT_BUCKET_WIDTHS": "1h, 1m,1h",
            "FINSENT_MODEL_DEVICE": "CUDA:1",
            "FINSENT_LOG_LEVEL": "debug",
            "FINSENT_DATA_DIR": "/srv/finsent",
        }
    )
    assert settings.kafka_bootstrap == "broker-a:9092,broker-b:9093"
    assert settings.batch_size == 32
    assert settings.bucket_widths == (60, 3600)
    assert settings.model_device == "cuda:1"
    assert settings.log_level == "DEBUG"
    assert settings.data_dir == Path("/srv/finsent")


def test_toml_file_with_environment_taking_precedence(tmp_path: Path) -> None:
    config = tmp_path / "finsent.toml"
    config.write_text('batch_size = 64\ntopic_news = "from-toml"\nbucket_widths = ["15m", "1d"]\nlog_level = "WARNING"\n')
    settings = Settings.load({"FINSENT_CONFIG": str(config), "FINSENT_TOPIC_NEWS": "from-env"})
    assert settings.batch_size == 64
    assert settings.bucket_widths == (900, 86400)
    assert settings.log_level == "WARNING"
    assert settings.topic_news == "from-env"


def test_unknown_toml_key_rejected(tmp_path: Path) -> None:
    config = tmp_path / "finsent.toml"
    config.write_text("batch_size = 64\nbatch_sise = 10\n")
    with pytest.raises(ConfigError, match="batch_sise") as raised:
        Settings.load({"FINSENT_CONFIG": str(config)})
    assert str(config) in str(raised.value)


def test_bad_value_in_toml_names_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "finsent.toml"
    config.write_text("batch_size = -3\n")
    with pytest.raises(ConfigError) as raised:
        Settings.load({"FINSENT_CONFIG": str(config)})
    assert "batch_size" in str(raised.value) and str(config) in str(raised.value) and "-3" in str(raised.value)


def test_invalid_toml_rejected(tmp_path: Path) -> None:
    config = tmp_path / "finsent.toml"
    config.write_text("batch_size = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML") as raised:
        Settings.load({"FINSENT_CONFIG": str(config)})
    assert "FINSENT_CONFIG" in str(raised.value) and str(config) in str(raised.value)


def test_missing_toml_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="not found") as raised:
        Settings.load({"FINSENT_CONFIG": str(missing)})
    assert str(missing) in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FINSENT_BATCH_SIZE", "abc"),
        ("FINSENT_BATCH_SIZE", "0"),
        ("FINSENT_KAFKA_BOOTSTRAP", "nohostport"),
        ("FINSENT_DATABASE_URL", "mysql://x"),
        ("FINSENT_BUCKET_WIDTHS", "5x"),
        ("FINSENT_BUCKET_WIDTHS", "0m"),
        ("FINSENT_MODEL_DEVICE", "gpu"),
        ("FINSENT_TOPIC_NEWS", "bad topic!"),
        ("FINSENT_LOG_LEVEL", "LOUD"),
        ("FINSENT_CONSUMER_GROUP", "   "),
    ],
)
def test_bad_value_names_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load({variable: value})
    message = str(raised.value)
    assert variable in message
    assert value in message
    assert "\n" not in message


def test_heartbeat_over_a_third_of_session_rejected() -> None:
    environ = {"FINSENT_KAFKA_SESSION_TIMEOUT_MS": "6000", "FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS": "2001"}
    with pytest.raises(ConfigError, match="FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS"):
        Settings.load(environ)
    assert Settings.load({**environ, "FINSENT_KAFKA_HEARTBEAT_INTERVAL_MS": "2000"}).kafka_heartbeat_interval_ms == 2000


@pytest.mark.parametrize("variable", ["FINSENT_TOPIC_DEAD_LETTER", "FINSENT_TOPIC_ALERTS"])
def test_identical_topics_rejected(variable: str) -> None:
    with pytest.raises(ConfigError, match="different topics"):
        Settings.load({"FINSENT_TOPIC_NEWS": "same", variable: "same"})


@pytest.mark.parametrize("variable", ["FINSENT_MODEL_PATH", "FINSENT_ENTITIES_FILE"])
def test_missing_path_rejected(variable: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match="does not exist") as raised:
        Settings.load({variable: str(missing)})
    assert variable in str(raised.value) and str(missing) in str(raised.value)
    missing.mkdir()
    assert Settings.load({variable: str(missing)}) is not None


@pytest.mark.parametrize("spec", SETTING_SPECS, ids=[spec.env_name for spec in SETTING_SPECS])
def test_every_documented_default_loads_and_equals_unset(spec: SettingSpec) -> None:
    if spec.default:
        spec.parse(spec.default)
    assert Settings.load({spec.env_name: spec.default}) == Settings.load({})


@pytest.mark.parametrize("spec", SETTING_SPECS, ids=[spec.env_name for spec in SETTING_SPECS])
def test_every_setting_has_help_and_a_field(spec: SettingSpec) -> None:
    assert spec.help.strip()
    assert spec.env_name == "FINSENT_" + spec.field.upper()
    assert hasattr(Settings.load({}), spec.field)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), (" 1h ", 3600), ("2d", 172800)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["0s", "5", "m", "-5m", "5w", "1.5h", ""])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_seconds(text)


def test_a_bad_value_outside_the_checked_sections_fails_only_when_read() -> None:
    environ = {"FINSENT_ALERT_SMTP_PORT": "many", "FINSENT_ALERT_HORIZONS": "soon"}
    with pytest.raises(ConfigError, match="FINSENT_ALERT_HORIZONS"):
        Settings.load(environ)
    settings = Settings.load(environ, sections=["kafka", "database", "series"])
    assert settings.kafka_bootstrap == "localhost:9092" and settings.bucket_widths == (300, 3600)
    with pytest.raises(ConfigError, match="FINSENT_ALERT_SMTP_PORT='many' is invalid"):
        _ = settings.alert_smtp_port
    with pytest.raises(ConfigError, match="FINSENT_ALERT_HORIZONS"):
        Settings.load(environ, sections=["detection"])


def test_consistency_rules_run_with_their_section_only() -> None:
    environ = {"FINSENT_DELIVERY_BACKOFF": "1h", "FINSENT_DELIVERY_BACKOFF_MAX": "1m"}
    assert Settings.load(environ, sections=["kafka", "database"]).delivery_backoff == 3600
    with pytest.raises(ConfigError, match="FINSENT_DELIVERY_BACKOFF"):
        Settings.load(environ, sections=["delivery"])


def test_every_setting_belongs_to_a_known_section() -> None:
    assert {spec.section for spec in SETTING_SPECS} == set(SECTIONS)
    with pytest.raises(ValueError, match="unknown settings sections"):
        Settings.load({}, sections=["kafak"])


@pytest.mark.parametrize("spec", [s for s in SETTING_SPECS if not (s.secret or s.redact)], ids=lambda s: s.env_name)
def test_typed_values_read_back_as_the_same_setting(spec: SettingSpec) -> None:
    """`finsent config` prints what one would type: setting that text again changes nothing."""
    settings = Settings.load({})
    assert Settings.load({spec.env_name: spec.typed(getattr(settings, spec.field))}) == settings


def test_values_print_as_typed() -> None:
    settings = Settings.load({"FINSENT_ALERT_EMAIL_TO": "a@example.com,b@example.com", "FINSENT_ALERT_SMTP_HOST": "mail"})
    typed = {spec.field: spec.typed(getattr(settings, spec.field)) for spec in SETTING_SPECS}
    assert typed["alert_horizons"] == "1h,6h,1d,3d"
    assert typed["emotion_half_life"] == "1h" and typed["alert_interval"] == "1m"
    assert typed["batch_max_wait_ms"] == "500ms" and typed["kafka_session_timeout_ms"] == "10s"
    assert typed["alert_kafka"] == "true" and typed["model_labels"] == "" and typed["metrics_port"] == ""
    assert typed["earliest_published_at"] == "1980-01-01T00:00:00Z"
    assert typed["alert_email_to"] == "a@example.com,b@example.com"


@pytest.mark.parametrize(("text", "milliseconds"), [("500", 500), ("500ms", 500), ("2s", 2000), ("1m", 60000)])
def test_millisecond_settings_take_durations_and_bare_milliseconds(text: str, milliseconds: int) -> None:
    assert Settings.load({"FINSENT_BATCH_MAX_WAIT_MS": text}).batch_max_wait_ms == milliseconds


def test_each_worker_child_gets_its_share_of_the_cores_and_its_own_metrics_port() -> None:
    from pipeline.worker_processes import child_environment

    settings = Settings.load({"FINSENT_METRICS_PORT": "9300"})
    second = child_environment({"PATH": "/bin"}, settings, index=1, processes=2, cores=16)
    assert second == {"PATH": "/bin", "FINSENT_TORCH_THREADS": "8", "FINSENT_METRICS_PORT": "9301"}
    pinned = child_environment({}, Settings.load({"FINSENT_TORCH_THREADS": "3"}), index=0, processes=4, cores=2)
    assert pinned == {}, "a thread count the user set is kept, no metrics port when the endpoint is off"
    assert child_environment({}, Settings.load({}), index=0, processes=4, cores=2)["FINSENT_TORCH_THREADS"] == "1"
