"""PSiLONRegressor / PSiLONClassifier: fitted attributes, selection, inputs, errors, sklearn tools."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from psilon import PSiLONClassifier, PSiLONRegressor
from psilon.nn import WeightNormNet

FAST = dict(width=8, depth=3, lambdas=(1e-4, 1e-2, 1e-1), max_steps=60, batch_size=32, learning_rate=2e-2,
            eval_every=20, random_state=0)


def _reg_data(n=80, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = 3.0 * X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def _mixed_frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], size=n).astype(object),
            "size": pd.Categorical(rng.choice(["S", "M", "L"], size=n)),
        }
    )
    df.loc[::7, "a"] = np.nan
    df.loc[::9, "color"] = None
    y = 2 * df["b"].to_numpy() + (df["color"] == "red").to_numpy() + 0.1 * rng.normal(size=n)
    return df, y


def test_regressor_fitted_attributes():
    X, y = _reg_data()
    m = PSiLONRegressor(**FAST).fit(X, y)
    assert m.lambda_ in FAST["lambdas"]
    assert list(m.path_.index) == list(FAST["lambdas"]) and m.path_.index.name == "lambda"
    for col in ("val_loss", "near_sparsity", "lipschitz_bound", "status", "selected"):
        assert col in m.path_.columns
    assert m.path_["selected"].sum() == 1 and m.path_.loc[m.lambda_, "selected"]
    assert m.path_.loc[m.lambda_, "val_loss"] == m.path_["val_loss"].min()
    assert m.history_.index.name == "step" and list(m.history_.columns) == list(FAST["lambdas"])
    assert m.history_.index[-1] == 60
    assert isinstance(m.module_, WeightNormNet) and m.module_.members is None
    assert m.lipschitz_bound_ > 0 and 0 <= m.near_sparsity_ <= 1
    assert m.n_features_in_ == 5 and not hasattr(m, "feature_names_in_")
    assert m.predict(X).shape == (80,)
    assert m.score(X, y) > 0.5


def test_target_scaling_is_mapped_back():
    """(y - median) / (IQR/2) makes the fit invariant to an affine change of y."""
    X, y = _reg_data()
    p1 = PSiLONRegressor(**FAST).fit(X, y).predict(X)
    p2 = PSiLONRegressor(**FAST).fit(X, 1000.0 * y + 5e4).predict(X)
    np.testing.assert_allclose(p2, 1000.0 * p1 + 5e4, rtol=1e-6, atol=1e-2)


def test_lipschitz_bound_holds_on_preprocessed_inputs():
    X, y = _reg_data()
    m = PSiLONRegressor(**FAST).fit(X, 50 * y)
    rng = np.random.default_rng(1)
    A = rng.normal(size=(200, 5))
    B = A + rng.uniform(-0.5, 0.5, size=A.shape)
    za, zb = m.preprocessor_.transform(A), m.preprocessor_.transform(B)
    ratio = np.abs(m.predict(A) - m.predict(B)) / np.abs(za - zb).max(1)
    assert ratio.max() <= m.lipschitz_bound_ * (1 + 1e-5)
    assert ratio.max() > 0.05 * m.lipschitz_bound_  # not a vacuous bound on this data


def test_eval_set_is_used_for_selection():
    X, y = _reg_data()
    Xv, yv = _reg_data(n=30, seed=5)
    m = PSiLONRegressor(**FAST).fit(X, y, eval_set=(Xv, yv))
    scaled_mse = np.mean(((m.predict(Xv) - yv) / m.y_scale_) ** 2)
    assert scaled_mse == pytest.approx(m.path_.loc[m.lambda_, "val_loss"], rel=1e-4)


def test_path_member_equals_single_lambda_fit():
    X, y = _reg_data()
    Xv, yv = _reg_data(n=30, seed=5)
    path = PSiLONRegressor(**FAST).fit(X, y, eval_set=(Xv, yv))
    one = PSiLONRegressor(**{**FAST, "lambdas": path.lambda_}).fit(X, y, eval_set=(Xv, yv))
    np.testing.assert_allclose(one.predict(X), path.predict(X), atol=1e-4)


def test_cv_selection_trains_folds_as_members_and_refits():
    X, y = _reg_data()
    m = PSiLONRegressor(**{**FAST, "selection": "cv", "cv": 3}).fit(X, y)
    assert {"val_loss", "val_loss_std"} <= set(m.path_.columns)
    assert m.path_.loc[m.lambda_, "val_loss"] == m.path_["val_loss"].min()
    assert m.score(X, y) > 0.5


def test_holdout_selection_is_deterministic():
    X, y = _reg_data()
    a = PSiLONRegressor(**FAST).fit(X, y).predict(X)
    b = PSiLONRegressor(**FAST).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)


def test_dataframe_with_categoricals_missing_values_and_unseen_category():
    df, y = _mixed_frame()
    m = PSiLONRegressor(**FAST).fit(df, y)
    assert list(m.feature_names_in_) == ["a", "b", "color", "size"]
    names = list(m.preprocessor_.get_feature_names_out())
    assert "missingindicator_a" in names and any("color" in n for n in names)
    new = df.iloc[:5].copy()
    new["color"] = ["purple", None, "red", "green", "blue"]  # unseen category and a missing one
    new.loc[new.index[0], "b"] = np.nan
    pred = m.predict(new)
    assert pred.shape == (5,) and np.all(np.isfinite(pred))


def test_prune_sets_selected_features():
    df, y = _mixed_frame()
    m = PSiLONRegressor(**{**FAST, "prune": True, "lambdas": (1e-1,)}).fit(df, y)
    names = set(m.preprocessor_.get_feature_names_out())
    assert len(m.selected_features_) >= 1 and set(m.selected_features_) <= names
    from psilon.sparsity import exact_sparsity

    assert float(exact_sparsity(m.module_)["overall"]) > 0
    unpruned = PSiLONRegressor(**FAST).fit(df, y)
    assert not hasattr(unpruned, "selected_features_")


@pytest.mark.parametrize("labels", [np.array(["no", "yes"]), np.array(["a", "b", "c"]), np.array([3, 7, 11, 20])])
def test_classifier_labels_and_probabilities(labels):
    rng = np.random.default_rng(0)
    k = labels.size
    centers = rng.normal(scale=4.0, size=(k, 3))
    idx = np.repeat(np.arange(k), 30)
    X = centers[idx] + rng.normal(size=(idx.size, 3))
    y = labels[idx]
    m = PSiLONClassifier(**{**FAST, "max_steps": 100}).fit(X, y)
    np.testing.assert_array_equal(m.classes_, np.sort(labels))
    proba = m.predict_proba(X)
    assert proba.shape == (idx.size, k)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert set(m.predict(X)) <= set(labels)
    assert m.score(X, y) > 0.8
    assert m.module_.out_features == (1 if k == 2 else k)


@pytest.mark.parametrize(
    "make, fit_args, match",
    [
        (lambda: PSiLONRegressor(**FAST), lambda X, y: (X, np.r_[np.nan, y[1:]]), "NaN"),
        (lambda: PSiLONClassifier(**FAST), lambda X, y: (X, np.zeros(len(y), dtype=int)), "class"),
        (lambda: PSiLONClassifier(**FAST), lambda X, y: (X, np.r_[np.nan, (y[1:] > 0).astype(float)]), "NaN"),
        (lambda: PSiLONRegressor(**FAST), lambda X, y: (X[:0], y[:0]), "0 sample"),
        (lambda: PSiLONRegressor(**{**FAST, "lambdas": (1e-3, 0.0)}), lambda X, y: (X, y), "lambdas must be positive"),
        (lambda: PSiLONRegressor(**{**FAST, "lambdas": -1.0}), lambda X, y: (X, y), "lambdas must be positive"),
        (lambda: PSiLONRegressor(**{**FAST, "architecture": "cnn"}), lambda X, y: (X, y), "architecture"),
    ],
)
def test_bad_input_errors(make, fit_args, match):
    X, y = _reg_data()
    with pytest.raises(ValueError, match=match):
        make().fit(*fit_args(X, y))


def test_predict_feature_mismatch_errors():
    X, y = _reg_data()
    m = PSiLONRegressor(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but PSiLONRegressor is expecting 5"):
        m.predict(X[:, :4])
    df, yd = _mixed_frame()
    md = PSiLONRegressor(**FAST).fit(df, yd)
    with pytest.raises(ValueError, match="feature names"):
        md.predict(df.rename(columns={"a": "z"}))


def test_pipeline_gridsearch_cross_val_score_clone():
    X, y = _reg_data()
    pipe = make_pipeline(StandardScaler(), PSiLONRegressor(**{**FAST, "preprocessor": "passthrough"}))
    assert pipe.fit(X, y).score(X, y) > 0.5
    scores = cross_val_score(PSiLONRegressor(**FAST), X, y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    gs = GridSearchCV(PSiLONRegressor(**FAST), {"width": [4, 8]}, cv=2).fit(X, y)
    assert gs.best_params_["width"] in (4, 8)
    c = clone(PSiLONRegressor(**FAST))
    assert c.get_params() == PSiLONRegressor(**FAST).get_params() and not hasattr(c, "module_")


def test_standard_model_and_resnet_through_the_estimator():
    X, y = _reg_data()
    s = PSiLONRegressor(**{**FAST, "model": "standard"}).fit(X, y)
    assert type(s.module_).__name__ == "StandardNet"
    r = PSiLONRegressor(**{**FAST, "architecture": "resnet"}).fit(X, y)
    assert r.module_.architecture == "resnet" and r.score(X, y) > 0.5


def test_verbose_shows_a_progress_bar(capsys):
    X, y = _reg_data()
    PSiLONRegressor(**{**FAST, "verbose": True}).fit(X, y)
    assert "60/60" in capsys.readouterr().err


def test_params_stored_as_given():
    lams = [1e-3, 1e-2]
    m = PSiLONRegressor(lambdas=lams, width=7)
    assert m.get_params()["lambdas"] is lams and m.width == 7
    with pytest.raises(TypeError):
        PSiLONRegressor(7)  # keyword-only
