"""`edgepeft search`: the space in the recipe, trials that train and measure, the Pareto front, the best trial
within budget, the same trials for the same seed, and a killed search resumed without rerunning a trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from edgepeft.errors import ConfigError
from edgepeft.search.space import apply, load_plan
from edgepeft.search.trial import TrialResult, best, describe, pareto
from edgepeft.testing import tiny_recipe

SPACE = {
    "precision": ["fp32"],
    "student.options.hidden": {"low": 8, "high": 32, "step": 8},
    "student.lr": {"low": 0.003, "high": 0.02, "log": True},
    "techniques.distill": [True, False],
    "techniques.distill.alpha": {"low": 0.3, "high": 0.9},
}


def _recipe(tmp_path: Path, trials: int = 3, **search) -> Path:
    # x86-server with a retention budget the 3-epoch tiny students can meet
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "devices" / "search-box.toml").write_text(
        'extends = "x86-server"\n[budgets]\nmin_accuracy_retention = 0.8\n'
    )
    recipe = tiny_recipe(name="s")
    recipe["search"] = {"device": "search-box", "trials": trials, "seed": 0, "space": SPACE, **search}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(recipe))
    return path


def _search(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgepeft", "search", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "EDGEPEFT_DEVICES_PATH": str(cwd / "devices")},
    )


def test_the_space_names_only_student_settings_techniques_and_precision(manager, tmp_path):
    plan = load_plan(_recipe(tmp_path), manager)
    assert plan.name == "s" and plan.search.trials == 3 and "search" not in plan.base
    bad = _recipe(tmp_path, space={"teacher.lr": [0.1]})
    with pytest.raises(ConfigError, match=r"names 'teacher.lr', which is not a student setting") as exc:
        load_plan(bad, manager)
    assert exc.value.where.startswith(f"{bad}:") and exc.value.where.split(":")[-1].isdigit()
    with pytest.raises(ConfigError, match="switches a technique"):
        load_plan(_recipe(tmp_path, space={"techniques.distill": [1, 2]}), manager)
    with pytest.raises(ConfigError, match=r"low \(0.5\) is above high \(0.1\)"):
        load_plan(_recipe(tmp_path, space={"student.lr": {"low": 0.5, "high": 0.1}}), manager)
    ranges = load_plan(
        _recipe(tmp_path, space={"student.epochs": {"low": 2, "high": 4}, "student.lr": {"low": 2.0, "high": 8.0}}),
        manager,
    )
    assert ranges.search.space["student.epochs"].integer and not ranges.search.space["student.lr"].integer
    no_search = tmp_path / "plain.toml"
    no_search.write_text(tomli_w.dumps(tiny_recipe()))
    with pytest.raises(ConfigError, match=r"no \[search\] table"):
        load_plan(no_search, manager)


def test_settings_are_written_into_a_copy_of_the_recipe():
    base = tiny_recipe(name="s")
    on = apply(base, {"student.lr": 0.01, "student.options.hidden": 24, "techniques.distill.alpha": 0.5}, "s-t001")
    assert on["name"] == "s-t001" and on["student"]["lr"] == 0.01 and on["student"]["options"]["hidden"] == 24
    assert on["techniques"][0]["alpha"] == 0.5 and base["techniques"][0]["alpha"] == 0.7, "the base is untouched"
    off = apply(base, {"techniques.distill": False, "precision": "fp32"}, "s-t002")
    assert off["techniques"] == [] and "precision" not in off
    assert describe({"student.lr": 0.012345, "techniques.distill": False}) == "lr=0.0123 distill=off"


def _trial(n: int, acc: float, size: float, ms: float, broke: tuple[str, ...] = ()) -> TrialResult:
    return TrialResult(n, {}, "complete", val_score=acc, size_mb=size, p95_ms=ms, broke=list(broke))


def test_pareto_front_and_best_trial_within_budget():
    trials = [
        _trial(0, 0.90, 1.0, 1.0),
        _trial(1, 0.95, 2.0, 2.0),
        _trial(2, 0.89, 1.5, 1.5),  # dominated by 0
        _trial(3, 0.99, 9.0, 9.0, broke=("max_size_mb",)),
        TrialResult(4, {}, "pruned", note="max_size_mb broken before training"),
    ]
    assert [r.number for r in pareto(trials)] == [0, 1, 3]
    assert best(trials).number == 1, "the most accurate trial that breaks no budget"
    assert best([trials[3], trials[4]]) is None


def test_a_search_prints_the_front_writes_every_trial_and_repeats_with_the_same_seed(tmp_path):
    recipe = _recipe(tmp_path, trials=3)
    outputs = []
    searches = {out: _search(str(recipe), "--out", str(tmp_path / out), cwd=tmp_path) for out in ("a", "b")}
    for out, proc in searches.items():  # side by side: nothing but the seed is shared
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        assert "Pareto front on search-box" in stdout and "deploy it: edgepeft deploy" in stdout
        outputs.append(json.loads((tmp_path / out / "trials.json").read_text()))
    first, second = outputs
    assert [t["settings"] for t in first["trials"]] == [t["settings"] for t in second["trials"]]
    assert len(first["trials"]) == 3 and first["best"] is not None
    chosen = next(t for t in first["trials"] if t["number"] == first["best"])
    assert chosen["broke"] == [] and chosen["pareto"] and Path(chosen["run"], "student", "model.safetensors").is_file()
    assert 0 < chosen["val_score"] <= 1 and chosen["size_mb"] > 0 and chosen["p95_ms"] > 0
    assert chosen["precision"] == "fp32", "the searched precision, not the profile's first (int8)"
    assert (tmp_path / "a" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    again = _search(str(recipe), "--out", str(tmp_path / "a"), cwd=tmp_path)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode != 0 and "already ran into this folder" in stderr and "--resume" in stderr


def test_a_killed_search_resumes_without_rerunning_finished_trials(tmp_path):
    recipe, out = _recipe(tmp_path, trials=4), tmp_path / "out"
    proc = _search(str(recipe), "--out", str(out), cwd=tmp_path)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        trials = json.loads((out / "trials.json").read_text())["trials"] if (out / "trials.json").is_file() else []
        if len(trials) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = json.loads((out / "trials.json").read_text())["trials"]
    assert 2 <= len(before) < 4
    stamps = {t["number"]: Path(t["run"], "metrics.json").stat().st_mtime_ns for t in before if t["run"]}
    resumed = _search(str(recipe), "--out", str(out), "--resume", cwd=tmp_path)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    after = json.loads((out / "trials.json").read_text())["trials"]
    unflagged = [[{k: v for k, v in t.items() if k != "pareto"} for t in trials] for trials in (before, after)]
    assert len(after) == 4 and unflagged[1][: len(before)] == unflagged[0], "finished trials are kept as they were"
    for number, stamp in stamps.items():
        assert Path(after[number]["run"], "metrics.json").stat().st_mtime_ns == stamp, "and not trained again"
    rerun = {f"trial {t['number']}:" for t in before}
    assert not any(line.startswith(tuple(rerun)) for line in stdout.splitlines())


def test_a_trial_far_behind_a_no_larger_finished_trial_is_stopped_from_half_its_epochs():
    from edgepeft.api.context import StepState
    from edgepeft.search.objective import Hopeless, StopHopeless

    guard = StopHopeless(least_mb=0.05, finished=[_trial(0, 0.95, 0.04, 1.0), _trial(1, 0.99, 0.5, 1.0)])

    def epoch(n: int, acc: float, phase: str = "student") -> None:
        guard.edgepeft_after_epoch(StepState(phase, n, n * 10, None, epochs=10, val_score=acc))

    epoch(4, 0.50)  # before half its epochs: never
    epoch(5, 0.50, phase="teacher")  # only the student is judged
    epoch(5, 0.91)  # within the margin of trial 0; trial 1 is larger, so it does not count
    with pytest.raises(Hopeless, match=r"epoch 5/10: validation accuracy 89.00% while trial 0"):
        epoch(5, 0.89)


def test_trials_run_in_parallel_processes_on_one_study(tmp_path):
    proc = _search(str(_recipe(tmp_path, trials=2)), "--out", str(tmp_path / "out"), "--workers", "2", cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1] and all(t["state"] == "complete" for t in trials)
    assert len({t["run"] for t in trials}) == 2 and "trial 1:" in stdout


def test_trials_run_as_tasks_of_a_local_ray_instance_with_two_workers(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'edgepeft[ray]')")
    proc = _search(
        str(_recipe(tmp_path, trials=2)),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--ray",
        "local",
        cwd=tmp_path,
    )
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-2000:]
    trials = json.loads((tmp_path / "out" / "trials.json").read_text())["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1] and all(t["state"] == "complete" for t in trials)
