"""reproduce.py: bad arguments, the whole study on the tiny model (with stand-in runs, and for real
as a slow test), and resuming without redoing finished runs or evaluations."""

import json
import os

import pytest
import torch

import findings
from conftest import assert_usage_and_one_error
import reproduce
from models import load_model
from runs import read_jsonl, save_checkpoint

SMALL = ["--model", "tiny", "--preset", "cpu", "--steps", "2", "--n", "2", "--tasks-per-type", "2",
         "--max-new-tokens", "8", "--quick"]
REPORT_FILES = ["report.md", "numbers.json", "findings.json", "pass_at_k_toy_deduction.png",
                "pass_at_k_toy_abduction.png", "entropy.png", "entropy_frozen.png", "sparsity.jsonl",
                "sparsity_layers.png", "curriculum.png", "length_vs_difficulty.png"]
CACHES = ["heldout_eval.json", "sparsity.json"]

# -----------------------------------------------------------------------------
# bad arguments: one line, exit status 2, nothing written

BAD_ARGUMENTS = [
    (["--n", "0"], "argument --n: must be at least 1"),
    (["--seeds", "0"], "argument --seeds: must be at least 1"),
    (["--steps", "-1"], "argument --steps: must be at least 1"),
    (["--tasks-per-type", "100000"], "argument --tasks-per-type: must be at most 150"),
    (["--max-new-tokens", "0"], "argument --max-new-tokens: must be at least 1"),
    (["--tol=-1e-5"], "argument --tol: must be at least 0"),
    (["--model", "./nope"], "no such folder"),
    (["--methods", "ppo"], "invalid choice"),
    (["--benchmarks", "mmlu"], "invalid choice"),
    (["--grpo-args=--lr -1"], "argument --lr: must be above 0"),
    (["--grpo-args=--no-such-flag"], "unrecognized arguments"),
    (["--grpo-args=--task-types induction"], "trains on triplets"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_in_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["--model", "tiny"] + argv + ["--out", "study"])
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "reproduce.py", message)
    assert os.listdir(tmp_path) == []


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "study").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(SMALL + ["--out", str(tmp_path / "study")])
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "reproduce.py", "a file, not a folder")


def test_jobs_train_runs_in_parallel_with_the_threads_divided(tmp_path, monkeypatch):
    """--jobs 2: two runs at once (each waits at a barrier the other must reach), each process given
    half the CPU's threads; a failed run stops the study only after the others have ended."""
    import threading
    args = reproduce.get_args(SMALL + ["--jobs", "2", "--out", str(tmp_path / "study")])
    plan = [(m, 0, str(tmp_path / f"{m}-seed0")) for m in ("azr", "rlvr", "sft", "azr-peaked")]
    barrier, seen, lock = threading.Barrier(2, timeout=20), [], threading.Lock()
    finish = stand_in([])

    def run(argv, threads=None):
        barrier.wait()  # both jobs of a pair run at the same time, else this times out
        with lock:  # the stand-in's model loading is not thread-safe (real runs are processes)
            seen.append(threads)
            finish(argv)
        return 1 if "rlvr-seed0" in argv[argv.index("--out") + 1] else 0

    monkeypatch.setattr(reproduce, "run_training", run)
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 8)
    with pytest.raises(SystemExit) as exit_:
        reproduce.train_all(args, plan)
    assert "rlvr-seed0 (exit status 1)" in str(exit_.value.code) and "azr-seed0" not in str(exit_.value.code)
    assert seen == [4, 4, 4, 4]  # every run trained (the failure did not cancel the others), on 8 // 2 threads


def test_a_dry_run_prints_the_plan_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reproduce, "run_training", lambda argv: pytest.fail("a dry run trained"))
    assert reproduce.main(SMALL + ["--seeds", "2", "--out", "study", "--dry-run"]) is None
    out = capsys.readouterr().out
    assert out.count("python grpo.py") == 10 and "--proposer-reward peaked" in out and "--freeze-proposer" in out
    assert "--method rlvr --data toy" in out and "--seed 1" in out
    assert os.listdir(tmp_path) == []


# -----------------------------------------------------------------------------
# The study with stand-in runs: a folder as grpo.py writes it, a tiny checkpoint nudged in a
# share of its entries that depends on the method, so that every analysis has something to read


SHARE = {"rlvr": 10, "azr": 3, "azr-peaked": 3, "azr-frozen": 3, "sft": 1}  # every k-th entry changed


def stand_in(calls):
    def run(argv, threads=None):
        calls.append(argv)
        out, steps = argv[argv.index("--out") + 1], int(argv[argv.index("--steps") + 1])
        method = os.path.basename(out).rsplit("-seed", 1)[0]
        os.makedirs(out, exist_ok=True)
        if "--resume" not in argv:
            with open(os.path.join(out, "config.json"), "w") as f:
                json.dump({"argv": argv}, f)
        with open(os.path.join(out, "metrics.jsonl"), "w") as f:
            for step in range(1, steps + 1):  # both roles lose entropy, the proposer above the solver
                roles = ("proposer", "solver") if method.startswith("azr") else ("solver",)
                f.write(json.dumps({"step": step, **{f"entropy/{role}/{t}": 3.0 - step * 0.5 - (role == "solver")
                                                     for role in roles for t in ("deduction", "abduction")}}) + "\n")
        with open(os.path.join(out, "tasks.jsonl"), "w") as f:
            for step in range(1, steps + 1) if method.startswith("azr") else ():
                for k, rate in enumerate((1.0, 0.75, 0.5) if step == 1 else (0.5, 0.25, 0.0)):  # harder tasks later
                    f.write(json.dumps({"type": "deduction", "step": step, "valid": True, "solve_rate": rate,
                                        "program": f"def f(a):\n    return a + {k}",
                                        "solver_response_len": 40 - 30 * rate}) + "\n")
        model, tokenizer = load_model("tiny")
        with torch.no_grad():
            for p in model.parameters():
                p.view(-1)[::SHARE[method]] += 0.05
        optimizer = torch.optim.AdamW(model.parameters())
        save_checkpoint(out, steps, model, tokenizer, optimizer, {"triplet": [], "induction": []})
        return 0
    return run


def mtimes(study):
    runs = os.path.join(study, "runs")
    return {(r, c): os.stat(os.path.join(runs, r, c)).st_mtime_ns for r in os.listdir(runs) for c in CACHES
            if os.path.exists(os.path.join(runs, r, c))}


def test_the_study_writes_its_report_and_a_second_run_redoes_nothing(tmp_path, monkeypatch):
    study = str(tmp_path / "study")
    calls = []
    monkeypatch.setattr(reproduce, "run_training", stand_in(calls))
    records = reproduce.main(SMALL + ["--out", study])
    assert len(calls) == 5 and all("--resume" not in argv for argv in calls)
    report = os.path.join(study, "report")
    for name in REPORT_FILES:
        assert os.path.getsize(os.path.join(report, name)) > 0, name
    with open(os.path.join(report, "numbers.json")) as f:
        numbers = json.load(f)
    with open(os.path.join(report, "findings.json")) as f:
        assert json.load(f) == findings.all_findings(numbers) == records
    # what the stand-ins planted reaches the verdicts: entropy falls with the proposer above, RLVR
    # changed every 10th entry, AZR every 3rd, SFT all; the tasks got harder, the hard ones longer
    assert records[1]["verdict"] == records[3]["verdict"] == records[5]["verdict"] == "reproduced"
    assert numbers["methods"]["rlvr"]["sparsity"][0]["bf16_exact"] > numbers["methods"]["azr"]["sparsity"][0]["bf16_exact"]
    assert set(numbers["methods"]) == {"base", *reproduce.RUNS}
    assert len(numbers["methods"]["base"]["pass_at_k"][0]["toy deduction"]) == 2  # k = 1..n
    text = open(os.path.join(report, "report.md")).read()
    assert "| finding | verdict | criterion | numbers |" in text and "survive bf16 rounding" in text
    assert all(f"({name})" in text for name in REPORT_FILES if name.endswith(".png"))
    assert all(r["verdict"] in findings.VERDICTS for r in records)
    # each run's plain files beside the report: the verdicts' inputs, readable without checkpoints
    kept = os.path.join(report, "runs", "azr-seed0")
    assert read_jsonl(os.path.join(kept, "tasks.jsonl.gz")) == read_jsonl(os.path.join(study, "runs", "azr-seed0", "tasks.jsonl"))
    assert read_jsonl(os.path.join(kept, "metrics.jsonl.gz")) == read_jsonl(os.path.join(study, "runs", "azr-seed0", "metrics.jsonl"))
    assert sorted(os.listdir(os.path.join(report, "runs"))) == sorted(f"{m}-seed0" for m in reproduce.RUNS)
    assert {"heldout_eval.json", "sparsity.json", "config.json"} <= set(os.listdir(kept))

    before = mtimes(study)
    assert len(before) == 2 * 5 + 1  # both caches for every run, the held-out one for the base
    calls.clear()
    reproduce.main(SMALL + ["--out", study])
    assert calls == [] and mtimes(study) == before  # no training, no evaluation again

    # a run stopped before its final checkpoint is resumed, and only its evaluation is redone
    folder = os.path.join(study, "runs", "sft-seed0")
    os.rename(os.path.join(folder, "checkpoints", "step_000002"), os.path.join(folder, "checkpoints", "step_000001"))
    reproduce.main(SMALL + ["--out", study])
    assert calls == [["--resume", "--out", folder, "--steps", "2"]]
    after = mtimes(study)
    assert {key for key in before if after[key] != before[key]} == {("sft-seed0", c) for c in CACHES}


@pytest.mark.slow
def test_the_whole_study_on_the_tiny_model(tmp_path):
    # real grpo.py runs, one step each (about two minutes on 2 cores)
    study = str(tmp_path / "study")
    records = reproduce.main(SMALL[:4] + ["--steps", "1"] + SMALL[6:] + ["--out", study])
    for name in REPORT_FILES:
        assert os.path.getsize(os.path.join(study, "report", name)) > 0, name
    assert len(records) == 6 and all(r["verdict"] in findings.VERDICTS for r in records)
    for method in reproduce.RUNS:
        assert os.path.isdir(os.path.join(study, "runs", f"{method}-seed0", "checkpoints", "step_000001"))
