"""The ``fastann`` command line: ``fastann train`` and ``fastann evaluate``."""
import argparse
import sys
import time

import numpy as np

from . import __version__
from .argtypes import positive_int
from .hyperparameters import ACTIVATIONS, AUGMENTS, INITS, NORMALIZATIONS, SOLVERS
from .model import MLPClassifier
from .schedules import SCHEDULES

DEFAULTS = MLPClassifier().get_params()


class CommandError(Exception):
    """A problem to report on one line (exit status 2), never as a traceback."""


def hidden_sizes(text):
    """Parse ``--hidden``: ``"256"``, ``"256,128"`` or ``"none"`` (no hidden layer)."""
    if text.strip().lower() in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 256,128 or 'none', got {text!r}") from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return sizes


def dropout_value(text):
    """Parse ``--dropout``: one rate (``0.2``) or one per hidden layer (``0.2,0.5``)."""
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a rate such as 0.2, or one per hidden layer such as 0.2,0.5, "
            f"got {text!r}") from None
    if any(not 0 <= r < 1 for r in rates):
        raise argparse.ArgumentTypeError(f"dropout rates must be in [0, 1), got {text!r}")
    return rates[0] if len(rates) == 1 else rates


def image_shape_value(text):
    """Parse ``--image-shape``: ``HEIGHT,WIDTH``."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH such as 28,28, got {text!r}")
    return shape


def validation_size(text):
    """Parse ``--validation``: ``auto``, a row count (``10000``) or a fraction (``0.1``)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', a row count or a fraction, got {text!r}") from None
    if value < 0 or (value >= 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) or a whole row count, got {text!r}")
    return int(value) if value >= 1 else value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastann",
        description="Train and evaluate fully-connected neural networks (MLPs) on MNIST-style "
                    "image data, with Numba-compiled kernels.")
    parser.add_argument("--version", action="version", version=f"fastann {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train", help="train a model and report test accuracy",
        description="Train an MLP. With no options: MNIST (downloaded and cached on first use), "
                    f"784-{DEFAULTS['hidden_layer_sizes'][0]}-10 ReLU, Adam, "
                    f"{DEFAULTS['epochs']} epochs, the classic 50,000/10,000 training/validation "
                    "split, then accuracy on the 10,000 test images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = train.add_argument_group("data")
    data.add_argument("--dataset", default="mnist",
                      help="'mnist', 'fashion-mnist', or a PATH: a directory with the four IDX "
                           "files (optionally gzipped), a CSV file 'label,pixel0,...' or a "
                           "Nielsen mnist.pkl.gz")
    data.add_argument("--data-dir", default=None,
                      help="where downloaded datasets are cached (default: $FASTANN_DATA or the "
                           "user cache directory)")
    data.add_argument("--validation", type=validation_size, default="auto",
                      help="held-out LAST rows of the training set: a count, a fraction, 0 for "
                           "none, or 'auto' (10000 when there are 60000 rows, else 1/6)")
    net = train.add_argument_group("network")
    net.add_argument("--hidden", type=hidden_sizes, default=DEFAULTS["hidden_layer_sizes"],
                     metavar="W1,W2,...", help="hidden layer widths; 'none' for softmax regression")
    net.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULTS["activation"])
    net.add_argument("--init", choices=INITS, default=DEFAULTS["init"],
                     help="weight initialization (auto: He for ReLU, Xavier otherwise)")
    net.add_argument("--normalization", choices=NORMALIZATIONS, default=DEFAULTS["normalization"],
                     help="simple: /255; standard: per-pixel mean/std; auto: simple for images")
    net.add_argument("--dtype", choices=("float32", "float64"), default=DEFAULTS["dtype"])
    opt = train.add_argument_group("optimization")
    opt.add_argument("--solver", choices=SOLVERS, default=DEFAULTS["solver"],
                     help="gd is full-batch gradient descent")
    opt.add_argument("--learning-rate", "--lr", type=float, default=DEFAULTS["learning_rate"])
    opt.add_argument("--momentum", type=float, default=DEFAULTS["momentum"])
    opt.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"])
    opt.add_argument("--epochs", type=positive_int, default=DEFAULTS["epochs"])
    opt.add_argument("--l1", type=float, default=DEFAULTS["l1"], help="L1 penalty on weights")
    opt.add_argument("--l2", type=float, default=DEFAULTS["l2"],
                     help="L2 penalty on weights (decoupled weight decay with adamw)")
    opt.add_argument("--lr-schedule", choices=SCHEDULES, default=DEFAULTS["lr_schedule"])
    opt.add_argument("--lr-decay", type=float, default=DEFAULTS["lr_decay"],
                     help="factor for the step and exponential schedules")
    opt.add_argument("--lr-step-size", type=positive_int, default=DEFAULTS["lr_step_size"],
                     help="epochs between decays for the step schedule")
    opt.add_argument("--early-stopping", action="store_true",
                     help="stop when validation loss stops improving; keep the best weights")
    opt.add_argument("--n-iter-no-change", type=positive_int, default=DEFAULTS["n_iter_no_change"])
    opt.add_argument("--class-weight", choices=("balanced",), default=None,
                     help="weight each class's loss by n_samples / (n_classes * class count)")
    opt.add_argument("--dropout", type=dropout_value, default=DEFAULTS["dropout"],
                     metavar="RATE[,RATE...]",
                     help="inverted dropout on hidden activations while training: one rate, "
                          "or one per hidden layer")
    opt.add_argument("--augment", choices=AUGMENTS, default=None,
                     help="distort every training image afresh each epoch: shift (±2 px), "
                          "affine (rotation/scale/slant) or elastic (Simard et al. 2003)")
    opt.add_argument("--image-shape", type=image_shape_value, default=None, metavar="H,W",
                     help="image shape for --augment (None: square)")
    run = train.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="random seed (initialization, shuffling)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="cuda trains on an NVIDIA GPU (needs fastann[cuda])")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads for matrix products (default: all cores)")
    run.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                     help="write DIR/checkpoint.npz after every epoch (and on Ctrl-C)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run saved in --checkpoint-dir (its hyper-parameters "
                          "are used; same data options needed)")
    run.add_argument("--save", metavar="PATH", default=None, help="write the trained model (.npz)")
    run.add_argument("--plots", metavar="DIR", default=None,
                     help="write learning curves, confusion matrix, misclassified digits and "
                          "first-layer weights as PNGs (needs matplotlib: fastann[plot])")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class metrics and confusion matrix of a saved model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by --save")
    evaluate.add_argument("--dataset", default="mnist", help="as for train")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--split", choices=("test", "train"), default="test")
    evaluate.set_defaults(handler=run_evaluate)

    from . import experiments  # experiments never imports cli (shared helpers: argtypes)
    reproduce = commands.add_parser(
        "experiments", help=experiments.HELP, description=experiments.DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    experiments.add_arguments(reproduce)
    reproduce.set_defaults(handler=experiments.run)
    return parser


def load_split(dataset, split, data_dir):
    from .datasets import load_dataset, load_fashion_mnist, load_mnist
    if dataset == "mnist":
        return load_mnist(split, data_dir=data_dir)
    if dataset == "fashion-mnist":
        return load_fashion_mnist(split, data_dir=data_dir)
    return load_dataset(dataset, split)


def run_train(args):
    import os
    from .datasets import train_validation_split
    checkpoint = None
    if args.checkpoint_dir is not None:
        checkpoint = os.path.join(args.checkpoint_dir, "checkpoint.npz")
    if args.resume:
        if checkpoint is None:
            raise CommandError("--resume needs --checkpoint-dir DIR")
        if not os.path.exists(checkpoint):
            raise CommandError(f"no checkpoint to resume from: {checkpoint} does not exist")
    t0 = time.perf_counter()
    X, y = load_split(args.dataset, "train", args.data_dir)
    X_test, y_test = load_split(args.dataset, "test", args.data_dir)
    validation = args.validation
    if validation == "auto":
        validation = 10000 if X.shape[0] == 60000 else 1 / 6
    val_data = None
    if validation:
        X, y, X_val, y_val = train_validation_split(X, y, validation)
        val_data = (X_val, y_val)
    print(f"data: {args.dataset}: {X.shape[0]} training, "
          f"{0 if val_data is None else val_data[0].shape[0]} validation, "
          f"{X_test.shape[0]} test samples, {X.shape[1]} features "
          f"(loaded in {time.perf_counter() - t0:.2f} s)", flush=True)
    if args.resume:
        from .checkpoint import read_checkpoint
        state = read_checkpoint(checkpoint)
        print(f"resuming from {checkpoint} after epoch {state.n_iter}/"
              f"{state.hyperparameters['epochs']}", flush=True)
        t1 = time.perf_counter()
        model = MLPClassifier.resume(checkpoint, X, y, validation_data=val_data)
        return _report(args, model, X_test, y_test, val_data, time.perf_counter() - t1)
    model = MLPClassifier(
        hidden_layer_sizes=args.hidden, activation=args.activation, solver=args.solver,
        learning_rate=args.learning_rate, momentum=args.momentum, batch_size=args.batch_size,
        epochs=args.epochs, init=args.init, normalization=args.normalization, l1=args.l1,
        l2=args.l2, lr_schedule=args.lr_schedule, lr_decay=args.lr_decay,
        lr_step_size=args.lr_step_size, early_stopping=args.early_stopping,
        n_iter_no_change=args.n_iter_no_change, class_weight=args.class_weight,
        dropout=args.dropout, augment=args.augment, image_shape=args.image_shape,
        random_state=args.seed, dtype=args.dtype,
        n_threads=args.threads, device=args.device, verbose=0 if args.quiet else 2)
    layers = "-".join(str(s) for s in (X.shape[1], *args.hidden, np.unique(y).size))
    extras = "".join(f", {name} {value}" for name, value in (
        ("class weight", args.class_weight), ("dropout", args.dropout or None),
        ("augment", args.augment)) if value is not None)
    print(f"model: {layers} {args.activation}, {args.solver} lr {args.learning_rate:g}, "
          f"batch {args.batch_size}, {args.epochs} epochs{extras}", flush=True)
    t1 = time.perf_counter()
    model.fit(X, y, validation_data=val_data, checkpoint=checkpoint)
    return _report(args, model, X_test, y_test, val_data, time.perf_counter() - t1)


def _report(args, model, X_test, y_test, val_data, train_seconds):
    test_accuracy = model.score(X_test, y_test)
    epoch_seconds = [r["seconds"] for r in model.history_] or [0.0]
    print(f"trained {len(model.history_)} epochs in {train_seconds:.1f} s "
          f"(first epoch {epoch_seconds[0]:.2f} s incl. kernel load/compile, "
          f"median epoch {np.median(epoch_seconds):.3f} s)")
    print(f"test accuracy: {100 * test_accuracy:.2f}% ({X_test.shape[0]} samples)")
    if args.save:
        model.save(args.save)
        print(f"saved model to {args.save}")
    if args.plots:
        from .plots import save_training_plots
        paths = save_training_plots(model, args.plots, X_test=X_test, y_test=y_test,
                                    n_validation=None if val_data is None else len(val_data[1]))
        print(f"wrote {len(paths)} figures to {args.plots}")
    return 0


def run_evaluate(args):
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    from . import load
    from .metrics import format_confusion_matrix
    model = load(args.model)
    X, y = load_split(args.dataset, args.split, args.data_dir)
    predictions = model.predict(X)
    labels = model.classes_
    accuracy = accuracy_score(y, predictions)
    print(f"model: {args.model}")
    print(f"data: {args.dataset} {args.split}, {X.shape[0]} samples")
    print(f"accuracy: {100 * accuracy:.2f}%\n")
    # zero_division=0: a class never predicted gets precision 0, not a warning
    print(classification_report(y, predictions, labels=labels, digits=4, zero_division=0))
    print("confusion matrix (rows: true class, columns: predicted class)")
    print(format_confusion_matrix(confusion_matrix(y, predictions, labels=labels), labels))
    return 0


def main(argv=None):
    """Entry point of the ``fastann`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .datasets import DatasetError
    from .exceptions import ModelFileError
    try:
        return args.handler(args)
    except (DatasetError, ModelFileError, FileNotFoundError, PermissionError, ValueError,
            ImportError, RuntimeError, CommandError) as exc:
        print(f"fastann: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        saved = getattr(args, "checkpoint_dir", None)
        print("fastann: interrupted" + (f"; resume with --resume --checkpoint-dir {saved}"
                                        if saved else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
