"""The ``fastann`` command line: ``fastann train``, ``evaluate``, ``experiments`` and ``sweep``.

Every user error is one line on stderr (``fastann: error: ...``), never a
traceback: bad flag values are argparse usage errors (status 2); unusable
output paths (``--save``, ``--plots``, ``--checkpoint-dir``) are found before
any data is loaded or any epoch trained (status 2); if writing the trained
model still fails at the end (a full disk), the model is kept in a rescue
file that the message names (status 1). Ctrl-C prints one line and exits with
status 130, also during start-up: this module imports NumPy, scikit-learn and
the kernels only inside :func:`main`.
"""
import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .argtypes import positive_int


class CommandError(Exception):
    """A problem to report on one line (exit status 2), never as a traceback."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` once, and not at all for flags without a meaningful default.

    Skipped where the help already says what the default is, and for defaults
    None and False (options that are off unless given).
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


#: Hyper-parameter -> the ``fastann train`` flag that sets it (for error messages).
FLAGS = {"hidden_layer_sizes": "--hidden", "activation": "--activation", "solver": "--solver",
         "learning_rate": "--learning-rate", "momentum": "--momentum",
         "batch_size": "--batch-size", "epochs": "--epochs", "init": "--init",
         "normalization": "--normalization", "l1": "--l1", "l2": "--l2",
         "lr_schedule": "--lr-schedule", "lr_decay": "--lr-decay",
         "lr_step_size": "--lr-step-size", "early_stopping": "--early-stopping",
         "n_iter_no_change": "--n-iter-no-change", "random_state": "--seed",
         "dtype": "--dtype", "n_threads": "--threads", "device": "--device",
         "cpu_kernel": "--cpu-kernel",
         "lr_patience": "--lr-patience", "min_lr": "--min-lr",
         "warmup_epochs": "--warmup-epochs", "class_weight": "--class-weight",
         "dropout": "--dropout", "augment": "--augment", "image_shape": "--image-shape"}


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


def non_negative_int(text):
    """Parse a non-negative integer (``--seed 0``); anything else is a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def build_parser():
    """The argument parser of the ``fastann`` command (imports the model's option tables)."""
    from .hyperparameters import ACTIVATIONS, AUGMENTS, INITS, NORMALIZATIONS, SOLVERS
    from .model import MLPClassifier
    from .schedules import SCHEDULES

    defaults = MLPClassifier().get_params()
    parser = argparse.ArgumentParser(
        prog="fastann",
        description="Train and evaluate fully-connected neural networks (MLPs) on MNIST-style "
                    "image data, with Numba-compiled kernels.")
    parser.add_argument("--version", action="version", version=f"fastann {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    # The data, network and optimization options: train's, shared by sweep.
    common = argparse.ArgumentParser(add_help=False)
    data = common.add_argument_group("data")
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
    net = common.add_argument_group("network")
    net.add_argument("--hidden", type=hidden_sizes, default=defaults["hidden_layer_sizes"],
                     metavar="W1,W2,...",
                     help="hidden layer widths; 'none' for softmax regression (default: "
                          f"{','.join(map(str, defaults['hidden_layer_sizes'])) or 'none'})")
    net.add_argument("--activation", choices=ACTIVATIONS, default=defaults["activation"],
                     help="hidden-layer activation")
    net.add_argument("--init", choices=INITS, default=defaults["init"],
                     help="weight initialization (auto: He for ReLU, Xavier otherwise)")
    net.add_argument("--normalization", choices=NORMALIZATIONS, default=defaults["normalization"],
                     help="simple: /255; standard: per-pixel mean/std; auto: simple for images")
    net.add_argument("--dtype", choices=("float32", "float64"), default=defaults["dtype"],
                     help="precision of parameters and arithmetic")
    opt = common.add_argument_group("optimization")
    opt.add_argument("--solver", choices=SOLVERS, default=defaults["solver"],
                     help="gd is full-batch gradient descent")
    opt.add_argument("--learning-rate", "--lr", type=float, default=defaults["learning_rate"],
                     help="initial step size")
    opt.add_argument("--momentum", type=float, default=defaults["momentum"],
                     help="momentum coefficient (momentum and nesterov solvers)")
    opt.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                     help="samples per update")
    opt.add_argument("--epochs", type=positive_int, default=defaults["epochs"],
                     help="passes over the training data")
    opt.add_argument("--l1", type=float, default=defaults["l1"], help="L1 penalty on weights")
    opt.add_argument("--l2", type=float, default=defaults["l2"],
                     help="L2 penalty on weights (decoupled weight decay with adamw)")
    opt.add_argument("--lr-schedule", choices=SCHEDULES, default=defaults["lr_schedule"],
                     help="learning-rate schedule")
    opt.add_argument("--lr-decay", type=float, default=defaults["lr_decay"],
                     help="factor for the step, exponential and plateau schedules")
    opt.add_argument("--lr-step-size", type=positive_int, default=defaults["lr_step_size"],
                     help="epochs between decays for the step schedule")
    opt.add_argument("--lr-patience", type=positive_int, default=defaults["lr_patience"],
                     help="plateau: epochs without improvement before the rate is reduced")
    opt.add_argument("--min-lr", type=float, default=defaults["min_lr"],
                     help="plateau: the rate is never reduced below this")
    opt.add_argument("--warmup-epochs", type=int, default=defaults["warmup_epochs"],
                     help="linear warm-up over this many epochs, composed with any schedule")
    opt.add_argument("--early-stopping", action="store_true",
                     help="stop when validation loss stops improving; keep the best weights")
    opt.add_argument("--n-iter-no-change", type=positive_int, default=defaults["n_iter_no_change"],
                     help="epochs without improvement before early stopping stops")
    opt.add_argument("--class-weight", choices=("balanced",), default=None,
                     help="weight each class's loss by n_samples / (n_classes * class count)")
    opt.add_argument("--dropout", type=dropout_value, default=defaults["dropout"],
                     metavar="RATE[,RATE...]",
                     help="inverted dropout on hidden activations while training: one rate, "
                          "or one per hidden layer")
    opt.add_argument("--augment", choices=AUGMENTS, default=None,
                     help="distort every training image afresh each epoch: shift (±2 px), "
                          "affine (rotation/scale/slant) or elastic (Simard et al. 2003)")
    opt.add_argument("--image-shape", type=image_shape_value, default=None, metavar="H,W",
                     help="image shape for --augment (None: square)")
    train = commands.add_parser(
        "train", help="train a model and report test accuracy",
        description="Train an MLP. With no options: MNIST (downloaded and cached on first use), "
                    f"784-{defaults['hidden_layer_sizes'][0]}-10 ReLU, Adam, "
                    f"{defaults['epochs']} epochs, the classic 50,000/10,000 training/validation "
                    "split, then accuracy on the 10,000 test images.",
        parents=[common], formatter_class=HelpFormatter)
    run = train.add_argument_group("run")
    run.add_argument("--seed", type=non_negative_int, default=0,
                     help="random seed (initialization, shuffling)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="cuda trains on an NVIDIA GPU (needs fastann[cuda])")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads for matrix products (all cores unless given)")
    run.add_argument("--cpu-kernel", choices=("auto", "blas", "parallel"), default="auto",
                     help="CPU epoch: parallel (BLAS-free, nonzero inputs only; where it "
                          "applies), blas, or auto (parallel where it applies)")
    run.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                     help="write DIR/checkpoint.npz after every epoch (and on Ctrl-C)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run saved in --checkpoint-dir (its hyper-parameters "
                          "are used; same data options needed)")
    run.add_argument("--save", metavar="PATH", default=None, help="write the trained model (.npz)")
    run.add_argument("--log-dir", metavar="DIR", default=None,
                     help="write DIR/metrics.csv (one row per epoch, appended on --resume), "
                          "DIR/hparams.json and DIR/summary.json")
    run.add_argument("--plots", metavar="DIR", default=None,
                     help="write learning curves, confusion matrix, misclassified digits and "
                          "first-layer weights as PNGs (needs matplotlib: fastann[plot])")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class metrics and confusion matrix of a saved model",
        formatter_class=HelpFormatter)
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by --save")
    evaluate.add_argument("--dataset", default="mnist", help="as for train")
    evaluate.add_argument("--data-dir", default=None, help="as for train")
    evaluate.add_argument("--split", choices=("test", "train"), default="test",
                          help="which split of the dataset to evaluate on")
    evaluate.set_defaults(handler=run_evaluate)

    from . import experiments  # experiments never imports cli (shared helpers: argtypes)
    reproduce = commands.add_parser(
        "experiments", help=experiments.HELP, description=experiments.DESCRIPTION,
        formatter_class=HelpFormatter)
    experiments.add_arguments(reproduce)
    reproduce.set_defaults(handler=experiments.run)

    from . import sweep  # imports dask only when a sweep runs
    sweeper = commands.add_parser(
        "sweep", help=sweep.HELP, description=sweep.DESCRIPTION, parents=[common],
        formatter_class=HelpFormatter)
    sweep.add_arguments(sweeper)
    sweeper.set_defaults(handler=run_sweep)
    return parser


# ------------------------------------------------------------------ output paths
def _nearest_existing(path):
    """``path`` or its closest ancestor that exists (absolute)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_directory_writable(directory, flag, given):
    """Raise CommandError unless files can be created in ``directory`` (created if missing)."""
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise CommandError(f"{flag} {given}: {existing} is a file, not a directory")
    if existing == Path(os.path.abspath(directory)):
        try:  # the one exact test: create (and remove) a file there
            with tempfile.TemporaryFile(dir=existing, prefix=".fastann-probe-"):
                pass
        except OSError as exc:
            raise CommandError(f"{flag} {given}: cannot write in {existing} "
                               f"({exc.strerror or exc})") from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{flag} {given}: cannot create {directory}: {existing} is not "
                           f"writable")


def check_output_file(path, flag):
    """Raise CommandError unless ``path`` can be written as a file (before any training).

    ``path`` must not be a directory or another non-file, must not lie under a
    regular file, and its directory must be writable (or creatable).
    """
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{flag} {path}: is a directory; give a file name such as "
                           f"{target / 'model.npz'}")
    if os.path.lexists(target) and not target.is_file():
        raise CommandError(f"{flag} {path}: exists and is not a regular file")
    _check_directory_writable(target.parent, flag, path)


def check_output_directory(path, flag):
    """Raise CommandError unless ``path`` is, or can be created as, a writable directory."""
    target = Path(path)
    if os.path.lexists(target) and not target.is_dir():
        raise CommandError(f"{flag} {path}: exists and is not a directory")
    _check_directory_writable(target, flag, path)


def check_outputs(args, checkpoint):
    """Check every output path of ``fastann train`` before data is loaded (CommandError)."""
    if args.checkpoint_dir is not None:
        check_output_directory(args.checkpoint_dir, "--checkpoint-dir")
        check_output_file(checkpoint, "--checkpoint-dir")
    if args.save:
        check_output_file(args.save, "--save")
    if args.plots:
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            raise CommandError("--plots needs matplotlib: pip install 'fastann[plot]'")
        check_output_directory(args.plots, "--plots")


def rescue_model(model, path):
    """Save ``model`` somewhere after writing it to ``path`` failed; return where, or None.

    Tries, in order, a new file next to ``path``, the data cache directory and
    the system's temporary directory.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{Path(path).stem or 'model'}.rescued-{stamp}-{os.getpid()}.npz"
    places = [Path(path).parent]
    try:
        from .datasets import data_home
        places.append(data_home())
    except Exception:  # noqa: BLE001 - an unusable cache is just one place fewer
        pass
    places.append(Path(tempfile.gettempdir()))
    for place in places:
        try:
            model.save(place / name)
        except OSError:
            continue
        return place / name
    return None


def _save_outputs(args, model, X_test, y_test, val_data):
    """Write ``--save`` and ``--plots``; return the exit status (1 if a write failed)."""
    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            rescued = rescue_model(model, args.save)
            kept = (f"the trained model is kept in {rescued}" if rescued is not None
                    else "no rescue copy could be written either")
            print(f"fastann: error: could not write {args.save} ({reason}); {kept}",
                  file=sys.stderr)
            return 1
        print(f"saved model to {args.save}")
    if args.plots:
        from .plots import save_training_plots
        try:
            paths = save_training_plots(model, args.plots, X_test=X_test, y_test=y_test,
                                        n_validation=None if val_data is None
                                        else len(val_data[1]))
        except OSError as exc:
            saved = f"; the model was saved to {args.save}" if args.save else ""
            print(f"fastann: error: could not write the figures in {args.plots} "
                  f"({exc.strerror or exc}){saved}", file=sys.stderr)
            return 1
        print(f"wrote {len(paths)} figures to {args.plots}")
    return 0


# ------------------------------------------------------------------- commands
def estimator_params(args):
    """``MLPClassifier`` keyword arguments of the shared training options, ``--seed`` and ``--threads``."""
    return dict(
        hidden_layer_sizes=args.hidden, activation=args.activation, solver=args.solver,
        learning_rate=args.learning_rate, momentum=args.momentum, batch_size=args.batch_size,
        epochs=args.epochs, init=args.init, normalization=args.normalization, l1=args.l1,
        l2=args.l2, lr_schedule=args.lr_schedule, lr_decay=args.lr_decay,
        lr_step_size=args.lr_step_size, lr_patience=args.lr_patience, min_lr=args.min_lr,
        warmup_epochs=args.warmup_epochs, early_stopping=args.early_stopping,
        n_iter_no_change=args.n_iter_no_change, class_weight=args.class_weight,
        dropout=args.dropout, augment=args.augment, image_shape=args.image_shape,
        random_state=args.seed, dtype=args.dtype, n_threads=args.threads,
        cpu_kernel=args.cpu_kernel)


def run_sweep(args):
    from . import sweep
    return sweep.run(args, estimator_params(args))


def load_split(dataset, split, data_dir):
    from .datasets import load_dataset, load_fashion_mnist, load_mnist
    if dataset == "mnist":
        return load_mnist(split, data_dir=data_dir)
    if dataset == "fashion-mnist":
        return load_fashion_mnist(split, data_dir=data_dir)
    return load_dataset(dataset, split)


def run_train(args):
    import numpy as np

    from .datasets import train_validation_split
    from .model import MLPClassifier
    checkpoint = None
    if args.checkpoint_dir is not None:
        checkpoint = os.path.join(args.checkpoint_dir, "checkpoint.npz")
    if args.resume:
        if checkpoint is None:
            raise CommandError("--resume needs --checkpoint-dir DIR")
        if not os.path.exists(checkpoint):
            raise CommandError(f"no checkpoint to resume from: {checkpoint} does not exist")
    check_outputs(args, checkpoint)
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
    data_info = {"dataset": str(args.dataset), "n_train": int(X.shape[0]),
                 "n_validation": 0 if val_data is None else int(len(val_data[1])),
                 "n_test": int(X_test.shape[0])}
    if args.resume:
        from .checkpoint import read_checkpoint
        state = read_checkpoint(checkpoint)
        print(f"resuming from {checkpoint} after epoch {state.n_iter}/"
              f"{state.hyperparameters.get('epochs', '?')}", flush=True)
        logs = _run_log(args, state.hyperparameters, data_info, state.n_iter)
        t1 = time.perf_counter()
        model = _fit(lambda: MLPClassifier.resume(checkpoint, X, y, validation_data=val_data,
                                                  callbacks=logs), checkpoint, args)
        return _report(args, model, X_test, y_test, val_data, time.perf_counter() - t1)
    model = MLPClassifier(**estimator_params(args), device=args.device,
                          verbose=0 if args.quiet else 2)
    logs = _run_log(args, model.get_params(), data_info, None)
    layers = "-".join(str(s) for s in (X.shape[1], *args.hidden, np.unique(y).size))
    extras = "".join(f", {name} {value}" for name, value in (
        ("class weight", args.class_weight), ("dropout", args.dropout or None),
        ("augment", args.augment)) if value is not None)
    print(f"model: {layers} {args.activation}, {args.solver} lr {args.learning_rate:g}, "
          f"batch {args.batch_size}, {args.epochs} epochs{extras}", flush=True)
    t1 = time.perf_counter()
    _fit(lambda: model.fit(X, y, validation_data=val_data, checkpoint=checkpoint,
                            callbacks=logs),
         checkpoint, args)
    return _report(args, model, X_test, y_test, val_data, time.perf_counter() - t1)


class WriteError(Exception):
    """An output could not be written during training (exit status 1)."""


def _fit(train, checkpoint, args):
    """Run ``train()``; a checkpoint that cannot be written becomes a one-line WriteError."""
    try:
        return train()
    except OSError as exc:
        if checkpoint is None:
            raise
        raise WriteError(f"could not write the checkpoint {checkpoint} "
                         f"({exc.strerror or exc}); training stopped. The last checkpoint "
                         f"written is intact: free space, then continue with --resume "
                         f"--checkpoint-dir {args.checkpoint_dir}") from None


def _run_log(args, hyperparameters, data_info, resume_after):
    """The ``--log-dir`` callbacks (none without it); writes ``hparams.json``."""
    if not args.log_dir:
        return []
    from .runlog import start_log
    return [start_log(args.log_dir, hyperparameters, data_info, resume_after)]


def _report(args, model, X_test, y_test, val_data, train_seconds):
    import numpy as np
    test_accuracy = model.score(X_test, y_test)
    epoch_seconds = [r["seconds"] for r in model.history_] or [0.0]
    print(f"trained {len(model.history_)} epochs in {train_seconds:.1f} s "
          f"(first epoch {epoch_seconds[0]:.2f} s incl. kernel load/compile, "
          f"median epoch {np.median(epoch_seconds):.3f} s)")
    print(f"test accuracy: {100 * test_accuracy:.2f}% ({X_test.shape[0]} samples)")
    if args.log_dir:
        from .runlog import write_summary
        from .threads import effective_threads
        write_summary(args.log_dir, model, test_accuracy=test_accuracy, n_test=X_test.shape[0],
                      seconds=train_seconds, seed=model.random_state,
                      threads=effective_threads(model.n_threads))
        print(f"wrote metrics.csv, hparams.json and summary.json to {args.log_dir}")
    return _save_outputs(args, model, X_test, y_test, val_data)


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


def _with_flag(message):
    """Name the command-line flag after scikit-learn's "The 'param' parameter ..." messages."""
    match = re.search(r"The '(\w+)' parameter of MLPClassifier", message)
    if match and match.group(1) in FLAGS:
        return f"{message} (set by {FLAGS[match.group(1)]})"
    return message


def _error(message, status):
    print(f"fastann: error: {message}", file=sys.stderr)
    return status


def main(argv=None):
    """Entry point of the ``fastann`` console script; returns the exit status.

    0 on success, 1 when an output could not be written (or memory ran out),
    2 for a user error (one line on stderr), 130 after Ctrl-C; argparse
    usage errors raise ``SystemExit(2)``.
    """
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        from .datasets import DatasetError
        from .exceptions import ModelFileError
        try:
            return args.handler(args)
        except WriteError as exc:
            return _error(exc, 1)
        except (DatasetError, ModelFileError, FileNotFoundError, PermissionError, ValueError,
                ImportError, RuntimeError, CommandError) as exc:
            return _error(_with_flag(str(exc)), 2)
        except MemoryError:
            return _error("out of memory; try smaller --hidden or --batch-size", 1)
        except BrokenPipeError:  # e.g. `fastann evaluate ... | head`: the reader left
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            return _error(f"{exc.strerror or exc}{where}", 1)
    except KeyboardInterrupt:
        saved = getattr(args, "checkpoint_dir", None)
        print("fastann: interrupted" + (f"; resume with --resume --checkpoint-dir {saved}"
                                        if saved else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
