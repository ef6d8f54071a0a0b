"""The fused backend of `autodiff.compile` (``backend="numba"``): each run of elementwise ops
and reductions in a program, forward, backward and update alike, as one generated loop.

A program (`autodiff.program`) is a list of lines, each one NumPy call (``t3 = softmax(t2,
dim=1)``, ``t4 = sub(t3, a1)``): each walks its arrays once and costs about a microsecond
besides. `fuse` first writes a whole step's backward into its forward (`inline`), an
optimizer's step as the loops it declares (`_updates_as_loops`), moves the lines numba cannot
run above the ops they do not depend on (`_hoisted`), and writes ``w -= lr * (a @ b)``, where
nothing else reads the product, as one BLAS call into w (`_updates_in_products`). It then
grows the maximal runs of lines whose op declares a loop form over one iteration shape, each
written as one kernel (`autodiff.loops`), and makes each stretch of kernel calls and matmuls
one numba function, a region (`_regions`), which Python calls once. The kernels and regions
of a function are one module, compiled by numba and cached on disk (`compiled`).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib.util
import os
import re
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from autodiff.loops import FLOATS, Run, Unfusable, bound_names, names_in
from autodiff.program import Function, Line, Program

# how far a fused value may be from eager's, relative to the largest magnitude of the array:
# sums are taken in another order, and numba's exp and log are not NumPy's
TOLERANCE = {8: 1e-12, 4: 1e-5, 2: 1e-2}  # by itemsize: float64, float32, float16


def agree(a: Any, b: Any) -> bool:
    """A fused value and eager's agree: the same dtype, shape and NaNs, values within
    `TOLERANCE` of the array's largest magnitude plus 64 units of rounding of 1 (a sum that
    cancels to exactly 0 in one order leaves rounding in another: the gradient of
    ``softmax(x).sum()``); integers and booleans exactly."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    nan = np.isnan(b)
    if not np.array_equal(np.isnan(a), nan) or not np.array_equal(a[np.isinf(b)],
                                                                  b[np.isinf(b)]):
        return False
    finite = np.isfinite(b)
    if not finite.any():
        return True
    scale = np.abs(b[finite]).max()
    allowed = TOLERANCE[a.itemsize] * scale + 64 * np.finfo(a.dtype).eps
    return bool(np.all(np.abs(a[finite] - b[finite]) <= allowed))


def numba_or_explain() -> Any:
    """numba, or an ImportError that names the extra that installs it."""
    try:
        import numba
    except ImportError as error:
        raise ImportError("compile(backend='numba') needs numba: pip install 'autodiff[fast]'"
                          ) from error
    return numba


def with_flush_to_zero(program: Program) -> Program:
    """The program whose functions run with subnormal results flushed to zero (`autodiff.flush`):
    BLAS and the kernels at full speed where a float32 softmax makes numbers below 1e-38."""
    from autodiff.flush import flushing_subnormals  # needs numba, as this backend does

    return replace(program, forward=flushing_subnormals(program.forward),
                   backwards=[None if b is None else flushing_subnormals(b)
                              for b in program.backwards])


# ---------------------------------------------------------------- a whole step as one function
def inline(functions: list[Function]) -> list[Function]:
    """The forward with each step backward it calls written in its place (a seed made at the
    start, the backward's lines, its results bound to the names the call bound), so that runs
    can cross from the loss into the backward. A step with two backwards is left as it is:
    their lines would bind the same names (``g_t3``) twice."""
    forward, others = functions[0], functions[1:]
    called = {f.name: f for f in others}
    calls = [line for line in forward.lines if line.function in called]
    if not calls or len(calls) > 1:
        return functions
    seeds: list[Line] = []
    lines: list[Line] = []
    for line in forward.lines:
        backward = called.get(line.function or "")
        if backward is None:
            lines.append(line)
            continue
        seed = f"seed{len(seeds)}"
        call = ast.parse(line.read[0], mode="eval").body  # ones(shape, dtype)
        assert isinstance(call, ast.Call)
        seeds.append(Line("effect", seed, "ones", [ast.unparse(a) for a in call.args],
                          shape=backward.lines[0].shape))
        for inner in backward.lines:
            lines.append(replace(inner, read=[seed if r == "g" else r for r in inner.read]))
        for name, value in zip(bound_names(line), names_in(backward.returns)):
            if name != value:
                lines.append(Line("effect", name, None, [value]))
    inlined = {line.function for line in calls}
    return [replace(forward, lines=seeds + lines), *[f for f in others if f.name not in inlined]]


# ---------------------------------------------------------------- a function's runs
def fuse(functions: list[Function], shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
         arrays: dict[str, np.ndarray], namespace: dict[str, Any]
         ) -> tuple[list[Function], list[str], list[str]]:
    """The functions with their runs of fusable lines as kernels, and each stretch of kernels
    and matmuls as one numba function (a region); the sources of the modules that hold them
    (one per function, bound in `namespace`); what the guard must check besides (that each
    optimizer's update still has the loops it was written as)."""
    numba_or_explain()
    sources: list[str] = []
    guards: list[str] = []
    known = dict(shapes)
    functions = inline(functions)
    functions[0] = replace(functions[0], lines=_updates_as_loops(functions[0].lines, known,
                                                                 namespace, guards))
    fused = [fuse_function(f, known, arrays, namespace, sources) for f in functions]
    return fused, sources, guards


def _updates_as_loops(lines: list[Line], known: dict[str, tuple[tuple[int, ...], np.dtype]],
                      namespace: dict[str, Any], guards: list[str]) -> list[Line]:
    """Each ``optimizer.step()`` of one parameter (`program.update_param`) as the optimizer's
    `LoopUpdate`: a call that gives this step's numbers and state arrays, then one line per
    array it writes, which runs join. The guard checks that the update has those loops still
    (SGD's momentum set to 0 or from it traces again)."""
    result: list[Line] = []
    for line in lines:
        optimizer = namespace.get(line.read[0]) if line.function == "update_param" else None
        group = line.values.get("group", 0)
        loops = None if optimizer is None else optimizer.loop_update(optimizer.param_groups[group])
        shape = known.get(line.target or "")
        if loops is None or shape is None or shape[1] not in FLOATS:
            result.append(line)
            continue
        k = len(guards)
        namespace[f"update{k}_loops"] = loops
        guards.append(f"{line.read[0]}.loop_update({line.read[0]}.param_groups[{group}]) == "
                      f"update{k}_loops")
        names = {"p": line.target, "g": line.read[2]} | {
            n: f"update{k}_{n}" for n in (*loops.numbers, *loops.state)}
        known.update({names[n]: ((), np.dtype(np.float64)) for n in loops.numbers})  # floats
        known.update({names[n]: shape for n in loops.state})
        given = [names[n] for n in (*loops.numbers, *loops.state)]
        result.append(Line("effect", ", ".join(given) + ("," if len(given) == 1 else ""),
                           "loop_state", [line.read[0], line.read[1]], [f"group={group}"]))
        for written, expression in loops.writes:
            variables = [n.id for n in ast.walk(ast.parse(expression, mode="eval"))
                         if isinstance(n, ast.Name) and n.id in names]
            variables = list(dict.fromkeys(variables))
            result.append(Line("effect", names[written], "elementwise",
                               [names[v] for v in variables],
                               [f"names={tuple(variables)!r}", f"expression={expression!r}"],
                               into=names[written], target=names[written], shape=shape,
                               values={"names": variables, "expression": expression}))
    namespace.update(loop_state=loop_state, elementwise=elementwise)
    return result


def loop_state(optimizer: Any, p: Any, group: int) -> tuple[Any, ...]:
    """An optimizer's numbers (as NumPy floats, which a kernel's caller reads as ``x[()]``)
    and state arrays for one parameter's update this step."""
    return tuple(np.float64(v) if isinstance(v, (int, float)) else v
                 for v in optimizer.loop_state(p, optimizer.param_groups[group]))


def elementwise(*values: Any, names: tuple[str, ...], expression: str, out: np.ndarray
                ) -> np.ndarray:
    """A loop line that no run took, as NumPy: the expression on whole arrays, into `out`."""
    np.copyto(out, eval(expression, {"np": np}, dict(zip(names, values))),
              casting="same_kind")
    return out


def fuse_function(function: Function, shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
                  arrays: dict[str, np.ndarray], namespace: dict[str, Any],
                  sources: list[str]) -> Function:
    """One function's runs as kernels and its stretches of kernels and matmuls as regions."""
    known = shapes  # the program's, and the names an optimizer's loops bind
    lines = _updates_in_products(_hoisted(function.lines), function.returns, known, arrays)
    if any(line.function == "matmul_add" for line in lines):
        from autodiff.blas import matmul_add  # needs numba, as this backend does

        namespace["matmul_add"] = matmul_add
    function = replace(function, lines=lines)
    runs: list[tuple[int, Run]] = []  # (the position of its first line, the run)
    run: Run | None = None
    for position, line in enumerate(function.lines):
        try:
            if run is None:
                raise Unfusable("no run")
            run.add(position, line, known)
        except Unfusable:
            run = _start(position, line, known, arrays)
            if run is not None:
                runs.append((position, run))
        if line.out is not None and line.shape is not None:
            known[line.out] = line.shape
        elif line.out is not None and line.function is None and line.read[0] in known:
            known[line.out] = known[line.read[0]]
    prefix = f"{function.name}_" if function.name != "forward" else ""
    kernels: list[str] = []
    replaced: list[tuple[int, int, Line]] = []
    for start, run in runs:
        end = start + len(run.lines)
        try:
            outs = run.outputs(_escaping(function.lines, function.returns, end, [
                (p, n, k) for k, (p, n, _, _) in enumerate(run.defined)]))
        except Unfusable:  # a total read under two names: left to NumPy
            continue
        if not any(s.reduce or s.target.kind != "scalar" for s in run.steps):
            continue  # only names and numbers: nothing to loop over
        name = f"{prefix}kernel{len(kernels)}"
        source, arguments = run.source(name, [value for _, value in outs])
        kernels.append(source)
        replaced.append((start, end, Line("kernel", ", ".join(n for n, _ in outs) or None, name,
                                          arguments)))
    lines = list(function.lines)
    for start, end, line in reversed(replaced):
        lines[start:end] = [line]
    if not kernels:
        return function
    lines, regions = _regions(lines, function.returns, known, prefix)
    text = "\n\n".join(kernels + regions)
    sources.append(text)
    module = compiled(text)
    for line in lines:
        if line.kind == "kernel" and line.function is not None:
            namespace[line.function] = getattr(module, line.function)
    namespace["asarray"] = np.asarray
    return replace(function, lines=lines)


def _regions(lines: list[Line], returns: str, known: dict[str, tuple[tuple[int, ...], np.dtype]],
             prefix: str) -> tuple[list[Line], list[str]]:
    """Each stretch of kernel calls, matmuls and names bound again as one numba function: one
    call from Python where there were many, BLAS for the matmuls (``np.dot``)."""
    stretches: list[list[int]] = []
    for position, line in enumerate(lines):
        if _in_numba(line, known) is None:
            continue
        if stretches and stretches[-1][-1] == position - 1:
            stretches[-1].append(position)
        else:
            stretches.append([position])
    stretches = [positions for positions in stretches if len(positions) > 1
                 and any(lines[p].kind == "kernel" for p in positions)]
    regions: list[str] = []
    for number, positions in reversed(list(enumerate(stretches))):
        inside = [lines[p] for p in positions]
        start, end = positions[0], positions[-1] + 1
        defined = [(p, n, k) for k, p in enumerate(positions) for n in bound_names(lines[p])]
        escaping = _escaping(lines, returns, end, [(p, n, hash((p, n))) for p, n, _ in defined])
        outs = list(dict.fromkeys(n for p, n, _ in defined if hash((p, n)) in escaping))
        parameters: list[str] = []
        bound: set[str] = set()
        for line in inside:  # what a line reads before the region binds it comes from outside
            read = [] if line.function == "ones" else _read_by(line)  # ones((), float64)
            parameters += [name for name in read if name not in bound and name not in parameters]
            bound |= set(bound_names(line))
        name = f"{prefix}region{number}"
        body = [_in_numba(line, known) for line in inside]
        returned = ", ".join(outs)
        regions.append("\n".join([f"def {name}({', '.join(parameters)}):",
                                   *[f"    {statement}" for statement in body],
                                   f"    return {returned or 'None'}"]) + "\n")
        arguments = [f"asarray({p})" if known.get(p, ((0,), None))[0] == () else p
                     for p in parameters]
        lines[start:end] = [Line("kernel", returned or None, name, arguments)]
    return lines, regions[::-1]


def _updates_in_products(lines: list[Line], returns: str,
                         known: dict[str, tuple[tuple[int, ...], np.dtype]],
                         arrays: dict[str, np.ndarray]) -> list[Line]:
    """Each ``w -= lr * (a @ b)``, where the product is a gradient nothing else reads (a step
    that sets ``w.grad = None``), as one BLAS call that adds ``−lr · a @ b`` into w
    (`autodiff.blas.matmul_add`): the product is never stored, nor read twice more."""
    lines = list(lines)
    for k, line in enumerate(lines):
        if not (_applies(line, "sub") and line.into == line.read[0] and not line.lent):
            continue
        weight = line.read[0]
        scaling = _only_maker(lines, line.read[1], k, returns)
        if scaling is None or not _applies(lines[scaling], "mul"):
            continue
        scale, product = lines[scaling].read
        if known.get(product, ((0,), None))[0] == ():
            scale, product = product, scale
        made = _made_for(lines, product, scaling, returns)
        if made is None or known.get(scale, ((0,), None))[0] != () or known[scale][1] not in FLOATS:
            continue
        maker, between = made
        operands = _operands(lines[maker], known)
        if (operands is None or lines[maker].accumulate != "="  # a product, not a sum of them
                or known.get(weight) != known.get(lines[maker].out or "")
                or any(_shares_memory(arrays, weight, name)
                       for name in names_in(", ".join(operands)))):
            continue
        lines[k] = replace(line, kind="effect", function="matmul_add", op=None, into=None,
                           read=[*operands, weight, f"-{scale}[()]"], target=weight)
        for position in (scaling, *between, maker):
            lines[position] = Line("effect", None, "pass", [])
    return [line for line in lines if line.function != "pass"]


def _made_for(lines: list[Line], name: str, reader: int, returns: str
              ) -> tuple[int, list[int]] | None:
    """The line that makes the value `name` holds, through names bound again
    (``grad_c0 = g_c0``), and the positions of those, if each is read by the next alone."""
    between: list[int] = []
    maker = _only_maker(lines, name, reader, returns)
    while maker is not None and lines[maker].function is None:
        between.append(maker)
        maker = _only_maker(lines, lines[maker].read[0], maker, returns)
    return None if maker is None else (maker, between)


def _applies(line: Line, op: str) -> bool:
    """The line is a plain forward of `op`: nothing summed back, cast or accumulated."""
    return (line.kind == "forward" and line.op is not None and line.op.name == op
            and line.sum_to is None and line.astype is None and line.accumulate == "=")


def _only_maker(lines: list[Line], name: str, reader: int, returns: str) -> int | None:
    """The position of the line that binds `name`, if that is the only line to bind it and the
    line at `reader` the only one to read it."""
    makers = [p for p, line in enumerate(lines) if name in bound_names(line)]
    readers = [p for p, line in enumerate(lines) if name in _read_by(line)]
    if len(makers) != 1 or readers != [reader] or name in names_in(returns):
        return None
    return makers[0]


def _operands(line: Line, known: dict[str, tuple[tuple[int, ...], np.dtype]]
              ) -> tuple[str, str] | None:
    """A matmul line's two operands as a region writes them (``a0.T``), or None if the line is
    not a matmul of two float matrices of one dtype that BLAS can take (however its result is
    bound, added or added in place)."""
    if (line.op is None or line.op.name != "matmul" or line.kind not in ("forward", "backward")
            or line.sum_to or line.astype or line.into is not None and not line.lent):
        return None
    if line.rule is None:
        a, b = line.read
        operands = a, b
    else:
        g, _, a, b = line.read
        operands = (g, f"{b}.T") if line.rule == 0 else (f"{a}.T", g)
    if not all(name in known and len(known[name][0]) == 2 and known[name][1] in FLOATS
               and known[name][1] == known[a][1] for name in (a, b)):
        return None
    return operands


def _shares_memory(arrays: dict[str, np.ndarray], one: str, other: str) -> bool:
    return one == other or (one in arrays and other in arrays
                            and np.may_share_memory(arrays[one], arrays[other]))


def _in_numba(line: Line, known: dict[str, tuple[tuple[int, ...], np.dtype]]) -> str | None:
    """The line as a statement of a region, or None where numba cannot run it."""
    if line.kind == "kernel":
        call = f"{line.function}({', '.join(line.read)})"
        return call if line.out is None else f"{line.out} = {call}"
    if line.out is None or line.sum_to or line.astype:
        return None
    if line.function is None:
        return f"{line.out} = {line.read[0]}" if line.read[0].isidentifier() else None
    if line.function == "ones" and line.shape is not None:  # a backward's seed
        return f"{line.out} = np.ones({line.read[0]}, np.{line.shape[1].name})"
    if line.function == "matmul_add":
        return f"{line.out} = matmul_add({', '.join(line.read)})"
    operands = _operands(line, known)
    if operands is None:
        return None
    if line.into is not None and line.accumulate == "=":  # a program buffer
        return f"{line.out} = np.dot({', '.join(operands)}, {line.into})"
    product = f"np.dot({', '.join(operands)})"
    if line.accumulate == "+=":
        return f"{line.out} += {product}"
    if line.accumulate == "+":
        return f"{line.out} = {line.out} + {product}"
    return f"{line.out} = {product}"


def _hoisted(lines: list[Line]) -> list[Line]:
    """The lines with each that numba cannot run, and each write into a caller's array with
    the op that makes its value (a step's ``w.grad.zero_()``, written after the forward), moved
    up above the ops before it that it does not depend on, nor they on it: the forward and the
    backward then make one run. A line that stores gradients or updates a parameter is never
    moved (it acts on tensors the names do not show), nor anything across it."""
    written = {line.read[1] for line in lines if line.function == "copyto"}
    order: list[Line] = []
    for line in lines:
        at = len(order)
        movable = not _numba_may_run(line) or line.function == "copyto" or (
            line.out in written and sum(line.out in _read_by(other) for other in lines) == 1)
        if movable and line.function not in ("store_gradients", "update_param"):
            while at and _numba_may_run(order[at - 1]) and _independent(line, order[at - 1]):
                at -= 1
        order.insert(at, line)
    return order


def _numba_may_run(line: Line) -> bool:
    """An op with a loop form, a matmul, a name bound again: what a run or a region may hold."""
    if line.kind == "check":
        return False
    if line.function in (None, "ones", "copyto", "elementwise"):
        return True
    return line.op is not None and (line.op.loop is not None or line.op.name == "matmul")


def _independent(moved: Line, other: Line) -> bool:
    """Neither line reads or writes what the other binds or writes."""
    def written(line: Line) -> set[str]:
        return set(bound_names(line)) | {n for n in (line.into, line.target) if n is not None}

    return not (written(moved) & (written(other) | set(_read_by(other)))
                or written(other) & set(_read_by(moved)))


def _start(position: int, line: Line, known: dict[str, tuple[tuple[int, ...], np.dtype]],
           arrays: dict[str, np.ndarray]) -> Run | None:
    """A run that begins with this line, or None if it cannot be in one."""
    if line.shape is None or line.function != "elementwise" and (
            line.function is None or line.op is None or line.op.loop is None):
        return None
    shape, dtype = line.shape
    if line.op is not None and line.op.loop is not None and line.rule is None and isinstance(
            line.op.loop.forward, str) and line.op.loop.forward.startswith("reduce_") \
            and line.read[0] in known:
        shape = known[line.read[0]][0]  # a reduction runs over its input
    if line.sum_to is not None and line.read[0] in known:
        shape = known[line.read[0]][0]  # a rule summed back to its input: over the gradient
    if not shape or shape[-1] == 1 or dtype not in FLOATS:
        return None
    run = Run(shape, dtype, arrays=arrays)
    try:
        run.add(position, line, known)
    except Unfusable:
        return None
    return run


def _escaping(lines: list[Line], returns: str, end: int,
              defined: list[tuple[int, str, int]]) -> set[int]:
    """Which of the values lines before `end` bound (position, name, key) a later line or the
    return reads, by the name they are bound to until it is bound again."""
    escaping = set()
    for position, name, key in defined:
        if any(p > position and n == name for p, n, _ in defined):
            continue  # bound again before the end
        for line in lines[end:]:
            if name in _read_by(line):
                escaping.add(key)
                break
            if name in bound_names(line):
                break
        else:
            if name in names_in(returns):
                escaping.add(key)
    return escaping


def _read_by(line: Line) -> list[str]:
    """The names a line reads, in order: its arguments (``c2[()]`` reads c2), its params (an
    index read from a slot), the array it writes into, a gradient it adds to."""
    names: list[str] = []
    texts = [*line.read, *(p.split("=", 1)[1] for p in line.params)]
    texts += [line.into] if line.into is not None else []
    texts += [line.out] if line.accumulate != "=" and line.out is not None else []
    for text in texts:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            continue
        names += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in names]
    return names


# ---------------------------------------------------------------- compiling, cached
COMPILED: dict[str, Any] = {}  # a module's source -> the module, its functions compiled


def cache_folder() -> Path:
    """Where kernels' sources and numba's compiled code are kept between processes:
    ``$AUTODIFF_CACHE``, else ``$XDG_CACHE_HOME/autodiff/kernels`` (``~/.cache/...``)."""
    if "AUTODIFF_CACHE" in os.environ:
        return Path(os.environ["AUTODIFF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autodiff" / "kernels"


def compiled(source: str) -> Any:
    """The module of these kernels and regions, each function compiled by numba (lazily, at its
    first call), once per process; with numba's disk cache where the cache folder is writable
    (numba caches the functions of a file: the source is written to one named by its hash)."""
    if source in COMPILED:
        return COMPILED[source]
    numba = numba_or_explain()
    module_name = f"autodiff_kernels_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    imports = "import numpy as np\n" + (
        "\nfrom autodiff.blas import matmul_add\n" if "matmul_add(" in source else "")
    text = f'"""Written by autodiff.compile(backend="numba")."""\n{imports}\n\n{source}'
    names = re.findall(r"^def (\w+)\(", source, re.MULTILINE)
    try:
        folder = cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{module_name}.py"
        if not path.exists() or path.read_text() != text:
            partial = folder / f".{module_name}.{os.getpid()}.tmp"
            partial.write_text(text)
            os.replace(partial, path)  # never a half-written file under the real name
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module: Any = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # numba's cache finds a kernel's globals by module
        spec.loader.exec_module(module)
        cache = True
    except OSError:  # no writable cache: compiled in memory, each process again
        module = types.ModuleType(module_name)
        exec(builtins.compile(text, f"<{module_name}>", "exec"), module.__dict__)
        cache = False
    for name in names:  # a region calls the kernels: they are numba functions before it runs
        setattr(module, name, numba.njit(cache=cache)(getattr(module, name)))
    COMPILED[source] = module
    return module
