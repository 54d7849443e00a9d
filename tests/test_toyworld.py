"""The toy world (toytasks.py, toybase.py, toyworld.py, rlvr.py): the program generator (deterministic, valid, outputs equal to an in-process run,
deduplicated by program and input, depth as a difficulty knob), the corpus (every example parses
and its answer is checked right by the sandbox), the tokenizer (tags and prompt text as whole
tokens, digits split, round trips), the pretraining loss (against a full forward pass), the
random-guess baselines and the evaluation's accounting. The slow tests build a small base, then
assert that grpo's update learns the tasks it is rewarded on, and that self-play raises held-out
deduction accuracy."""

import ast
import collections
import json
import os
import random
import re

import pytest
import torch
from transformers import AutoTokenizer

import chat
import executor
import grpo
import models
import proposer
import rlvr
import sampling
import solver
import toybase
import toytasks
import toyworld
from toybase import BuildSettings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generated():
    return toytasks.generate(120, random.Random(0))


@pytest.fixture(scope="module")
def examples(generated):
    return toytasks.corpus_examples(generated, random.Random(1))


@pytest.fixture(scope="module")
def tokenizer(examples):
    return toybase.train_tokenizer([text for u, r, _ in examples for text in (u, r)], 600)


def run_in_process(program, text):
    """The generated programs are ours, so the test may run them here: the independent reference."""
    scope = {}
    exec(program, scope)
    return scope["f"](*ast.literal_eval(f"({text},)"))


# -----------------------------------------------------------------------------
# the generator


def test_generation_is_deterministic(generated):
    again = toytasks.generate(120, random.Random(0))
    assert [(g.task, g.traces) for g in again] == [(g.task, g.traces) for g in generated]


def test_programs_pass_validate_and_outputs_equal_an_in_process_run(generated):
    jobs = [(g.task.program, i) for g in generated for i in g.task.inputs]
    verdicts = executor.validate(jobs)
    outputs = [o for g in generated for o in g.task.outputs]
    assert all(v.ok for v in verdicts)
    assert [v.output for v in verdicts] == outputs
    for g in generated:
        for text, output, steps in zip(g.task.inputs, g.task.outputs, g.traces):
            assert repr(run_in_process(g.task.program, text)) == output
            assert len(steps) == g.depth and steps[-1] == output


def test_trace_gives_the_value_of_every_step():
    g = toytasks.Generated(proposer.Task("deduction", "", ["[1,2], 'x'"], ["7"]), 3, ("list", "str"),
                           [["[2, 4]", "6", "7"]])
    assert toytasks.trace(g) == "a = [1, 2]; b = 'x'; c = [2, 4]; d = 6; return 7"


def test_duplicates_are_dropped_by_program_and_input_not_by_program():
    shallow = toytasks.generate(300, random.Random(2), depths=(1,))
    keys = [proposer.task_key(proposer.Task("deduction", g.task.program, [i])) for g in shallow for i in g.task.inputs]
    assert len(keys) == len(set(keys))
    texts = collections.Counter(g.task.program for g in shallow)
    assert texts.most_common(1)[0][1] > 1  # the same short program, kept again with other inputs
    # tasks already taken (as build passes the held-out set's) are never generated again; the same
    # draws then keep almost nothing (only drafts that lost their near-constant inputs to `seen`)
    again = toytasks.generate(300, random.Random(2), depths=(1,), seen=set(keys))
    assert not {proposer.task_key(proposer.Task("deduction", g.task.program, [i])) for g in again for i in g.task.inputs} & set(keys)
    assert len(again) * 20 < len(shallow)


def test_no_kept_program_returns_one_output_for_most_of_its_inputs(generated):
    for g in generated:
        assert len(g.task.inputs) >= toytasks.MIN_INPUTS
        assert max(collections.Counter(g.task.outputs).values()) * 2 <= len(g.task.inputs)


def test_depth_makes_programs_longer():
    sizes = {}
    for depth in toytasks.DEPTHS:
        programs = [toytasks.random_program(depth, random.Random(k)) for k in range(200)]
        sizes[depth] = sum(len(list(ast.walk(ast.parse(p.text)))) for p in programs) / len(programs)
        assert all(p.depth == depth and p.message.count(", then ") == depth - 1 for p in programs)
    assert sorted(sizes.values()) == list(sizes.values()) and sizes[4] > 2 * sizes[1]


# -----------------------------------------------------------------------------
# the corpus


def test_every_example_parses_and_its_answer_is_right(examples, generated):
    kinds = collections.Counter(kind for _, _, kind in examples)
    assert set(kinds) == {f"{role}/{t}" for role in ("solver", "proposer") for t in ("deduction", "abduction", "induction")}
    by_prompt = {}
    for g in toytasks.triplets(generated):
        for t in ("deduction", "abduction"):
            by_prompt[solver.solver_prompt(t, g.task)] = g.task
    for g in generated:
        by_prompt[solver.solver_prompt("induction", g.task)] = g.task
    checks = collections.defaultdict(list)
    for user, response, kind in examples:
        role, task_type = kind.split("/")
        if role == "solver":
            task = by_prompt[user]  # the prompt is exactly solver.py's for a generated task
            checks[task_type].append((task, response))
        else:
            tasks = proposer.make_tasks(task_type, [response], 0, [],
                                        [user.split("```python\n")[1].split("\n```")[0]] if task_type == "induction" else None)
            assert tasks[0].valid, (tasks[0].reason, response)
    for task_type, pairs in checks.items():
        rewards = solver.solver_rewards(task_type, [t for t, _ in pairs], [r for _, r in pairs], train=False)
        assert rewards == [1.0] * len(pairs), task_type


def test_proposer_prompts_show_one_to_max_references(examples):
    counts = {len(re.findall(r"^Reference \d+:$", user, re.M)) for user, _, kind in examples if kind == "proposer/deduction"}
    assert counts == set(range(1, toytasks.MAX_REFERENCES + 1))


# -----------------------------------------------------------------------------
# the tokenizer


def test_tags_and_chat_tokens_are_single_tokens_kept_on_decode(tokenizer):
    text = "<think> c = 'ab' </think> <answer> 'ab' </answer>"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    for tag in solver.TAGS:
        assert tag in tokens
    assert tokenizer.decode(ids, skip_special_tokens=True) == text  # sample() decodes this way
    for special in toybase.SPECIALS:
        assert len(tokenizer(special, add_special_tokens=False).input_ids) == 1
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_digits_are_split(tokenizer):
    for number in ("7", "12", "12345", "-305"):
        ids = tokenizer(f"x = {number}", add_special_tokens=False).input_ids
        tokens = [tokenizer.decode([i]) for i in ids]
        assert all(len(t) == 1 for t in tokens if any(c.isdigit() for c in t))


def test_prompt_text_is_whole_tokens(tokenizer, generated):
    pieces = toybase.prompt_pieces()
    assert len(pieces) >= 10 and all(len(tokenizer(p, add_special_tokens=False).input_ids) == 1 for p in pieces)
    prompt = solver.solver_prompt("deduction", toytasks.triplets(generated)[0].task)
    assert sum(len(p) for p in pieces if p in prompt) > len(prompt) / 2


@pytest.mark.parametrize("text", ["def f(a):\n    return [v * 3 for v in a if v > 2]",
                                  "  unicode é ∑ 你好 🙂\t and 'quotes' </answer>'", ""])
def test_tokenizer_round_trips_through_save_and_load(tokenizer, examples, tmp_path, text):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for sample in [text] + [chat.render_chat(tokenizer, u) + r for u, r, _ in examples[:20]]:
        ids = tokenizer(sample, add_special_tokens=False).input_ids
        assert loaded(sample, add_special_tokens=False).input_ids == ids
        assert loaded.decode(ids) == sample


def test_chat_template_is_chatml(tokenizer):
    assert chat.render_chat(tokenizer, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# -----------------------------------------------------------------------------
# pretraining


def test_lm_loss_is_the_weighted_cross_entropy_of_every_token_but_the_first(tokenizer, examples):
    model = toybase.new_model(tokenizer, BuildSettings(hidden=32, layers=1, heads=2))
    sequences = toybase.encode(tokenizer, examples[:3])
    loss = toybase.lm_loss(model, sequences, tokenizer.pad_token_id)
    total, weights = 0.0, 0.0
    for ids, prompt in sequences:  # one unpadded sequence at a time, the full logits
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        for t in range(1, len(ids)):
            w = toybase.PROMPT_WEIGHT if t < prompt else 1.0
            total -= w * logits[t - 1, ids[t]].item()
            weights += w
    ids, prompt = sequences[0]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[prompt:]).startswith("<think>")
    assert loss.item() == pytest.approx(total / weights, rel=1e-4)


def test_batches_hold_every_example_once_per_epoch():
    sequences = [([0] * n, 3) for n in random.Random(0).choices(range(5, 60), k=500)]
    stream = toybase.batches(sequences, 256, random.Random(0))
    seen = []
    while len(seen) < len(sequences):
        batch = next(stream)
        assert len(batch) == 1 or len(batch) * max(len(sequences[k][0]) for k in batch) <= 256
        seen += batch
    assert sorted(seen) == list(range(len(sequences)))


def test_small_build_writes_a_loadable_folder(tmp_path):
    folder = str(tmp_path / "toy")
    os.makedirs(folder)
    toybase.build(folder, BuildSettings(programs=150, hidden=32, layers=1, heads=2, vocab=600, steps=3,
                                         batch_tokens=1024, threads=1))
    model, tokenizer = models.load_model(folder)
    with open(os.path.join(folder, "toyworld.json")) as f:
        info = json.load(f)
    assert info["programs"] and info["examples"]["solver/deduction"] > 0
    assert model.config.max_position_embeddings == toybase.MAX_TOKENS
    out = sampling.sample(model, tokenizer, [chat.render_chat(tokenizer, "hi")], 2, 8, seed=0)
    assert out["input_ids"].shape[0] == 2


# -----------------------------------------------------------------------------
# evaluation


def test_guess_rate_is_the_fraction_of_random_inputs_that_give_the_output():
    program = "def f(a):\n    return a % 3"
    task = toytasks.Generated(proposer.Task("deduction", program, ["4"], ["1"]), 1, ("int",), [["1"]])
    rate = toyworld.guess_rates([task], random.Random(5))[0]
    rng = random.Random(5)  # the same draws, computed here
    guesses = [int(toytasks.random_input(("int",), rng)) for _ in range(toyworld.GUESSES)]
    assert rate == sum(g % 3 == 1 for g in guesses) / toyworld.GUESSES


def test_evaluate_counts_right_answers_and_novel_proposals(monkeypatch):
    """A stand-in for sampling.sample that answers every solver prompt with the gold answer and
    proposes a corpus program for half the prompts and a new one for the other half."""
    monkeypatch.setattr(toytasks, "HELDOUT_PER_DEPTH", 3)
    tasks = toytasks.heldout()
    gold = {}
    for t in tasks:
        gold[solver.solver_prompt("deduction", t.task)] = toytasks.respond("x", t.task.outputs[0])
        gold[solver.solver_prompt("abduction", t.task)] = toytasks.respond("x", t.task.inputs[0])
    known = "def f(a):\n    return a + 1"
    proposal = "<think> x </think> <answer>\n```python\n{}\n```\n```input\n3\n```\n</answer>"

    def fake_sample(model, tokenizer, prompts, n, max_new_tokens, temperature=1.0, top_p=1.0, seed=None, batch_size=32):
        users = [p.split("<|im_start|>user\n")[1].split("<|im_end|>")[0] for p in prompts for _ in range(n)]
        texts = [gold.get(u) or proposal.format(known if k % 2 else "def f(a):\n    return a * 7") for k, u in enumerate(users)]
        return {"texts": texts, "prompt_index": torch.arange(len(prompts)).repeat_interleave(n)}

    monkeypatch.setattr(toyworld, "sample", fake_sample)
    figures = toyworld.heldout_figures(None, AutoTokenizerStub(), programs=frozenset([known]), proposals=8)
    assert figures["deduction"][0] == figures["deduction, temperature 1"][0] == figures["abduction"][0] == 1.0
    assert figures["deduction"][2] == len(tasks) and figures["deduction depth 2"][2] == 3
    assert figures["proposals valid"][0] == 1.0 and figures["proposals valid and novel"][0] == 0.5
    assert 0 <= figures["deduction"][1] < 1


def test_rlvr_rewards_every_sample_and_updates_the_model(generated, monkeypatch):
    """rlvr's plumbing on the tiny model (which never answers well-formed, so the rewards are
    stubbed): each step samples prompts x group answers, rewards all of them for training, reports
    on schedule, returns the share right, and moves the weights."""
    model, tokenizer = models.load_model("tiny")
    args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--prompts", "2", "--group", "3",
                          "--max-new-tokens", "6", "--lr", "1e-2"])
    calls, reports = [], []

    def rewards(task_type, tasks, responses, train=True):
        calls.append((task_type, len(tasks), len(responses), train))
        return [1.0 if k % 3 == 0 else -0.5 for k in range(len(responses))]

    monkeypatch.setattr(rlvr, "solver_rewards", rewards)
    before = [p.detach().clone() for p in model.parameters()]
    right = rlvr.rlvr(model, tokenizer, toytasks.triplets(generated)[:5], 4, args, reports.append, every=2)
    assert calls == [("deduction", 6, 6, True)] * 4
    assert reports == [0, 2, 4]
    assert right == [pytest.approx(1 / 3)] * 4
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


class AutoTokenizerStub:
    """render_chat's ChatML, without a vocabulary."""
    chat_template = chat.CHATML

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        return f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"


# -----------------------------------------------------------------------------
# end to end: a small base, then the update and self-play on it, accuracy before and after (minutes)


@pytest.fixture(scope="module")
def small_base(tmp_path_factory):
    """A reduced toy base (3,000 programs, 900 steps; about 4 minutes on 2 cores), built once for
    the slow tests below."""
    torch.set_num_threads(2)
    folder = str(tmp_path_factory.mktemp("toy") / "base")
    os.makedirs(folder)
    toybase.build(folder, BuildSettings(programs=3000, steps=900))
    return folder


@pytest.mark.slow
def test_update_learns_the_tasks_it_is_rewarded_on(small_base):
    """rlvr.rlvr (grpo's rollout and update, the solver's rewards) on 16 fixed held-out
    deduction tasks for 30 steps: the solver must get them right far more often (on the full base:
    29 % -> 76 % of samples at temperature 1). This is the loop's own learning, without the
    proposer: a sign error in the advantage, a mask off by one or a detached loss leaves it flat."""
    torch.set_num_threads(2)
    model, tokenizer = models.load_model(small_base)
    args = grpo.get_args(["--model", small_base, "--preset", "toy", "--prompts", "16"])
    tasks = toytasks.heldout()[:16]  # depth 1: the reduced base solves some of them

    def accuracy():
        return sum(toyworld.solved(model, tokenizer, "deduction", tasks, 1.0, 8)) / len(tasks)

    before = accuracy()
    rlvr.rlvr(model, tokenizer, tasks, 30, args)
    after = accuracy()
    assert after > before + 0.2, (before, after)


@pytest.mark.slow
def test_self_play_raises_held_out_deduction_accuracy(small_base, tmp_path):
    """grpo.py's toy preset for 12 steps on the reduced base, then held-out deduction accuracy at
    temperature 1 (the mean of 4 samples per task: the distribution self-play samples and trains)
    before and after. The loop must learn: a broken update, reward or advantage leaves it flat or
    lowers it (as taking the step's first proposals as the solver's tasks did: 4.8 % -> 5.6 %).
    About 7 minutes on 2 cores, plus the base."""
    torch.set_num_threads(2)
    tasks = toytasks.heldout()

    def accuracy(folder):
        model, tokenizer = models.load_model(folder)
        return sum(toyworld.solved(model, tokenizer, "deduction", tasks, 1.0, 4)) / len(tasks)

    before = accuracy(small_base)
    run = grpo.train(grpo.get_args(["--model", small_base, "--preset", "toy", "--steps", "12", "--out", str(tmp_path / "run")]))
    after = accuracy(os.path.join(run, "checkpoints", "step_000012"))
    assert after > before + 0.01, (before, after)
