"""`finsent train` and `finsent eval` for real on a small labelled file the test writes itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pipeline.scoring.scorer import Scorer
from tests.integration.test_cli_errors import assert_one_clear_line, run_finsent
from tests.support.mpnet import installed_mpnet

PHRASES = {
    "negative": ["profit fell sharply", "shares plunged after the warning", "the company cut its outlook", "losses widened"],
    "neutral": ["the meeting is on Tuesday", "the report is due in May", "the board met in Helsinki", "the office moved"],
    "positive": ["profit rose sharply", "shares jumped on record sales", "the company raised its outlook", "margins improved"],
}


def write_labelled(path: Path, repeat: int = 4) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for round_ in range(repeat):
            for label, phrases in PHRASES.items():
                for phrase in phrases:
                    writer.writerow([f"Company {round_}: {phrase}", label])


def test_train_saves_a_loadable_model_and_eval_reports_on_it(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    write_labelled(data)
    out = tmp_path / "model"
    trained = run_finsent("train", "--data", str(data), "--out", str(out), "--epochs", "2", "--validation-fraction", "0.25",
                          "--report", str(tmp_path / "train.json"), timeout_s=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "saved finsent-minilm-lora-" in trained.stdout
    assert "epoch 1/2" in trained.stderr, "training shows progress"
    manifest = json.loads((out / "finsent_model.json").read_text())
    assert manifest["training"]["data"][0]["file"] == "small.csv"
    assert (out / "adapter.safetensors").stat().st_size < 20_000_000

    assert Scorer.load(out, "cpu").version == manifest["version"]

    report_path = tmp_path / "eval.json"
    evaluated = run_finsent("eval", "--data", str(data), "--json", str(report_path),
                            environment={"FINSENT_MODEL_PATH": str(out)}, timeout_s=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["count"] == 48 and report["model_version"] == manifest["version"]
    assert "macro-F1" in evaluated.stdout and "confusion" in evaluated.stdout


def test_bad_training_file_is_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("text,label\nProfit rose,bullishly\n", encoding="utf-8")
    assert_one_clear_line(run_finsent("train", "--data", str(data), "--out", str(tmp_path / "m")), "bad.csv line 2", "'bullishly'")
    assert_one_clear_line(run_finsent("eval", "--data", str(tmp_path / "missing.csv")), "missing.csv", "not found")


def test_cross_validation_reports_every_fold_and_resumes_from_its_report(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    write_labelled(data)
    report_path = tmp_path / "cv.json"
    arguments = ("train", "--data", str(data), "--folds", "2", "--epochs", "1", "--report", str(report_path))
    first = run_finsent(*arguments, timeout_s=300)
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["complete"] is True and [fold["fold"] for fold in report["per_fold"]] == [1, 2]
    assert sum(fold["count"] for fold in report["per_fold"]) == 48, "each example is tested in exactly one fold"
    assert "2-fold cross-validation on small.csv: accuracy" in first.stdout

    again = run_finsent(*arguments, timeout_s=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming: folds 1, 2 already in" in again.stderr and "fold 1/2 epoch" not in again.stderr
    assert json.loads(report_path.read_text()) == report


def test_mpnet_cross_validation_trains_from_cached_lower_layers(tmp_path: Path) -> None:
    data_dir, _ = installed_mpnet()
    data = tmp_path / "small.csv"
    write_labelled(data)
    report_path = tmp_path / "cv.json"
    run = run_finsent("train", "--base", "mpnet", "--data", str(data), "--folds", "2", "--epochs", "1", "--report",
                      str(report_path), environment={"FINSENT_DATA_DIR": str(data_dir)}, timeout_s=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "caching layers below 8" in run.stderr, "mpnet's layers 0-7 are computed once, not trained"
    report = json.loads(report_path.read_text())
    assert report["config"]["frozen_layers"] == 8 and report["complete"] is True
    fold = report["per_fold"][0]
    assert {"bf16", "ece", "ece_scaled", "temperature"} <= set(fold)
    assert not list(tmp_path.glob("cv.json.fold*.pt")), "a finished fold leaves no checkpoint behind"


def test_eval_scores_both_shipped_models(tmp_path: Path) -> None:
    data_dir, _ = installed_mpnet()
    data = tmp_path / "small.csv"
    write_labelled(data, repeat=1)
    for model in ("fast", "accurate"):
        report_path = tmp_path / f"{model}.json"
        run = run_finsent("eval", "--model", model, "--data", str(data), "--json", str(report_path),
                          environment={"FINSENT_DATA_DIR": str(data_dir)}, timeout_s=600)
        assert run.returncode == 0, run.stderr[-2000:]
        report = json.loads(report_path.read_text())
        assert report["model_version"].startswith(f"finsent-{'minilm' if model == 'fast' else 'mpnet'}-lora-")
        assert report["accuracy"] >= 0.75, f"the {model} model gets plain financial phrases right"
        assert 0.0 <= report["expected_calibration_error"] <= 1.0
        assert "expected calibration error" in run.stdout


def test_a_student_cross_validation_learns_from_fold_teachers_that_never_saw_its_fold(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    write_labelled(data)
    unlabelled = tmp_path / "headlines.csv"
    unlabelled.write_text("headline\nAcme shares tumble after profit warning\nAcme wins record order\n", encoding="utf-8")
    teachers = tmp_path / "teachers"
    teacher_run = run_finsent("train", "--data", str(data), "--folds", "2", "--epochs", "1", "--save-fold-models", str(teachers),
                              "--report", str(tmp_path / "teacher.json"), timeout_s=600)
    assert teacher_run.returncode == 0, teacher_run.stderr[-2000:]
    assert sorted(path.name for path in teachers.iterdir()) == ["fold1", "fold2"]

    student = run_finsent("train", "--data", str(data), "--folds", "2", "--epochs", "1", "--teacher", str(teachers),
                          "--unlabelled", str(unlabelled), "--report", str(tmp_path / "student.json"), timeout_s=600)
    assert student.returncode == 0, student.stderr[-2000:]
    assert "teacher finsent-minilm-lora-" in student.stderr, "each fold's texts are scored by its teacher, with progress"
    report = json.loads((tmp_path / "student.json").read_text())
    assert report["config"]["teacher"] == str(teachers) and report["complete"] is True

    other_folds = run_finsent("train", "--data", str(data), "--folds", "3", "--epochs", "1", "--teacher", str(teachers))
    assert_one_clear_line(other_folds, "fold", "leak")
    assert_one_clear_line(run_finsent("train", "--data", str(data), "--out", str(tmp_path / "m"), "--unlabelled", str(unlabelled)),
                          "--unlabelled", "--teacher")


def test_a_model_distilled_from_one_teacher_records_it(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    write_labelled(data)
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    first = run_finsent("train", "--data", str(data), "--out", str(teacher), "--epochs", "1", "--validation-fraction", "0.25",
                        timeout_s=600)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_finsent("train", "--data", str(data), "--out", str(student), "--epochs", "1", "--validation-fraction", "0.25",
                         "--teacher", str(teacher), timeout_s=600)
    assert second.returncode == 0, second.stderr[-2000:]
    teacher_version = json.loads((teacher / "finsent_model.json").read_text())["version"]
    assert json.loads((student / "finsent_model.json").read_text())["training"]["config"]["teacher"] == teacher_version
