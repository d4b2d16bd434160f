"""scikit-learn's estimator checks, run on a small MLPClassifier (one test per check).

MLPClassifier is built on scikit-learn's ``BaseEstimator`` and ``ClassifierMixin``
and validates its parameters with scikit-learn's constraints.
"""
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastann import MLPClassifier  # noqa: E402


def _small_model():
    return MLPClassifier(hidden_layer_sizes=(16,), epochs=60, batch_size=16, random_state=0)


# Every other check passes.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "mini-batch training: integer weights equal repeated rows only in expectation over "
        "the shuffling (exactly with solver='gd': tests/test_features.py), as for "
        "scikit-learn's own MLPClassifier, which passes this check only with solver='lbfgs'",
}


_checks = parametrize_with_checks([_small_model()],
                                  expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)


@_checks
def test_sklearn_estimator_check(estimator, check):
    check(estimator)


def test_not_fitted_error_is_also_sklearn_s():
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    import fastann

    model = _small_model()
    with pytest.raises(SklearnNotFittedError) as info:
        model.predict([[0.0, 1.0]])
    assert isinstance(info.value, fastann.NotFittedError)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(model)


def test_works_inside_sklearn_pipeline_and_cross_validation():
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    pipe = make_pipeline(StandardScaler(), _small_model().set_params(learning_rate=0.01))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.9
