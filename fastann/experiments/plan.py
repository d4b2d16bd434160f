"""The plan of ``fastann experiments``, read from the package data file ``plan.json``.

The configurations, the values their sources published (each with a quote and
where it stands) and the run's targets and ``--quick`` limits are data, not
code: this module only turns them into :class:`Experiment` objects, expanding
the one-factor-at-a-time grid of source 003.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["Experiment", "Published", "Source", "build_plan", "effective_params", "grid",
           "load_plan", "sources"]

PLAN_FILE = "plan.json"


@functools.lru_cache(maxsize=1)
def load_plan():
    """The parsed ``plan.json`` shipped in this package (a dict)."""
    text = resources.files(__package__).joinpath(PLAN_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Source:
    """A project whose configurations are re-run (``reference``: where its values come from)."""

    key: str
    title: str
    reference: str | None = None
    url: str | None = None
    ours: bool = False  # fastann's own configurations: nothing is published


@dataclass(frozen=True)
class Published:
    """One value a source published, with the words it used and where they stand.

    ``value`` is a percentage for accuracies; for ``validation_correct`` a
    count of ``out_of`` images after the source's ``epoch`` (its own label).
    """

    metric: str  # "test_accuracy", "train_accuracy" or "validation_correct"
    value: float
    quote: str
    where: str
    epoch: int | None = None
    out_of: int | None = None
    approximate: bool = False

    def text(self):
        """``73.90%``, ``about 89%`` or ``9386/10000``."""
        if self.metric == "validation_correct":
            return f"{self.value:.0f}/{self.out_of}"
        return f"about {self.value:g}%" if self.approximate else f"{self.value:.2f}%"


@dataclass(frozen=True)
class Experiment:
    """One configuration of the table.

    ``params`` are :class:`~fastann.MLPClassifier` keyword arguments (the
    seed, ``n_threads`` and ``verbose`` are added when it runs).
    """

    key: str
    source: str
    configuration: str
    params: dict
    published: tuple = ()  # of Published
    reading: str = ""  # details the source left out, and what we chose
    dataset: str = "mnist"  # "mnist" (the --dataset data) or "fashion"
    split: str = "full"  # "full": all training rows; "50k/10k": last 1/6 held out
    quick: bool = False  # part of the --quick plan
    factor: str = ""  # 003 grid: the factor varied from the baseline ("" = baseline)
    augment: int = 0  # > 0: each epoch sees the images shifted by up to this many pixels
    source_choice: str = ""  # 003 grid: the source's sentence offering this choice

    def published_value(self, metric):
        """The published :class:`Published` of ``metric`` (the last one), or None."""
        values = [p for p in self.published if p.metric == metric]
        return values[-1] if values else None

    @property
    def reported_accuracy(self):
        """Published test accuracy in percent (for the bar chart), or None."""
        value = self.published_value("test_accuracy")
        return None if value is None else value.value

    @property
    def reported(self):
        """The published values as one table cell: ``73.90% (train 74.56%)``."""
        if not self.published:
            return "—" if sources()[self.source].ours else "not published"
        test = self.published_value("test_accuracy")
        text = test.text() if test is not None else "—"
        extra = []
        train = self.published_value("train_accuracy")
        if train is not None:
            extra.append(f"train {train.text()}")
        last = self.published_value("validation_correct")
        if last is not None:
            extra.append(f"validation {last.text()} at its 'Epoch {last.epoch}'")
        return text + (f" ({'; '.join(extra)})" if extra else "")


@functools.lru_cache(maxsize=1)
def sources():
    """``{key: Source}`` in report order."""
    return {key: Source(key=key, **entry) for key, entry in load_plan()["sources"].items()}


def _params(raw):
    params = dict(raw)
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _experiment(entry):
    entry = dict(entry)
    published = tuple(Published(**p) for p in entry.pop("published", ()))
    return Experiment(params=_params(entry.pop("params")), published=published, **entry)


def grid():
    """The grid entry of ``plan.json`` (source 003's one-factor-at-a-time design)."""
    return next(item["grid"] for item in load_plan()["experiments"] if "grid" in item)


def _expand_grid(spec):
    plan = []
    base = spec["baseline"]
    for arch in spec["architectures"]:
        name, hidden = arch["name"], arch["hidden_layer_sizes"]
        params = _params(dict(base["params"], hidden_layer_sizes=hidden))
        quick = arch.get("quick", False)
        plan.append(Experiment(
            key=f"{spec['source']} {name} baseline", source=spec["source"],
            configuration=f"{name} {base['configuration']}", params=params,
            reading=base.get("reading", ""), quick=quick))
        for factor in spec["factors"]:
            if factor.get("needs_hidden_layer") and not hidden:
                continue  # no hidden layer: the activation is never used
            plan.append(Experiment(
                key=f"{spec['source']} {name} {factor['factor']}", source=spec["source"],
                configuration=f"{name}, {factor['label']}",
                params=dict(params, **factor["params"]), reading=factor.get("reading", ""),
                quick=quick, factor=factor["factor"], source_choice=factor["source_choice"]))
    return plan


def build_plan(quick=False):
    """The configurations of the table, in report order.

    With ``quick``, only those marked ``quick`` (the plan's shape, with fewer
    of them); the runner caps their epochs.
    """
    plan = []
    for item in load_plan()["experiments"]:
        plan += _expand_grid(item["grid"]) if "grid" in item else [_experiment(item)]
    return [e for e in plan if e.quick] if quick else plan


def effective_params(params):
    """All hyper-parameters with the defaults and ``auto`` choices filled in, sorted
    (to spot two rows that run the very same configuration)."""
    from ..initializers import default_init
    from ..model import MLPClassifier
    full = MLPClassifier().get_params()
    full.update(params)
    full["hidden_layer_sizes"] = tuple(full["hidden_layer_sizes"])
    if full["init"] == "auto":
        full["init"] = default_init(full["activation"])
    if full["normalization"] == "auto":
        full["normalization"] = "simple"  # the datasets here are uint8 images
    return sorted(full.items())


_constants = load_plan()
#: Values of ``--only``: the five reference projects, the Fashion-MNIST README, our own.
SOURCES = tuple(_constants["sources"])
#: Test accuracy (percent) the "fastest configuration" must reach.
FAST_TARGET = _constants["targets"]["fast_test_accuracy"]
#: Test accuracy (percent) we aim for with the best MLP.
BEST_TARGET = _constants["targets"]["best_test_accuracy"]
#: ``--quick``: at most this many training / test rows, and epochs capped.
QUICK = dict(_constants["quick"])
del _constants
