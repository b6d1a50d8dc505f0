"""forward_members / regularizer_members: the members dimension is always there."""

import pytest
import torch

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, stack_members

CLASSES = [PSiLONNet, PSiLONResNet, StandardNet]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("members", [None, 1, 3])
def test_shapes_carry_the_members_dimension(cls, members):
    net = cls(4, 2, width=6, depth=3, members=members)
    k = 1 if members is None else members
    x = torch.randn(5, 4)
    assert net.forward_members(x).shape == (k, 5, 2)
    assert net.forward_members(torch.randn(k, 5, 4)).shape == (k, 5, 2)
    assert net.regularizer_members().shape == (k,)


@pytest.mark.parametrize("cls", CLASSES)
def test_single_network_values_match_forward_and_regularizer(cls):
    torch.manual_seed(0)
    net = cls(4, 2, width=6, depth=4)
    with torch.no_grad():
        for layer in net.layers():
            layer.length.uniform_(-1, 1)
    x = torch.randn(5, 4)
    torch.testing.assert_close(net.forward_members(x)[0], net(x), rtol=0, atol=0)
    torch.testing.assert_close(net.forward_members(x[None])[0], net(x), rtol=0, atol=0)
    torch.testing.assert_close(net.regularizer_members()[0], net.regularizer(), rtol=0, atol=0)


def test_members_values_match_forward_and_regularizer():
    torch.manual_seed(1)
    singles = [PSiLONResNet(3, 1, width=5, depth=3) for _ in range(3)]
    for i, s in enumerate(singles):
        with torch.no_grad():
            for layer in s.layers():
                layer.length.fill_(0.3 * (i + 1))
    net = stack_members(singles)
    x, xs = torch.randn(7, 3), torch.randn(3, 7, 3)
    torch.testing.assert_close(net.forward_members(x), net(x), rtol=0, atol=0)
    torch.testing.assert_close(net.forward_members(xs), net(xs), rtol=0, atol=0)
    torch.testing.assert_close(net.regularizer_members(), net.regularizer(), rtol=0, atol=0)
    for i, s in enumerate(singles):
        torch.testing.assert_close(net.regularizer_members()[i], s.regularizer_members()[0])


def test_forward_members_keeps_the_input_checks():
    net = PSiLONNet(3, 1, width=4)
    with pytest.raises(ValueError, match="one batch per member"):
        net.forward_members(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="input has 4 features"):
        net.forward_members(torch.randn(5, 4))


def test_regularizer_members_is_differentiable():
    net = PSiLONNet(3, 2, width=4, members=2)
    net.regularizer_members().sum().backward()
    assert all(layer.length.grad is not None for layer in net.layers())
