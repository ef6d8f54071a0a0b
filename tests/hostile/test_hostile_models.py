"""models: layers, parameters, optimizers, and save/load against hostile files. Nothing the user
saved is lost, nothing half-loaded, nothing read before its header is checked."""

from __future__ import annotations

import os
import stat
import sys
import zipfile

import numpy as np
import pytest
from probes import assert_fails_clearly, probe

import autodiff as ad
from models import MLP, SGD, Adam, Linear, Module

w = ad.tensor([1.0], requires_grad=True)
PROBES = [
    probe(lambda: Linear(0, 5), ValueError, r"Linear: in_features must be a positive int, got 0",
          "linear zero"),
    probe(lambda: Linear(-1, 5), ValueError, r"Linear: in_features .* got -1", "linear negative"),
    probe(lambda: Linear(3, 2.5), ValueError, r"Linear: out_features .* got 2.5", "linear float"),
    probe(lambda: Linear(True, 2), ValueError, r"Linear: in_features .* got True", "linear bool"),
    probe(lambda: MLP([]), ValueError, r"MLP: sizes needs at least an input and an output",
          "mlp empty"),
    probe(lambda: MLP([5]), ValueError, r"MLP: sizes needs at least", "mlp one"),
    probe(lambda: MLP([5, 0]), ValueError, r"Linear: out_features must be a positive int",
          "mlp zero width"),
    probe(lambda: MLP([2, 2], activation="gelu"), ValueError, r"MLP: activation must be one of",
          "mlp activation"),
    probe(lambda: SGD([w], lr=float("nan")), ValueError, r"SGD: lr must be a finite number in "
          r"\(0, inf\), got nan", "sgd nan lr"),
    probe(lambda: SGD([w], lr=0), ValueError, r"SGD: lr must be .*got 0", "sgd zero lr"),
    probe(lambda: SGD([w], lr=-1), ValueError, r"SGD: lr must be .*got -1", "sgd negative lr"),
    probe(lambda: SGD([w], lr=float("inf")), ValueError, r"SGD: lr .*got inf", "sgd inf lr"),
    probe(lambda: SGD([w], lr="0.1"), TypeError, r"SGD: lr must be a number, got '0.1'",
          "sgd str lr"),
    probe(lambda: SGD([w], lr=0.1, momentum=1.0), ValueError,
          r"SGD: momentum must be a finite number in \[0, 1\)", "momentum one"),
    probe(lambda: SGD([w], lr=0.1, momentum=-0.5), ValueError, r"SGD: momentum", "momentum neg"),
    probe(lambda: SGD([], lr=0.1), ValueError, r"SGD: got an empty parameter list", "sgd empty"),
    probe(lambda: SGD(iter([]), lr=0.1), ValueError, r"SGD: got an empty", "sgd empty iter"),
    probe(lambda: SGD([np.ones(2)], lr=0.1), TypeError,
          r"SGD: parameter 0 must be a floating-point Tensor", "sgd array param"),
    probe(lambda: SGD([ad.tensor([1])], lr=0.1), TypeError,
          r"SGD: parameter 0 must be a floating-point Tensor", "sgd integer param"),
    probe(lambda: Adam([w], lr=float("nan")), ValueError, r"Adam: lr", "adam nan lr"),
    probe(lambda: Adam([w], betas=(1.0, 0.999)), ValueError,
          r"Adam: betas\[0\] must be a finite number in \[0, 1\)", "adam beta1"),
    probe(lambda: Adam([w], betas=(0.9, -0.1)), ValueError, r"Adam: betas\[1\]", "adam beta2"),
    probe(lambda: Adam([w], betas=0.9), TypeError, r"Adam: betas must be a pair", "adam betas"),
    probe(lambda: Adam([w], eps=0), ValueError, r"Adam: eps must be .*\(0, inf\)", "adam eps"),
    probe(lambda: Adam([w], eps=float("nan")), ValueError, r"Adam: eps", "adam nan eps"),
    probe(lambda: Adam([], lr=0.1), ValueError, r"Adam: got an empty parameter list",
          "adam empty"),
]


@pytest.mark.parametrize(("call", "error", "message"), PROBES)
def test_models_refuse_bad_arguments_by_name(call, error, message):
    assert_fails_clearly(call, error, message)


class Shared(Module):
    def __init__(self):
        self.a = Linear(2, 2, rng=np.random.default_rng(0))
        self.b = self.a  # shared: one set of parameters under two names
        self.w = ad.tensor([1.0], requires_grad=True)
        self.alias = self.w


def test_shared_parameters_are_listed_once_under_their_first_name():
    names = [n for n, _ in Shared().named_parameters()]
    assert names == ["w", "a.weight", "a.bias"]  # own tensors first, then sub-modules


def test_sgd_moves_a_shared_parameter_once():
    model = Shared()
    before = model.w.data.copy()
    (model.w * 1).sum().backward()
    SGD(model.parameters(), lr=0.5).step()
    assert model.w.data.tolist() == (before - 0.5).tolist()
    SGD([model.w, model.alias], lr=0.5).step()  # a list with repeats: still once
    assert model.w.data.tolist() == (before - 1.0).tolist()


def test_a_module_that_refers_to_its_parent_or_itself_does_not_hang():
    parent = MLP([2, 3, 2], rng=np.random.default_rng(0))
    parent.me = parent
    parent.layers[0].parent = parent
    assert len(parent.parameters()) == 4


def test_sgd_on_a_read_only_array_says_so():
    p = ad.from_numpy(np.broadcast_to(np.ones(1), (2,)))
    p.requires_grad = True
    (p * 2).sum().backward()
    with pytest.raises(ValueError, match=r"SGD.step: parameter 0 \(shape \(2,\)\) holds a "
                                         r"read-only array"):
        SGD([p], lr=0.1).step()


def test_load_state_dict_is_all_or_nothing():
    model = MLP([2, 2, 2], rng=np.random.default_rng(0))
    before = model.state_dict()
    state = dict(before)
    state["layers.1.bias"] = np.array(["a", "b"])  # right shape, the last entry, not numbers
    state = {k: (v + 1 if k != "layers.1.bias" else v) for k, v in state.items()}
    with pytest.raises(TypeError, match=r"'layers.1.bias' holds dtype <U1 in the state dict"):
        model.load_state_dict(state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("name", ["allow_pickle", "file", "args", "kwds", "a/b", "é字 🙂",
                                  "x.npy", ""])
def test_any_parameter_name_round_trips(tmp_path, name):
    model = Module()
    setattr(model, name, ad.tensor([1.0, 2.0], requires_grad=True))
    model.save(tmp_path / "m.npz")
    other = Module()
    setattr(other, name, ad.tensor([0.0, 0.0], requires_grad=True))
    other.load(tmp_path / "m.npz")
    assert getattr(other, name).tolist() == [1.0, 2.0]


def test_a_saved_file_is_readable_by_numpy(tmp_path):
    model = MLP([3, 2], rng=np.random.default_rng(0))
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        np.testing.assert_array_equal(archive["layers.0.weight"], model.layers[0].weight.data)


def test_save_does_not_follow_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "m.npz"
    for suffix in ("", ".tmp"):  # at the old fixed temporary name, and at the target itself
        link = tmp_path / f".m.npz{suffix}" if suffix else target
        link.unlink(missing_ok=True)
        link.symlink_to(victim)
    MLP([2, 2]).save(target)
    assert victim.read_text() == "precious"
    assert target.is_file() and not target.is_symlink()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_saved_file_gets_the_permissions_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        MLP([2, 2]).save(tmp_path / "m.npz")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "m.npz").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~umask


def test_saving_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "m.npz"
    MLP([2, 2]).save(path)
    path.chmod(0o640)
    MLP([2, 2]).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_two_saves_to_one_path_at_once_do_not_collide(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "m.npz"
    models = [MLP([20, 20], rng=np.random.default_rng(i)) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda m: m.save(path), models))
    loaded = MLP([20, 20])
    loaded.load(path)  # one whole file, whichever won
    assert any(np.array_equal(loaded.layers[0].weight.data, m.layers[0].weight.data)
               for m in models)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def write_npy_entry(path, name, header_shape, dtype="<f8", payload=b""):
    """A .npz whose one entry has a hand-written header (shape may lie about the data)."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {header_shape}, }}"
    header = header.ljust(118) + "\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name + ".npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                         + header.encode() + payload)


def test_a_huge_header_is_refused_before_anything_is_allocated(tmp_path):
    import tracemalloc

    path = tmp_path / "huge.npz"
    write_npy_entry(path, "w", (2 ** 45,))
    model = Module()
    model.w = ad.tensor([1.0], requires_grad=True)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"load: 'w' has shape \(35184372088832,\) in .*huge.npz "
                                         r"but \(1,\) in the module"):
        model.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000 and model.w.tolist() == [1.0]


def test_a_header_that_matches_but_data_that_is_short_is_refused(tmp_path):
    path = tmp_path / "short.npz"
    write_npy_entry(path, "w", (4,), payload=b"\x00" * 8)
    model = Module()
    model.w = ad.tensor(np.ones(4), requires_grad=True)
    with pytest.raises(ValueError, match=r"short.npz is not a state dict .* entry 'w' is "
                                         r"truncated \(8 of 32 bytes\)"):
        model.load(path)
    assert model.w.tolist() == [1.0] * 4


def test_a_big_archive_for_a_small_module_is_refused_from_its_headers(tmp_path):
    import tracemalloc

    path = tmp_path / "big.npz"
    big = Module()
    big.w = ad.tensor(np.zeros(2_000_000), requires_grad=True)  # 16 MB, compresses to little
    big.save(path)
    small = Module()
    small.w = ad.tensor([1.0], requires_grad=True)
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"'w' has shape \(2000000,\)"):
        small.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("damage", ["npy", "truncated", "flipped", "empty", "directory"])
def test_a_damaged_file_gets_one_clear_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "m.npz"
    model = MLP([4, 3], rng=np.random.default_rng(0))
    model.save(path)
    data = path.read_bytes()
    if damage == "npy":
        np.save(tmp_path / "m.npy", np.ones(3))
        path = tmp_path / "m.npy"
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":  # a byte of the first entry's data changed: its CRC fails
        start = data.index(b"NUMPY") + 140
        path.write_bytes(data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"load: .*m\.np[yz] is not a state dict saved by "
                                         r"Module.save"):
        model.load(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"nothing.npz is not a state dict .*No such file"):
        MLP([2, 2]).load(tmp_path / "nothing.npz")


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    import builtins

    from models import load_digits

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install 'autodiff\[models\]'"):
        load_digits()


def test_a_file_whose_entry_uses_an_unknown_compression_method_is_a_value_error(tmp_path):
    model = MLP([2, 2], rng=np.random.default_rng(0))
    path = tmp_path / "model.npz"
    model.save(path)
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central
        start = 0
        while (start := raw.find(signature, start)) != -1:
            raw[start + offset:start + offset + 2] = (99).to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(raw))
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"load: .*model.npz is not a state dict saved by "
                                         r"Module.save"):
        model.load(path)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
