"""Forward mode: every primitive's JVP rules against its VJP rules (the adjoint identity, no
finite differences) and against central differences, over the op table's strategies; then the
function transforms against their definitions."""

import numpy as np
import pytest
from conftest import scaled
from functions import cube
from hypothesis import given
from hypothesis import strategies as st
from op_table import CASES

import autodiff as ad
from autodiff.forward import forward_mode, tangent_of
from autodiff.ops import OPS
from autodiff.testing import assert_grad_close, programs

DIFFERENTIABLE = [c for c in CASES if c.recorded]


def test_every_primitive_has_a_jvp_rule_wherever_it_has_a_vjp_rule():
    for name, op in OPS.items():
        assert len(op.jvps) == len(op.vjps), f"{name}: one JVP rule per input"
        assert [r is None for r in op.jvps] == [r is None for r in op.vjps], name


def _split(arrays):
    """The floating inputs (differentiated) and a function of them alone (the rest fixed)."""
    floating = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]

    def with_fixed(case, params):
        def fn(*xs):
            values = [ad.tensor(a) for a in arrays]
            for i, x in zip(floating, xs):
                values[i] = x
            return case.fn(*values, **params)
        return fn

    return [arrays[i] for i in floating], with_fixed


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=repr)
@given(data=st.data())
def test_every_jvp_rule_meets_its_vjp_rule_and_central_differences(case, data):
    """Two checks on each drawn example (one draw serves both, so each runs on every example):
    <u, J v> from the JVP rules equals <Jᵀ u, v> from the VJP rules for random u, v (the adjoint
    identity: no finite differences, to rounding), and J v matches central differences."""
    arrays, params = data.draw(case.examples, label=case.name)
    floats, with_fixed = _split(arrays)
    fn = with_fixed(case, params)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    xs = tuple(ad.tensor(a) for a in floats)
    vs = [rng.standard_normal(a.shape) for a in floats]
    out, jv = ad.jvp(fn, xs, tuple(ad.tensor(v) for v in vs))
    u = rng.standard_normal(out.shape)
    _, vjps = ad.vjp(fn, xs, ad.tensor(u))
    left = float(np.vdot(u, jv.data))
    right = sum(float(np.vdot(g.data, v)) for g, v in zip(vjps, vs))
    assert left == pytest.approx(right, rel=case.exact, abs=case.exact)
    eps = case.eps
    plus = fn(*[ad.tensor(a + eps * v) for a, v in zip(floats, vs)]).data
    minus = fn(*[ad.tensor(a - eps * v) for a, v in zip(floats, vs)]).data
    np.testing.assert_allclose(jv.data, (plus - minus) / (2 * eps), atol=1e-5, rtol=1e-3)


# ---------------------------------------------------------------- the transforms
SMALL = dict(max_dims=2, max_side=3)  # whole Jacobians and Hessians: one pass per element


@scaled(0.2)
@given(program=programs(max_inputs=2, **SMALL))
def test_the_two_jacobian_strategies_agree(program):
    xs = tuple(program.tensors(requires_grad=False))
    reverse = ad.jacobian(program, xs)
    forward = ad.jacobian(program, xs, strategy="forward-mode")
    for r, f in zip(reverse, forward):
        assert r.shape == f.shape
        np.testing.assert_allclose(r.data, f.data, rtol=1e-12, atol=1e-12)


@scaled(0.2)
@given(program=programs(max_inputs=2, **SMALL), seed=st.integers(0, 2**32 - 1))
def test_jvp_and_vjp_are_products_with_the_jacobian(program, seed):
    rng = np.random.default_rng(seed)
    xs = tuple(program.tensors(requires_grad=False))
    jac = ad.jacobian(program, xs)
    vs = tuple(ad.tensor(rng.standard_normal(x.shape)) for x in xs)
    out, jv = ad.jvp(program, xs, vs)
    expected = sum(np.tensordot(j.data, v.data, axes=v.ndim) for j, v in zip(jac, vs))
    np.testing.assert_allclose(jv.data, expected, rtol=1e-10, atol=1e-12)
    u = ad.tensor(rng.standard_normal(out.shape))
    _, vj = ad.vjp(program, xs, u)
    for g, j in zip(vj, jac):
        np.testing.assert_allclose(g.data, np.tensordot(u.data, j.data, axes=u.ndim),
                                   rtol=1e-10, atol=1e-12)


@scaled(0.1)
@given(program=programs(max_inputs=1, **SMALL), seed=st.integers(0, 2**32 - 1))
def test_hessian_and_hvp_agree_with_reverse_over_reverse(program, seed):
    """Forward-over-reverse (hessian, hvp) against the Jacobian of the recorded gradient."""
    (x,) = program.tensors(requires_grad=False)

    def loss(t):
        return program(t).sum()

    hessian = ad.hessian(loss, x)

    def gradient(t):
        (g,) = ad.grad(loss(t), t, create_graph=True)
        return g

    reverse_over_reverse = ad.jacobian(gradient, x)
    np.testing.assert_allclose(hessian.data, reverse_over_reverse.data, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(hessian.data, hessian.data.reshape(x.size, x.size).T.reshape(
        hessian.shape), rtol=1e-9, atol=1e-10)  # symmetric
    v = ad.tensor(np.random.default_rng(seed).standard_normal(x.shape))
    value, hv = ad.hvp(loss, x, v)
    assert value.item() == pytest.approx(loss(x).item())
    np.testing.assert_allclose(hv.data, np.tensordot(hessian.data, v.data, axes=x.ndim),
                               rtol=1e-9, atol=1e-10)


def test_a_tensor_in_gives_a_tensor_out_and_a_tuple_a_tuple():
    x, y = ad.tensor([1.0, 2.0]), ad.tensor([3.0, 4.0, 5.0])
    assert isinstance(ad.jacobian(lambda a: a * 2, x), ad.Tensor)
    by_input = ad.jacobian(lambda a, b: a.sum() * b, (x, y))
    assert isinstance(by_input, tuple) and [j.shape for j in by_input] == [(3, 2), (3, 3)]
    by_output = ad.jacobian(lambda a: (a * 2, a.sum()), x)
    assert [j.shape for j in by_output] == [(2, 2), (2,)]
    both = ad.jacobian(lambda a, b: (a * 2, b.sum()), (x, y))
    assert [[j.shape for j in row] for row in both] == [[(2, 2), (2, 3)], [(2,), (3,)]]
    np.testing.assert_array_equal(both[0][1].data, np.zeros((2, 3)))  # independent: zeros
    out, products = ad.vjp(lambda a, b: a.sum() + b.sum(), (x, y))
    assert isinstance(products, tuple) and out.item() == 15.0


def test_the_hessian_of_a_quadratic_form_is_its_symmetric_matrix():
    a = np.array([[2.0, 1.0], [0.0, 3.0]])
    x = ad.tensor([0.5, -1.0])
    hessian = ad.hessian(lambda t: t @ ad.tensor(a) @ t, x)
    np.testing.assert_allclose(hessian.data, a + a.T, rtol=1e-12)
    _, hv = ad.hvp(lambda t: t @ ad.tensor(a) @ t, x, ad.tensor([1.0, 0.0]))
    np.testing.assert_allclose(hv.data, (a + a.T)[:, 0], rtol=1e-12)


def test_create_graph_keeps_the_results_differentiable():
    x = ad.tensor([0.3, 0.7], requires_grad=True)
    _, jv = ad.jvp(lambda t: t.sin(), x, ad.tensor([1.0, 1.0]), create_graph=True)
    jv.sum().backward()  # d/dx Σ cos x = −sin x
    np.testing.assert_allclose(x.grad.data, -np.sin(x.data), rtol=1e-12)
    x.grad = None
    jac = ad.jacobian(lambda t: t ** 3, x, create_graph=True)
    jac.sum().backward()  # d/dx Σ 3x² = 6x
    np.testing.assert_allclose(x.grad.data, 6 * x.data, rtol=1e-12)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ad.jvp(lambda t: t * 2, ad.tensor([1.0, 2.0])), r"jvp: v can be left out only for "
                                                             r"a single tensor of one element"),
    (lambda: ad.vjp(lambda t: t * 2, ad.tensor([1.0, 2.0]), ad.tensor([1.0])),
     r"vjp: v\[0\] has shape \(1,\), expected \(2,\)"),
    (lambda: ad.jvp(lambda t: t, (ad.tensor([1.0]),), (ad.tensor([1.0]), ad.tensor([1.0]))),
     r"jvp: got 2 tensors in v for 1 tensors"),
    (lambda: ad.hessian(lambda t: t * 2, ad.tensor([1.0, 2.0])),
     r"hessian: func must return a Tensor of one element, got \(2,\)"),
    (lambda: ad.vjp(lambda t: ad.tensor(1.0), ad.tensor([1.0]), strict=True),
     r"vjp: the output of func does not depend on input 0 \(strict=True\)"),
    (lambda: ad.jvp(lambda t: ad.tensor(1.0), ad.tensor([1.0]), strict=True),
     r"jvp: output 0 of func does not depend on the inputs \(strict=True\)"),
    (lambda: ad.jacobian(lambda t: t, ad.tensor([1.0]), strategy="sideways"),
     r"jacobian: strategy must be 'reverse-mode' or 'forward-mode'"),
    (lambda: ad.jacobian(lambda t: t, [1.0]), r"jacobian: inputs must be a Tensor or a tuple"),
])
def test_misuse_of_the_transforms_is_a_clear_error(call, message):
    with pytest.raises((RuntimeError, TypeError, ValueError), match=message):
        call()


# ---------------------------------------------------------------- Function and the oracle
class CubeWithJvp(cube()):
    @staticmethod
    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return tangent * 3 * x.data ** 2


def test_a_function_with_a_jvp_works_in_forward_mode():
    x = ad.tensor([0.5, -2.0])
    _, jv = ad.jvp(lambda t: CubeWithJvp.apply(t) * 2, x, ad.tensor([1.0, 1.0]))
    np.testing.assert_allclose(jv.data, 6 * x.data ** 2)


def test_forward_mode_through_a_function_without_jvp_names_it():
    with pytest.raises(TypeError, match=r"Cube: forward mode needs a static method jvp"):
        ad.jvp(lambda t: cube().apply(t), ad.tensor([1.0]))


def test_forward_mode_inside_forward_mode_is_refused():
    x = ad.tensor([1.0])
    with forward_mode({x: np.ones(1)}), pytest.raises(RuntimeError, match="one level"):
        with forward_mode({x: np.ones(1)}):
            pass


def test_tangents_ride_along_without_a_graph():
    x = ad.tensor([0.5, 1.5])
    with forward_mode({x: np.array([1.0, 0.0])}) as table:
        y = (x.exp() * x).sum()
    assert y.grad_fn is None  # nothing recorded: x needs no gradient
    assert tangent_of(table, y) == pytest.approx(np.exp(0.5) * 1.5)  # d(x eˣ)/dx at 0.5


@scaled(0.2)
@given(program=programs(**SMALL))
def test_forward_mode_is_a_third_oracle_for_assert_grad_close(program):
    assert_grad_close(program, program.tensors(), oracle="forward", atol=1e-9, rtol=1e-9)


class CubeWithWrongVjp(cube(rule_factor=6)):  # backward twice too large, jvp right
    jvp = CubeWithJvp.jvp


def test_the_forward_oracle_catches_a_wrong_vjp():
    x = ad.tensor([0.5, 1.5], requires_grad=True)
    with pytest.raises(AssertionError, match="disagrees with forward mode"):
        assert_grad_close(lambda t: CubeWithWrongVjp.apply(t) * 1, [x], oracle="forward",
                          locate_op=False)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_tangent_has_its_outputs_shape_and_dtype(dtype, create_graph):
    """A rule's contribution may be smaller than the output (add passes a 0-d input's tangent
    on as it is), and a rule may give none (sign): the tangent is broadcast to the output's
    shape, made zeros where there is none, and kept in the output's dtype."""
    x = ad.tensor(np.array([0.5, -1.5, 2.0], dtype))
    s = ad.tensor(np.array(0.25, dtype), requires_grad=create_graph)
    v = np.array(2.0)  # a float64 tangent for a float32 s too
    with forward_mode({s: ad.tensor(v) if create_graph else v},
                      create_graph=create_graph) as table:
        shifted = x + s
        flat = s.sign()
    for t, shape, values in [(shifted, (3,), [2.0, 2.0, 2.0]), (flat, (), 0.0),
                             (x, (3,), [0.0, 0.0, 0.0])]:
        tangent = tangent_of(table, t)
        assert tangent.shape == shape and tangent.dtype == np.dtype(dtype)
        assert isinstance(tangent, ad.Tensor) == (create_graph and t is not x)
        np.testing.assert_array_equal(getattr(tangent, "data", tangent), values)
