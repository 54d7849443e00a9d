"""reproduce.py: bad arguments, the whole study on the tiny model (with stand-in runs, and for real
as a slow test), and resuming without redoing finished runs or evaluations."""

import json
import math
import os

import pytest
import torch

import findings
from conftest import assert_usage_and_one_error
import reproduce
from models import load_model
from runs import read_jsonl, save_checkpoint

SMALL = ["--model", "tiny", "--preset", "cpu", "--steps", "2", "--n", "2", "--tasks-per-type", "2",
         "--max-new-tokens", "8", "--quick", "--seeds", "1", "--sweep-lrs"]
REPORT_FILES = ["report.md", "numbers.json", "findings.json", "pass_at_k_toy_deduction.png",
                "pass_at_k_toy_abduction.png", "entropy.png", "entropy_frozen.png", "sparsity.jsonl",
                "sparsity_layers.png", "curriculum.png", "length_vs_difficulty.png"]
CACHES = ["heldout_eval.json", "sparsity.json", "probe.json"]

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
    (["--sweep-lrs", "0"], "argument --sweep-lrs: must be above 0"),
    (["--sweep-steps", "0"], "argument --sweep-steps: must be at least 1"),
    (["--sweep-seeds", "0"], "argument --sweep-seeds: must be at least 1"),
    (["--long-steps", "1"], "argument --long-steps: must be at least 2"),
    (["--long-steps", "20"], "--long-steps 20: not beyond the runs' 20 steps"),
    (["--matched-budget", "--methods", "rlvr", "sft"], "--matched-budget: needs azr and rlvr or sft"),
    (["--matched-budget", "--grpo-args=--prompts 3"], "not a whole number of RLVR prompts"),
    (["--only-preconditions", "--methods", "rlvr", "sft"], "--only-preconditions: (b) reads self-play runs"),
    (["--pool-seeds", "0"], "argument --pool-seeds: must be at least 1"),
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
        reproduce.train_all(args, [reproduce.training_job(args, m, s, f) for m, s, f in plan])
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


def test_a_dry_run_shows_the_sweep_and_the_long_runs(tmp_path, monkeypatch, capsys):
    """The sweep trains AZR, RLVR and SFT at each rate but the runs' own (1e-5 in the cpu preset),
    which their checkpoints give; the long runs continue AZR's and the frozen proposer's."""
    monkeypatch.chdir(tmp_path)
    argv = SMALL[:-1] + ["--sweep-lrs", "1e-3", "1e-5", "--sweep-steps", "10", "--steps", "10", "--long-steps", "30"]
    args = reproduce.get_args(argv + ["--out", "study"])
    assert [(rate, m, os.path.basename(f)) for rate, m, _, f, _ in reproduce.sweep_plan(args)] == [
        (1e-3, "azr", "azr-lr0.001-seed0"), (1e-3, "rlvr", "rlvr-lr0.001-seed0"), (1e-3, "sft", "sft-lr0.001-seed0"),
        (1e-5, "azr", "azr-seed0"), (1e-5, "rlvr", "rlvr-seed0"), (1e-5, "sft", "sft-seed0")]
    reproduce.main(argv + ["--out", "study", "--dry-run"])
    out = capsys.readouterr().out
    assert out.count("--lr 0.001 --steps 10 --out study/sweep/") == 3 and "--lr 1e-05" not in out
    commands = [line for line in out.splitlines() if "python grpo.py" in line]
    assert commands and all(line.count("--steps") == 1 for line in commands), "a run's steps given twice"
    assert "study/runs/azr-long-seed0 (30 steps): python grpo.py --resume --out study/runs/azr-long-seed0 --steps 30" in out
    assert "azr-frozen-long-seed0" in out and "azr-peaked-long" not in out
    assert os.listdir(tmp_path) == []


def test_more_sweep_seeds_than_runs_train_their_own_points_at_the_runs_rate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = SMALL[:-1] + ["--sweep-lrs", "1e-3", "--sweep-steps", "10", "--steps", "10", "--sweep-seeds", "2",
                         "--methods", "azr", "--out", "study"]
    plan = reproduce.sweep_plan(reproduce.get_args(argv))
    assert [(r.rate, os.path.basename(r.folder)) for r in plan] == [
        (1e-3, "azr-lr0.001-seed0"), (1e-3, "azr-lr0.001-seed1"), (1e-5, "azr-seed0"), (1e-5, "azr-lr1e-05-seed1")]
    reproduce.main(argv + ["--dry-run"])
    out = capsys.readouterr().out
    assert out.count("--lr 0.001 --steps 10") == 2 and out.count("--lr 1e-05 --steps 10 --out study/sweep/azr-lr1e-05-seed1") == 1
    assert os.listdir(tmp_path) == []


def test_budgets_and_the_matched_budget():
    """AZR trains 3 task types x (proposer + solver) of prompts x group; RLVR and SFT 2 types of the
    solver; matched, RLVR and SFT get AZR's solver sequences per step."""
    args = reproduce.get_args(["--model", "tiny", "--preset", "cpu", "--grpo-args=--prompts 4", "--matched-budget"])
    b = args.budgets
    assert b["azr"] == {"task_types": 3, "proposer": 24, "solver": 24, "samples": 96}
    assert b["azr-frozen"]["proposer"] == 0 and b["azr-frozen"]["solver"] == 24
    assert b["rlvr"] == b["sft"] == {"task_types": 2, "proposer": 0, "solver": 16, "samples": 0}
    assert args.matched_prompts == 6 and b["rlvr-matched"]["solver"] == b["sft-matched"]["solver"] == 24
    assert args.methods[-2:] == ["rlvr-matched", "sft-matched"]
    assert reproduce.train_argv(args, "rlvr-matched", 0)[-2:] == ["--prompts", "6"]


# -----------------------------------------------------------------------------
# The study with stand-in runs: a folder as grpo.py writes it, a tiny checkpoint nudged in a
# share of its entries that depends on the method, so that every analysis has something to read


SHARE = {"rlvr": 10, "azr": 3, "azr-peaked": 3, "azr-frozen": 3, "sft": 1}  # every k-th entry changed


def stand_in(calls):
    def run(argv, threads=None):
        calls.append(argv)
        out, steps = argv[argv.index("--out") + 1], int(argv[argv.index("--steps") + 1])
        method = os.path.basename(out).rsplit("-seed", 1)[0].split("-lr")[0].removesuffix("-long").removesuffix("-matched")
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
                                        "program": f"def f(a):\n    return a {'+' if step == 1 else '*'} {k}",
                                        "inputs": ["3"], "outputs": [str(3 + k if step == 1 else 3 * k)], "message": "",
                                        "solver_response_len": 40 - 30 * rate}) + "\n")
        model, tokenizer = load_model("tiny")
        with torch.no_grad():
            for p in model.parameters():
                p.view(-1)[::SHARE.get(method, 10)] += 0.05  # the preconditions' pools: RLVR
        optimizer = torch.optim.AdamW(model.parameters())
        save_checkpoint(out, steps, model, tokenizer, optimizer, {"triplet": [], "induction": []})
        return 0
    return run


def fake_judge(model, tokenizer, task_type, tasks, temperature, n, max_new_tokens, template="chat"):
    """A judge for the stand-ins' tasks: the first step's (a + k) are easy, the later (a * k) hard."""
    return [0.8 if "+" in g.task.program else 0.2 for g in tasks]


def mtimes(study):
    runs = os.path.join(study, "runs")
    return {(r, c): os.stat(os.path.join(runs, r, c)).st_mtime_ns for r in os.listdir(runs) for c in CACHES
            if os.path.exists(os.path.join(runs, r, c))}


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """(the study's folder, the list of grpo.py flags each stand-in run was given): training by
    stand_in, the judges by fake_judge, a few probes (the same code, less time)."""
    calls = []
    monkeypatch.setattr(reproduce, "run_training", stand_in(calls))
    monkeypatch.setattr(reproduce, "solved", fake_judge)
    monkeypatch.setattr(reproduce, "PROBES_PER_TYPE", 2)
    return str(tmp_path / "study"), calls


def test_the_study_writes_its_report_and_a_second_run_redoes_nothing(stand_ins):
    study, calls = stand_ins
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
    assert "| finding | verdict | the study | criterion | numbers |" in text and "survive bf16 rounding" in text
    assert "under fixed judges" in text and "## Budgets" in text and "Probe entropy over the checkpoints" in text
    assert "### With the entropy windows' medians" in text and "median" in str(numbers["methods"]["azr"]["entropy"][0])
    assert "### Criteria fixed before this study" in text and "`2598c62`: finding 5" in text
    judged = numbers["methods"]["azr"]["curriculum"][0]
    assert judged["judge_base"] == judged["judge_final"] == [pytest.approx(0.8), None, pytest.approx(0.2), None]  # quarters 1, 3
    assert set(numbers["methods"]["azr"]["probe"][0]) == {"0", "2"}
    assert all(f"({name})" in text for name in REPORT_FILES if name.endswith(".png"))
    assert all(r["verdict"] in findings.VERDICTS for r in records)
    # each run's plain files beside the report: the verdicts' inputs, readable without checkpoints
    kept = os.path.join(report, "runs", "azr-seed0")
    assert read_jsonl(os.path.join(kept, "tasks.jsonl.gz")) == read_jsonl(os.path.join(study, "runs", "azr-seed0", "tasks.jsonl"))
    assert read_jsonl(os.path.join(kept, "metrics.jsonl.gz")) == read_jsonl(os.path.join(study, "runs", "azr-seed0", "metrics.jsonl"))
    assert sorted(os.listdir(os.path.join(report, "runs"))) == sorted(["base"] + [f"{m}-seed0" for m in reproduce.RUNS])
    # the base's evaluation counts too: its pass@k in numbers.json recomputes from them
    with open(os.path.join(report, "runs", "base", "heldout_eval.json")) as f:
        base = json.load(f)["results"]
    n = numbers["n"]
    for bench, result in base.items():
        by_hand = {str(k): sum(1 - math.comb(n - c, k) / math.comb(n, k) for c in result["counts"]) / len(result["counts"])
                   for k in range(1, n + 1)}
        assert numbers["methods"]["base"]["pass_at_k"][0][bench] == pytest.approx(by_hand)
    assert os.path.isfile(os.path.join(report, "runs", "base", "probes.json"))
    assert {"heldout_eval.json", "sparsity.json", "config.json", "probe.json", "judges.json"} <= set(os.listdir(kept))

    before = mtimes(study)
    assert len(before) == 3 * 5 + 1  # the caches of every run, the held-out one for the base
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


def test_the_sweep_the_long_runs_and_the_matched_budget_reach_the_report(stand_ins):
    study, calls = stand_ins
    argv = SMALL[:-1] + ["--sweep-lrs", "1e-3", "--sweep-steps", "2", "--long-steps", "3", "--matched-budget",
                         "--methods", "azr", "azr-frozen", "rlvr", "sft", "--out", study]
    records = reproduce.main(argv)
    trained = sorted(os.path.basename(a[a.index("--out") + 1]) for a in calls)
    assert trained == sorted(["azr-seed0", "azr-frozen-seed0", "rlvr-seed0", "sft-seed0", "rlvr-matched-seed0",
                              "sft-matched-seed0", "azr-lr0.001-seed0", "rlvr-lr0.001-seed0", "sft-lr0.001-seed0",
                              "azr-long-seed0", "azr-frozen-long-seed0"])
    long = os.path.join(study, "runs", "azr-long-seed0")
    assert [a for a in calls if long in a] == [["--resume", "--out", long, "--steps", "3"]]
    with open(os.path.join(long, "config.json")) as f:
        assert json.load(f)["out"] == long  # the copy resumes into its own folder
    with open(os.path.join(study, "report", "numbers.json")) as f:
        numbers = json.load(f)
    # finding 4 at the sweep's rate (RLVR every 10th entry changed, AZR every 3rd, SFT all): reproduced
    assert records[6]["finding"].endswith("(lr 0.001, 2 steps)") and records[6]["verdict"] == "reproduced"
    assert set(numbers["sweep"]["rates"]["0.001"]) == {"azr", "rlvr", "sft"}
    assert "azr-long" in numbers["methods"] and "the long runs" in records[1]["criterion"]
    with open(os.path.join(study, "report", "findings_matched_budget.json")) as f:
        assert len(json.load(f)) == 6
    text = open(os.path.join(study, "report", "report.md")).read()
    assert "### With matched budgets" in text and "Sparsity against the learning rate" in text
    assert "sparsity_sweep.png" in text and os.path.isfile(os.path.join(study, "report", "sparsity_sweep.png"))
    assert "entropy_long.png" in text and os.path.isfile(os.path.join(study, "report", "entropy_long.png"))
    assert os.path.isdir(os.path.join(study, "report", "runs", "azr-lr0.001-seed0"))


PROPOSED = [{"type": "deduction", "program": "def f(a):\n    return a + 1", "inputs": ["1"], "outputs": ["2"],
             "message": "", "valid": True}]


def last_value(argv, flag):
    """The value of the last `flag` in argv, the one argparse keeps."""
    return argv[len(argv) - argv[::-1].index(flag)]


def test_only_the_preconditions_train_rlvr_on_each_pool_and_the_self_play_runs(stand_ins, monkeypatch):
    study, calls = stand_ins
    monkeypatch.setattr(reproduce, "proposed_pool", lambda model, tokenizer, settings: PROPOSED)
    numbers = reproduce.main(SMALL + ["--only-preconditions", "--out", study])
    trained = {os.path.basename(last_value(a, "--out")): a for a in calls}
    assert sorted(trained) == ["azr-frozen-seed0", "azr-peaked-seed0", "azr-seed0", "easiest-seed0", "hardest-seed0",
                               "proposed-seed0"]  # no RLVR or SFT run of the study, no sweep
    for pool in reproduce.POOLS:
        argv = trained[f"{pool}-seed0"]
        assert last_value(argv, "--method") == "rlvr"
        assert read_jsonl(last_value(argv, "--data")) == (PROPOSED if pool == "proposed" else
                                                          reproduce.depth_pool(reproduce.POOL_DEPTHS[pool]))
    assert set(numbers["pools"]) == set(reproduce.POOLS) and numbers["pools"]["proposed"]["tasks"] == 1
    assert [r["method"] for r in numbers["runs"]] == ["azr", "azr-peaked", "azr-frozen"]
    assert numbers["runs"][0]["move"] == 0  # the stand-in's tasks: a + k, then a * k, of one AST size
    report = os.path.join(study, "report")
    with open(os.path.join(report, "preconditions.json")) as f:
        assert json.load(f) == json.loads(json.dumps(numbers))
    assert "With one seed no spread is measured" in open(os.path.join(report, "preconditions.md")).read()
    assert os.path.getsize(os.path.join(report, "preconditions.png")) > 0
    assert os.path.isfile(os.path.join(report, "runs", "hardest-seed0", "heldout_eval.json"))
    calls.clear()
    assert reproduce.main(SMALL + ["--only-preconditions", "--out", study]) == numbers and calls == []


def test_the_preconditions_join_the_studys_report(stand_ins, monkeypatch):
    study, calls = stand_ins
    monkeypatch.setattr(reproduce, "proposed_pool", lambda model, tokenizer, settings: PROPOSED)
    reproduce.main(SMALL + ["--preconditions", "--pool-seeds", "2", "--methods", "azr", "azr-frozen", "rlvr",
                            "--long-steps", "3", "--out", study])
    trained = sorted(os.path.basename(last_value(a, "--out")) for a in calls)
    assert trained == sorted(["azr-seed0", "azr-frozen-seed0", "rlvr-seed0", "azr-long-seed0", "azr-frozen-long-seed0"]
                             + [f"{p}-seed{s}" for p in reproduce.POOLS for s in (0, 1)])
    with open(os.path.join(study, "report", "numbers.json")) as f:
        numbers = json.load(f)
    assert set(numbers["preconditions"]["pools"]) == set(reproduce.POOLS)
    # (b) over the study's runs and over the long runs, each held against the frozen proposer's of its length
    assert [r["method"] for r in numbers["preconditions"]["runs"]] == ["azr", "azr-frozen", "azr-long", "azr-frozen-long"]
    assert set(numbers["preconditions"]["reach"]["learned"]) <= {"azr", "azr-long"}
    text = open(os.path.join(study, "report", "report.md")).read()
    assert "## Can the proposer's tasks matter? (preconditions)" in text and "(preconditions.png)" in text


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


def test_entropy_windows_give_means_and_medians_by_hand(tmp_path):
    """Twelve steps, windows of three: a spike at step 2 of the solver's deduction curve moves the
    first window's mean and the mean over all steps, not their medians."""
    solver = {"deduction": [0.2, 0.9, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
              "abduction": [0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2]}
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for step in range(12):
            f.write(json.dumps({"step": step + 1, **{f"entropy/solver/{t}": v[step] for t, v in solver.items()}}) + "\n")
    got = reproduce.entropy_numbers(str(tmp_path))["solver"]
    assert got["first"] == pytest.approx(((0.2 + 0.9 + 0.2) / 3 + 0.4) / 2)
    assert got["first_median"] == pytest.approx((0.2 + 0.4) / 2)
    assert got["last"] == got["last_median"] == pytest.approx((0.1 + 0.2) / 2)
    assert got["mean"] == pytest.approx((sum(solver["deduction"]) / 12 + sum(solver["abduction"]) / 12) / 2)
    assert got["median"] == pytest.approx((0.1 + 0.3) / 2)
