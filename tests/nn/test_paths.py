"""Path sums in the model layer: each layer's path_step, the network's chain and closed forms.

The closed forms (P1.3, P1.4) are checked against the explicit chain that the layers'
own steps build, and the steps against the matrices they stand for.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import CReLULinear, NormalizedLinear, PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet


def _random_net(arch, width, depth, members, seed, scale=1.0, **opts) -> WeightNormNet:
    torch.manual_seed(seed)
    net = WeightNormNet(3, 2, architecture=arch, width=width, depth=depth, members=members, **opts).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.length.uniform_(-scale, scale)  # both signs
            layer.bias.normal_(0, 0.1)
            layer.direction.normal_()  # untie W+ and W- so the halves differ
    return net


net_args = dict(
    width=st.integers(1, 10),
    depth=st.integers(2, 6),
    members=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 100_000),
    scale=st.sampled_from([0.2, 1.0, 2.5]),
)


@settings(max_examples=40, deadline=None)
@given(**net_args)
def test_mlp_closed_form_equals_the_layers_chain(width, depth, members, seed, scale):
    net = _random_net("mlp", width, depth, members, seed, scale)
    closed = net.closed_form_path_norm()
    chain = net.path_chain("paths")
    assert closed.shape == chain.shape == (net.n_members, 2)
    torch.testing.assert_close(closed, chain, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(net.regularizer_members(), chain.sum(-1), rtol=1e-10, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(**net_args)
def test_resnet_closed_form_equals_the_layers_chain(width, depth, members, seed, scale):
    net = _random_net("resnet", width, depth, members, seed, scale)
    closed = net.closed_form_improved_bound()
    chain = net.path_chain("improved")
    torch.testing.assert_close(closed, chain, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(net.regularizer_members(), chain.sum(-1), rtol=1e-10, atol=1e-14)
    # certificate <= improved <= original, entrywise per output
    tight, original = net.path_chain("tight"), net.path_chain("paths")
    assert torch.all(tight <= chain * (1 + 1e-12)) and torch.all(chain <= original * (1 + 1e-12))


def test_mlp_modes_agree():
    net = _random_net("mlp", 5, 4, 2, 0, shared=False)
    for mode in ("improved", "tight"):
        torch.testing.assert_close(net.path_chain(mode), net.path_chain("paths"), rtol=0, atol=0)


def test_plain_layer_step_is_abs_weight_times_u():
    torch.manual_seed(0)
    layer = NormalizedLinear(4, 4, members=2, norm="l2", shared=False).double()
    with torch.no_grad():
        layer.bias.normal_()
    u = torch.rand(2, 4, dtype=torch.float64)
    w = layer.weight().detach()
    expected = torch.einsum("koi,ki->ko", w.abs(), u)
    torch.testing.assert_close(layer.path_step(u).detach(), expected)
    torch.testing.assert_close(layer.path_step(u, "tight", skip=True).detach(), expected + u)
    torch.testing.assert_close(
        layer.path_step(u, include_bias=True).detach(), expected + layer.bias.detach().abs()
    )


def test_crelu_steps_equal_their_matrices():
    torch.manual_seed(1)
    layer = CReLULinear(5, 5, members=2, tied_init=False).double()
    with torch.no_grad():
        layer.length.uniform_(-2, 2)
    u = torch.rand(2, 5, dtype=torch.float64)
    plus, minus = (w.detach() for w in layer.weight_pair())
    eye = torch.eye(5, dtype=torch.float64)

    def mv(m):
        return torch.einsum("koi,ki->ko", m, u)

    step = lambda *a, **k: layer.path_step(u, *a, **k).detach()  # noqa: E731
    torch.testing.assert_close(step("paths"), mv(plus.abs() + minus.abs()))
    torch.testing.assert_close(step("paths", skip=True), mv(2 * eye + plus.abs() + minus.abs()))
    tilde = torch.maximum(plus.abs(), minus.abs())
    torch.testing.assert_close(step("improved"), mv(tilde))
    torch.testing.assert_close(step("improved", skip=True), mv(eye + tilde))
    torch.testing.assert_close(step("tight"), mv(tilde))  # a predictor: no skip
    torch.testing.assert_close(step("tight", skip=True), mv(torch.maximum((eye + plus).abs(), (eye + minus).abs())))


def test_path_step_argument_checks():
    layer = CReLULinear(3, 2)
    u = torch.ones(1, 3)
    with pytest.raises(ValueError, match="mode must be one of"):
        layer.path_step(u, "all")
    with pytest.raises(ValueError, match="in_features == out_features"):
        layer.path_step(u, skip=True)
    with pytest.raises(ValueError, match="include_bias must be True or False"):
        layer.path_step(u, include_bias=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        PSiLONNet(3, 1, width=4).path_chain("paths ")


def test_closed_form_method_errors():
    with pytest.raises(ValueError, match="shared L1"):
        StandardNet(3, 1, width=4).closed_form_path_norm()
    with pytest.raises(ValueError, match="shared L1"):
        PSiLONResNet(3, 1, width=4, shared=False).closed_form_improved_bound()
    with pytest.raises(ValueError, match="for MLPs"):
        PSiLONResNet(3, 1, width=4).closed_form_path_norm()
    with pytest.raises(ValueError, match="for ResNets"):
        PSiLONNet(3, 1, width=4).closed_form_improved_bound()


@pytest.mark.parametrize(
    "opts, mode",
    [
        (dict(architecture="mlp"), "paths"),
        (dict(architecture="mlp", norm="l2", shared=False), "paths"),
        (dict(architecture="resnet"), "improved"),
        (dict(architecture="resnet", bound="original"), "paths"),
        (dict(architecture="resnet", norm="l2"), "improved"),
    ],
)
def test_regularizer_members_is_the_configured_chain(opts, mode):
    opts = dict(opts)
    net = _random_net(opts.pop("architecture"), 4, 4, 3, 5, **opts)
    torch.testing.assert_close(net.regularizer_members(), net.path_chain(mode).sum(-1), rtol=1e-10, atol=1e-14)
