"""autodiff.nn and autodiff.optim, laid out as torch.nn and torch.optim: modules and their
parameters (frozen ones included), losses against their formulas in NumPy, optimizers with
parameter groups against hand-written NumPy updates, and learning-rate schedules."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as torch
import models
from autodiff import nn, optim
from autodiff.nn import functional as F
from autodiff.testing import arrays, assert_grad_close, shapes


def small_net(seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(3, 4, rng=rng), nn.ReLU(), nn.Linear(4, 2, rng=rng))


def test_models_reexports_the_same_classes():
    assert models.Linear is nn.Linear and models.Module is nn.Module
    assert models.SGD is optim.SGD and models.Adam is optim.Adam
    assert models.cross_entropy is F.cross_entropy


def test_sequential_is_indexable_and_names_parameters_as_pytorch():
    net = small_net()
    assert len(net) == 3 and isinstance(net[0], nn.Linear) and isinstance(net[-1], nn.Linear)
    assert [name for name, _ in net.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    outer = nn.Sequential(net, nn.Flatten(0))
    assert [name for name, _ in outer.named_parameters()][0] == "0.0.weight"
    x = torch.tensor(np.ones((5, 3)))
    expected = np.maximum(x.data @ net[0].weight.data.T + net[0].bias.data, 0)
    expected = expected @ net[2].weight.data.T + net[2].bias.data
    np.testing.assert_allclose(net(x).data, expected, rtol=1e-12)
    assert outer(x).shape == (10,)
    with pytest.raises(TypeError, match="Sequential: argument 1 must be a Module, got int"):
        nn.Sequential(nn.ReLU(), 3)


def test_a_frozen_parameter_stays_a_parameter_and_is_saved_and_loaded(tmp_path):
    net = small_net(seed=1)
    for p in net[0].parameters():
        p.requires_grad = False  # freeze the first layer, as the tutorials teach
    assert len(net.parameters()) == 4 and set(net.state_dict()) == {
        "0.weight", "0.bias", "2.weight", "2.bias"}
    net.save(tmp_path / "net.npz")
    fresh = small_net(seed=2)
    fresh[0].requires_grad_(False)
    fresh.load(tmp_path / "net.npz")
    for (name, a), (_, b) in zip(net.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_an_optimizer_steps_only_parameters_with_a_gradient():
    net = small_net()
    net[0].requires_grad_(False)
    before = [p.data.copy() for p in net.parameters()]
    opt = optim.SGD(net.parameters(), lr=0.1)
    net(torch.tensor(np.ones((2, 3)))).sum().backward()
    opt.step()
    after = [p.data for p in net.parameters()]
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])


def test_module_conversions_and_zero_grad():
    net = small_net()
    assert all(p.dtype == np.float32 for p in net.float().parameters())
    assert all(p.dtype == np.float64 for p in net.double().parameters())
    assert net.to("cpu") is net
    net(torch.tensor(np.ones((2, 3)))).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert isinstance(nn.Parameter(torch.ones(2)), torch.Tensor)
    assert repr(nn.Parameter(torch.ones(1))).startswith("Parameter containing:")


@given(z=arrays(shapes(min_dims=1, max_dims=2)), data=st.data())
def test_binary_cross_entropy_with_logits_matches_its_formula_and_gradient(z, data):
    y = data.draw(arrays(z.shape, elements=st.floats(0, 1)))
    loss = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y))
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(loss.item(), np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))),
                               rtol=1e-9)
    logits = torch.tensor(z, requires_grad=True)
    F.binary_cross_entropy_with_logits(logits, torch.tensor(y)).backward()
    np.testing.assert_allclose(logits.grad.data, (p - y) / z.size, rtol=1e-9, atol=1e-15)
    assert_grad_close(lambda a: F.binary_cross_entropy_with_logits(a, torch.tensor(y),
                                                                   reduction="sum"),
                      [torch.tensor(z, requires_grad=True)])


def test_bce_with_logits_is_finite_far_from_zero():
    loss = F.binary_cross_entropy_with_logits(torch.tensor([1000.0, -1000.0]),
                                              torch.tensor([0.0, 1.0]), reduction="none")
    assert loss.tolist() == [1000.0, 1000.0]


def test_losses_as_modules_and_functions():
    a, b = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0])
    assert nn.MSELoss()(a, b).item() == pytest.approx(13 / 3)
    assert F.mse_loss(a, b, reduction="sum").item() == 13.0
    logits, labels = torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    expected = -np.mean([np.log(0.5), 0 - np.log(np.exp(2) + 1)])
    assert nn.CrossEntropyLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="mse_loss: reduction must be 'mean', 'sum' or 'none'"):
        F.mse_loss(a, b, reduction="avg")


def numpy_adam(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam as the paper writes it, in NumPy, one gradient per step."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for k, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + eps)
    return w


def test_adam_keeps_its_state_per_parameter_and_matches_numpy():
    start = np.array([1.0, -2.0, 0.5])
    w = torch.tensor(start, requires_grad=True)
    opt = optim.Adam([w], lr=0.01)
    grads = []
    for _ in range(5):
        opt.zero_grad()
        (w ** 2).sum().backward()
        grads.append(w.grad.data.copy())
        opt.step()
    np.testing.assert_allclose(w.data, numpy_adam(start, grads, 0.01), rtol=1e-12)
    assert opt.state[w]["step"] == 5


def test_parameter_groups_take_their_own_learning_rates():
    a, b = torch.tensor([1.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    (a + b).sum().backward()
    opt.step()
    assert a.tolist() == [0.9] and b.tolist() == [0.5]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.lr = 0.2  # sets every group's
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    with pytest.raises(ValueError, match="SGD: parameter 0 .* is already in another"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match=r"SGD: unknown hyperparameters \['betas'\]"):
        optim.SGD([{"params": [torch.tensor([1.0], requires_grad=True)], "betas": (0, 0)}],
                  lr=0.1)


def test_schedulers_set_the_learning_rate_each_epoch():
    w = torch.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    step = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(5):
        seen.append(opt.lr)
        opt.step()
        step.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = optim.SGD([w], lr=0.1)
    lam = optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1 / (epoch + 1))
    lrs = []
    for _ in range(3):
        lrs.append(lam.get_last_lr()[0])
        lam.step()
    assert lrs == pytest.approx([0.1, 0.05, 0.1 / 3], rel=1e-15)


def test_the_sgd_step_reads_the_learning_rate_a_scheduler_set():
    w = torch.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    for expected in (0.0, -0.1):  # w − 1·1, then w − 0.1·1
        opt.zero_grad()
        w.sum().backward()
        opt.step()
        scheduler.step()
        assert w.item() == pytest.approx(expected, abs=1e-15)
