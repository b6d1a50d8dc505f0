"""psilon.pathnorm as the public API over the model layer's path methods."""

import numpy as np
import pytest
import torch

from psilon import pathnorm as P
from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet


def _net(cls, members=None, **opts):
    torch.manual_seed(0)
    net = cls(4, 2, width=6, depth=4, members=members, **opts).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.length.uniform_(-1.5, 1.5)
            layer.bias.normal_(0, 0.1)
            layer.direction.normal_()
    return net


@pytest.mark.parametrize("members", [None, 3])
def test_lipschitz_lower_bound_inside_no_grad(members):
    net = _net(PSiLONResNet, members)
    x = np.random.default_rng(0).normal(size=(30, 4))
    expected = P.lipschitz_lower_bound(net, x, n_pairs=300)
    with torch.no_grad():
        inside = P.lipschitz_lower_bound(net, x, n_pairs=300)
    with torch.inference_mode():
        inference = P.lipschitz_lower_bound(net, x, n_pairs=300)
    torch.testing.assert_close(inside, expected, rtol=0, atol=0)
    torch.testing.assert_close(inference, expected, rtol=0, atol=0)
    assert torch.all(inside <= P.lipschitz_bound(net).detach() * (1 + 1e-9))


def test_members_lower_bound_equals_each_member():
    net = _net(PSiLONNet, 3)
    x = torch.randn(20, 4, dtype=torch.float64)
    lower = P.lipschitz_lower_bound(net, x, n_pairs=200)
    for k in range(3):
        single = P.lipschitz_lower_bound(net.member(k), x, n_pairs=200)
        torch.testing.assert_close(lower[k], single, rtol=1e-9, atol=1e-12)


def test_lower_bound_argument_checks():
    net = PSiLONNet(3, 1, width=4)
    with pytest.raises(ValueError, match="NaN or inf"):
        P.lipschitz_lower_bound(net, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="n_pairs must be a positive integer"):
        P.lipschitz_lower_bound(net, torch.zeros(2, 3), n_pairs=0)
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        P.lipschitz_lower_bound(net, torch.zeros(2, 3), radius=-1.0)


@pytest.mark.parametrize(
    "cls, opts",
    [(PSiLONNet, {}), (PSiLONNet, dict(norm="l2", shared=False)), (PSiLONResNet, {}),
     (PSiLONResNet, dict(bound="original")), (StandardNet, {})],
)
@pytest.mark.parametrize("members", [None, 2])
def test_public_functions_are_the_model_methods(cls, opts, members):
    net = _net(cls, members, **opts)
    squeeze = (lambda t: t[0]) if members is None else (lambda t: t)  # noqa: E731
    torch.testing.assert_close(P.training_penalty(net), net.regularizer_members(), rtol=0, atol=0)
    torch.testing.assert_close(P.path_norm(net, per_output=True), squeeze(net.path_chain("paths")), rtol=0, atol=0)
    torch.testing.assert_close(
        P.path_norm(net, include_bias=True), squeeze(net.path_chain("paths", include_bias=True).sum(-1)), rtol=0, atol=0
    )
    tight = "paths" if net.architecture == "mlp" else "tight"
    torch.testing.assert_close(P.lipschitz_bound(net), squeeze(net.path_chain(tight)), rtol=0, atol=0)
    if net.architecture == "resnet":
        torch.testing.assert_close(P.improved_bound(net), squeeze(net.path_chain("improved").sum(-1)), rtol=0, atol=0)
        if net.norm == "l1" and net.shared:
            torch.testing.assert_close(
                P.improved_bound_closed_form(net, per_output=True), squeeze(net.closed_form_improved_bound()), rtol=0, atol=0
            )
    elif net.norm == "l1" and net.shared:
        torch.testing.assert_close(
            P.path_norm_closed_form(net, per_output=True), squeeze(net.closed_form_path_norm()), rtol=0, atol=0
        )


def test_bool_options_are_checked():
    net = PSiLONNet(3, 1, width=4)
    with pytest.raises(ValueError, match="per_output must be True or False"):
        P.path_norm(net, per_output="yes")
    with pytest.raises(ValueError, match="include_bias must be True or False"):
        P.path_norm(net, include_bias=1)
