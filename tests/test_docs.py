"""The README and the documentation say what is true: no session history, numbers that
match the benchmark results they quote, links that resolve, a quick start that runs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"

#: Phrasing that belongs in commit messages and the changelog, not in the manual.
HISTORY = [
    r"\bissue #?\d+",
    r"#\d{1,3}\b(?![\w-])",
    r"\bcommit [0-9a-f]{7,40}\b",
    r"`[0-9a-f]{7,40}`",
    r"\b20[2-9]\d-\d\d-\d\d\b",  # a date of this project's work (data dates are older)
    r"\blanded\b",
    r"\bre-?run on\b",
    r"\baimed (for|at)\b",
    r"\b(this|earlier|previous|last) session\b",
    r"\bbefore .{0,40} (existed|landed)\b",
    r"\bno longer\b",
]


def _manual_files() -> list[Path]:
    docs = [p for p in (ROOT / "docs").rglob("*.md") if not _generated(p)]
    return [ROOT / "README.md", *sorted(docs), *sorted((ROOT / "examples").glob("*.py"))]


def _generated(path: Path) -> bool:
    parts = path.relative_to(ROOT / "docs").parts
    return parts[0] in {"_build", "generated", "auto_examples"}


@pytest.mark.parametrize("path", _manual_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_manual_carries_no_history(path):
    text = path.read_text()
    for pattern in HISTORY:
        hit = re.search(pattern, text, flags=re.IGNORECASE)
        assert hit is None, f"{path.name}: history phrasing {hit.group(0)!r} (pattern {pattern})"


def test_readme_setup_commands_are_the_two():
    block = re.search(r"## Set-up\n.*?```console\n(.*?)```", README, flags=re.S).group(1)
    assert block.strip().splitlines() == [
        "pip install . && funbat demo",
        "pip install '.[test]' && pytest -q",
    ]


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 160


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _pm(value: dict) -> str:
    return f"{value['mean']:.3f} ± {value['std']:.3f}"


def test_readme_results_table_matches_the_benchmark_results():
    summary = _load("paper_table.json")["summary"]
    reference = _load("reference_code.json")["results"]
    names = {"beijing_pm25": "beijing_pm25", "us_temp": "us_temp (°F)"}
    for dataset, label in names.items():
        rows = {(r["method"], r["rank"]): r for r in summary if r["dataset"] == dataset}
        tucker, cp = rows[("FunBaT (Tucker)", 3)], rows[("FunBaT-CP", 3)]
        ref = {r["method"]: r for r in reference if r["dataset"] == dataset}
        baselines = [
            r for (m, rank), r in rows.items()
            if not m.startswith("FunBaT") and rank in (3, None) and r["rmse"] is not None
        ]  # fmt: skip
        best = min(baselines, key=lambda r: r["rmse"]["mean"])
        short = best["method"].split(" (")[0]
        ref_tucker = ref["authors' FunBaT (Tucker)"]["rmse_mean"]
        ref_cp = ref["authors' FunBaT-CP"]["rmse_mean"]
        expected = (
            f"| {label} | {_pm(tucker['rmse'])} | {_pm(cp['rmse'])} | {ref_tucker:g} | "
            f"{ref_cp:g} | {_pm(best['rmse'])} ({short}) |"
        )
        assert expected in README, f"README's {dataset} row should read:\n{expected}"


def test_readme_inline_numbers_match_the_benchmark_results():
    summary = _load("paper_table.json")["summary"]
    r7 = next(r for r in summary if r["dataset"] == "us_temp" and r["method"] == "FunBaT (Tucker)"
              and r["rank"] == 7)  # fmt: skip
    assert f"{_pm(r7['rmse'])} at rank 7" in README
    calib = {r["dataset"]: r for r in _load("calibration_default.json")["results"]
             if r["split"] == "mean ± sd"}  # fmt: skip
    assert f"({_pm(calib['us_temp']['rmse'])}, `modes=" in README
    for dataset, label in [("us_temp", "us_temp"), ("beijing_pm25", "beijing")]:
        cover = calib[dataset]["coverage"]["95%"]["mean"]
        assert f"{cover:.1%} ({label})" in README
    stalled = next(r for r in _load("reference_code.json")["results"]
                   if r["dataset"] == "beijing_pm25" and "stalled" in r["remark"])  # fmt: skip
    assert f"stalls at {max(stalled['test_rmse']):g}" in README


def test_every_result_file_carries_its_provenance():
    for path in sorted(RESULTS.glob("*.json")):
        prov = json.loads(path.read_text()).get("provenance")
        assert isinstance(prov, dict), f"{path.name} has no provenance"
        missing = {"command", "commit", "machine", "date"} - set(prov)
        assert not missing, f"{path.name}: provenance lacks {sorted(missing)}"


@pytest.mark.skipif(not (DATA / "beijing_pm25.csv").is_file(),
                    reason="the shared datasets (../shared/data) are not beside the project")  # fmt: skip
def test_readme_quick_start_runs_as_written(tmp_path, monkeypatch):
    code = re.search(r"## Quick start\n.*?```python\n(.*?)```", README, flags=re.S).group(1)
    # run where the snippet's relative path reaches the shared data, writing nothing here
    work = tmp_path / "project"
    work.mkdir()
    (tmp_path / "shared").mkdir()
    os.symlink(DATA, tmp_path / "shared" / "data")
    monkeypatch.chdir(work)
    namespace: dict = {}
    exec(compile(code, "README quick start", "exec"), namespace)  # noqa: S102
    model, lower, upper, mean = (namespace[k] for k in ("model", "lower", "upper", "mean"))
    assert model.converged_ or model.n_iter_ == model.max_iter
    assert np.all(lower < mean) and np.all(mean < upper)
    assert (work / "beijing.funbat").is_file()
