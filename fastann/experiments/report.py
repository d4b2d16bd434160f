"""REPORT.md: the run's measurements next to the published values and their sources.

Every number written here is either measured by the run (``Row.result``,
the run's metadata) or a published value from the plan, printed with the
place it comes from. Interpretation that needs numbers from elsewhere lives in
``docs/experiments/NOTES.md``, with the command behind each number.
"""
from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
from .figures import CAPTIONS
from .markdown import table
from .plan import BEST_TARGET, FAST_TARGET, QUICK, grid, sources

__all__ = ["fastest_and_best", "report_text", "write_report"]

NOTES_PAGE = "docs/experiments/NOTES.md"


# --------------------------------------------------------------------------- describing a row
def architecture(params, n_features=784, n_classes=10):
    """``784-128-10 ReLU`` style description of a network."""
    hidden = tuple(params["hidden_layer_sizes"])
    layers = "-".join(str(s) for s in (n_features, *hidden, n_classes))
    if not hidden:
        return f"{layers} (softmax regression)"
    activation = params.get("activation", "relu")
    return f"{layers} " + {"relu": "ReLU", "leaky_relu": "leaky ReLU"}.get(activation, activation)


def optimizer(params):
    """Human-readable optimizer, with its penalties."""
    solver = params.get("solver", "adam")
    text = {"gd": "full-batch GD", "sgd": "SGD", "adam": "Adam", "adamw": "AdamW",
            "nesterov": f"Nesterov {params.get('momentum', 0.9):g}",
            "momentum": f"SGD + momentum {params.get('momentum', 0.9):g}"}[solver]
    if solver == "adamw" and params.get("l2"):
        text += f" (wd {params['l2']:g})"
    elif params.get("l2"):
        text += f", L2 {params['l2']:g}"
    if params.get("l1"):
        text += f", L1 {params['l1']:g}"
    return text


def learning_rate(params):
    """The initial learning rate and the schedule."""
    text = f"{params.get('learning_rate', 1e-3):g}"
    schedule = params.get("lr_schedule", "constant")
    if schedule == "cosine":
        text += " cosine"
    elif schedule == "exponential":
        text += f" ×{params.get('lr_decay', 0.5):g}/epoch"
    elif schedule == "step":
        text += f" ×{params.get('lr_decay', 0.5):g}/{params.get('lr_step_size', 10)} ep"
    return text


def init_and_input(params, augment=0):
    """``He, /255`` style: weight initialization and input preprocessing."""
    init = params.get("init", "auto")
    if init == "auto":
        init = "he" if params.get("activation", "relu") in ("relu", "leaky_relu") else "xavier"
    norm = {"auto": "/255", "simple": "/255", "standard": "standardized",
            "none": "raw"}[params.get("normalization", "auto")]
    if augment:
        norm += f", random shifts ±{augment} px"
    init = {"he": "He", "xavier": "Xavier", "gaussian": "Gaussian 0.01"}[init]
    return f"{init}, {norm}"


def _pct(value):
    return "—" if value is None else f"{value:.2f}%"


# --------------------------------------------------------------------------- picking rows
def fastest_and_best(rows):
    """The fastest MNIST row reaching ``FAST_TARGET`` and the most accurate one (or None)."""
    mnist = [r for r in rows if r.exp.dataset == "mnist"
             and r.result.get("test_accuracy") is not None]
    best = max(mnist, key=lambda r: r.result["test_accuracy"], default=None)
    reaching = [r for r in mnist if r.result["test_accuracy"] >= FAST_TARGET]
    fastest = min(reaching, key=lambda r: r.result["seconds"], default=None)
    return fastest, best, len(reaching)


# --------------------------------------------------------------------------- tables
def _notes(row, fastest, best):
    exp, r = row.exp, row.result
    notes = []
    if r["status"] != "ok":
        notes.append(f"**{r['status']}**: {r['message']}")
    if exp.reading:
        notes.append(exp.reading)
    if r.get("monitor") == "validation" and r.get("eval_accuracy") is not None:
        notes.append(f"validation {round(r['eval_accuracy'] * r['n_eval'] / 100)}/{r['n_eval']} "
                     f"at epoch {r['epochs_run']}; trained on {r['n_train']} rows")
    if exp.dataset == "fashion" and r["status"] == "ok":
        notes.append("Fashion-MNIST")
    if row.same_as:
        notes.append(f"same configuration and seed as row {row.same_as}, so the same result")
    if row is fastest:
        notes.append(f"**fastest ≥ {FAST_TARGET:.1f}%**")
    if row is best:
        notes.append("**most accurate** (figures)")
    return "; ".join(notes)


RESULT_COLUMNS = ("#", "source", "configuration", "architecture (as run)", "optimizer", "lr",
                  "epochs", "batch", "init, input", "train acc", "test acc", "wall s",
                  "published", "notes")


def _result_cells(number, row, fastest, best):
    params, r = row.params, row.result
    batch = str(params.get("batch_size", 128))
    if params.get("solver") == "gd":
        batch = f"full ({r['n_train']})" if r.get("n_train") else "full"
    epochs = str(params["epochs"])
    if r.get("epochs_run") is not None and r["epochs_run"] != params["epochs"]:
        epochs = f"{r['epochs_run']} of {params['epochs']}"
    seconds = "—" if r.get("seconds") is None else f"{r['seconds']:.1f}"
    return (number, row.exp.source, row.exp.configuration, architecture(params),
            optimizer(params), learning_rate(params), epochs, batch,
            init_and_input(params, row.exp.augment), _pct(r.get("train_accuracy")),
            _pct(r.get("test_accuracy")), seconds, row.exp.reported, _notes(row, fastest, best))


def results_table(rows, fastest, best):
    """One line per configuration."""
    return table(RESULT_COLUMNS, [_result_cells(i, row, fastest, best)
                                  for i, row in enumerate(rows, 1)])


def grid_table(rows):
    """003: each choice's test accuracy per architecture, and its change from the baseline."""
    spec = grid()
    acc = {(row.exp.key.split()[1], row.exp.factor): row.result.get("test_accuracy")
           for row in rows if row.exp.source == spec["source"]}
    archs = [a["name"] for a in spec["architectures"]
             if any(arch == a["name"] for arch, _ in acc)]
    if not archs:
        return ""
    choices = [("", spec["baseline"]["label"], "—")]
    choices += [(f["factor"], f["label"], f["source_choice"]) for f in spec["factors"]]
    cells = []
    for factor, label, offered in choices:
        line = [label, offered]
        for arch in archs:
            value, base = acc.get((arch, factor)), acc.get((arch, ""))
            if value is None:
                line.append("—")
            elif factor and base is not None:
                line.append(f"{value:.2f}% ({value - base:+.2f})")
            else:
                line.append(f"{value:.2f}%")
        cells.append(line)
    return table(("choice", "the source offers", *archs), cells)


_METRICS = {"test_accuracy": "test accuracy", "train_accuracy": "train accuracy"}


def published_table(rows):
    """Each published accuracy of the rows run, next to fastann's, with its source."""
    cells = []
    for number, row in enumerate(rows, 1):
        for p in row.exp.published:
            if p.metric not in _METRICS:
                continue
            ours = row.result.get(p.metric)
            cells.append((number, row.exp.key, _METRICS[p.metric], p.text(), _pct(ours),
                          "—" if ours is None else f"{ours - p.value:+.2f}",
                          f"“{p.quote}”", _where(row.exp.source, p)))
    if not cells:
        return ""
    return table(("#", "configuration", "metric", "published", "fastann", "difference",
                  "the source's words", "where"), cells)


def _where(source_key, published):
    reference = sources()[source_key].reference
    return f"{reference}: {published.where}" if reference else published.where


def validation_table(row):
    """002: correctly classified validation images per epoch, published and measured."""
    published = {p.epoch + 1: p for p in row.exp.published if p.metric == "validation_correct"}
    history, n_eval = row.result.get("history") or [], row.result.get("n_eval")
    cells = []
    for epoch in range(1, max(len(history), max(published, default=0)) + 1):
        p = published.get(epoch)
        measured = "— (not run)"
        if epoch <= len(history) and history[epoch - 1].get("val_accuracy") is not None:
            measured = f"{round(history[epoch - 1]['val_accuracy'] * n_eval)}/{n_eval}"
        label, value = (f"Epoch {p.epoch}", p.text()) if p else ("—", "—")
        cells.append((epoch, label, value, measured))
    return table(("after epoch", "the source's label", "published", "fastann"), cells)


def sources_table(rows):
    """The projects behind the rows run, and where their values were read."""
    keys = dict.fromkeys(row.exp.source for row in rows)
    cells = [(key, s.title, s.reference or "—", s.url or "—")
             for key, s in sources().items() if key in keys and not s.ours]
    return table(("source", "project", "reference", "address"), cells) if cells else ""


# --------------------------------------------------------------------------- the page
def _intro(meta):
    scope = (f"a **quick** subset (`--quick`: at most {QUICK['train_rows']} training / "
             f"{QUICK['test_rows']} test rows, epochs capped at {QUICK['epochs']}, full-batch "
             f"GD at {QUICK['gd_epochs']}, fewer configurations)" if meta["quick"] else
             "full MNIST (60,000 training / 10,000 test images)")
    lines = ["Each configuration published by five from-scratch MNIST MLP projects (and the "
             "Fashion-MNIST README), re-run with `fastann.MLPClassifier` on " + scope
             + ", plus the fastest and the most accurate MLPs we found. The configurations "
             "and the published values, each with its source, are the package data file "
             "`fastann/experiments/plan.json`."]
    if meta["quick"]:
        lines += ["", "*This is a `--quick` run (data subset, epochs capped): its accuracies "
                      "are far from converged and not comparable with the published ones.*"]
    return lines


def _how_it_ran(meta):
    if meta.get("scheduler"):
        return (
            "**How it ran.** Each configuration is a task on the dask.distributed cluster at "
            f"`{meta['scheduler']}` (`--scheduler`, the engine of `fastann sweep`: "
            "`fastann.sweep.engine`), longest runs first; every worker process runs one task "
            "at a time with one BLAS thread (and one Numba thread), reads each dataset once, "
            "and a task whose worker died is run again elsewhere. *wall s* is the wall-clock "
            "time of training in its worker, excluding the per-epoch evaluation of the "
            "monitoring set; compare rows with each other, and expect them to vary with the "
            "machines' load. *train acc* is the accuracy on the training rows after training; "
            f"*test acc* on the {meta['n_test']:,} test images. Every run records the test set "
            "(002: its validation rows) after each epoch for the learning curves; nothing is "
            "selected or stopped on it.")
    return (
        "**How it ran.** Each configuration is trained in its own worker process "
        f"(`concurrent.futures.ProcessPoolExecutor(max_workers={meta['workers']})`, spawn "
        "start method; in this process when there is one worker), longest runs first, and "
        "each model uses `n_threads=1` (one BLAS thread), so the workers use the cores in "
        "parallel without oversubscribing threads. *wall s* is the wall-clock time of "
        "training in its worker, single-threaded, excluding the per-epoch evaluation of the "
        "monitoring set; compare rows with each other, and expect them to vary with the "
        "machine's load. *train acc* is the accuracy on the training rows after training; "
        f"*test acc* on the {meta['n_test']:,} test images. Every run records the test set "
        "(002: its validation rows) after each epoch for the learning curves; nothing is "
        "selected or stopped on it.")


def _headline(fastest, best, n_reaching):
    lines = []
    if fastest is not None:
        r = fastest.result
        lines.append(f"Fastest configuration reaching ≥ {FAST_TARGET:.1f}% test accuracy: "
                     f"**{fastest.exp.key}** ({architecture(fastest.params)}, "
                     f"{optimizer(fastest.params)}, {r['seconds']:.1f} s, "
                     f"{r['test_accuracy']:.2f}%; {n_reaching} configurations reached it).")
    else:
        lines.append(f"No configuration reached {FAST_TARGET:.1f}% test accuracy in this run.")
    if best is not None:
        r = best.result
        verdict = "reaches" if r["test_accuracy"] >= BEST_TARGET else "misses"
        lines.append(f"Most accurate: **{best.exp.key}** ({architecture(best.params)}, "
                     f"{optimizer(best.params)}), {r['test_accuracy']:.2f}% test accuracy "
                     f"in {r['seconds']:.1f} s; {verdict} the {BEST_TARGET:.1f}% target.")
    return lines


def report_text(rows, meta, figures):
    """The Markdown of REPORT.md for ``rows`` (see :func:`~.runner.rows_of`)."""
    fastest, best, n_reaching = fastest_and_best(rows)
    lines = ["# fastann experiments: the reference table", "", *_intro(meta), "",
             f"* Date: {meta['date']}",
             f"* Machine: {meta['cpu']}, {meta['cores']} cores ({meta['available']} available "
             f"to this process); load average {meta['load_start']} at start, "
             f"{meta['load_end']} at the end (the machine may be shared with other work)",
             f"* Software: {meta['software']}",
             f"* Data: {meta['data']}",
             f"* Command: `{meta['command']}`",
             f"* Total wall time: {meta['total_seconds']:.0f} s for {len(rows)} "
             f"configurations, " + (f"on the dask.distributed cluster at {meta['scheduler']}"
                                    if meta.get("scheduler") else
                                    f"{meta['workers']} worker process(es)"),
             "", _how_it_ran(meta), "",
             "## Results", "", results_table(rows, fastest, best), "",
             *_headline(fastest, best, n_reaching), ""]
    grid_lines = grid_table(rows)
    if grid_lines:
        lines += ["### 003 grid: one factor at a time", "", grid()["about"], "",
                  "Test accuracy of each choice, changed alone from the baseline (difference "
                  "from that architecture's baseline in brackets).", "", grid_lines, ""]
    compared = published_table(rows)
    if compared:
        lines += ["## Published values, side by side", "",
                  "Each accuracy a source published, its words and where they stand, next to "
                  "this run's value for the same configuration.", "", compared, ""]
    for row in rows:
        if any(p.metric == "validation_correct" for p in row.exp.published):
            lines += [f"### {row.exp.key}: validation images classified correctly per epoch",
                      "", "The source's own epoch labels start at 0 (Nielsen's code prints "
                      "'Epoch j' after training epoch j).", "", validation_table(row), ""]
    cited = sources_table(rows)
    if cited:
        lines += ["### Sources", "", cited, ""]
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            name = Path(path).name
            lines += [CAPTIONS.get(name, name), "", f"![{name}]({name})", ""]
    lines += [
        "## Notes", "",
        "**Initialization and normalization.** Unless a row says otherwise, pixels are "
        "divided by 255 and weights use He init (ReLU) or Xavier init (sigmoid), biases zero: "
        "fastann's defaults (`init=\"auto\"`, `normalization=\"auto\"`). All runs are float32 "
        f"with seed {meta['seed']} (initialization and shuffling), softmax output and mean "
        "cross-entropy loss.", "",
        f"**Why the numbers differ.** The discussion of where and why fastann's numbers "
        f"differ from the published ones, with the separate checks behind it (each with its "
        f"command), is in `{NOTES_PAGE}` of the fastann repository; nothing there is "
        "computed by this run.", ""]
    failed = [row for row in rows if row.result["status"] in ("failed", "skipped")]
    if failed:
        lines += ["## Runs that did not complete", ""]
        lines += [f"* {row.exp.key}: {row.result['status']}: {row.result['message']}"
                  for row in failed]
        lines.append("")
    return "\n".join(lines)


def write_report(out, rows, meta, figures):
    """Write ``out``/REPORT.md atomically (temporary file, then rename); returns its path."""
    path = Path(out) / "REPORT.md"
    with atomic_write(path) as f:
        f.write(report_text(rows, meta, figures).encode("utf-8"))
    return path
