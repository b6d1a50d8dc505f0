"""What the estimators accept: hyper-parameters (numpy scalars too), feature names, class labels."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV

from psilon import PSiLONClassifier, PSiLONRegressor

FAST = dict(width=8, depth=3, lambdas=(1e-4, 1e-1), max_steps=40, batch_size=32, learning_rate=2e-2,
            eval_every=20, random_state=0)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, 2 * X[:, 0] - X[:, 1]


# --------------------------------------------------------------------------- hyper-parameters
def test_gridsearch_over_numpy_integer_arrays():
    X, y = _data()
    gs = GridSearchCV(PSiLONRegressor(**FAST), {"width": np.array([8, 16])}, cv=2).fit(X, y)
    assert gs.best_params_["width"] in (8, 16)
    assert gs.best_estimator_.module_.width == gs.best_params_["width"]


def test_numpy_scalars_are_accepted_for_every_numeric_parameter():
    X, y = _data()
    params = dict(
        FAST, width=np.int64(8), depth=np.int32(3), batch_size=np.int64(16), cv=np.int64(2), max_steps=np.int64(20),
        eval_every=np.int16(10), learning_rate=np.float32(2e-2), validation_fraction=np.float64(0.25),
        lambdas=np.array([1e-3]), prune=np.int64(5), architecture=np.str_("resnet"), selection=np.str_("cv"),
    )
    m = PSiLONRegressor(**params).fit(X, y)
    assert m.n_steps_ == 20 and hasattr(m, "selected_features_") and m.module_.architecture == "resnet"
    e = PSiLONRegressor(**{**FAST, "epochs": np.int64(2), "max_steps": None, "patience": np.int64(3)}).fit(X, y)
    assert e.n_steps_ <= 2 * 2


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("width", True, "width must be a positive integer"),
        ("width", 8.0, "width must be a positive integer"),
        ("depth", 1, "depth must be an integer >= 2"),
        ("cv", np.int64(1), "cv must be an integer >= 2"),
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("max_steps", "10", "max_steps must be a positive integer"),
        ("epochs", 0, "epochs must be a positive integer"),
        ("eval_every", 0, "eval_every must be a positive integer"),
        ("patience", -1, "patience must be a positive integer"),
        ("learning_rate", float("inf"), "learning_rate must be a positive finite number"),
        ("learning_rate", True, "learning_rate must be a positive finite number"),
        ("validation_fraction", 1.0, r"validation_fraction must be in \(0, 1\)"),
        ("prune", -3, "prune must be False, True"),
        ("prune", "yes", "prune must be False, True"),
        ("model", "other", "model must be one of"),
        ("selection", "kfold", "selection must be one of"),
        ("restore", "last", "restore must be one of"),
        ("lambdas", [], "lambdas is empty"),
        ("lambdas", "abc", "lambdas must be a positive number"),
    ],
)
def test_bad_parameters_are_named_at_fit(param, value, match):
    X, y = _data()
    with pytest.raises(ValueError, match=f"PSiLONRegressor: {match}"):
        PSiLONRegressor(**{**FAST, param: value}).fit(X, y)


def test_prune_with_best_restore_is_refused_before_training():
    X, y = _data()
    with pytest.raises(ValueError, match="prune keeps the final"):
        PSiLONRegressor(**{**FAST, "prune": True, "restore": "best"}).fit(X, y)


def test_fitted_state_is_public_and_there_is_no_dead_state():
    X, y = _data()
    reg = PSiLONRegressor(**FAST).fit(X, y)
    assert reg.y_ndim_ == 1 and PSiLONRegressor(**FAST).fit(X, np.c_[y]).y_ndim_ == 2
    clf = PSiLONClassifier(**FAST).fit(X, y > 0)
    for est in (reg, clf):
        assert not {"_y_ndim", "_best_member", "_encoder", "_loss_kind"} & set(vars(est))
        assert not hasattr(type(est), "_loss_kind")


# --------------------------------------------------------------------------- feature names (issue 13)
def _mixed_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "c": rng.choice(["x", "y", "z"], size=n).astype(object)})
    df.loc[::6, "a"] = np.nan
    return df, 2 * df["b"].to_numpy() + (df["c"] == "x").to_numpy()


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
@pytest.mark.parametrize("kind", ["numeric", "mixed"])
def test_array_after_a_dataframe_fit_is_read_the_same_before_and_after_load(kind, tmp_path):
    """Regression (issue 13): fitted on a DataFrame, predict(array) failed with "Specifying the
    columns using strings is only supported for dataframes", but worked after save/load."""
    df, y = _mixed_frame()
    if kind == "numeric":
        df = df[["a", "b"]]
    model = PSiLONRegressor(**FAST).fit(df, y)
    model.save(tmp_path / "m.pt")
    loaded = PSiLONRegressor.load(tmp_path / "m.pt")
    expected = model.predict(df)
    array = df.to_numpy()  # float for numeric frames, object for mixed ones
    for est in (model, loaded):
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            np.testing.assert_array_equal(est.predict(array), expected)
        with pytest.raises(ValueError, match="feature names"):
            est.predict(df.rename(columns={"a": "q"}))
        with pytest.raises(ValueError, match=f"is expecting {df.shape[1]} features"):
            est.predict(array[:, :-1])


def test_array_fit_then_dataframe_predict_warns_and_works_before_and_after_load(tmp_path):
    X, y = _data()
    model = PSiLONRegressor(**FAST).fit(X, y)
    model.save(tmp_path / "m.pt")
    loaded = PSiLONRegressor.load(tmp_path / "m.pt")
    df = pd.DataFrame(X, columns=["u", "v", "w"])
    for est in (model, loaded):
        with pytest.warns(UserWarning, match="X has feature names"):
            np.testing.assert_array_equal(est.predict(df), model.predict(X))


# --------------------------------------------------------------------------- labels (issue 13)
@pytest.mark.parametrize(
    "missing", [None, np.nan, pd.NA], ids=["None", "nan", "pd.NA"],
)
def test_missing_class_labels_are_a_clear_error(missing):
    """Regression (issue 13): None among the labels gave TypeError: '<' not supported."""
    X, _ = _data()
    y = np.array(["a", "b", "c"] * 20, dtype=object)
    y[7] = missing
    with pytest.raises(ValueError, match=r"y contains missing labels \(None/NaN\) at rows \[7\]"):
        PSiLONClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="y contains missing labels"):
        PSiLONClassifier(**FAST).fit(X, pd.Series(y))


def test_mixed_label_types_and_bad_eval_labels_are_clear_errors():
    X, _ = _data()
    mixed = np.array(["a", 1] * 30, dtype=object)
    with pytest.raises(ValueError, match="mixes label types"):
        PSiLONClassifier(**FAST).fit(X, mixed)
    y = np.array(["a", "b"] * 30, dtype=object)
    y_val = np.array(["a", None, "b"], dtype=object)
    with pytest.raises(ValueError, match="y_val contains missing labels"):
        PSiLONClassifier(**FAST).fit(X, y, eval_set=(X[:3], y_val))


# --------------------------------------------------------------------------- degenerate targets
def test_constant_targets_fit_and_predict_close_to_the_constant():
    """Scaling maps a constant target to 0 (scale 1); training must not call that a divergence."""
    X, _ = _data()
    model = PSiLONRegressor(**FAST).fit(X, np.full(len(X), 3.5))
    pred = model.predict(X)
    assert np.all(np.isfinite(pred)) and np.abs(pred - 3.5).max() < 1.0
    assert (model.y_center_, model.y_scale_) == ([3.5], [1.0])


def test_targets_whose_squared_error_would_overflow_are_a_clear_error():
    """A tiny interquartile range with a far outlier (found by the property test): scaled by the
    IQR, 923 becomes 1.8e19, whose square overflows float32, and every lambda used to diverge."""
    X = np.zeros((13, 1))
    y = np.array([0.0] * 9 + [1.0, 1.0, 923.0, 1e-16])
    with pytest.raises(ValueError, match=r"too far from the median.*squared error would overflow float32"):
        PSiLONRegressor(**FAST).fit(X, y)
    y_ok = np.array([0.0] * 9 + [1.0, 1.0, 923.0, 1e-16]) + np.arange(13)  # a normal spread: fits
    assert np.isfinite(PSiLONRegressor(**FAST).fit(X, y_ok).predict(X)).all()
