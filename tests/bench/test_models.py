"""The model registry: baselines tuned on validation, PSiLON entries, curve normalization."""

import numpy as np
import pandas as pd
import pytest

from psilon.bench.metrics import evaluate, predict_for_metrics
from psilon.bench.models import MODELS, ModelUnavailableError, curve_records, get_model


def _regression(seed=0, n=240, noise=3.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = X[:, 0] + noise * rng.normal(size=n)  # noisy: strong shrinkage wins on validation
    return X[:160], y[:160], X[160:], y[160:]


def _classification(n_classes, seed=0, n=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=n), np.quantile(X[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1]))
    return X[:200], y[:200], X[200:], y[200:]


def test_linear_selects_alpha_with_best_validation_score():
    X, y, Xv, yv = _regression()
    result = get_model("linear").fit(X, y, Xv, yv, "regression", {"alphas": [1e-3, 1.0, 1e3], "random_state": 0})
    scores = {p["alpha"]: p["val_score"] for p in result.path}
    assert len(scores) == 3 and result.selected["alpha"] == min(scores, key=scores.get)
    rmse = evaluate(yv, predict_for_metrics(result.predictor, Xv, "regression"), "regression")["rmse"]
    assert rmse == pytest.approx(scores[result.selected["alpha"]])


def test_logistic_uses_c_equal_one_over_alpha():
    X, y, Xv, yv = _classification(2)
    result = get_model("linear").fit(X, y, Xv, yv, "binary", {"alphas": [4.0]})
    assert result.predictor.C == pytest.approx(0.25)


@pytest.mark.parametrize("task, n_classes", [("regression", None), ("binary", 2), ("multiclass", 3)])
@pytest.mark.parametrize(
    "entry, params, tuned",
    [
        ("random-forest", {"n_estimators": 10, "min_samples_leaf": [4, 50]}, "min_samples_leaf"),
        ("hist-gb", {"max_iter": 20, "learning_rate": [0.1, 0.3]}, "learning_rate"),
        ("mlp", {"hidden_layer_sizes": [16], "alpha": [1e-3, 1.0], "max_iter": 50}, "alpha"),
    ],
)
def test_baselines_tune_on_validation_for_every_task(entry, params, tuned, task, n_classes):
    X, y, Xv, yv = _regression() if task == "regression" else _classification(n_classes)
    result = get_model(entry).fit(X, y, Xv, yv, task, {**params, "random_state": 0})
    assert [p[tuned] for p in result.path] == params[tuned]
    best = min(result.path, key=lambda p: p["val_score"])
    assert result.selected == {tuned: best[tuned]}
    pred = predict_for_metrics(result.predictor, Xv, task, n_classes)
    assert pred.shape == ((len(yv),) if task == "regression" else (len(yv), n_classes))


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_hist_gb_early_stops_on_the_task_validation_set(task):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X, y, Xv, yv = _regression() if task == "regression" else _classification(2)
    params = {"max_iter": 2000, "learning_rate": [0.3], "early_stopping": True, "random_state": 0}
    result = get_model("hist-gb").fit(X, y, Xv, yv, task, params)
    model = result.predictor
    assert model.n_iter_ < 2000  # stopped on validation, far before the cap
    # the same model sklearn fits when told to stop on exactly these validation rows
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    ref = cls(max_iter=2000, learning_rate=0.3, early_stopping=True, random_state=0).fit(X, y, X_val=Xv, y_val=yv)
    assert model.n_iter_ == ref.n_iter_
    # and not the one that stops on a slice of the training rows
    inner = cls(max_iter=2000, learning_rate=0.3, early_stopping=True, random_state=0).fit(X, y)
    assert len(inner.validation_score_) != len(model.validation_score_) or not np.allclose(
        inner.validation_score_, model.validation_score_
    )


def test_random_forest_is_single_threaded_inside_a_task():
    X, y, Xv, yv = _regression()
    result = get_model("random-forest").fit(X, y, Xv, yv, "regression", {"n_estimators": 5, "min_samples_leaf": [4]})
    assert result.predictor.n_jobs == 1 and result.predictor.n_estimators == 5


def test_unknown_parameters_and_models_are_clear_errors():
    X, y, Xv, yv = _regression()
    with pytest.raises(ValueError, match="unknown parameter.*n_trees"):
        get_model("random-forest").fit(X, y, Xv, yv, "regression", {"n_trees": 5})
    with pytest.raises(ValueError, match="unknown model 'svm'; known models: linear"):
        get_model("svm")
    with pytest.raises(ValueError, match="task must be"):
        get_model("linear").fit(X, y, Xv, yv, "ranking", {})


def test_psilon_entry_fits_through_the_estimator():
    X, y, Xv, yv = _regression()
    params = {"architecture": "mlp", "width": 16, "depth": 3, "lambdas": [1e-3, 1e-2], "max_steps": 30,
              "batch_size": 400, "selection": "holdout", "random_state": 0}
    result = MODELS["psilon-net"].fit(X, y, Xv, yv, "regression", params)
    assert result.selected.get("lambda") in (1e-3, 1e-2)
    assert predict_for_metrics(result.predictor, Xv, "regression").shape == (len(yv),)


@pytest.mark.parametrize("entry", ["realmlp-td", "tabm-d"])
def test_pytabkit_entries_report_availability(entry):
    try:
        import pytabkit  # noqa: F401
    except ImportError:
        assert "pytabkit" in MODELS[entry].unavailable_reason()
        with pytest.raises(ModelUnavailableError, match="pytabkit"):
            MODELS[entry].fit(*_regression(), "regression", {})
    else:
        assert MODELS[entry].unavailable_reason() is None


def test_curve_records_accepts_long_wide_and_dict_forms():
    expected = [
        {"lambda": 0.1, "step": 0, "value": 1.0},
        {"lambda": 0.1, "step": 1, "value": 0.5},
        {"lambda": 0.2, "step": 0, "value": 2.0},
        {"lambda": 0.2, "step": 1, "value": 1.5},
    ]
    long = pd.DataFrame({"lambda": [0.1, 0.1, 0.2, 0.2], "step": [0, 1, 0, 1], "val_loss": [1.0, 0.5, 2.0, 1.5]})
    wide = pd.DataFrame({0.1: [1.0, 0.5], 0.2: [2.0, 1.5]})
    as_dict = {0.1: [1.0, 0.5], 0.2: np.array([2.0, 1.5])}
    assert curve_records(long) == expected
    assert sorted(curve_records(wide), key=lambda r: (r["lambda"], r["step"])) == expected
    assert curve_records(as_dict) == expected
    assert curve_records(None) is None
    with pytest.raises(ValueError, match="no value column"):
        curve_records(long.rename(columns={"val_loss": "foo"}))
