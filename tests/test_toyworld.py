"""The toy world (toytasks.py, toybase.py, toyworld.py, rlvr.py): the program generator (deterministic, valid, outputs equal to an in-process run,
deduplicated by program and input, depth as a difficulty knob), the corpus (every example parses;
the solver's two styles in their shares, recognised from the text and forcible by a prefix; every
careful answer right, the chosen share of hasty ones wrong yet well-formed and of the right type),
the tokenizer (tags and prompt text as whole tokens, digits split, round trips), the pretraining
loss (against a full forward pass), a reduced build (the full build's architecture), the
random-guess baselines, the pass@k estimator (against counting subsets) and the evaluation's
accounting. The slow tests take the shipped base and assert that grpo's update learns the tasks
it is rewarded on, and that self-play raises held-out deduction accuracy."""

import ast
import collections
import itertools
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
import rollout
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
    assert sorted(sizes.values()) == list(sizes.values()) and sizes[toytasks.DEPTHS[-1]] > 2 * sizes[toytasks.DEPTHS[0]]


# -----------------------------------------------------------------------------
# the corpus


def solver_answers(examples, generated):
    """The corpus's solver answers by task type: (task, response, reward at evaluation) each, the task
    found from the prompt, which is exactly solver.py's for a generated task."""
    by_prompt = {}
    for g in toytasks.triplets(generated):
        for t in ("deduction", "abduction"):
            by_prompt[solver.solver_prompt(t, g.task)] = g.task
    for g in generated:
        by_prompt[solver.solver_prompt("induction", g.task)] = g.task
    pairs = collections.defaultdict(list)
    for user, response, kind in examples:
        role, task_type = kind.split("/")
        if role == "solver":
            pairs[task_type].append((by_prompt[user], response))
    return {task_type: [(t, r, reward) for (t, r), reward in
                        zip(p, solver.solver_rewards(task_type, [t for t, _ in p], [r for _, r in p], evaluation=True))]
            for task_type, p in pairs.items()}


def test_every_example_parses_and_careful_and_induction_answers_are_right(examples, generated):
    kinds = collections.Counter(kind for _, _, kind in examples)
    assert set(kinds) == {f"{role}/{t}" for role in ("solver", "proposer") for t in ("deduction", "abduction", "induction")}
    for user, response, kind in examples:
        role, task_type = kind.split("/")
        assert solver.extract_answer(response) is not None
        if role == "proposer":
            tasks = proposer.make_tasks(task_type, [response], 0, [],
                                        [user.split("```python\n")[1].split("\n```")[0]] if task_type == "induction" else None,
                                        num_inputs=response.count("```input"))
            assert tasks[0].valid, (tasks[0].reason, response)
    answers = solver_answers(examples, generated)
    assert all(reward == 1.0 for _, _, reward in answers["induction"])
    for task_type in ("deduction", "abduction"):
        careful = [(r, reward) for _, r, reward in answers[task_type] if toytasks.style_of(r) == "careful"]
        assert careful and all(reward == 1.0 for _, reward in careful), task_type


def test_styles_are_in_their_shares_and_style_of_recognises_every_solver_answer(examples, generated):
    answers = solver_answers(examples, generated)
    for task_type in ("deduction", "abduction"):
        styles = collections.Counter(toytasks.style_of(r) for _, r, _ in answers[task_type])
        assert set(styles) == {"careful", "hasty"}, styles  # None would be an answer in neither style
        share = styles["careful"] / sum(styles.values())
        assert abs(share - toytasks.CAREFUL_SHARE) < 0.06, (task_type, share)
    assert toytasks.style_of("<think> a = [1, 2]; return 3 </think> <answer> 3 </answer>") == "careful"
    assert toytasks.style_of("<think> It sums. </think> <answer> 3 </answer>") == "hasty"
    for response in ("<think> Italy </think> <answer> 3 </answer>", "<think> b = 1 </think> <answer> 1 </answer>", ""):
        assert toytasks.style_of(response) is None


def test_the_hasty_answers_error_follows_the_programs_depth(generated):
    """toy-v3's corpus: a near-miss share per depth (here never at depths 1 and 2, always at depth 3)."""
    depth_of = {solver.solver_prompt("deduction", g.task): (g.depth, g.task.outputs[0]) for g in toytasks.triplets(generated)}
    wrong = collections.defaultdict(list)
    for user, response, kind in toytasks.corpus_examples(generated, random.Random(1), (0.0, 0.0, 1.0)):
        if kind == "solver/deduction" and toytasks.style_of(response) == "hasty":
            depth, output = depth_of[user]
            wrong[depth].append(solver.extract_answer(response) != output)
    assert sorted(wrong) == [1, 2, 3]
    assert not any(wrong[1] + wrong[2]) and all(wrong[3])


def test_hasty_answers_are_wrong_in_their_share_yet_well_formed_and_of_the_answers_type(examples, generated):
    answers = solver_answers(examples, generated)
    for task_type in ("deduction", "abduction"):
        hasty = [(t, r, reward) for t, r, reward in answers[task_type] if toytasks.style_of(r) == "hasty"]
        wrong = [(t, solver.extract_answer(r)) for t, r, reward in hasty if reward == 0.0]
        share = len(wrong) / len(hasty)
        # abduction: a little lower, where no near input gives another output (wrong_inputs)
        assert toytasks.WRONG_SHARE - (0.12 if task_type == "abduction" else 0.06) < share < toytasks.WRONG_SHARE + 0.06
        for task, answer in wrong:
            if task_type == "deduction":
                assert type(executor.parse_literal(answer)) is type(executor.parse_literal(task.outputs[0]))
            else:
                given, right = executor.parse_arguments(answer), executor.parse_arguments(task.inputs[0])
                assert [type(v) for v in given] == [type(v) for v in right]


@pytest.mark.parametrize("value", [0, 7, -3, [], [5], [1, 2], [3, 3], [2, 5, 2], [9, 0, 4, 4]])
def test_a_near_miss_is_of_the_same_type_near_and_never_equal(value):
    rng, ways = random.Random(0), set()
    for _ in range(200):
        miss = toytasks.near_miss(value, rng)
        assert type(miss) is type(value) and miss != value
        if isinstance(value, int):
            assert abs(miss - value) == 1
            continue
        if len(miss) == len(value) + 1:
            ways.add("extra")
            assert miss[:-1] == value and 0 <= miss[-1] <= 9
        elif len(miss) == len(value) - 1:
            ways.add("dropped")
            assert any(value[:k] + value[k + 1:] == miss for k in range(len(value)))
        elif miss == value[::-1]:
            ways.add("reversed")
        else:
            ways.add("number")
            assert sorted(abs(a - b) for a, b in zip(miss, value)) == [0] * (len(value) - 1) + [1]
    if isinstance(value, list):  # every way that can change the value is taken
        possible = {"extra"} | ({"number", "dropped"} if value else set())
        assert ways == possible | ({"reversed"} if value != value[::-1] else set())


def test_wrong_output_is_the_last_step_forgotten_or_a_near_miss():
    g = toytasks.Generated(proposer.Task("deduction", "", ["[3, 1, 2]"], ["[2, 4, 6]"]), 2, ("list",),
                           [["[1, 2, 3]", "[2, 4, 6]"]])
    rng, seen = random.Random(0), collections.Counter()
    for _ in range(300):
        wrong = ast.literal_eval(toytasks.wrong_output(g, rng))
        assert isinstance(wrong, list) and wrong != [2, 4, 6]
        seen["forgotten" if wrong == [1, 2, 3] else "near"] += 1
    assert 0.25 < seen["forgotten"] / 300 < 0.42
    int_step = toytasks.Generated(proposer.Task("deduction", "", ["[3, 1, 2]"], ["12"]), 2, ("list",),
                                  [["[2, 4, 6]", "12"]])  # the step before is a list: never given for an int
    assert all(abs(int(toytasks.wrong_output(int_step, rng)) - 12) == 1 for _ in range(50))


def test_wrong_inputs_takes_the_first_near_input_that_gives_another_output():
    program = "def f(a):\n    return sorted(a)"
    g = toytasks.Generated(proposer.Task("deduction", program, ["[1, 2]"], ["[1, 2]"]), 1, ("list",), [["[1, 2]"]])
    assert toytasks.wrong_inputs([(g, ["[2, 1]", "[1, 3]", "[0, 2]"]), (g, ["[2, 1]", "[1, 2]"])]) == ["[1, 3]", None]
    tries = toytasks.near_inputs(g, random.Random(0))
    assert len(tries) == toytasks.ABDUCTION_TRIES and all(isinstance(ast.literal_eval(t), list) for t in tries)


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


@pytest.mark.parametrize("style", toytasks.STYLES)
def test_a_force_prefix_starts_its_style_on_a_token_boundary(tokenizer, examples, style):
    """Prefilled after the prompt, FORCE[style] must be the very tokens a corpus response of that
    style begins with, so the model continues as it learned to; and what it then writes is read
    as that style."""
    prefix = toytasks.FORCE[style]
    responses = [(u, r) for u, r, kind in examples if kind.startswith("solver/") and toytasks.style_of(r) == style]
    assert responses and all(r.startswith(prefix) for _, r in responses)
    ids = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    for user, response in responses[:50]:
        prompt = chat.render_chat(tokenizer, user)
        assert ids(prompt + prefix) == ids(prompt) + ids(prefix)  # the prompt's tokens are unchanged
        assert ids(response)[:len(ids(prefix))] == ids(prefix)    # and the prefix's are the response's first
        assert toytasks.style_of(prefix + response[len(prefix):]) == style
    other = next(s for s in toytasks.STYLES if s != style)
    assert toytasks.style_of(prefix + responses[0][1][len(toytasks.FORCE[other]):]) != other


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
    stream = toybase.token_batches(sequences, 256, random.Random(0))
    seen = []
    while len(seen) < len(sequences):
        batch = next(stream)
        assert len(batch) == 1 or len(batch) * max(len(sequences[k][0]) for k in batch) <= 256
        seen += batch
    assert sorted(seen) == list(range(len(sequences)))


SIZE_FIELDS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "head_dim", "vocab_size"}
SAVED_FIELDS = {"_name_or_path", "architectures", "transformers_version", "dtype", "torch_dtype"}  # what saving adds


def test_reduced_build_writes_a_loadable_base_of_the_full_builds_architecture(tmp_path):
    folder = str(tmp_path / "toy")
    os.makedirs(folder)
    settings = BuildSettings()
    reduced = settings.reduced()
    assert reduced.hidden < settings.hidden and reduced.steps < settings.steps and reduced.seed == settings.seed
    assert settings.reduced(steps=5).steps == 5
    toybase.build(folder, reduced)
    model, tokenizer = models.load_model(folder)
    with open(os.path.join(folder, "toyworld.json")) as f:
        info = json.load(f)
    assert info["programs"] and info["examples"]["solver/deduction"] > 0
    assert info["examples"]["solver/deduction careful"] + info["examples"]["solver/deduction hasty"] == \
        info["examples"]["solver/deduction"]
    full = toybase.model_config(tokenizer, settings).to_dict()
    built = model.config.to_dict()
    assert built["architectures"] == ["LlamaForCausalLM"] and SIZE_FIELDS <= set(full)
    assert {k: v for k, v in built.items() if k not in SIZE_FIELDS | SAVED_FIELDS} == \
        {k: v for k, v in full.items() if k not in SIZE_FIELDS | SAVED_FIELDS}
    assert (built["hidden_size"], built["num_hidden_layers"]) == (reduced.hidden, reduced.layers)
    assert type(model) is toybase.LlamaForCausalLM and model.config.max_position_embeddings == toybase.MAX_TOKENS
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
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


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_k_estimate_is_the_share_of_k_subsets_holding_a_right_sample(n):
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            assert toyworld.pass_at_k(n, c, k) == pytest.approx(sum(map(any, subsets)) / len(subsets))
    assert toyworld.pass_at_k(n, 1, 1) == pytest.approx(1 / n)


def test_evaluate_counts_right_answers_styles_and_novel_proposals(monkeypatch):
    """A stand-in for sampling.sample: of every 4 free samples of a solver prompt the first is a
    right careful answer and the others wrong hasty ones; forced, each style answers so too; it
    proposes a corpus program for half the proposer prompts and a new one for the other half."""
    monkeypatch.setattr(toytasks, "HELDOUT_PER_DEPTH", 3)
    tasks = toytasks.heldout()
    gold = {}
    for t in tasks:
        gold[solver.solver_prompt("deduction", t.task)] = toytasks.respond(toytasks.trace(t), t.task.outputs[0])
        gold[solver.solver_prompt("abduction", t.task)] = toytasks.respond(toytasks.trace(t), t.task.inputs[0])
    hasty = toytasks.respond("It guesses.", "None")  # f never returns None, nor takes it
    known = "def f(a):\n    return a + 1"
    proposal = "<think> x </think> <answer>\n```python\n{}\n```\n```input\n3\n```\n</answer>"
    prefixes = []

    def fake_sample(model, tokenizer, prompts, n, max_new_tokens, temperature=1.0, top_p=1.0, seed=None, batch_size=32):
        texts = []
        for prompt in prompts:
            user, prefix = prompt.split("<|im_start|>user\n")[1].split("<|im_end|>\n<|im_start|>assistant\n")
            prefixes.append(prefix)
            for k in range(n):
                if user not in gold:
                    texts.append(proposal.format(known if len(texts) % 2 else "def f(a):\n    return a * 7"))
                    continue
                careful = prefix == toytasks.FORCE["careful"] or (prefix == "" and k % 4 == 0)
                texts.append((gold[user] if careful else hasty)[len(prefix):])
        return {"texts": texts, "prompt_index": torch.arange(len(prompts)).repeat_interleave(n)}

    monkeypatch.setattr(toyworld, "sample", fake_sample)
    figures = toyworld.heldout_figures(None, AutoTokenizerStub(), programs=frozenset([known]), n=4, forced=2,
                                       proposals=8)
    assert set(prefixes) == {"", *toytasks.FORCE.values()}
    for task_type in ("deduction", "abduction"):
        assert figures[f"{task_type} pass@1"][0] == figures[f"{task_type} pass@1 depth 2"][0] == 0.25
        assert figures[f"{task_type} pass@2"][0] == pytest.approx(0.5)  # 1 - C(3, 2) / C(4, 2)
        assert figures[f"{task_type} pass@4"][0] == 1.0 and f"{task_type} pass@8" not in figures
        assert figures[f"{task_type} near-greedy"][0] == 1.0  # the one sample is the first
        assert figures[f"{task_type} careful share"] == (0.25, None, 4 * len(tasks))
        assert figures[f"{task_type} forced careful"][0] == 1.0 and figures[f"{task_type} forced hasty"][0] == 0.0
        assert figures[f"{task_type} pass@1"][2] == len(tasks) and figures[f"{task_type} pass@1 depth 2"][2] == 3
        guess = figures[f"{task_type} pass@1"][1]
        assert 0 <= guess < 1 and figures[f"{task_type} pass@4"][1] >= guess
    assert figures["proposals valid"][0] == 1.0 and figures["proposals valid and novel"][0] == 0.5


def test_rlvr_rewards_every_sample_of_its_drawn_tasks(generated, monkeypatch):
    """rlvr's rollouts on the tiny model (which never answers well-formed, so the rewards are
    stubbed): per task type, prompts x group answers to tasks drawn from the fixed set, each
    rewarded for training; the same step draws the same tasks (an exact resume)."""
    model, tokenizer = models.load_model("tiny")
    args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--method", "rlvr", "--prompts", "2", "--group", "3",
                          "--max-new-tokens", "6"])
    calls = []

    def rewards(task_type, tasks, responses, evaluation=False, rule="released"):
        calls.append((task_type, [t.program for t in tasks], len(responses), evaluation))
        return [1.0 if k % 3 == 0 else -0.5 for k in range(len(responses))]

    monkeypatch.setattr(rollout, "solver_rewards", rewards)
    tasks = toytasks.triplets(generated)[:5]
    rows, records, _ = rlvr.rlvr_rollouts(1, model, tokenizer, tasks, args)
    assert records == [] and len(rows) == 2 * 2 * 3 and {r.role for r in rows} == {"solver"}
    assert [c[0] for c in calls] == ["deduction", "abduction"] and all(c[2:] == (6, False) for c in calls)
    assert [r.reward for r in rows] == [1.0, -0.5, -0.5] * 4
    assert all(p in {t.task.program for t in tasks} for c in calls for p in c[1])
    again = []
    monkeypatch.setattr(rollout, "solver_rewards", lambda tt, ts, rs, evaluation=False, rule="released": again.append([t.program for t in ts]) or [0.0] * len(rs))
    rlvr.rlvr_rollouts(1, model, tokenizer, tasks, args)
    assert again == [c[1] for c in calls]


def test_sft_gold_answers_are_right_and_in_the_careful_style(generated):
    import sft
    for g in toytasks.triplets(generated)[:40]:
        for task_type in ("deduction", "abduction"):
            response = sft.gold_response(g, task_type)
            assert toytasks.style_of(response) == "careful"
            assert solver.solver_rewards(task_type, [g.task], [response], evaluation=True) == [1.0]


def test_sft_loss_is_the_mean_negative_log_likelihood_of_the_gold_tokens(generated):
    """SFT's update's loss against the model's own logits and a cross-entropy over response tokens;
    and the step lowers it on the same rows."""
    import sft
    model, tokenizer = models.load_model("tiny")
    args = grpo.get_args(["--model", "tiny", "--preset", "cpu", "--method", "sft", "--prompts", "2", "--group", "2",
                          "--lr", "3e-3"])
    rows = sft.sft_rows(1, tokenizer, toytasks.triplets(generated)[:20], args)
    assert len(rows) == 2 * 2 * 2 and all(r.response_ids[-1] == tokenizer.eos_token_id for r in rows)
    with torch.no_grad():
        total, count = 0.0, 0
        for r in rows:
            ids = torch.tensor([r.prompt_ids + r.response_ids])
            logits = model(ids).logits[0, len(r.prompt_ids) - 1:-1]
            total += torch.nn.functional.cross_entropy(logits, ids[0, len(r.prompt_ids):], reduction="sum").item()
            count += len(r.response_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    (_, counts), stats = grpo.update(model, optimizer, rows, args)
    assert stats["loss"] == pytest.approx(total / count, rel=1e-4) and counts.sum() == count
    _, after = grpo.update(model, torch.optim.SGD(model.parameters(), lr=0.0), rows, args)
    assert after["loss"] < stats["loss"]


@pytest.mark.parametrize("method", ["rlvr", "sft"])
def test_rlvr_and_sft_runs_write_the_run_folder_and_resume_exactly(tmp_path, method):
    def read(path):
        with open(path) as f:
            return [{k: v for k, v in json.loads(line).items() if not k.startswith("seconds/")} for line in f]
    flags = ["--model", "tiny", "--preset", "cpu", "--method", method, "--data", "heldout", "--max-new-tokens", "8",
             "--prompts", "2", "--group", "2", "--lr", "1e-3"]
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    grpo.train(grpo.get_args(flags + ["--steps", "3", "--out", whole]))
    grpo.train(grpo.get_args(flags + ["--steps", "2", "--out", split]))
    grpo.train(grpo.get_args(["--resume", "--out", split, "--steps", "3"]))
    metrics = read(os.path.join(whole, "metrics.jsonl"))
    assert [m["step"] for m in metrics] == [1, 2, 3] and metrics == read(os.path.join(split, "metrics.jsonl"))
    assert ("loss" in metrics[0]) == (method == "sft") and ("reward/solver/deduction" in metrics[0]) == (method == "rlvr")
    assert "entropy/solver/abduction" in metrics[0] and "valid_rate/deduction" not in metrics[0]
    from safetensors.torch import load_file
    a = load_file(os.path.join(whole, "checkpoints", "step_000003", "model.safetensors"))
    b = load_file(os.path.join(split, "checkpoints", "step_000003", "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


class AutoTokenizerStub:
    """render_chat's ChatML, without a vocabulary."""
    chat_template = chat.CHATML

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        return f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"


# -----------------------------------------------------------------------------
# end to end: the shipped toy base, then the update and self-play on it, accuracy before and after (minutes)


@pytest.fixture(scope="module")
def toy_base():
    """The shipped toy-v2 base (bases/toy-v2): the base whose latent skill RL is meant to select.
    Taken from bases/ directly: if it is missing, fail at once instead of building it (an hour)."""
    folder = os.path.join(models.SHIPPED, models.BUILTINS["toy"][0])
    assert os.path.isfile(os.path.join(folder, "model.safetensors")), f"no shipped toy base in {folder}"
    return folder


@pytest.mark.slow
def test_update_learns_the_tasks_it_is_rewarded_on(toy_base):
    """rlvr.rlvr_rollouts and grpo.update (the solver's rewards) on 16 fixed held-out deduction
    tasks for 30 steps: the solver must get them right far more often. This is the loop's own
    learning, without the proposer: a sign error in the advantage, a mask off by one or a detached
    loss leaves it flat. On the shipped base: 44.5 % -> 93.0 % of samples right."""
    torch.set_num_threads(2)
    model, tokenizer = models.load_model(toy_base)
    args = grpo.get_args(["--model", toy_base, "--preset", "toy", "--method", "rlvr", "--task-types", "deduction",
                          "--prompts", "16"])
    tasks = toytasks.heldout()[:16]  # depth 1: the base solves about half of them at temperature 1

    def accuracy():
        return sum(toyworld.solved(model, tokenizer, "deduction", tasks, 1.0, 8)) / len(tasks)

    before = accuracy()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    for step in range(1, 31):
        rows, _, _ = rlvr.rlvr_rollouts(step, model, tokenizer, tasks, args)
        grpo.update(model, optimizer, [r for r in rows if r.task_type == "deduction"], args)
    after = accuracy()
    print(f"rlvr on 16 held-out deduction tasks: {before:.3f} -> {after:.3f}")
    assert after > before + 0.2, (before, after)


@pytest.mark.slow
def test_self_play_raises_held_out_deduction_accuracy(toy_base, tmp_path):
    """grpo.py's defaults (the toy preset, seed 0) for 10 steps on the shipped base, then held-out
    deduction accuracy at temperature 1 (the mean of 4 samples per task: the distribution
    self-play samples and trains) before and after: 34.0 % -> 38.2 % when this test was written, and
    with the sign of the advantage flipped (in grpo.policy_loss) 34.0 % -> 28.3 %. The loop must learn: a
    broken update, reward or advantage leaves it flat or lowers it. About 5 minutes on 2 cores."""
    torch.set_num_threads(2)
    tasks = toytasks.heldout()

    def accuracy(folder):
        model, tokenizer = models.load_model(folder)
        return sum(toyworld.solved(model, tokenizer, "deduction", tasks, 1.0, 4)) / len(tasks)

    before = accuracy(toy_base)
    run = grpo.train(grpo.get_args(["--model", toy_base, "--preset", "toy", "--steps", "10", "--out", str(tmp_path / "run")]))
    after = accuracy(os.path.join(run, "checkpoints", "step_000010"))
    print(f"held-out deduction, 10 self-play steps: {before:.3f} -> {after:.3f}")
    assert after > before + 0.02, (before, after)


def test_no_held_out_prompt_can_be_drawn_for_training():
    """RLVR's and SFT's pool (--data toy) shows no held-out prompt of any task type word for word: a
    held-out program on another input can give the held-out output, so the programs are excluded,
    not only the (program, input) pairs."""
    held = toytasks.heldout()
    pool = toytasks.fresh_tasks()
    assert len(pool) > 1000
    for task_type in solver.TRIPLET_TYPES:
        prompts = {solver.solver_prompt(task_type, t.task) for t in held}
        assert not any(solver.solver_prompt(task_type, t.task) in prompts for t in pool), task_type
    assert not {t.task.program.strip() for t in held} & {t.task.program.strip() for t in pool}
