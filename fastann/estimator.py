"""Parameter handling shared by fastann estimators (scikit-learn conventions, no scikit-learn import)."""
import inspect


class ParamsMixin:
    """``get_params``/``set_params``/``__repr__`` from the constructor's signature.

    As in scikit-learn, ``__init__`` only stores its arguments under the same
    names; validation happens in ``fit``.
    """

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        """Hyper-parameters as a dict ``{name: value}`` (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyper-parameters by name and return ``self``.

        Raises
        ------
        ValueError
            A name is not a parameter of this estimator.
        """
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name)
            if p.default is inspect.Parameter.empty or not _same_value(value, p.default):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


def _same_value(value, default):
    """Whether ``value`` equals ``default``, also for arrays (whose ``==`` is element-wise)."""
    if value is default:
        return True
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False
