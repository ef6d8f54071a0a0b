"""`python -m benchmarks --quick` runs and reports every figure (no timing is asserted, ever)."""

import json

from benchmarks.__main__ import main
from benchmarks.targets import TARGETS


def test_quick_benchmark_reports_every_figure(tmp_path, capsys):
    results = main(["--quick", "--json", str(tmp_path / "bench.json")])
    assert json.loads((tmp_path / "bench.json").read_text())["quick"] is True
    assert set(results["steps"]) == set(TARGETS)
    for step in results["steps"].values():
        assert step["engine"]["us"] > 0 and step["numpy"]["us"] > 0
        assert step["engine"]["ratio"] > 0 and step["peak memory ratio"] > 0
    assert set(results["per-op overhead us"]) == {"forward", "forward+backward"}
    assert results["notebook run s"]["seconds"] > 0
    opened = results["explorer open s"]  # None where there is no Chromium to open it in
    assert opened is None or (len(opened) == 2 and all(s > 0 for s in opened.values()))
    printed = capsys.readouterr().out
    assert "machine:" in printed and "BLAS on 1 thread" in printed and "per-op overhead" in printed
