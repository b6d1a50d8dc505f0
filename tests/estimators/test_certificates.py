"""Certificates users can act on (issue 14): lipschitz_max, certified radii and prediction
bounds under PGD on real data, scales, feature path norms, the frontier plot."""

import copy
import importlib.util
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from psilon.estimators import PSiLONClassifier, PSiLONRegressor
from psilon.pathnorm import path_norm
from psilon.sparsity import compact


matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_certificates", ROOT / "benchmarks" / "bench_certificates.py")
attack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attack)

FAST = dict(width=32, max_steps=300, random_state=0)
N_ATTACK = 60


def _data(ds, n_test=N_ATTACK):
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(ds.y))
    te, tr = idx[:n_test], idx[n_test:]
    return ds.X.iloc[tr], ds.y.iloc[tr], ds.X.iloc[te], ds.y.iloc[te]


@pytest.fixture(scope="module")
def cancer(real_dataset):
    X_tr, y_tr, X_te, y_te = _data(real_dataset("pmlb:breast_cancer_wisconsin"))
    est = PSiLONClassifier(lambdas=[1e-3, 1e-2], **FAST).fit(X_tr, y_tr)
    return est, X_te


@pytest.fixture(scope="module")
def vehicle(real_dataset):
    X_tr, y_tr, X_te, y_te = _data(real_dataset("pmlb:vehicle"))
    est = PSiLONClassifier(lambdas=[1e-3], architecture="resnet", **FAST).fit(X_tr, y_tr)
    return est, X_te


@pytest.fixture(scope="module")
def swd(real_dataset):
    X_tr, y_tr, X_te, y_te = _data(real_dataset("pmlb:1028_SWD"))
    est = PSiLONRegressor(lambdas=[1e-3, 1e-2], **FAST).fit(X_tr, y_tr)
    return est, X_te


def _attack_inputs(est, X):
    module = copy.deepcopy(est.module_).double()
    return module, attack.network_input(est, X), torch.as_tensor(est.perturbation_weights("input"))


# --------------------------------------------------------------------------- radii under attack
@pytest.mark.parametrize("fixture", ["cancer", "vehicle"])
def test_certified_radius_survives_pgd(fixture, request):
    est, X = request.getfixturevalue(fixture)
    module, z, w = _attack_inputs(est, X)
    radius = torch.as_tensor(est.certified_radius(X))
    assert radius.shape == (len(X),) and bool((radius >= 0).all())
    ok = torch.isfinite(radius) & (radius > 0)
    assert int(ok.sum()) > N_ATTACK // 2
    flips = attack.pgd_flips(module, z[ok], w, radius[ok] * (1 - 1e-6), steps=60, restarts=2)
    assert int(flips.sum()) == 0
    # the attack is able: at 50x the radius it flips most points (else the check above proves little)
    assert float(attack.pgd_flips(module, z[ok], w, radius[ok] * 50).float().mean()) > 0.5


def test_certified_radius_against_sampled_perturbations(cancer):
    est, X = cancer
    radius = est.certified_radius(X)
    base = est.predict(X)
    rng = np.random.default_rng(1)
    num = X.to_numpy(float)
    for _ in range(20):  # corners of the l_inf ball just inside the radius
        d = rng.choice([-1.0, 1.0], size=num.shape) * (radius * (1 - 1e-6))[:, None]
        assert (est.predict(pd.DataFrame(num + d, columns=X.columns)) == base).all()


def test_radius_closed_form_binary(cancer):
    est, X = cancer
    logits = est.decision_function(X)
    np.testing.assert_allclose(est.certified_radius(X), np.abs(logits) / est.certified_lipschitz_bound())
    np.testing.assert_allclose(
        est.certified_radius(X, space="standardized"), np.abs(logits) / est.certified_lipschitz_bound("standardized")
    )
    np.testing.assert_allclose(est.certified_lipschitz_bound("standardized"), est.lipschitz_bound_, rtol=1e-5)


def test_radius_multiclass_uses_pairwise_bounds(vehicle):
    est, X = vehicle
    logits = est.decision_function(X)
    per_output = est.certified_lipschitz_bound()
    r = est.certified_radius(X)
    top = logits.argmax(1)
    margin = logits[np.arange(len(X)), top][:, None] - logits
    loose = np.where(margin > 0, margin / (per_output[top][:, None] + per_output[None, :]), np.inf).min(1)
    assert (r >= loose * (1 - 1e-12)).all() and (r > loose).any()  # pairwise bound <= L_i + L_j, often strictly


def test_radius_units_follow_the_preprocessing(cancer):
    est, X = cancer
    w = est.perturbation_weights("input")
    scaler = est.preprocessor_.named_transformers_["num"].named_steps["scale"]
    np.testing.assert_allclose(w, 1 / np.ldexp(scaler.scale_, scaler.exponent_))
    Z = np.random.default_rng(0).normal(size=(60, 4))
    plain = PSiLONClassifier(lambdas=[1e-3], preprocessor="passthrough", **FAST).fit(Z, np.arange(60) % 2)
    np.testing.assert_allclose(plain.certified_radius(Z), plain.certified_radius(Z, space="standardized"))


def test_radius_errors(cancer):
    est, X = cancer
    with pytest.raises(ValueError, match="norm must be 'linf'"):
        est.certified_radius(X, norm="l2")
    with pytest.raises(ValueError, match="space must be"):
        est.certified_radius(X, space="raw")


def test_custom_preprocessor_needs_standardized_space():
    from sklearn.preprocessing import MinMaxScaler

    X, y = np.random.default_rng(0).normal(size=(80, 3)), np.arange(80) % 2
    est = PSiLONClassifier(lambdas=[1e-3], preprocessor=MinMaxScaler(), **FAST).fit(X, y)
    with pytest.raises(ValueError, match="space='standardized'"):
        est.certified_radius(X)
    assert est.certified_radius(X, space="standardized").shape == (80,)


def test_categorical_and_indicator_columns_are_held_fixed():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=120) * 10, "c": rng.choice(["u", "v", "w"], 120), "b": rng.normal(size=120)})
    X.loc[::9, "b"] = np.nan
    y = (X["a"] > 0).astype(int)
    est = PSiLONClassifier(lambdas=[1e-3], **FAST).fit(X, y)
    names = list(est._feature_names_out())
    w = est.perturbation_weights()
    assert w[names.index("a")] > 0 and w[names.index("b")] > 0
    assert all(w[i] == 0 for i, n in enumerate(names) if n not in ("a", "b"))
    cols = est.feature_importances(columns=True)
    assert list(cols.index) == ["a", "b", "c"]
    np.testing.assert_allclose(cols.sum(), est.feature_path_norms_.sum())


# --------------------------------------------------------------------------- regression bounds
def test_prediction_bounds_survive_pgd(swd):
    est, X = swd
    module, z, w = _attack_inputs(est, X)
    eps = 0.1 * float(np.median(X.std()))
    lower, upper = est.prediction_bounds(X, eps)
    pred = est.predict(X)
    assert (lower <= pred).all() and (pred <= upper).all()
    scale, center = float(est.y_scale_[0]), float(est.y_center_[0])
    hi = attack.pgd_extreme(module, z, w, eps, 1.0).numpy() * scale + center
    lo = attack.pgd_extreme(module, z, w, eps, -1.0).numpy() * scale + center
    assert int(((hi > upper) | (lo < lower)).sum()) == 0
    assert (hi > pred).mean() > 0.9  # the attack moves the predictions
    np.testing.assert_allclose(upper - pred, eps * est.certified_lipschitz_bound())


def test_prediction_bounds_eps_checks(swd):
    est, X = swd
    with pytest.raises(ValueError, match="eps"):
        est.prediction_bounds(X, -1.0)
    with pytest.raises(ValueError, match="eps"):
        est.prediction_bounds(X, np.ones(3))
    lower, upper = est.prediction_bounds(X, 0.0)
    np.testing.assert_array_equal(lower, upper)


# --------------------------------------------------------------------------- lipschitz_max
def test_lipschitz_max_selects_within_the_budget(swd, real_dataset):
    est, X = swd
    bounds = est.path_["lipschitz_bound"].to_numpy()
    budget = float(np.sort(bounds)[0]) * 1.0001  # only the smallest bound qualifies
    X_tr, y_tr, _, _ = _data(real_dataset("pmlb:1028_SWD"))
    capped = PSiLONRegressor(lambdas=[1e-3, 1e-2], lipschitz_max=budget, **FAST).fit(X_tr, y_tr)
    assert capped.lipschitz_bound_ <= budget
    assert capped.path_["within_budget"].sum() == 1
    assert capped.path_.loc[capped.lambda_, "within_budget"]
    np.testing.assert_allclose(capped.path_.loc[capped.lambda_, "lipschitz_bound"], capped.lipschitz_bound_, rtol=1e-5)


def test_lipschitz_max_error_names_the_smallest_bound(swd, real_dataset):
    est, _ = swd
    X_tr, y_tr, _, _ = _data(real_dataset("pmlb:1028_SWD"))
    smallest = float(est.path_["lipschitz_bound"].min())
    with pytest.raises(ValueError, match=r"smallest bound reached is ([0-9.e+-]+).*larger lambdas") as info:
        PSiLONRegressor(lambdas=[1e-3, 1e-2], lipschitz_max=smallest / 10, **FAST).fit(X_tr, y_tr)
    assert f"{smallest:.4g}" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1.0, "big", float("nan")])
def test_lipschitz_max_is_checked(bad):
    with pytest.raises(ValueError, match="lipschitz_max"):
        PSiLONRegressor(lipschitz_max=bad, **FAST).fit(np.zeros((20, 2)), np.arange(20.0))


# --------------------------------------------------------------------------- attribution
def test_feature_path_norms_sum_and_pruned_zeros(real_dataset):
    X_tr, y_tr, _, _ = _data(real_dataset("pmlb:breast_cancer_wisconsin"))
    est = PSiLONClassifier(lambdas=[1e-2], prune=True, width=16, max_steps=600, random_state=0).fit(X_tr, y_tr)
    values = est.feature_path_norms_
    assert values.shape == (est.n_preprocessed_features_,)
    np.testing.assert_allclose(values.sum(), float(path_norm(est.module_)), rtol=1e-5)
    _, kept = compact(est.module_)
    removed = np.setdiff1d(np.arange(values.size), kept.numpy())
    assert removed.size > 0, "pruning at this lambda should remove features"
    assert (values[removed] == 0).all() and (values[kept.numpy()] > 0).all()
    assert set(est.selected_features_) == set(est.feature_importances().index[values > 0])


def test_feature_path_norms_survive_save_load(cancer, tmp_path):
    est, X = cancer
    est.save(tmp_path / "m.pt")
    loaded = PSiLONClassifier.load(tmp_path / "m.pt")
    np.testing.assert_allclose(loaded.feature_path_norms_, est.feature_path_norms_)
    np.testing.assert_allclose(loaded.certified_radius(X), est.certified_radius(X))


def test_plot_frontier(cancer):
    est, _ = cancer
    ax = est.plot_frontier()
    line = ax.get_lines()[0]
    np.testing.assert_allclose(np.asarray(line.get_xdata(), float), est.path_["lipschitz_bound"].to_numpy())


def test_docs_example_runs(tmp_path, monkeypatch, capsys, data_dir):
    import re

    monkeypatch.setenv("PSILON_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "certificates.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/certificates.md block {i}", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    assert "median certified radius" in out
    bound = float(re.search(r"certified bound=([0-9.e+-]+)", out).group(1))
    assert bound <= 10.0
    assert (tmp_path / "frontier.png").stat().st_size > 0 and (tmp_path / "radius_hist.png").stat().st_size > 0
