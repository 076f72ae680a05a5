"""FINSENT_MODEL: fast, accurate, auto by device, a directory, and the older FINSENT_MODEL_PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError, UserError
from pipeline.scoring import model_choice, precision
from pipeline.scoring.model_choice import SHIPPED_MODELS, choose_model


def test_names_pick_the_shipped_models_whatever_the_device() -> None:
    for device in ("cpu", "cuda"):
        assert choose_model("fast", None, device, None).directory == SHIPPED_MODELS["fast"]
        assert choose_model("accurate", None, device, None).directory == SHIPPED_MODELS["accurate"]


@pytest.mark.parametrize(("device", "native_bf16", "installed", "expected"), [
    ("cuda", False, True, "accurate"),
    ("cpu", True, True, "accurate"),
    ("cpu", False, True, "fast"),
    ("mps", True, True, "fast"),
    ("cuda", True, False, "fast"),
    ("cpu", True, False, "fast"),
])
def test_auto_takes_the_accurate_model_where_it_runs_natively_fast_and_is_installed(
    monkeypatch: pytest.MonkeyPatch, device: str, native_bf16: bool, installed: bool, expected: str,
) -> None:
    monkeypatch.setattr(model_choice, "accurate_base_installed", lambda _data_dir: installed)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    choice = choose_model("auto", None, device, None)
    assert (choice.name, choice.directory) == (expected, SHIPPED_MODELS[expected])
    if not installed:
        assert "finsent model install" in choice.reason


def test_auto_without_an_installed_base_is_the_fast_model(tmp_path: Path) -> None:
    choice = choose_model("auto", None, "cuda", tmp_path)
    assert choice.name == "fast" and "finsent model install" in choice.reason


def test_a_directory_and_the_older_variable(tmp_path: Path) -> None:
    assert choose_model(str(tmp_path), None, "cpu", None).directory == tmp_path
    assert choose_model("auto", tmp_path, "cpu", None).directory == tmp_path
    with pytest.raises(UserError, match="both set"):
        choose_model("fast", tmp_path, "cpu", None)


def test_settings_read_the_choice_and_refuse_a_missing_directory(tmp_path: Path) -> None:
    assert Settings.load({"FINSENT_MODEL": "Accurate"}).model == "accurate"
    assert Settings.load({}).model == "auto"
    assert Settings.load({"FINSENT_MODEL": str(tmp_path)}).model == str(tmp_path)
    with pytest.raises(ConfigError, match=r"FINSENT_MODEL='.*nowhere' does not exist"):
        Settings.load({"FINSENT_MODEL": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="both set"):
        Settings.load({"FINSENT_MODEL": "fast", "FINSENT_MODEL_PATH": str(tmp_path)})


def test_int8_is_refused_for_the_accurate_model() -> None:
    with pytest.raises(ConfigError, match="int8 ruins the accurate model"):
        Settings.load({"FINSENT_MODEL": "accurate", "FINSENT_MODEL_QUANTIZE": "int8"})
    assert Settings.load({"FINSENT_MODEL": "fast", "FINSENT_MODEL_QUANTIZE": "int8"}).model_quantize == "int8"


def test_auto_with_int8_stays_on_the_fast_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_choice, "accurate_base_installed", lambda _data_dir: True)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    choice = choose_model("auto", None, "cpu", None, int8=True)
    assert choice.name == "fast" and "int8" in choice.reason
