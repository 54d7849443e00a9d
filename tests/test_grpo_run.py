"""grpo.py end to end on the tiny model: the run folder, checkpoints, and exact resume."""

import itertools
import json
import os
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import grpo

FAST = ["--model", "tiny", "--preset", "cpu", "--task-types", "deduction,induction", "--max-new-tokens", "12",
        "--prompts", "2", "--group", "2", "--solve-samples", "2", "--lr", "1e-2"]


@pytest.fixture
def varied_rewards(monkeypatch):
    """The random tiny model never writes a well-formed answer, so every reward would be -1 and no
    group would carry a gradient. Reward by response length instead, to exercise the update."""
    monkeypatch.setattr(grpo, "solver_rewards",
                        lambda task_type, tasks, responses, train=True: [len(r) % 3 - 1.0 for r in responses])


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def weights(run, step):
    return load_file(os.path.join(run, "checkpoints", f"step_{step:06d}", "model.safetensors"))


def test_two_step_run_writes_metrics_tasks_and_a_loadable_checkpoint(tmp_path, varied_rewards):
    run = str(tmp_path / "run")
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--out", run]))
    metrics = read_jsonl(os.path.join(run, "metrics.jsonl"))
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("reward/proposer/deduction", "entropy/solver/induction", "response_len/solver/deduction",
                "valid_rate/deduction", "solve_rate_hist/induction", "zero_var_frac", "grad_norm",
                "truncated/mean", "seconds/generate", "seconds/execute", "seconds/update"):
        assert key in metrics[0], key
    assert metrics[0]["grad_norm"] > 0  # the varied solver rewards did reach the weights
    tasks = read_jsonl(os.path.join(run, "tasks.jsonl"))
    assert len(tasks) == 2 * 2 * 2 * 2 and {t["step"] for t in tasks} == {1, 2}  # steps x types x prompts x group
    assert all("valid" in t and "reason" in t and "solve_rate" in t for t in tasks)
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["prompts"] == 2
    folder = os.path.join(run, "checkpoints", "step_000002")
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert os.path.exists(os.path.join(folder, "trainer_state.pt"))


def test_resume_gives_the_same_weights_and_metrics(tmp_path, varied_rewards):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    grpo.train(grpo.get_args(FAST + ["--steps", "4", "--out", whole]))
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--out", split]))
    grpo.train(grpo.get_args(["--resume", "--out", split, "--steps", "4"]))
    a, b = weights(whole, 4), weights(split, 4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], weights(split, 2)[k]) for k in a)  # steps 3-4 did change the weights
    drop_times = lambda ms: [{k: v for k, v in m.items() if not k.startswith("seconds/")} for m in ms]  # noqa: E731
    assert drop_times(read_jsonl(os.path.join(whole, "metrics.jsonl"))) == \
        drop_times(read_jsonl(os.path.join(split, "metrics.jsonl")))
    assert read_jsonl(os.path.join(whole, "tasks.jsonl")) == read_jsonl(os.path.join(split, "tasks.jsonl"))


def test_frozen_proposer_gets_no_gradient(tmp_path, monkeypatch):
    # only proposer rows carry reward variance here, so a frozen proposer means no update at all
    counter = itertools.count()
    monkeypatch.setattr(grpo, "proposer_reward", lambda task, kind: float(next(counter) % 2))
    run = str(tmp_path / "frozen")
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run, "--freeze-proposer"]))
    assert read_jsonl(os.path.join(run, "metrics.jsonl"))[0]["grad_norm"] == 0.0
    run = str(tmp_path / "live")
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run]))
    assert read_jsonl(os.path.join(run, "metrics.jsonl"))[0]["grad_norm"] > 0.0


def test_bad_task_types_are_refused_with_one_line(capsys):
    with pytest.raises(SystemExit):
        grpo.get_args(["--task-types", "deduction,sorting"])
    assert "unknown ['sorting']" in capsys.readouterr().err


def test_solver_tasks_are_distinct_fresh_proposals_drawn_from_all_prompts_then_the_buffer():
    from proposer import Task, task_key
    fresh = [Task("deduction", f"def f(a):\n    return a + {k // 4}", [str(k % 2)], [""]) for k in range(40)]
    buffer = [Task("deduction", "def f(a):\n    return a", ["7"], ["7"])]
    chosen = grpo.solver_tasks(fresh, buffer, 8, random.Random(0))
    assert len({task_key(t) for t in chosen}) == 8 and all(t in fresh for t in chosen)
    assert max(fresh.index(t) for t in chosen) >= 8  # not just the first prompts' proposals
    few = grpo.solver_tasks(fresh[:4] * 3, buffer, 8, random.Random(0))  # 2 distinct tasks, repeated
    assert len({task_key(t) for t in few[:2]}) == 2 and few[2:] == buffer * 6


def test_the_preset_follows_the_model_unless_named():
    default = grpo.get_args([])
    assert default.model == "toy" and default.preset == "toy"
    assert (default.prompts, default.group, default.lr) == tuple(grpo.PRESETS["toy"][k] for k in ("prompts", "group", "lr"))
    assert grpo.get_args(["--model", "tiny"]).preset == ("gpu" if torch.cuda.is_available() else "cpu")
    named = grpo.get_args(["--preset", "cpu", "--lr", "3e-3"])  # a named preset, and a flag over it
    assert named.preset == "cpu" and named.prompts == grpo.PRESETS["cpu"]["prompts"] and named.lr == 3e-3


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-sum-norm"])
def test_micro_batching_gives_the_gradient_of_the_whole_batch(agg):
    from models import load_model
    gen = torch.Generator().manual_seed(0)
    rows = [grpo.Row(torch.randint(0, 250, (int(n),), generator=gen).tolist(),
                     torch.randint(0, 250, (int(m),), generator=gen).tolist(), "solver", "deduction", k // 2,
                     reward=float(k % 3))
            for k, (n, m) in enumerate(torch.randint(2, 9, (6, 2), generator=gen))]
    grads = []
    for micro in ("1", "6"):
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--micro-batch", micro, "--loss-agg", agg])
        model, _ = load_model("tiny")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the step changes nothing; keep the grads
        grpo.update(model, optimizer, rows, args)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
