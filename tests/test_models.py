import pytest
import torch

from torch import nn

from gnilab.models import ConvSmall, MLP, count_parameters


def test_convsmall_has_the_papers_11330_parameters():
    model = ConvSmall()
    assert count_parameters(model) == 11_330
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert model(torch.zeros(3, 784)).shape == (3, 10)  # flattened images are accepted


def test_convsmall_init_is_normal_002():
    torch.manual_seed(0)
    weights = torch.cat([p.detach().reshape(-1) for p in ConvSmall().parameters()])
    # 11 330 draws of N(0, 0.02²): the sample std is within 5 standard errors (0.02/sqrt(2n)).
    assert abs(weights.std().item() - 0.02) < 5 * 0.02 / (2 * weights.numel()) ** 0.5
    assert abs(weights.mean().item()) < 5 * 0.02 / weights.numel() ** 0.5


def test_mlp_depth_counts_weight_layers_as_in_simsekli():
    # width 100, depth 3, no biases on 784 inputs: 784*100 + 100*100 + 100*10 = 89 400 weights.
    model = MLP(784, 100, 3, 10, bias=False)
    assert count_parameters(model) == 89_400
    assert sum(isinstance(m, torch.nn.Linear) for m in model) == 3
    assert all(m.bias is None for m in model if isinstance(m, torch.nn.Linear))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_mlp_depth_one_is_linear():
    model = MLP(5, 7, 1, 2)
    assert count_parameters(model) == 5 * 2 + 2
    x = torch.randn(4, 5)
    assert torch.allclose(model(2 * x) - model(torch.zeros(4, 5)), 2 * (model(x) - model(torch.zeros(4, 5))), atol=1e-6)


@pytest.mark.parametrize("kwargs,name", [
    (dict(in_features=0, width=3, depth=2, out_features=2), "in_features"),
    (dict(in_features=3, width=3, depth=0, out_features=2), "depth"),
    (dict(in_features=3, width=3, depth=2, out_features=2, activation="swish"), "activation"),
    (dict(in_features=3, width=3, depth=2, out_features=2, init=-1.0), "init"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MLP(**kwargs)


def test_non_integer_size_is_a_type_error():
    with pytest.raises(TypeError, match=r"width must be an integer >= 1, got 2\.5"):
        MLP(3, 2.5, 2, 2)


def test_fixed_output_net_trains_only_its_input_layer():
    import torch
    from gnilab.models import FixedOutputNet, count_parameters
    net = FixedOutputNet(2, 10).double()
    assert count_parameters(net) == 30                     # m (d + 1)
    assert net.out_weights.tolist() == [1.0] * 5 + [-1.0] * 5
    x = torch.randn(7, 2, dtype=torch.float64)
    out = net(x)
    assert out.shape == (7, 1) and bool(((out >= 1e-3) & (out <= 1 - 1e-3)).all())
    h = torch.relu(net.hidden(x))
    ref = (h[:, :5].sum(1) - h[:, 5:].sum(1)).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(out[:, 0], ref)
    with pytest.raises(ValueError, match="hidden"):
        FixedOutputNet(2, 1)
    with pytest.raises(ValueError, match="delta"):
        FixedOutputNet(2, 10, delta=0.5)


def test_mlp_slice_is_a_sequential_of_the_same_layers():
    net = MLP(5, 8, 3, 2)
    head = net[:3]                                   # Flatten, Linear, ReLU
    assert isinstance(head, nn.Sequential) and len(head) == 3
    assert head[1] is net[1]                         # shared, not copied
    x = torch.randn(4, 5)
    assert torch.equal(net[3:](head(x)), net(x))
