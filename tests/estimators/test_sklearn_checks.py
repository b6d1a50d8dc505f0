"""scikit-learn conformance: ``parametrize_with_checks`` on tiny, fast configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from psilon import PSiLONClassifier, PSiLONRegressor

TINY = dict(width=8, depth=2, lambdas=(1e-4, 1e-3), max_steps=60, batch_size=64, learning_rate=5e-2, eval_every=30, random_state=0)

EXPECTED_FAILURES: dict[str, str] = {}


def _expected(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [PSiLONRegressor(**TINY), PSiLONClassifier(**TINY)],
    expected_failed_checks=_expected,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
