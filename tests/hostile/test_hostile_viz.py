"""viz: any name renders, literally; render writes atomically through a unique temporary file."""

from __future__ import annotations

import shutil
import stat
import subprocess
from xml.etree import ElementTree

import numpy as np
import pytest

import autodiff as ad
from autodiff import viz

requires_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def svg_texts(svg: bytes) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text")]


def rendered_texts(name: str, module: str = "m") -> list[str]:
    x = ad.tensor([1.0, 2.0], requires_grad=True, name=name)
    w = ad.tensor([3.0, 4.0], requires_grad=True)
    source = viz.to_dot((x * w).sum(), params={f"{module}.weight": w}).source
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return svg_texts(result.stdout)


@requires_dot
@pytest.mark.parametrize(("name", "shown"), [
    ("&amp;", "&amp;"), ("a & b", "a & b"), ("&lt;tag&gt;", "&lt;tag&gt;"), ("&#65;", "&#65;"),
    ("nul\x00byte", "nul\\x00byte"), ("bell\x07", "bell\\x07"), ("tab\there", "tab\there"),
    ("<b>bold</b>", "<b>bold</b>"), ("<>", "<>"), ("{a|b}", "{a|b}"), ('"q"', '"q"'),
    ("back\\slash", "back\\slash"), ("\\N \\G \\E", "\\N \\G \\E"), ("é字🙂", "é字🙂"),
])
def test_any_tensor_name_renders_literally(name, shown):
    assert shown in rendered_texts(name)


@requires_dot
@pytest.mark.parametrize("module", ["<>", "<b>x</b>", "&amp;", "a\x00b"])
def test_any_module_name_renders_literally(module):
    texts = rendered_texts("x", module)
    assert module.replace("\x00", "\\x00") in texts


@requires_dot
def test_a_very_long_name_renders_shortened_with_an_ellipsis():
    texts = rendered_texts("n" * 20_000)
    long = [t for t in texts if t.startswith("nnn")]
    assert long == ["n" * 199 + "…"]


@requires_dot
def test_render_does_not_follow_a_planted_link_and_leaves_nothing_behind(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".g.svg.tmp").symlink_to(victim)
    path = viz.render((ad.tensor([1.0], requires_grad=True) * 2).sum(), path=tmp_path / "g.svg")
    assert victim.read_text() == "precious"
    assert path.read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".g.svg.tmp", "g.svg", "victim.txt"]
    assert stat.S_IMODE(path.stat().st_mode) != 0o600


@requires_dot
def test_two_renders_of_one_path_at_once_do_not_collide(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    roots = [(ad.tensor(np.ones(2), requires_grad=True) * k).sum() for k in range(6)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda r: viz.render(r, path=tmp_path / "g.svg"), roots))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.svg"]
    ElementTree.fromstring((tmp_path / "g.svg").read_bytes())  # one whole file


def test_a_failed_render_leaves_no_file(tmp_path, monkeypatch):
    import graphviz

    def broken_pipe(*args, **kwargs):
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"dot crashed")

    monkeypatch.setattr(graphviz.Digraph, "pipe", broken_pipe)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    with pytest.raises(graphviz.CalledProcessError):
        viz.render((ad.tensor([1.0], requires_grad=True) * 2).sum(), path=tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []
