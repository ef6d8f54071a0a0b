"""Grouping structure: a chain that repeats a few ops over and over becomes one node, and ops
and tensors are placed in the module whose parameters they use."""

from __future__ import annotations

from collections.abc import Iterator

from autodiff.viz.snapshot import OpInfo, Snapshot

MAX_PERIOD = 8  # the longest repeated pattern looked for, in ops


def collapse_chains(snap: Snapshot, min_repeats: int = 3) -> tuple[list[OpInfo], set[int]]:
    """Ops with each repeated chain folded into one node that says what it holds.

    A chain runs from op to op while an op's output is used by the next op alone (and is no
    output and has no name); an op joins the first chain that reaches it. Where the op names
    along a chain repeat a pattern of up to 8 ops (``mul``, or ``matmul → add → relu``)
    `min_repeats` times or more, that stretch becomes one node, such as
    ``[add → mul → tanh] ×1111``; constants used only inside it are folded in.
    Returns the ops to draw and the indices of the tensors hidden inside folded stretches.
    """
    consumers = _consumers(snap)
    drawn: list[OpInfo] = []
    hidden: set[int] = set()
    for chain in _chains(snap, consumers):
        drawn += _fold_repeats(snap, chain, consumers, hidden, min_repeats)
    return sorted(drawn, key=lambda op: op.index), hidden


def chains(snap: Snapshot) -> list[list[OpInfo]]:
    """The ops split into chains (see `collapse_chains`), in walk order."""
    return list(_chains(snap, _consumers(snap)))


def _consumers(snap: Snapshot) -> dict[int, list[OpInfo]]:
    """Each tensor's index -> the ops that use it."""
    consumers: dict[int, list[OpInfo]] = {}
    for op in snap.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    return consumers


def _chains(snap: Snapshot, consumers: dict[int, list[OpInfo]]) -> Iterator[list[OpInfo]]:
    """The ops split into chains, in walk order; each op in the first chain that reaches it."""
    def next_in_chain(op: OpInfo) -> OpInfo | None:
        users, middle = consumers.get(op.output, []), snap.tensors[op.output]
        return users[0] if len(users) == 1 and not middle.is_root and not middle.label else None

    claimed: set[int] = set()
    for head in snap.ops:  # in walk order: an op comes after those that made its inputs
        if head.index in claimed:
            continue  # drawn with the chain that reached it first
        chain = [head]
        while (nxt := next_in_chain(chain[-1])) is not None and nxt.index not in claimed:
            chain.append(nxt)
            claimed.add(nxt.index)
        yield chain


def _fold_repeats(snap: Snapshot, chain: list[OpInfo], consumers: dict[int, list[OpInfo]],
                  hidden: set[int], min_repeats: int) -> list[OpInfo]:
    """The chain's ops, each stretch that repeats a pattern `min_repeats` times folded into one."""
    drawn, start = [], 0
    while start < len(chain):
        period, length = _repeated_stretch([op.name for op in chain[start:]], min_repeats)
        if not period:
            drawn.append(chain[start])
            start += 1
            continue
        drawn.append(_fold(snap, chain[start:start + length], period, consumers, hidden))
        start += length
    return drawn


def _repeated_stretch(names: list[str], min_repeats: int) -> tuple[int, int]:
    """(period, length) of the longest stretch at the start of `names` repeating one pattern."""
    best = (0, 0)
    for period in range(1, min(MAX_PERIOD, len(names) // min_repeats) + 1):
        length = period
        while length < len(names) and names[length] == names[length % period]:
            length += 1
        length -= length % period
        if length // period >= min_repeats and length > best[1]:
            best = (period, length)
    return best


def _fold(snap: Snapshot, stretch: list[OpInfo], period: int,
          consumers: dict[int, list[OpInfo]], hidden: set[int]) -> OpInfo:
    inside = {op.output for op in stretch[:-1]}
    constants = {i for op in stretch for i in op.inputs if i not in inside
                 and len(consumers[i]) == 1 and snap.tensors[i].is_leaf
                 and not snap.tensors[i].label}
    hidden |= inside | constants
    inputs = []
    for op in stretch:
        inputs += [i for i in op.inputs if i not in inside | constants and i not in inputs]
    pattern = " → ".join(op.name for op in stretch[:period])
    label = (f"{pattern if period == 1 else '[' + pattern + ']'} ×{len(stretch) // period}\n"
             f"(collapsed: {len(stretch)} ops, {len(inside) + len(constants)} tensors)")
    formulas = [formula for op in stretch[:period] for formula in op.formulas]
    return OpInfo(stretch[0].index, label, formulas, inputs, stretch[-1].output)


def module_clusters(snap: Snapshot, ops: list[OpInfo]) -> dict[tuple[str, int], str]:
    """Which module's cluster each op and tensor sits in, from the parameters' dotted keys.

    An op joins module M when one of its inputs is a parameter of M or a tensor computed from
    M's parameters alone (as ``weight.T``; scalar constants allowed); its output is then drawn
    inside M too.
    """
    owner: dict[int, str] = {}  # tensor index -> module path, for params and param-derived
    clusters: dict[tuple[str, int], str] = {}
    for info in snap.tensors:
        if info.is_param and info.label and "." in info.label:
            owner[info.index] = info.label.rsplit(".", 1)[0]
            clusters[("t", info.index)] = owner[info.index]
    for op in ops:  # ops come in walk order: inputs before the ops that use them
        modules = {owner[i] for i in op.inputs if i in owner}
        if len(modules) == 1:
            (module,) = modules
            clusters[("op", op.index)] = clusters[("t", op.output)] = module
            if all(i in owner or snap.tensors[i].tensor.ndim == 0 for i in op.inputs):
                owner[op.output] = module
    return clusters
