"""The strategies of autodiff.testing do what they say."""

from collections import Counter

import numpy as np
from hypothesis import find, given
from hypothesis import strategies as st

import autodiff as ad
from autodiff.ops import OPS
from autodiff.testing import (
    broadcastable_shapes,
    dims,
    distinct_arrays,
    matmul_shapes,
    programs,
    safe_floats,
    shapes,
    tensors,
)
from autodiff.testing.programs import Program, Step


@given(st.data())
def test_tensors_have_the_shape_and_dtype_asked_for(data):
    shape = data.draw(shapes())
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    t = data.draw(tensors(shape, dtype=dtype))
    assert t.shape == shape and t.dtype == dtype and t.requires_grad
    assert np.isfinite(t.data).all()
    assert not data.draw(tensors(shape, requires_grad=False)).requires_grad


@given(broadcastable_shapes(3))
def test_broadcastable_shapes_broadcast(shapes_):
    np.broadcast_shapes(*shapes_)


@given(matmul_shapes())
def test_matmul_shapes_multiply(pair):
    a, b = pair
    np.matmul(np.ones(a), np.ones(b))


@given(st.data())
def test_dims_are_valid_for_a_reduction(data):
    shape = data.draw(shapes())
    dim = data.draw(dims(len(shape)))
    np.sum(np.ones(shape), axis=dim)
    assert ad.tensor(np.ones(shape)).sum(dim).shape == np.sum(np.ones(shape), axis=dim).shape


@given(distinct_arrays(shapes(min_dims=1), gap=0.05))
def test_distinct_arrays_have_no_near_ties(a):
    values = np.sort(a.ravel())
    assert (np.diff(values) >= 0.05 * 0.74).all()


@given(st.data())
def test_safe_floats_keep_away_from_kinks_and_out_of_undefined_regions(data):
    assert abs(data.draw(safe_floats("relu"))) >= 1e-2
    assert abs(data.draw(safe_floats(OPS["abs"]))) >= 1e-2
    assert data.draw(safe_floats("log")) > 0 and data.draw(safe_floats("sqrt")) > 0
    assert abs(data.draw(safe_floats("div", 1))) >= 0.2
    low = data.draw(st.floats(-2, 0))
    v = data.draw(safe_floats("clamp", 0, {"min": low, "max": low + 1}))
    assert abs(v - low) >= 1e-2 and abs(v - low - 1) >= 1e-2


@given(programs())
def test_programs_run_finite_and_print_as_the_code_they_run(program):
    out = program(*program.tensors())
    assert np.isfinite(out.data).all()
    scope = {}
    exec(repr(program), {}, scope)  # the printed program is valid Python ...
    again = scope["program"](*program.tensors())
    np.testing.assert_array_equal(again.data, out.data)  # ... that computes the same thing


def reuses_a_step(program: Program) -> bool:
    """Whether some step's output is an operand more than once: a DAG, not a tree."""
    uses = Counter(o for step in program.steps for o in step.operands)
    return any(n >= 2 for value, n in uses.items() if value >= len(program.input_shapes))


def test_the_sharing_predicate_tells_a_chain_from_a_dag():
    x = (np.ones(2),)
    chain = Program(((2,),), (Step("tanh", (0,), None), Step("exp", (1,), None)), x)
    dag = Program(((2,),), (Step("tanh", (0,), None), Step("mul", (1, 1), None)), x)
    assert not reuses_a_step(chain) and reuses_a_step(dag)


def test_programs_reach_broadcasting_and_shared_subexpressions():
    shared = find(programs(), reuses_a_step)
    assert reuses_a_step(shared)
    broadcast = find(programs(), lambda p: len(set(p.input_shapes)) > 1)
    assert len(set(broadcast.input_shapes)) > 1
