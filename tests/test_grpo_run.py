"""grpo.py end to end on the tiny model: the run folder, checkpoints, and exact resume."""

import collections
import itertools
import json
import os
import pathlib
import random
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import grpo
import rollout
import selfplay
from conftest import assert_usage_and_one_error, run_child
from models import load_model

FAST = ["--model", "tiny", "--preset", "cpu", "--task-types", "deduction,induction", "--max-new-tokens", "12",
        "--prompts", "2", "--group", "2", "--solve-samples", "2", "--lr", "1e-2"]


@pytest.fixture
def varied_rewards(monkeypatch):
    """The random tiny model never writes a well-formed answer, so every reward would be -1 and no
    group would carry a gradient. Reward by response length instead, to exercise the update."""
    def by_length(task_type, tasks, responses, evaluation=False, rule="released"):
        return [len(r) % 3 - 1.0 for r in responses]

    monkeypatch.setattr(selfplay, "solver_rewards", by_length)  # the solve rates
    monkeypatch.setattr(rollout, "solver_rewards", by_length)   # the solver's training rewards


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
                "valid_rate/deduction", "solve_rate_hist/induction", "zero_var_frac", "grad_norm", "clip_frac",
                "clip_frac_low", "clip_frac_high", "ratio_mean",
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
    # the optimizer state stays in the newest checkpoint only, the one --resume reads
    assert trainer_state(split, 2) == {"step": 2} and set(trainer_state(split, 4)) == {"step", "optimizer"}


def test_the_gradients_are_freed_right_after_the_optimizer_step():
    """After the update no parameter holds a gradient: it would sit in memory through the next
    step's rollouts. The step itself did see them (its norm is logged)."""
    model, tokenizer = load_model("tiny")
    args = grpo.get_args(FAST + ["--mini-batches", "2"])
    rows = [rollout.Row([1, 2, 3], [4, 5, k], "solver", "deduction", k, reward=float(k % 2)) for k in range(6)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _, stats = grpo.update(model, optimizer, rows, args)
    assert stats["grad_norm"] > 0 and all(p.grad is None for p in model.parameters())


def trainer_state(run, step):
    return torch.load(os.path.join(run, "checkpoints", f"step_{step:06d}", "trainer_state.pt"), weights_only=True)


def test_only_the_newest_checkpoint_keeps_the_optimizer_state(tmp_path):
    """Every checkpoint keeps its weights and buffers; the AdamW state (twice the weights) stays in the
    newest alone, each older one's trainer_state.pt cut to its step when the next is written."""
    run = str(tmp_path / "run")
    grpo.train(grpo.get_args(FAST + ["--steps", "3", "--save-every", "1", "--out", run]))
    assert [trainer_state(run, k) for k in (1, 2)] == [{"step": 1}, {"step": 2}]
    newest = trainer_state(run, 3)
    assert newest["step"] == 3 and len(newest["optimizer"]["state"]) > 0
    for step in (1, 2, 3):
        folder = os.path.join(run, "checkpoints", f"step_{step:06d}")
        assert os.path.isfile(os.path.join(folder, "model.safetensors"))
        assert any(name.startswith("buffer_") for name in os.listdir(folder))


def test_a_copied_run_resumes_into_its_own_folder(tmp_path, varied_rewards):
    """A run folder copied elsewhere (reproduce.py's long runs start so) resumes there: the original
    is left as it was, the copy gets the new steps."""
    import shutil
    run, copy = str(tmp_path / "run"), str(tmp_path / "copy")
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run]))
    shutil.copytree(run, copy)
    grpo.train(grpo.get_args(["--resume", "--out", copy, "--steps", "2"]))
    assert [m["step"] for m in read_jsonl(os.path.join(copy, "metrics.jsonl"))] == [1, 2]
    assert [m["step"] for m in read_jsonl(os.path.join(run, "metrics.jsonl"))] == [1]
    assert os.path.isdir(os.path.join(copy, "checkpoints", "step_000002"))
    assert not os.path.exists(os.path.join(run, "checkpoints", "step_000002"))


def test_a_run_saved_before_a_flag_existed_resumes_with_its_default(tmp_path, varied_rewards):
    """A config.json written before --format and --weight-decay existed: the resumed run takes
    their defaults, and the split run of an old buffer_triplet.jsonl starts both triplet buffers."""
    run = str(tmp_path / "old")
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run]))
    path = os.path.join(run, "config.json")
    with open(path) as f:
        config = json.load(f)
    del config["format"], config["weight_decay"]
    with open(path, "w") as f:
        json.dump(config, f)
    checkpoint = os.path.join(run, "checkpoints", "step_000001")
    os.rename(os.path.join(checkpoint, "buffer_deduction.jsonl"), os.path.join(checkpoint, "buffer_triplet.jsonl"))
    os.remove(os.path.join(checkpoint, "buffer_abduction.jsonl"))
    grpo.train(grpo.get_args(["--resume", "--out", run, "--steps", "2"]))
    assert [m["step"] for m in read_jsonl(os.path.join(run, "metrics.jsonl"))] == [1, 2]
    saved = os.path.join(run, "checkpoints", "step_000002")
    assert read_jsonl(os.path.join(saved, "buffer_abduction.jsonl"))[:1] == \
        read_jsonl(os.path.join(checkpoint, "buffer_triplet.jsonl"))[:1]


def test_frozen_proposer_gets_no_gradient(tmp_path, monkeypatch):
    # only proposer rows carry reward variance here, so a frozen proposer means no update at all
    counter = itertools.count()
    monkeypatch.setattr(selfplay, "proposer_reward", lambda task, kind, levels: float(next(counter) % 2))
    run = str(tmp_path / "frozen")  # no entropy bonus: the solver rows' zero advantages then move nothing
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run, "--freeze-proposer", "--entropy-coef", "0"]))
    assert read_jsonl(os.path.join(run, "metrics.jsonl"))[0]["grad_norm"] == 0.0
    run = str(tmp_path / "live")
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--out", run, "--entropy-coef", "0"]))
    assert read_jsonl(os.path.join(run, "metrics.jsonl"))[0]["grad_norm"] > 0.0


def test_bad_task_types_are_refused_with_one_line(capsys):
    with pytest.raises(SystemExit):
        grpo.get_args(["--task-types", "deduction,sorting"])
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "unknown ['sorting']")


def test_solver_tasks_are_the_previous_steps_proposals_topped_up_from_the_whole_buffer():
    """AZR's max_new draw (window 1): the tasks added at the previous step first, without
    replacement, then uniformly from the whole buffer."""
    from proposer import Task
    buffer = [Task("deduction", f"def f(a):\n    return a + {k}", ["1"], [str(1 + k)], step=k // 10) for k in range(60)]
    rng = random.Random(0)
    chosen = selfplay.solver_tasks(buffer, 6, 8, rng)  # step 5's ten tasks are the new ones at step 6
    assert all(t.step == 5 for t in chosen) and len({id(t) for t in chosen}) == 8
    chosen = selfplay.solver_tasks(buffer, 6, 30, rng)
    assert {id(t) for t in chosen[:10]} == {id(t) for t in buffer[50:]} and len({id(t) for t in chosen[10:]}) == 20
    assert {id(t) for t in selfplay.solver_tasks(buffer[:10], 1, 10, rng)} == {id(t) for t in buffer[:10]}  # seeds: new at step 1
    counts = collections.Counter()
    for _ in range(3000):  # the top-up is uniform over the whole buffer: 20 of 60 drawn, p = 1/3
        counts.update(id(t) for t in selfplay.solver_tasks(buffer, 100, 20, rng))
    assert len(counts) == 60 and all(abs(c - 1000) < 5 * 26 for c in counts.values())
    few = selfplay.solver_tasks(buffer[:2], 1, 5, rng)  # a buffer smaller than the batch: drawn with replacement
    assert len(few) == 5 and set(map(id, few)) == set(map(id, buffer[:2]))


def test_a_steps_prompts_come_from_the_buffers_as_they_stood_at_its_start(monkeypatch):
    """Each task type's proposals join its own buffer at the end of the step: the step's solver and
    the induction proposer see them from the next step on, as AZR's released trainer does."""
    import proposer
    from models import load_model
    model, tokenizer = load_model("tiny")
    counter = itertools.count()

    def fake_make_tasks(task_type, responses, step, buffer, programs=None, num_inputs=None, dedupe=False, rule="released"):
        if task_type == "induction":
            return [proposer.Task(task_type, programs[j], ["1", "2"], ["1", "2"], message="m", step=step)
                    for j in range(len(responses))]
        return [proposer.Task(task_type, f"def f(a):\n    return a + {next(counter)}", ["1"], ["2"], step=step)
                for _ in responses]

    calls = []
    real_rollout = rollout.rollout

    def recording_rollout(model, tokenizer, asks, n, args, seed, first_prompt=0):
        calls.append(asks)
        return real_rollout(model, tokenizer, asks, n, args, seed, first_prompt)

    monkeypatch.setattr(selfplay, "make_tasks", fake_make_tasks)
    monkeypatch.setattr(selfplay, "rollout", recording_rollout)
    monkeypatch.setattr(rollout, "rollout", recording_rollout)  # the solve rates' (rollout.solver_rollout)
    args = grpo.get_args(FAST + ["--task-types", "deduction,abduction,induction"])
    buffers, earlier = proposer.new_buffers(), {}
    for step in (1, 2):
        calls.clear()
        _, records, _ = selfplay.self_play(step, model, tokenizer, buffers, args)
        # two decodes a step: the proposals with the solver's answers, then the solve rates
        assert len(calls) == 2 and {role for _, role, _ in calls[1]} == {"solver"}
        assert [(role, t) for _, role, t in calls[0]] == [(role, t) for role in ("proposer", "solver")
                                                          for t in args.task_types for _ in range(args.prompts)]
        proposed = {t: [r["program"] for r in records if r["type"] == t] for t in ("deduction", "abduction")}
        solver_texts = {t: "".join(x for x, role, u in calls[0] if role == "solver" and u == t) for t in args.task_types}
        induction_texts = "".join(x for x, role, u in calls[0] if role == "proposer" and u == "induction")
        for t in ("deduction", "abduction"):
            assert not any(p in solver_texts[t] or p in induction_texts for p in proposed[t])  # not this step
            assert all(p in [b.program for b in buffers[t]] for p in proposed[t])            # joined at its end
            other = "abduction" if t == "deduction" else "deduction"
            assert not any(p in [b.program for b in buffers[other]] for p in proposed[t])    # its own buffer only
        if step == 2:  # the solver's tasks are now step 1's proposals (4 of them, 2 drawn)
            assert sum(p in solver_texts["deduction"] for p in earlier["deduction"]) == args.prompts
        earlier = proposed


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
    rows = [rollout.Row(torch.randint(0, 250, (int(n),), generator=gen).tolist(),
                     torch.randint(0, 250, (int(m),), generator=gen).tolist(), "solver", "deduction", k // 2,
                     reward=float(k % 3))
            for k, (n, m) in enumerate(torch.randint(2, 9, (6, 2), generator=gen))]
    grads = []
    for micro in ("1", "6"):
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--micro-batch", micro, "--loss-agg", agg])
        model, _ = load_model("tiny")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the step changes nothing
        optimizer.register_step_pre_hook(lambda *_: grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))  # freed after the step
        grpo.update(model, optimizer, rows, args)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


# -----------------------------------------------------------------------------
# resume: it continues, it does not start over


def test_resume_keeps_finished_lines_byte_for_byte_and_loads_the_checkpoint(tmp_path, varied_rewards):
    """A rerun from scratch is deterministic on CPU, so equal metrics cannot tell a resume from a
    restart. Two things can: the kept lines' timings (a restart rewrites them), and a perturbation
    planted in the checkpoint's weights (a restart from the base model never sees it)."""
    from safetensors.torch import save_file
    run = str(tmp_path / "run")
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--save-every", "1", "--out", run]))
    with open(os.path.join(run, "metrics.jsonl"), "rb") as f:
        before = f.read()
    path = os.path.join(run, "checkpoints", "step_000002", "model.safetensors")
    planted = load_file(path)
    name = next(k for k in planted if k.endswith("mlp.down_proj.weight"))
    planted[name] = planted[name] + 0.5
    save_file(planted, path, metadata={"format": "pt"})
    grpo.train(grpo.get_args(["--resume", "--out", run, "--steps", "3"]))
    with open(os.path.join(run, "metrics.jsonl"), "rb") as f:
        after = f.read()
    assert after.startswith(before) and after.count(b"\n") == 3
    # the update moves weights by about lr x steps = 1e-2: the planted 0.5 survives a resume only
    assert (weights(run, 3)[name] - weights(run, 2)[name]).abs().max() < 0.1


def test_a_run_killed_mid_step_resumes_to_the_same_result(tmp_path):
    """SIGKILL during step 3 of 4 (after step 2's checkpoint), then --resume: the final weights and
    the metrics (timings aside) equal those of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    flags = FAST + ["--steps", "4", "--save-every", "1", "--entropy-coef", "0.5"]
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run_child([sys.executable, "grpo.py", *flags, "--out", whole], cwd=root, env=env)
    proc = subprocess.Popen([sys.executable, "grpo.py", *flags, "--out", killed], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not os.path.isdir(os.path.join(killed, "checkpoints", "step_000002")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.isdir(os.path.join(killed, "checkpoints", "step_000004")), "killed too late"
    run_child([sys.executable, "grpo.py", "--resume", "--out", killed, "--steps", "4"], cwd=root, env=env)
    a, b = weights(whole, 4), weights(killed, 4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop_times = lambda ms: [{k: v for k, v in m.items() if not k.startswith("seconds/")} for m in ms]  # noqa: E731
    assert drop_times(read_jsonl(os.path.join(whole, "metrics.jsonl"))) == \
        drop_times(read_jsonl(os.path.join(killed, "metrics.jsonl")))
    assert read_jsonl(os.path.join(whole, "tasks.jsonl")) == read_jsonl(os.path.join(killed, "tasks.jsonl"))


# -----------------------------------------------------------------------------
# mixed precision, the logged entropy, seeding


def test_bf16_autocast_trains_every_linear_and_later_mini_batches_see_the_new_weights(tmp_path, varied_rewards,
                                                                                       monkeypatch):
    """With --amp on the CPU (bf16 autocast): after a step's sampling and update every Linear weight
    has a gradient, and the second mini-batch's log-probs are those of the weights after the first
    optimizer step: equal to a fresh bf16 forward of them. (Autocast's cache would hand the second
    mini-batch the bf16 copies made before the step: stale weights, a ratio that never moves.)"""
    from logprobs import sequence_logprobs_and_entropy as score
    seen, models, checks = [], [], []
    real_loss, real_update, real_score = grpo.policy_loss, grpo.update, grpo.sequence_logprobs_and_entropy

    def recording_score(model, *a, **kw):
        seen.append((model, a, kw))
        return real_score(model, *a, **kw)

    def checking_loss(batch, *a, **kw):
        model, inputs, options = seen[-1]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            fresh, _ = score(model, *inputs, **options)
        checks.append((batch.logp.detach() - fresh).abs().max().item())
        return real_loss(batch, *a, **kw)

    stepped_with_grad = set()  # the weights that had a nonzero gradient at an optimizer step (freed after it)

    def recording_update(model, optimizer, *a, **kw):
        models.append(model)
        optimizer.register_step_pre_hook(lambda *_: stepped_with_grad.update(
            p for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0))
        return real_update(model, optimizer, *a, **kw)

    monkeypatch.setattr(grpo, "sequence_logprobs_and_entropy", recording_score)
    monkeypatch.setattr(grpo, "policy_loss", checking_loss)
    monkeypatch.setattr(grpo, "update", recording_update)
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--amp", "--mini-batches", "2", "--micro-batch", "64",
                                     "--no-share-prompts", "--out", str(tmp_path / "amp")]))
    assert len(checks) == 2 and max(checks) < 1e-5, checks
    linears = [m for m in models[0].modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight in stepped_with_grad for m in linears)


def test_logged_entropy_is_the_token_mean_over_responses():
    """Two rows of one (role, task type), 1 token at entropy 3 and 3 tokens at entropy 1: the token
    mean is 6 / 4 = 1.5 (the mean of the two row means would be 2)."""
    rows = [rollout.Row([1], [2], "solver", "deduction", 0), rollout.Row([1], [2, 3, 4], "solver", "deduction", 1)]
    args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--task-types", "deduction"])
    entropy = (torch.tensor([3.0, 3.0]), torch.tensor([1.0, 3.0]))
    m = grpo.step_metrics(1, rows, entropy, [], {}, {}, {"deduction": [], "abduction": [], "induction": []}, args)
    assert m["entropy/solver/deduction"] == pytest.approx(1.5) and m["entropy/mean"] == pytest.approx(1.5)
    assert m["entropy_seq/solver/deduction"] == pytest.approx(2.0)


def test_update_returns_each_rows_entropy_sum_over_its_response_tokens(varied_rewards):
    from logprobs import sequence_logprobs_and_entropy
    from models import load_model
    gen = torch.Generator().manual_seed(0)
    rows = [rollout.Row(torch.randint(0, 250, (3,), generator=gen).tolist(),
                     torch.randint(0, 250, (n,), generator=gen).tolist(), "solver", "deduction", k, reward=float(k % 2))
            for k, n in enumerate((1, 5, 2))]
    for extra in ([], ["--mini-batches", "2"]):
        model, _ = load_model("tiny")
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--lr", "1e-9"] + extra)
        expected = []
        with torch.no_grad():
            for r in rows:
                ids = torch.tensor([r.prompt_ids + r.response_ids])
                mask = torch.tensor([[0] * len(r.prompt_ids) + [1] * len(r.response_ids)])
                expected.append(sequence_logprobs_and_entropy(model, ids, torch.ones_like(ids), mask)[1].sum())
        (sums, counts), _ = grpo.update(model, torch.optim.SGD(model.parameters(), lr=0.0), rows, args)
        torch.testing.assert_close(sums, torch.stack(expected), rtol=1e-4, atol=1e-5)
        assert counts.tolist() == [1.0, 5.0, 2.0]


def test_seeding_fills_the_buffers_before_training_and_saves_them(tmp_path, monkeypatch):
    """The random tiny model proposes nothing valid: stand in for the proposer with a parser that
    sees each response as a new triplet, and check the rounds stop once the buffer holds enough."""
    import proposer
    counter = itertools.count()

    def fake_make_tasks(task_type, responses, step, buffer, programs=None, num_inputs=None, dedupe=False, rule="released"):
        if task_type == "induction":  # a new induction task on the program shown
            return [proposer.Task(task_type, programs[j], ["1", str(next(counter))], ["1", "2"], message="m", step=step)
                    for j in range(len(responses))]
        return [proposer.Task(task_type, f"def f(a):\n    return a + {next(counter)}", ["1"], ["2"], step=step)
                for _ in responses]

    monkeypatch.setattr(selfplay, "make_tasks", fake_make_tasks)
    run = str(tmp_path / "seeded")
    grpo.train(grpo.get_args(FAST + ["--task-types", "deduction,abduction,induction", "--steps", "1",
                                     "--seed-tasks", "9", "--out", run]))
    seeded = read_jsonl(os.path.join(run, "seed_buffer_deduction.jsonl"))
    # rounds of 2 prompts x 2 samples per type, into one seed set, stopped once 9 were there
    assert 9 <= len(seeded) < 9 + 4 and read_jsonl(os.path.join(run, "seed_buffer_abduction.jsonl")) == seeded
    # each type's 4 proposals of step 1 joined its own buffer only
    metrics = read_jsonl(os.path.join(run, "metrics.jsonl"))[0]
    assert metrics["buffer/deduction"] == metrics["buffer/abduction"] == len(seeded) + 4
    proposals = read_jsonl(os.path.join(run, "seed_tasks.jsonl"))  # every seeding proposal, by phase and round
    triplets = [p for p in proposals if p["phase"] == "triplet"]
    assert len(triplets) == 8 * (triplets[-1]["round"] + 1) and {p["type"] for p in triplets} == {"deduction", "abduction"}
    # then the induction phase, on programs of the full seed set (AZR's code_f seeding comes after it)
    inductions = proposals[len(triplets):]
    assert {p["phase"] for p in inductions} == {"induction"} and len(inductions) == 4 * (inductions[-1]["round"] + 1)
    assert 9 <= len(read_jsonl(os.path.join(run, "seed_buffer_induction.jsonl"))) < 9 + 4
    assert all(p["program"] in {s["program"] for s in seeded} for p in inductions)


def test_the_gpu_preset_is_azr_as_released():
    args = grpo.get_args(["--model", "tiny", "--preset", "gpu"])
    assert (args.prompts, args.group, args.solve_samples, args.references, args.induction_inputs) == (64, 1, 8, 6, 10)
    # ONE optimizer step over the 384 sequences: main_azr_ppo.py sets ppo_mini_batch_size to
    # train_batch_size x problem types x 2 roles, over coder3b.sh's 128
    assert (args.mini_batches, args.lr, args.entropy_coef, args.clip_low, args.clip_high) == (1, 1e-6, 0.001, 0.2, 0.2)
    assert (args.advantage, args.template, args.seed_tasks, args.kl_coef) == ("trr++", "r1", 256, 0.0)
    assert (args.reward_levels, args.duplicate_penalty, args.skip_zero_var) == ("released", False, False)
    assert (args.format, args.weight_decay) == ("released", 0.01)  # AZR's format rule; verl's AdamW default


def test_the_optimizer_decays_weights_as_azr(tmp_path):
    """AdamW with weight decay 0.01 (verl's default, which AZR's config leaves as it is): with a zero
    gradient an update still shrinks every weight by lr x 0.01, so a run with lr 0.5 and no
    learning signal moves the weights by exactly that factor."""
    run = str(tmp_path / "decay")
    args = grpo.get_args(FAST + ["--task-types", "deduction", "--steps", "1", "--lr", "0.5", "--out", run,
                                 "--entropy-coef", "0"])
    grpo.train(args)
    before, _ = load_model("tiny")
    after = weights(run, 1)
    name, tensor = next((k, v) for k, v in after.items() if k.endswith("q_proj.weight"))
    # every reward of the random model is -1 (no well-formed answer): advantages and gradients are 0
    torch.testing.assert_close(tensor, before.state_dict()[name] * (1 - 0.5 * 0.01))


# -----------------------------------------------------------------------------
# bad input: one line, exit status 2, nothing written


BAD_ARGUMENTS = [
    (["--steps", "0"], "argument --steps: must be at least 1, not 0"),
    (["--steps", "-3"], "argument --steps: must be at least 1, not -3"),
    (["--steps", "2.5"], "argument --steps: not an integer: '2.5'"),
    (["--lr", "-1"], "argument --lr: must be above 0, not -1"),
    (["--lr", "0"], "argument --lr: must be above 0, not 0"),
    (["--lr", "nan"], "argument --lr: not a number: 'nan'"),
    (["--temperature", "0"], "argument --temperature: must be above 0"),
    (["--prompts", "0"], "argument --prompts: must be at least 1"),
    (["--group", "0"], "argument --group: must be at least 1"),
    (["--group", "1", "--advantage", "grpo"], "needs --group of at least 2"),
    (["--induction-inputs", "1"], "argument --induction-inputs: must be at least 2"),
    (["--entropy-coef", "-0.1"], "argument --entropy-coef: must be at least 0"),
    (["--weight-decay", "-0.01"], "argument --weight-decay: must be at least 0"),
    (["--clip-low", "1.5"], "argument --clip-low: must be below 1"),
    (["--format", "loose"], "invalid choice"),
    (["--model", "./nope"], "no such folder"),
    (["--model", "/nonexistent/model"], "no such folder"),
    (["--resume"], "--resume: no run folder"),
    (["--dtype", "float8"], "invalid choice"),
    (["--task-types", "sorting"], "unknown ['sorting']"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_in_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        grpo.train(grpo.get_args(["--model", "tiny"] + argv + ["--out", out]))
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", message)
    assert not os.path.exists(out) and os.listdir(tmp_path) == []


def test_the_refusal_check_fails_on_a_bare_error_line():
    with pytest.raises(AssertionError):
        assert_usage_and_one_error("grpo.py: error: --steps must be at least 1", "grpo.py", "--steps")
    with pytest.raises(AssertionError):  # two error lines
        assert_usage_and_one_error("usage: grpo.py [-h]\ngrpo.py: error: a\ngrpo.py: error: b", "grpo.py", "b")


def test_a_model_that_cannot_load_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        grpo.get_args(["--model", str(empty), "--out", out])
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "without a config.json")
    with pytest.raises(SystemExit) as exit_:  # a hub id, unreachable offline: refused at load, before the folder
        grpo.train(grpo.get_args(["--model", "nobody/no-such-model", "--preset", "cpu", "--out", out]))
    assert exit_.value.code == 2 and not os.path.exists(out)
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "nobody/no-such-model")


@pytest.mark.parametrize("extra", [[], ["--mini-batches", "2"], ["--loss-agg", "seq-mean-token-mean"]])
def test_shared_prompts_give_the_loss_and_gradient_of_separate_rows(extra):
    """The update with each group's prompt forwarded once equals the update over whole rows: the
    same entropies and the same gradient (autograd sums the G rows' contributions to the prompt)."""
    from models import load_model
    gen = torch.Generator().manual_seed(1)
    rows = []
    for prompt in range(3):
        ids = torch.randint(0, 250, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen).tolist()
        for g in range(4):
            response = torch.randint(0, 250, (int(torch.randint(1, 7, (1,), generator=gen)),), generator=gen).tolist()
            rows.append(rollout.Row(ids, response, "solver", "deduction", prompt, reward=float((prompt + g) % 3)))
    results = []
    for share in ("--share-prompts", "--no-share-prompts"):
        model, _ = load_model("tiny")
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--micro-batch", "3", share] + extra)
        optimizer, grads = torch.optim.SGD(model.parameters(), lr=0.0), []
        optimizer.register_step_pre_hook(lambda *_: grads.append(  # the gradients are freed after the step
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
        (sums, _), stats = grpo.update(model, optimizer, rows, args)
        results.append((sums, grads[0]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    assert results[0][1].abs().sum() > 0
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)
    shared = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--micro-batch", "3"])
    assert grpo.batches_of(rows, list(range(12)), shared) == [[0, 1, 2], [3], [4, 5, 6], [7], [8, 9, 10], [11]]


# -----------------------------------------------------------------------------
# experiment trackers: the same numbers as metrics.jsonl


def test_report_to_tensorboard_logs_the_metrics_lines(tmp_path, varied_rewards):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = str(tmp_path / "tb")
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--out", run, "--report-to", "tensorboard"]))
    metrics = read_jsonl(os.path.join(run, "metrics.jsonl"))
    events = EventAccumulator(os.path.join(run, "tensorboard"))
    events.Reload()
    for key in ("reward/mean", "entropy/mean", "grad_norm", "reward/solver/deduction", "seconds/update"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([m[key] for m in metrics], rel=1e-6)  # float32 there
    assert "solve_rate_hist/deduction" not in events.Tags()["scalars"]  # lists stay in metrics.jsonl


def test_report_to_wandb_offline_logs_the_metrics_lines(tmp_path, monkeypatch, varied_rewards):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = str(tmp_path / "wb")
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--out", run, "--report-to", "wandb"]))
    metrics = read_jsonl(os.path.join(run, "metrics.jsonl"))
    # the offline run, identified by the run folder's name; its record file holds each logged key and
    # value as JSON text (read as bytes: W&B's own reader is internal and changes between versions)
    records = list(pathlib.Path(run, "wandb").glob("offline-run-*-wb/run-wb.wandb"))
    assert len(records) == 1
    # W&B's service process may still be writing the file when run.finish() returns: wait for the
    # last step's loss to arrive (at most 60 s), then check everything
    last = json.dumps(metrics[-1]["grad_norm"]).encode()
    deadline = time.monotonic() + 60
    while last not in records[0].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    data = records[0].read_bytes()
    for key in ("reward/mean", "entropy/mean", "grad_norm"):
        assert key.encode() in data and all(json.dumps(m[key]).encode() in data for m in metrics), key
    assert b"solve_rate_hist" not in data


def test_report_to_a_tracker_that_is_not_installed_is_refused(tmp_path, monkeypatch, capsys):
    import runs
    real = runs.importlib.util.find_spec
    monkeypatch.setattr(runs.importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        grpo.get_args(FAST + ["--report-to", "wandb", "--out", out])
    assert exit_.value.code == 2 and not os.path.exists(out)
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "--report-to wandb: the wandb package is not installed")


def test_the_three_methods_draw_the_same_randomness_for_the_same_seed_and_step(monkeypatch):
    """AZR, RLVR and SFT take their step's draws from rollout.step_randomness(seed, step) alone, so
    the comparison of the methods rests on one seed formula."""
    import proposer
    import rlvr
    import sft
    import toytasks
    from models import load_model
    model, tokenizer = load_model("tiny")
    asked = []

    def recording(seed, step):
        asked.append((seed, step))
        return rollout.step_randomness(seed, step)

    for module in (selfplay, rlvr, sft):
        monkeypatch.setattr(module, "step_randomness", recording)
    tasks = toytasks.triplets(toytasks.generate(6, random.Random(0)))
    for method in ("azr", "rlvr", "sft"):
        args = grpo.get_args(FAST + ["--method", method, "--seed", "5", "--task-types", "deduction"])
        grpo.training_step(3, model, tokenizer, torch.optim.SGD(model.parameters(), lr=0.0), proposer.new_buffers(),
                           tasks, args)
    assert asked == [(5, 3)] * 3
    a, b = rollout.step_randomness(5, 3), rollout.step_randomness(5, 3)
    assert a[0].random() == b[0].random() and next(a[1]) == next(b[1])
    assert rollout.step_randomness(5, 4)[0].random() != rollout.step_randomness(5, 3)[0].random()


# -----------------------------------------------------------------------------
# the gpu preset's memory settings, checked on the CPU


def test_micro_batch_takes_effect_with_one_sample_per_prompt():
    """The gpu preset's one sample per prompt under gradient checkpointing: each pass holds
    --micro-batch rows (before, every pass held one row, each row's prompt being its own)."""
    rows = [rollout.Row([1, 2, k], [4, 5], "solver", "deduction", k) for k in range(10)]
    for extra in (["--grad-ckpt"], ["--no-grad-ckpt"]):
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--group", "1", "--micro-batch", "4"] + extra)
        assert not grpo.shares_prompts(args)
        assert grpo.batches_of(rows, list(range(10)), args) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--group", "2", "--micro-batch", "4", "--no-grad-ckpt"])
    shared = [rollout.Row([1, 2, k // 2], [4, 5], "solver", "deduction", k // 2) for k in range(6)]
    assert grpo.shares_prompts(args) and grpo.batches_of(shared, list(range(6)), args) == [[0, 1], [2, 3], [4, 5]]


def test_the_kl_reference_is_held_in_bf16_under_amp(tmp_path, monkeypatch):
    loaded = []
    real = grpo.load_model

    def recording(name, dtype=None, **kwargs):
        loaded.append(dtype)
        return real(name, dtype=dtype, **kwargs)
    monkeypatch.setattr(grpo, "load_model", recording)
    grpo.train(grpo.get_args(FAST + ["--steps", "1", "--amp", "--kl-coef", "0.1", "--out", str(tmp_path / "run")]))
    assert loaded == ["float32", "bfloat16"]  # the policy's float32 master weights, the frozen reference in bf16
    [metrics] = read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
    assert metrics["kl"] >= 0 and metrics["ratio_mean"] == pytest.approx(1.0)  # on-policy: the ratio is 1


def test_adamw_is_the_default_one_on_the_cpu():
    """Fused AdamW is taken on CUDA only: the CPU's runs keep their numbers."""
    model, _ = load_model("tiny")
    optimizer = rollout.adamw(model, 1e-3, 0.01)
    assert not optimizer.defaults["fused"] and optimizer.defaults["weight_decay"] == 0.01


@pytest.mark.parametrize("micro", ["1", "3"])
def test_block_weighting_gives_each_role_and_task_type_an_equal_share(micro):
    """--loss-weight blocks (AZR as released): the gradient of the mean over (role, task type) blocks
    of each block's token-mean loss, computed here block by block with policy_loss; a block of long
    proposals no longer outweighs a block of short answers. The default token weighting differs."""
    from logprobs import sequence_logprobs_and_entropy
    gen = torch.Generator().manual_seed(2)
    rows = [rollout.Row(torch.randint(0, 250, (4,), generator=gen).tolist(),
                        torch.randint(0, 250, (n,), generator=gen).tolist(), role, "deduction", k, reward=float(k % 2))
            for k, (role, n) in enumerate([("proposer", 7), ("proposer", 6), ("proposer", 8), ("solver", 1),
                                           ("solver", 2), ("solver", 1)])]

    def gradient(extra):
        model, _ = load_model("tiny")
        args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--micro-batch", micro, "--no-share-prompts"] + extra)
        optimizer, grads = torch.optim.SGD(model.parameters(), lr=0.0), []
        optimizer.register_step_pre_hook(lambda *_: grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
        grpo.update(model, optimizer, rows, args)
        return grads[0], args

    blocks, args = gradient(["--loss-weight", "blocks"])
    tokens, _ = gradient([])
    model, _ = load_model("tiny")
    A, _ = grpo.advantages(torch.tensor([r.reward for r in rows]), [(r.role, r.task_type) for r in rows], "trr++",
                           [len(r.response_ids) for r in rows])
    total = 0.0
    for role in ("proposer", "solver"):
        ks = [k for k, r in enumerate(rows) if r.role == role]
        _, ids, attention, response = next(rollout.micro_batches([rows[k] for k in ks], len(ks), "cpu"))
        logp, H = sequence_logprobs_and_entropy(model, ids, attention, response, args.temperature, args.chunk_size)
        loss, _ = grpo.policy_loss(grpo.LossBatch(logp, logp.detach(), A[ks], response, entropy=H),
                                     entropy_coef=args.entropy_coef)
        total = total + loss / 2
    total.backward()
    reference = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    reference *= min(1.0, 1.0 / (reference.norm().item() + 1e-6))  # the update clips the norm to 1 before its step
    torch.testing.assert_close(blocks, reference, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(tokens, reference, rtol=1e-2, atol=1e-4)


def test_block_weighting_needs_the_token_mean(capsys):
    with pytest.raises(SystemExit) as e:
        grpo.get_args(["--model", "tiny", "--loss-weight", "blocks", "--loss-agg", "seq-sum-norm"])
    assert e.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "--loss-weight blocks")
