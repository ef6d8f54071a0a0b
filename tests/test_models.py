"""models/: modules, save/load, losses, optimizers, and a network that learns the digits."""

import numpy as np
import pytest

import autodiff as ad
from models import (
    MLP,
    SGD,
    Adam,
    Linear,
    Module,
    cross_entropy,
    load_digits,
    one_hot,
    random_batches,
    squared_error,
)


def test_named_parameters_in_definition_order_with_dotted_paths():
    model = MLP([4, 3, 2])
    assert [n for n, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [p.shape for p in model.parameters()] == [(3, 4), (3,), (2, 3), (2,)]
    assert [n for n, _ in MLP([4, 3], bias=False).named_parameters()] == ["layers.0.weight"]


def test_linear_computes_x_weight_transposed_plus_bias():
    layer = Linear(3, 2, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 3))
    np.testing.assert_allclose(layer(ad.tensor(x)).data,
                               x @ layer.weight.data.T + layer.bias.data)


def test_mlp_says_which_input_width_it_expects():
    with pytest.raises(ad.ShapeError, match=r"MLP: expected input of width 64, got shape \(5, 63"):
        MLP([64, 50, 10])(ad.tensor(np.ones((5, 63))))


def test_zero_grad_clears_every_parameter():
    model = MLP([3, 2])
    model(ad.tensor(np.ones((1, 3)))).sum().backward()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_save_load_round_trips_exactly(tmp_path):
    model, other = MLP([5, 4, 3], rng=np.random.default_rng(0)), MLP([5, 4, 3])
    model.save(tmp_path / "model.npz")
    other.load(tmp_path / "model.npz")
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert list(tmp_path.iterdir()) == [tmp_path / "model.npz"]  # no temporary file left


def test_a_crash_while_saving_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    MLP([2, 2]).save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OSError, match="disk full"):
        MLP([2, 2]).save(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("content", [b"not a zip file at all", b"PK\x03\x04 truncated"])
def test_loading_a_foreign_or_corrupted_file_fails_clearly_and_leaves_it(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    model = MLP([2, 2])
    before = model.state_dict()
    with pytest.raises(ValueError, match="is not a state dict saved by Module.save"):
        model.load(path)
    assert path.read_bytes() == content
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_loading_a_mismatched_shape_names_the_key_and_both_shapes(tmp_path):
    MLP([5, 4]).save(tmp_path / "small.npz")
    with pytest.raises(ValueError, match=r"'layers.0.weight' has shape \(4, 5\) in .*small.npz "
                                         r"but \(4, 6\) in the module"):
        MLP([6, 4]).load(tmp_path / "small.npz")


def test_loading_missing_keys_names_them(tmp_path):
    MLP([3, 2], bias=False).save(tmp_path / "nobias.npz")
    with pytest.raises(KeyError, match=r"missing keys \['layers.0.bias'\]"):
        MLP([3, 2]).load(tmp_path / "nobias.npz")


def test_a_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"layers.0.weight": np.array([object()], dtype=object)})
    with pytest.raises(TypeError, match="'layers.0.weight' holds dtype object"):
        MLP([2, 2], bias=False).load(path)


class Custom(Module):
    def __init__(self):
        self.scale = ad.tensor(2.0, requires_grad=True)
        self.constant = ad.tensor(3.0)  # not a parameter: no requires_grad
        self.inner = Linear(2, 1)

    def forward(self, x):
        return self.inner(x) * self.scale


def test_custom_modules_find_nested_parameters():
    assert [n for n, _ in Custom().named_parameters()] == ["scale", "inner.weight", "inner.bias"]


def test_squared_error_is_the_notebooks_loss():
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((4, 10)), one_hot(rng.integers(0, 10, 4))
    e = np.exp(logits)
    expected = ((e / e.sum(1, keepdims=True) - y) ** 2).sum()
    assert squared_error(ad.tensor(logits), ad.tensor(y)).item() == pytest.approx(expected)


def test_cross_entropy_matches_its_definition_and_gradcheck():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -log_p[np.arange(5), labels].mean()
    assert cross_entropy(ad.tensor(logits), labels).item() == pytest.approx(expected)
    assert ad.gradcheck(lambda z: cross_entropy(z, labels),
                        [ad.tensor(logits, requires_grad=True)])


def test_loss_errors_name_the_shapes():
    with pytest.raises(ad.ShapeError, match=r"cross_entropy: .*logits \(5, 4\) and labels \(4,\)"):
        cross_entropy(ad.tensor(np.ones((5, 4))), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        cross_entropy(ad.tensor(np.ones((2, 4))), np.array([0, 4]))
    with pytest.raises(ad.ShapeError, match=r"squared_error: logits \(2, 3\)"):
        squared_error(ad.tensor(np.ones((2, 3))), ad.tensor(np.ones((2, 4))))


def test_sgd_with_momentum_follows_its_recurrence():
    w = ad.tensor([1.0, -2.0], requires_grad=True)
    optimizer = SGD([w], lr=0.1, momentum=0.9)
    expected, velocity = w.data.copy(), np.zeros(2)
    for _ in range(3):
        optimizer.zero_grad()
        (w * w).sum().backward()  # gradient 2w
        velocity = 0.9 * velocity + 2 * expected
        expected = expected - 0.1 * velocity
        optimizer.step()
        np.testing.assert_allclose(w.data, expected)


def test_adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign():
    w = ad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    optimizer = Adam([w], lr=0.01)
    (w * ad.tensor([5.0, 0.5, -2.0])).sum().backward()
    optimizer.step()  # m̂ = g, v̂ = g²: the first step is lr·sign(g)
    np.testing.assert_allclose(w.data, [1.0 - 0.01, -2.0 - 0.01, 3.0 + 0.01], rtol=1e-6)


def test_digits_are_split_and_batched_as_the_notebook_does():
    data = load_digits()
    assert data.x_train.shape == (1617, 64) and data.x_test.shape == (180, 64)
    assert data.y_train.shape == (1617, 10) and (data.y_train.sum(1) == 1).all()
    batches = random_batches(len(data.x_train), 200, 100, seed=3)
    assert len(batches) == 200 and all(b.shape == (100,) for b in batches)
    assert max(b.max() for b in batches) < 1617
    np.testing.assert_array_equal(batches[5], random_batches(1617, 200, 100, seed=3)[5])


def test_an_mlp_with_cross_entropy_and_adam_learns_the_digits():
    data = load_digits()
    rng = np.random.default_rng(0)
    model = MLP([64, 50, 10], rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-2)
    x = data.x_train / 16
    for _ in range(40):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 64):
            rows = order[i:i + 64]
            loss = cross_entropy(model(ad.tensor(x[rows])), data.labels_train[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with ad.no_grad():
        predicted = model(ad.tensor(data.x_test / 16)).data.argmax(1)
    assert (predicted == data.labels_test).mean() >= 0.95
