"""Search spaces: which ``MLPClassifier`` configurations a sweep trains.

A space is a JSON object mapping ``MLPClassifier`` parameter names to

- a list of values: a grid axis (``"learning_rate": [1e-3, 3e-3]``);
- ``{"choice": [...]}``: one of the values, drawn at random;
- ``{"low": A, "high": B}``: uniform in ``[A, B)``; with ``"log": true``
  log-uniform; with ``"int": true`` an integer in ``[A, B]``.

Without ``n_trials`` every value must be a list and the sweep is the whole
grid (the Cartesian product, in the space's key order). With ``n_trials``,
``n_trials`` configurations are drawn by a ``numpy.random.Generator`` seeded
with ``seed`` (a list counts as a choice); a space of lists and choices only
is drawn without replacement, so no configuration repeats. The same space,
``n_trials`` and seed always give the same trials, which is what lets an
interrupted sweep resume.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

__all__ = ["Space", "SpaceError", "Trial", "load_space", "parse_space", "trial_key"]


class SpaceError(ValueError):
    """A search space that cannot be used (the message names the parameter)."""


@dataclass(frozen=True)
class Trial:
    """One configuration of a sweep.

    Attributes
    ----------
    key : str
        16 hex digits of the SHA-256 of the parameters and the data
        description (:func:`trial_key`); a finished trial is found again by it.
    params : dict
        ``MLPClassifier`` keyword arguments (the fixed ones included).
    varied : dict
        The subset of ``params`` that comes from the space.
    """

    key: str
    params: dict
    varied: dict


@dataclass(frozen=True)
class _Axis:
    name: str
    values: tuple = ()  # list or choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    grid: bool = False  # given as a list (a grid axis)

    @property
    def discrete(self):
        return self.low is None

    def draw(self, rng):
        if self.discrete:
            return self.values[int(rng.integers(len(self.values)))]
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        if self.integer:
            return int(min(max(round(value), self.low), self.high))
        return float(value)


class Space:
    """A parsed search space (see the module docstring).

    Parameters
    ----------
    spec : dict
        The JSON object.
    known : iterable of str, optional
        The parameter names allowed (``MLPClassifier().get_params()``); every
        name is accepted when None.

    Raises
    ------
    SpaceError
        Not an object, empty, an unknown parameter, an empty list, or a
        malformed distribution.
    """

    def __init__(self, spec, known=None):
        if not isinstance(spec, dict) or not spec:
            raise SpaceError("a search space must be a non-empty JSON object mapping "
                             "MLPClassifier parameter names to values")
        known = None if known is None else set(known)
        self.axes = []
        for name, value in spec.items():
            if known is not None and name not in known:
                raise SpaceError(f"search space: {name!r} is not an MLPClassifier parameter; "
                                 f"choose from {', '.join(sorted(known))}")
            self.axes.append(_parse_axis(name, value))

    @property
    def names(self):
        """The parameter names, in the space's order."""
        return [axis.name for axis in self.axes]

    @property
    def is_grid(self):
        """Whether every entry is a list (the space can be enumerated without ``n_trials``)."""
        return all(axis.grid for axis in self.axes)

    def grid_size(self):
        """Number of distinct configurations, or None with a continuous distribution."""
        if not all(axis.discrete for axis in self.axes):
            return None
        return math.prod(len(axis.values) for axis in self.axes)

    def configurations(self, n_trials=None, seed=0):
        """The varied parameters of each trial, in order.

        Parameters
        ----------
        n_trials : int or None
            None: the whole grid. Otherwise the number of configurations to
            draw (all of them, in random order, if the grid has fewer).
        seed : int
            Seeds the ``numpy.random.Generator`` that draws.

        Returns
        -------
        list of dict

        Raises
        ------
        SpaceError
            ``n_trials`` is None but the space has a distribution, or is not positive.
        """
        if n_trials is None:
            if not self.is_grid:
                random = [a.name for a in self.axes if not a.grid]
                raise SpaceError(f"search space: {', '.join(random)} "
                                 f"{'is a distribution' if len(random) == 1 else 'are distributions'}"
                                 f"; give the number of configurations to draw (--trials N)")
            return [dict(zip(self.names, values))
                    for values in itertools.product(*(a.values for a in self.axes))]
        if int(n_trials) != n_trials or n_trials < 1:
            raise SpaceError(f"the number of trials must be a positive integer, got {n_trials!r}")
        rng = np.random.default_rng(seed)
        size = self.grid_size()
        if size is not None:  # discrete: without replacement
            picks = rng.permutation(size)[:n_trials] if size <= 10**7 else \
                _distinct_indices(rng, size, n_trials)
            lengths = [len(a.values) for a in self.axes]
            return [dict(zip(self.names, (a.values[i] for a, i in
                                          zip(self.axes, np.unravel_index(int(p), lengths)))))
                    for p in picks]
        configurations, seen = [], set()
        for _ in range(100 * n_trials):
            draw = {axis.name: axis.draw(rng) for axis in self.axes}
            marker = _canonical(draw)
            if marker not in seen:
                seen.add(marker)
                configurations.append(draw)
                if len(configurations) == n_trials:
                    break
        return configurations


def _distinct_indices(rng, size, count):
    chosen = {}
    while len(chosen) < min(count, size):
        chosen.setdefault(int(rng.integers(size)), None)
    return list(chosen)


def _parse_axis(name, value):
    where = f"search space: {name!r}"
    if isinstance(value, list):
        if not value:
            raise SpaceError(f"{where}: the list of values is empty")
        return _Axis(name, values=tuple(_value(name, v) for v in value), grid=True)
    if not isinstance(value, dict):
        raise SpaceError(f"{where}: expected a list of values, {{\"choice\": [...]}} or "
                         f"{{\"low\": A, \"high\": B}}, got {json.dumps(value)}")
    if "choice" in value:
        extra = set(value) - {"choice"}
        choices = value["choice"]
        if extra or not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: a choice is {{\"choice\": [value, ...]}} with a "
                             f"non-empty list and nothing else")
        return _Axis(name, values=tuple(_value(name, v) for v in choices))
    extra = set(value) - {"low", "high", "log", "int"}
    if extra or "low" not in value or "high" not in value:
        raise SpaceError(f"{where}: a distribution is {{\"low\": A, \"high\": B}} with "
                         f"optional \"log\": true and \"int\": true"
                         + (f"; unknown key(s) {', '.join(sorted(extra))}" if extra else ""))
    low, high = value["low"], value["high"]
    log, integer = value.get("log", False), value.get("int", False)
    if not all(isinstance(v, Real) and not isinstance(v, bool) for v in (low, high)) \
            or not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise SpaceError(f"{where}: needs finite numbers low < high, got {low!r} and {high!r}")
    if not isinstance(log, bool) or not isinstance(integer, bool):
        raise SpaceError(f"{where}: \"log\" and \"int\" must be true or false")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log-uniform distribution needs low > 0, got {low!r}")
    if integer and not (isinstance(low, Integral) and isinstance(high, Integral)):
        raise SpaceError(f"{where}: an integer distribution needs integer bounds")
    return _Axis(name, low=low, high=high, log=log, integer=integer)


def _value(name, value):
    """JSON lists become tuples for ``hidden_layer_sizes`` (``[[256], [128, 64]]``)."""
    if name == "hidden_layer_sizes" and isinstance(value, list):
        return tuple(value)
    return value


def _canonical(params):
    return json.dumps(params, sort_keys=True, default=_json_default)


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not a JSON value: {value!r}")


def trial_key(params, data=None):
    """A stable identity of a trial: 16 hex digits of SHA-256 over its parameters and data.

    Parameters
    ----------
    params : dict
        All ``MLPClassifier`` parameters of the trial.
    data : dict, optional
        What the trial trains and is scored on (dataset, validation rows).

    Returns
    -------
    str
    """
    text = _canonical({"params": params, "data": data})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_space(spec, known=None):
    """:class:`Space` of a parsed JSON object (see :class:`Space` for the errors)."""
    return Space(spec, known)


def load_space(path, known=None):
    """Read a space from a JSON file.

    Raises
    ------
    FileNotFoundError
        No such file.
    SpaceError
        Not valid JSON, or not a valid space.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpaceError(f"{path}: not valid JSON ({exc})") from None
    return Space(spec, known)
