"""grpo.py under torchrun on the CPU: gloo, 2 processes, the tiny model, one thread each.

One training step under 2 ranks (FSDP2, and DDP) against the same step in one process on the same
global batch: the rollouts are made independent of the batch a rank decodes (a rollout whose
responses follow from the prompt alone), so the two must agree in everything: Rows, proposals,
buffers, advantages, the loss, the gradient and the weights after the optimizer step. End to end
the samples differ with the ranks, so a 2-rank run is checked for what it writes; it resumes to
the same result; and a rank whose rollout raises stops every rank, the last checkpoint intact."""

import json
import os
import socket
import sys
import zlib
from contextlib import contextmanager
from dataclasses import asdict

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import distributed
import executor
import grpo
import rollout
import selfplay
from conftest import assert_usage_and_one_error, run_child
from models import load_model
from proposer import Task, new_buffers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--model", "tiny", "--preset", "cpu", "--task-types", "deduction,induction", "--max-new-tokens", "12",
        "--prompts", "2", "--group", "2", "--solve-samples", "2", "--lr", "1e-2"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def without_times(metrics):
    return [{k: v for k, v in m.items() if not k.startswith("seconds/")} for m in metrics]


# -----------------------------------------------------------------------------
# One step, 2 ranks against 1 process


def crc(text):
    return zlib.crc32(text.encode())


def fixed_rollout(model, tokenizer, asks, n, args, seed, first_prompt=0):
    """rollout.rollout's output made from each prompt text alone (no sampling): the same whichever
    rank answers which prompt, and whatever the seed. Response lengths 1..6, so TRR++'s token
    weights differ."""
    rows, responses, index = [], [], []
    for i, (text, role, task_type) in enumerate(asks):
        for j in range(n):
            h = crc(f"{text}|{j}")
            rows.append(rollout.Row(list(text.encode()[-6:]), [(h >> s) % 250 for s in range(1 + h % 6)], role,
                                    task_type, first_prompt + i))
            responses.append(f"{h}")
            index.append(i)
    return rows, responses, index


def fixed_tasks(task_type, responses, step, buffer, programs=None, num_inputs=None, dedupe=False, rule="released"):
    """proposer.make_tasks's Tasks from each response alone: one in five invalid, the rest valid."""
    tasks = []
    for j, r in enumerate(responses):
        program = programs[j] if task_type == "induction" else f"def f(a):\n    return a + {int(r) % 97}"
        tasks.append(Task(task_type, program, ["1", "2"] if task_type == "induction" else ["1"], ["x"],
                          message="m", step=step, valid=int(r) % 5 != 0))
    return tasks


def fixed_rewards(task_type, tasks, responses, evaluation=False, rule="released"):
    return [float(crc(r) % 3) - 1.0 for r in responses]


@contextmanager
def fixed_rollouts():
    """Every rollout of a step made by the fixed_* functions; the recorded advantages and losses."""
    seen = {"advantages": [], "passes": []}
    real_advantages, real_loss = grpo.advantages, grpo.policy_loss

    def advantages(*a, **kw):
        A, zero_var = real_advantages(*a, **kw)
        seen["advantages"].append(A.clone())
        return A, zero_var

    def policy_loss(batch, **kw):
        loss, stats = real_loss(batch, **kw)
        seen["passes"].append((loss.item(), batch.mask.sum().item(), len(batch.advantages)))
        return loss, stats

    patches = [(selfplay, "rollout", fixed_rollout), (rollout, "rollout", fixed_rollout),
               (selfplay, "make_tasks", fixed_tasks), (selfplay, "solver_rewards", fixed_rewards),
               (rollout, "solver_rewards", fixed_rewards), (grpo, "advantages", advantages),
               (grpo, "policy_loss", policy_loss)]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield seen
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def whole(t):
    """A sharded tensor (a DTensor) whole; any other tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


# the configurations compared: grpo.py flags, and the update that runs
CASES = {
    "trr++": [],
    "grpo": ["--advantage", "grpo", "--loss-agg", "seq-mean-token-mean"],
    "two mini-batches": ["--mini-batches", "2"],   # old log-probs from a no-grad pass, two optimizer steps
    "sft": ["--method", "sft"],                    # SFT's update (cross-entropy) on the same rows
    "ddp": [],                                     # DDP in place of FSDP2
}


def one_step(case):
    """Step 1 of AZR self-play on the tiny model with the fixed rollouts (then SFT's update for
    "sft"), run by this process alone or, under torchrun, as one of its ranks. Returns what the
    comparison needs, whole (every tensor gathered, the loss summed over ranks)."""
    flags = [f for f in CASES[case] if f not in ("--method", "sft")]
    args = grpo.get_args(FAST + ["--micro-batch", "2", "--seed-tasks", "0", "--entropy-coef", "0.1"] + flags)
    model, tokenizer = load_model("tiny")
    distributed.shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    grads = {}  # at the (last) optimizer step: they are freed right after it
    optimizer.register_step_pre_hook(lambda *_: grads.update(
        {n: whole(p.grad).clone() for n, p in model.named_parameters()}))
    buffers = new_buffers()
    for name, buffer in buffers.items():  # distinct tasks, so that no two prompts of the step are alike
        buffer += [Task(name, f"def f(a):\n    return a * {k}", ["1", "2"] if name == "induction" else ["1"],
                        [str(k), str(2 * k)] if name == "induction" else [str(k)], message="m") for k in range(2, 8)]
    with fixed_rollouts() as seen:
        if case == "sft":  # the step's rows, through the cross-entropy update
            with distributed.full_weights(model):
                rows, records, _ = selfplay.self_play(1, model, tokenizer, buffers, args)
            args.method = "sft"  # the rows were AZR's
            (entropy, _), stats = grpo.update(model, optimizer, rows, args)
            metrics = {"entropy": entropy.tolist(), **stats}
        else:
            metrics, records = grpo.training_step(1, model, tokenizer, optimizer, buffers, None, args)
            metrics = without_times([metrics])[0]
    loss = None
    if case != "sft" and args.mini_batches == 1:
        # the step's loss: each pass's loss weighted by its tokens (token-mean) or sequences
        # (sequence means), over every rank's passes (a pass of no row weighs 0)
        sizes = [tokens if args.loss_agg == "token-mean" else sequences for _, tokens, sequences in seen["passes"]]
        weighted = [(value * size, size) for (value, _, _), size in zip(seen["passes"], sizes)]
        total = distributed.summed(torch.tensor([sum(v for v, _ in weighted), sum(size for _, size in weighted)],
                                                dtype=torch.float64))
        loss = (total[0] / total[1]).item()
    return {"metrics": metrics, "records": records, "advantages": [a.tolist() for a in seen["advantages"]],
            "loss": loss, "buffers": {k: [asdict(t) for t in v] for k, v in buffers.items()},
            "grads": grads,
            "weights": {n: whole(p.detach()).clone() for n, p in model.named_parameters()}}


def rank_worker(rank, port, out):
    """One of 2 ranks, as torchrun would start it: every case of CASES, then rank 0 saves the results."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.start()
    results = {}
    for case in CASES:
        if case == "ddp":
            distributed.fully_shard = None  # as where FSDP2 is missing
        results[case] = one_step(case)
    executor.close_pool()
    parts = [None, None]
    torch.distributed.all_gather_object(parts, {case: r["buffers"] for case, r in results.items()})
    distributed.stop()
    if rank == 0:
        torch.save({"results": results, "buffers_of_each_rank": parts}, out)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ranks") / "results.pt")
    mp.spawn(rank_worker, args=(free_port(), out), nprocs=2)
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="module")
def one_process():
    try:
        results = {case: one_step(case) for case in CASES if case != "ddp"}
        return {**results, "ddp": results["trr++"]}  # alone there is neither FSDP nor DDP
    finally:
        executor.close_pool()


@pytest.mark.parametrize("case", list(CASES))
def test_a_step_under_two_ranks_is_the_step_of_one_process(case, two_ranks, one_process):
    ranks, alone = two_ranks["results"][case], one_process[case]
    assert ranks["records"] == alone["records"] and ranks["buffers"] == alone["buffers"]
    assert sum(r["valid"] for r in alone["records"]) > 0  # the buffers did grow
    for a, b in zip(ranks["advantages"], alone["advantages"]):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=0, atol=0)
    assert len(ranks["advantages"]) == len(alone["advantages"]) == (0 if case == "sft" else 1)
    if alone["loss"] is not None:
        assert ranks["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    assert ranks["metrics"].keys() == alone["metrics"].keys()
    for key, value in alone["metrics"].items():
        assert ranks["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert alone["metrics"]["grad_norm"] > 0
    for name, grad in alone["grads"].items():
        torch.testing.assert_close(ranks["grads"][name], grad, rtol=1e-4, atol=1e-6)
    # AdamW's first step moves a weight by about lr x sign(gradient) (lr = 1e-2 here), so the gradients'
    # rounding shows most where a gradient is near 0: 1e-4 is 1 % of a step
    for name, weight in alone["weights"].items():
        torch.testing.assert_close(ranks["weights"][name], weight, rtol=1e-4, atol=1e-4)
    assert any(not torch.equal(weight, load_model("tiny")[0].state_dict()[name])
               for name, weight in alone["weights"].items())  # the step did move the weights


def test_every_rank_holds_the_same_buffers(two_ranks):
    first, second = two_ranks["buffers_of_each_rank"]
    assert first == second and sum(len(b) for b in first["trr++"].values()) > 3


# -----------------------------------------------------------------------------
# Who does what: the shares of the passes, the seeds, the sandbox pool


def test_the_ranks_share_every_pass_and_run_as_many(monkeypatch):
    """5 batches over 2 ranks: each run once, in turn, and the rank with fewer runs a pass of no row
    (forwarding the first batch for nothing), so both run 3 passes. Alone, every batch."""
    batches = [[k] for k in range(5)]
    assert distributed.rank_batches(batches) == [(b, b) for b in batches]
    shares = []
    for r in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(r))
        shares.append(distributed.rank_batches(batches))
    assert [len(s) for s in shares] == [3, 3]
    assert sorted(k for s in shares for keys, _ in s for k in keys) == list(range(5))
    assert shares[1][-1] == ([], batches[0])
    assert distributed.loss_scale() == 2


def test_the_duplicate_penalty_is_refused_under_torchrun(monkeypatch, capsys):
    """It checks a proposal against the earlier ones of the whole batch, which are other ranks'."""
    assert grpo.get_args(FAST + ["--duplicate-penalty"]).duplicate_penalty  # alone, accepted
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as stop:
        grpo.get_args(FAST + ["--duplicate-penalty"])
    assert stop.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "grpo.py", "--duplicate-penalty")


def test_each_rank_samples_from_a_seed_of_its_own(monkeypatch):
    assert distributed.rank_seed(1234) == 1234  # alone: the step's seed
    monkeypatch.setenv("WORLD_SIZE", "4")
    seeds = set()
    for r in range(4):
        monkeypatch.setenv("RANK", str(r))
        seeds |= {distributed.rank_seed(s) for s in range(100)}
    assert len(seeds) == 400


def test_the_sandbox_pool_of_a_rank_has_its_share_of_the_cores_and_its_own_uids(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    pool = executor.Pool()
    try:
        assert pool.size == 4 and pool.first_uid == executor.BASE_UID + 4  # rank 0's children have uids +0..3
        assert executor.validate([("def f(a):\n    return a", "1")], pool=pool)[0].ok
    finally:
        pool.close()


# -----------------------------------------------------------------------------
# End to end: torchrun grpo.py


def torchrun(argv, script="grpo.py", timeout=300, must_succeed=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), script, *argv]
    return run_child(cmd, must_succeed=must_succeed, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout)


FAILING = """
import os, sys
sys.path.insert(0, {root!r})
import grpo, selfplay
calls = []

def failing_rewards(*args, **kwargs):  # rank 1's solver at step 3 (two task types a step)
    calls.append(not kwargs.get("evaluation", False))  # True: a training reward
    if os.environ["RANK"] == "1" and calls.count(True) > 4:
        raise ValueError("a planted failure in rank 1's rollout")
    return real(*args, **kwargs)

real, selfplay.solver_rewards = selfplay.solver_rewards, failing_rewards
grpo.train(grpo.get_args(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """A 2-rank run of 3 steps, a checkpoint after each, whose rank 1 raises in its rollout at step 3
    (one launch for the two tests below): (run folder, torchrun's exit status, its output)."""
    folder = tmp_path_factory.mktemp("failed")
    script, run = folder / "failing.py", str(folder / "run")
    script.write_text(FAILING.format(root=ROOT))
    done = torchrun(FAST + ["--steps", "3", "--save-every", "1", "--out", run], script=str(script), timeout=240,
                    must_succeed=False)  # it is meant to fail
    return run, done.returncode, done.stdout + done.stderr


def test_a_two_rank_run_writes_the_run_folder_of_a_single_run(tmp_path, failed_run):
    """Steps 1 and 2 of the 2-rank run against a single run of 2 steps: the same config, metrics
    keys, number of proposals, checkpoint files and weight names; the checkpoint loads, and its
    optimizer state is a single process's."""
    ranks, _, output = failed_run
    alone = str(tmp_path / "alone")
    grpo.train(grpo.get_args(FAST + ["--steps", "2", "--out", alone]))
    with open(os.path.join(alone, "config.json")) as f, open(os.path.join(ranks, "config.json")) as g:
        assert {**json.load(f), "out": None, "steps": None, "save_every": None} == \
            {**json.load(g), "out": None, "steps": None, "save_every": None}
    a, b = read_jsonl(os.path.join(alone, "metrics.jsonl")), read_jsonl(os.path.join(ranks, "metrics.jsonl"))
    assert [m["step"] for m in b] == [1, 2], output[-3000:]
    assert [m.keys() for m in a] == [m.keys() for m in b] and b[0]["grad_norm"] > 0
    assert len(read_jsonl(os.path.join(ranks, "tasks.jsonl"))) == len(read_jsonl(os.path.join(alone, "tasks.jsonl")))
    folder = os.path.join(ranks, "checkpoints", "step_000002")
    assert sorted(os.listdir(folder)) == sorted(os.listdir(os.path.join(alone, "checkpoints", "step_000002")))
    weights = load_file(os.path.join(folder, "model.safetensors"))
    single = load_file(os.path.join(alone, "checkpoints", "step_000002", "model.safetensors"))
    assert {k: v.shape for k, v in weights.items()} == {k: v.shape for k, v in single.items()}
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())
    state = torch.load(os.path.join(folder, "trainer_state.pt"), weights_only=True)
    optimizer = torch.optim.AdamW(model.parameters())
    optimizer.load_state_dict(state["optimizer"])
    assert state["step"] == 2 and all(optimizer.state[p]["exp_avg"].shape == p.shape for p in model.parameters())


def test_a_rank_that_fails_stops_every_rank_and_leaves_the_last_checkpoint(failed_run):
    run, status, output = failed_run
    assert status != 0
    assert "rank 1 failed" in output and "a planted failure in rank 1's rollout" in output, output[-3000:]
    assert [m["step"] for m in read_jsonl(os.path.join(run, "metrics.jsonl"))] == [1, 2]  # rank 0 stopped too
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["step_000001", "step_000002"]
    folder = os.path.join(run, "checkpoints", "step_000002")
    assert AutoModelForCausalLM.from_pretrained(folder) is not None
    assert torch.load(os.path.join(folder, "trainer_state.pt"), weights_only=True)["step"] == 2


@pytest.mark.slow
def test_a_two_rank_run_resumes_to_the_same_result(tmp_path):
    """2 steps, then --resume to 3, under 2 ranks: the weights, metrics and tasks of 3 steps at once."""
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    flags = FAST + ["--entropy-coef", "0.5"]
    for argv in (flags + ["--steps", "3", "--out", whole], flags + ["--steps", "2", "--out", split],
                 ["--resume", "--out", split, "--steps", "3"]):
        torchrun(argv)
    a = load_file(os.path.join(whole, "checkpoints", "step_000003", "model.safetensors"))
    b = load_file(os.path.join(split, "checkpoints", "step_000003", "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    two = load_file(os.path.join(split, "checkpoints", "step_000002", "model.safetensors"))
    assert any(not torch.equal(a[k], two[k]) for k in a)  # step 3 did change the weights
    assert without_times(read_jsonl(os.path.join(whole, "metrics.jsonl"))) == \
        without_times(read_jsonl(os.path.join(split, "metrics.jsonl")))
    assert read_jsonl(os.path.join(whole, "tasks.jsonl")) == read_jsonl(os.path.join(split, "tasks.jsonl"))
