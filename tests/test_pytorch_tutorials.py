"""Programs written in the style of PyTorch's autograd tutorials (the tensor and autograd
polynomial fits, the custom Function, the "Automatic differentiation" basics, the blitz autograd
page, the nn polynomial), each with only its import lines changed to use autodiff. Each result is
checked against numbers computed independently: the same algorithm in NumPy with gradients
derived by hand, or values worked out on paper.

The programs are our own, in those tutorials' style; each is run as a user would run it.
"""

import math

import numpy as np
import pytest

STEPS = 300  # the tutorials run 2000; 300 keeps the test quick and still moves the fit far


def run(program: str) -> dict:
    scope: dict = {}
    exec(program, scope)
    return scope


TENSOR_POLYNOMIAL = """
import math
import autodiff as torch                          # was: import torch

dtype = torch.float
device = torch.device("cpu")
torch.manual_seed(0)
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)
a = torch.randn((), device=device, dtype=dtype)
b = torch.randn((), device=device, dtype=dtype)
c = torch.randn((), device=device, dtype=dtype)
d = torch.randn((), device=device, dtype=dtype)
start = [a.item(), b.item(), c.item(), d.item()]
learning_rate = 1e-6
for t in range(steps):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum().item()
    if t % 100 == 99:
        report = f"{t} {loss:.3f}"
    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum()
    grad_b = (grad_y_pred * x).sum()
    grad_c = (grad_y_pred * x ** 2).sum()
    grad_d = (grad_y_pred * x ** 3).sum()
    a -= learning_rate * grad_a
    b -= learning_rate * grad_b
    c -= learning_rate * grad_c
    d -= learning_rate * grad_d
result = f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3"
"""

AUTOGRAD_POLYNOMIAL = """
import math
import autodiff as torch                          # was: import torch

dtype = torch.float
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(1)
x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype, device=device)
y = torch.sin(x)
a = torch.randn((), dtype=dtype, device=device, requires_grad=True)
b = torch.randn((), dtype=dtype, device=device, requires_grad=True)
c = torch.randn((), dtype=dtype, device=device, requires_grad=True)
d = torch.randn((), dtype=dtype, device=device, requires_grad=True)
start = [a.item(), b.item(), c.item(), d.item()]
learning_rate = 1e-6
for t in range(steps):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None
"""

CUSTOM_FUNCTION = """
import math
import autodiff as torch                          # was: import torch


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


dtype = torch.float
device = torch.device("cpu")
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)
a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
learning_rate = 5e-6
for t in range(steps):
    P3 = LegendrePolynomial3.apply
    y_pred = a + b * P3(c + d * x)
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None
"""

AUTOGRAD_BASICS = """
import autodiff as torch                          # was: import torch

torch.manual_seed(2)
x = torch.ones(5)
y = torch.zeros(3)
w = torch.randn(5, 3, requires_grad=True)
b = torch.randn(3, requires_grad=True)
z = torch.matmul(x, w) + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
gradient_function = repr(z.grad_fn)
loss.backward()
w_grad, b_grad = w.grad, b.grad
z = torch.matmul(x, w) + b
tracked = z.requires_grad
with torch.no_grad():
    z = torch.matmul(x, w) + b
untracked = z.requires_grad
detached = (torch.matmul(x, w) + b).detach().requires_grad

inp = torch.eye(4, 5, requires_grad=True)
out = (inp + 1).pow(2).t()
out.backward(torch.ones_like(out), retain_graph=True)
first = inp.grad.clone()
out.backward(torch.ones_like(out), retain_graph=True)
second = inp.grad.clone()
inp.grad.zero_()
out.backward(torch.ones_like(out), retain_graph=True)
after_zero = inp.grad.clone()
"""

BLITZ_AUTOGRAD = """
import autodiff as torch                          # was: import torch
from autodiff import nn, optim                    # was: from torch import nn, optim

a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3 * a ** 3 - b ** 2
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)
a_ok = (9 * a ** 2 == a.grad).tolist()
b_ok = (-2 * b == b.grad).tolist()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.body(x))


torch.manual_seed(3)
model = Net()
for param in model.parameters():
    param.requires_grad = False
model.fc = nn.Linear(16, 10)
body_before = [p.data.copy() for p in model.body.parameters()]
fc_before = [p.data.copy() for p in model.fc.parameters()]
optimizer = optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
data = torch.rand(1, 8)
labels = torch.rand(1, 10)
for _ in range(2):
    prediction = model(data)
    loss = (prediction - labels).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""

NN_POLYNOMIAL = """
import math
import autodiff as torch                          # was: import torch

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
loss_fn = torch.nn.MSELoss(reduction="sum")
linear_layer = model[0]
start = (linear_layer.weight.data.copy(), linear_layer.bias.data.copy())
learning_rate = 1e-6
for t in range(steps):
    y_pred = model(xx)
    loss = loss_fn(y_pred, y)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad
result = (f"y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + "
          f"{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3")
"""


def numpy_cubic_fit(start, dtype, steps):
    """The cubic fit by gradient descent in NumPy, gradients derived by hand."""
    x = np.linspace(-math.pi, math.pi, 2000).astype(dtype)
    y = np.sin(x)
    a, b, c, d = (dtype(v) for v in start)
    lr = dtype(1e-6)
    for _ in range(steps):
        g = 2.0 * (a + b * x + c * x ** 2 + d * x ** 3 - y)
        a, b, c, d = (a - lr * g.sum(), b - lr * (g * x).sum(), c - lr * (g * x ** 2).sum(),
                      d - lr * (g * x ** 3).sum())
    return np.array([a, b, c, d])


@pytest.mark.parametrize("program", [TENSOR_POLYNOMIAL, AUTOGRAD_POLYNOMIAL],
                         ids=["tensors", "autograd"])
def test_the_polynomial_fits_match_numpy_with_hand_derived_gradients(program):
    scope = run(program.replace("range(steps)", f"range({STEPS})"))
    got = np.array([scope[k].item() for k in "abcd"])
    expected = numpy_cubic_fit(scope["start"], np.float32, STEPS)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)  # float32 sums, reordered
    assert scope["a"].dtype == np.float32 and scope["a"].shape == ()
    if "result" in scope:
        assert scope["result"].startswith("Result: y = ") and scope["report"].startswith("299 ")
    # the fit moved towards sin: the loss fell
    x = np.linspace(-math.pi, math.pi, 2000)

    def loss(k):
        return np.sum((k[0] + k[1] * x + k[2] * x ** 2 + k[3] * x ** 3 - np.sin(x)) ** 2)

    assert loss(got) < loss(np.array(scope["start"]))


def test_the_custom_function_fit_matches_numpy():
    scope = run(CUSTOM_FUNCTION.replace("range(steps)", f"range({STEPS})"))
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    a, b, c, d = 0.0, -1.0, 0.0, 0.3
    for _ in range(STEPS):
        u = c + d * x
        p3, dp3 = 0.5 * (5 * u ** 3 - 3 * u), 1.5 * (5 * u ** 2 - 1)
        g = 2 * (a + b * p3 - y)
        a, b, c, d = (a - 5e-6 * g.sum(), b - 5e-6 * (g * p3).sum(),
                      c - 5e-6 * (g * b * dp3).sum(), d - 5e-6 * (g * b * dp3 * x).sum())
    got = [scope[k].item() for k in "abcd"]
    np.testing.assert_allclose(got, [a, b, c, d], rtol=2e-3, atol=1e-4)


def test_the_autograd_basics_give_the_values_worked_out_by_hand():
    scope = run(AUTOGRAD_BASICS)
    w, b = scope["w"].data, scope["b"].data
    z = np.ones(5) @ w + b
    sigma = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(scope["w_grad"].data, np.outer(np.ones(5), sigma / 3), rtol=1e-12)
    np.testing.assert_allclose(scope["b_grad"].data, sigma / 3, rtol=1e-12)
    assert scope["gradient_function"] == "<AddBackward>"
    assert (scope["tracked"], scope["untracked"], scope["detached"]) == (True, False, False)
    twice_inp_plus_1 = 2 * (np.eye(4, 5) + 1)  # d/d inp of Σ (inp + 1)²
    np.testing.assert_array_equal(scope["first"].data, twice_inp_plus_1)
    np.testing.assert_array_equal(scope["second"].data, 2 * twice_inp_plus_1)  # accumulated
    np.testing.assert_array_equal(scope["after_zero"].data, twice_inp_plus_1)


def test_the_blitz_page_checks_hold_and_a_frozen_body_does_not_move():
    scope = run(BLITZ_AUTOGRAD)
    assert scope["a_ok"] == [True, True] and scope["b_ok"] == [True, True]
    model = scope["model"]
    for before, p in zip(scope["body_before"], model.body.parameters()):
        np.testing.assert_array_equal(before, p.data)  # frozen: no gradient, no step
    # the head: d loss / d weight = hidden activations (one row per output), d / d bias = 1;
    # SGD with momentum 0.9 over two equal steps moves by lr·g, then lr·1.9·g
    hidden = np.maximum(scope["data"].data @ model.body[0].weight.data.T
                        + model.body[0].bias.data, 0)
    w0, b0 = scope["fc_before"]
    np.testing.assert_allclose(model.fc.weight.data, w0 - 1e-2 * 2.9 * np.repeat(hidden, 10, 0),
                               rtol=1e-12)
    np.testing.assert_allclose(model.fc.bias.data, b0 - 1e-2 * 2.9, rtol=1e-12)
    assert len(model.parameters()) == 4


def test_the_nn_polynomial_matches_numpy():
    scope = run(NN_POLYNOMIAL.replace("range(steps)", f"range({STEPS})"))
    w, bias = (v.astype(np.float64) for v in scope["start"])
    x = np.linspace(-math.pi, math.pi, 2000)
    features = np.stack([x, x ** 2, x ** 3], axis=1)
    y = np.sin(x)
    w, bias = w[0], bias[0]
    for _ in range(STEPS):
        g = 2 * (features @ w + bias - y)
        w, bias = w - 1e-6 * features.T @ g, bias - 1e-6 * g.sum()
    layer = scope["linear_layer"]
    np.testing.assert_allclose(layer.weight.data[0], w, rtol=1e-9)
    np.testing.assert_allclose(layer.bias.data[0], bias, rtol=1e-9)
    assert scope["result"].startswith("y = ")
