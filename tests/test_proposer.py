"""proposer.py: proposal parsing, proposer rewards, buffers, reference sampling, and make_tasks
(which runs the executor)."""

import math
import os
import random
from collections import Counter

import pytest

import executor
import proposer
from proposer import (DUPLICATE, IDENTITY, NO_PARSE, PROPOSER_REWARDS, Task, add_to_buffer, load_buffer,
                      make_tasks, parse_proposal, proposer_reward, sample_references, save_buffer,
                      seed_induction, seed_triplets, task_key)


@pytest.fixture(scope="module", autouse=True)
def close_executor_pool():
    yield
    executor.close_pool()


def respond(answer, think="Plan: something new."):
    return f"<think>{think}</think>\n<answer>\n{answer}\n</answer>"


def block(lang, text):
    return f"```{lang}\n{text}\n```"


DOUBLE = "def f(a):\n    return a * 2"

# -----------------------------------------------------------------------------
# Parsing

TRIPLET_PROPOSALS = [
    (respond(block("python", DOUBLE) + "\n" + block("input", "21")), {"program": DOUBLE, "input": "21"}),
    # unicode input; a block in another language (output) is ignored
    (respond(block("python", DOUBLE) + "\n" + block("input", "'héllo ✓ 世界'") + "\n" + block("output", "x")),
     {"program": DOUBLE, "input": "'héllo ✓ 世界'"}),
    # prose between blocks and a trailing space after the language tag are fine
    (respond("Here:\n```python \n" + DOUBLE + "\n```\nand\n" + block("input", "1, [2, 3]")),
     {"program": DOUBLE, "input": "1, [2, 3]"}),
    ("", None),                                                                  # empty
    (respond(block("python", DOUBLE) + "\n```input\n21"), None),               # truncated block
    (respond(block("python", DOUBLE)).replace("</answer>", ""), None),         # truncated answer
    (block("python", DOUBLE) + "\n" + block("input", "21"), None),             # tag-less
    ("<think>t</think>\n" + block("python", DOUBLE) + "\n" + block("input", "21"), None),  # blocks outside <answer>
    (respond(block("python", DOUBLE)), None),                                   # no input
    (respond(block("input", "21")), None),                                      # no program
    (respond(block("python", DOUBLE) + block("python", DOUBLE) + block("input", "21")), None),  # two programs
    (respond(block("python", DOUBLE) + block("input", "1") + block("input", "2")), None),       # two inputs
    (respond(block("python", DOUBLE) + block("input", "  ")), None),            # blank input
    (respond(block("python", DOUBLE) + block("input", "21")) + respond(block("input", "3")), None),  # two answers
    (respond(block("python", DOUBLE) + block("input", "21"), think="a<think>b</think>"), None),     # nested think
]

INDUCTION_PROPOSALS = [
    (respond(block("input", "'ab'") + block("input", "'✓é'") + block("message", "Doubles a string.")),
     {"inputs": ["'ab'", "'✓é'"], "message": "Doubles a string."}),
    # a python block is ignored: the program is the buffer's
    (respond(block("python", DOUBLE) + block("input", "1") + block("message", "m")), {"inputs": ["1"], "message": "m"}),
    (respond(block("input", "1") + block("input", "2")), None),                 # no message
    (respond(block("message", "m")), None),                                     # no input
    (respond(block("input", "1") + block("message", "a") + block("message", "b")), None),  # two messages
    (respond(block("input", "1") + block("message", " ")), None),               # blank message
    (block("input", "1") + block("message", "m"), None),                        # tag-less
    ("<think>only thinking, then the tokens ran o", None),                      # truncated
]


@pytest.mark.parametrize("response,expected", TRIPLET_PROPOSALS)
@pytest.mark.parametrize("task_type", ["deduction", "abduction"])
def test_parse_triplet_proposal_strict(task_type, response, expected):
    assert parse_proposal(task_type, response, "strict") == expected


@pytest.mark.parametrize("response,expected", INDUCTION_PROPOSALS)
def test_parse_induction_proposal_strict(response, expected):
    assert parse_proposal("induction", response, "strict") == expected


@pytest.mark.parametrize("task_type,response", [("deduction", r) for r, e in TRIPLET_PROPOSALS if e is None]
                         + [("induction", r) for r, e in INDUCTION_PROPOSALS if e is None])
def test_unparsed_proposal_gets_the_format_penalty_strict(task_type, response):
    task, = make_tasks(task_type, [response], step=1, buffer=[], programs=[DOUBLE], num_inputs=2, rule="strict")
    assert not task.valid and task.reason == NO_PARSE
    assert all(proposer_reward(task, kind) == -1 for kind in PROPOSER_REWARDS)


# AZR's released parsers: the text after the last <answer>, no format check, the first code and input block
TWO_PROGRAMS = "def f(a):\n    return a + 1"
RELEASED_PROPOSALS = [
    (respond(block("python", DOUBLE) + "\n" + block("input", "21")), {"program": DOUBLE, "input": "21"}, True),
    # text after </answer> is allowed, and the format still passes
    (respond(block("python", DOUBLE) + block("input", "21")) + "\nI hope this helps.", {"program": DOUBLE, "input": "21"}, True),
    # blocks read from an answer that fails the format (no think): parsed, but not formatted
    ("<answer>" + block("python", DOUBLE) + block("input", "21") + "</answer>", {"program": DOUBLE, "input": "21"}, False),
    # the first program and the first input are taken
    (respond(block("python", DOUBLE) + block("python", TWO_PROGRAMS) + block("input", "1") + block("input", "2")),
     {"program": DOUBLE, "input": "1"}, True),
    (respond("```\n" + DOUBLE + "\n```\n# Input: 5"), {"program": DOUBLE, "input": "5"}, True),   # bare fence, input line
    # unclosed final answer: read to the end
    (respond(block("python", TWO_PROGRAMS)) + "<answer>" + block("python", DOUBLE) + block("input", "3"),
     {"program": DOUBLE, "input": "3"}, True),
    (respond(block("input", "21") + block("python", DOUBLE)), None, True),     # the first block holds no def
    (respond(block("python", DOUBLE)), None, True),                            # no input
    (block("python", DOUBLE) + block("input", "21"), None, False),             # no <answer>
]


@pytest.mark.parametrize("response,expected,formatted", RELEASED_PROPOSALS)
def test_parse_triplet_proposal_released(response, expected, formatted):
    assert parse_proposal("deduction", response) == parse_proposal("abduction", response, "released") == expected
    task, = make_tasks("deduction", [response], step=1, buffer=[])
    assert task.formatted == formatted and (task.reason == NO_PARSE) == (expected is None)


def test_parse_induction_proposal_released_keeps_the_last_inputs():
    five = "".join(block("input", str(i)) for i in range(5))
    assert parse_proposal("induction", respond(five + block("message", "m")), num_inputs=3) == \
        {"inputs": ["2", "3", "4"], "message": "m"}
    assert parse_proposal("induction", respond(five + "<message> tagged </message>"), num_inputs=5)["message"] == "tagged"
    assert parse_proposal("induction", respond(five + block("message", "m")), num_inputs=6) is None  # too few
    assert parse_proposal("induction", respond(five), num_inputs=2) is None                          # no message


def test_valid_misformatted_proposal_joins_the_buffer_and_gets_the_format_penalty():
    """AZR as released keeps a valid program whose response failed the format check, and pays -1."""
    response = "Let me see.<answer>" + block("python", DOUBLE) + block("input", "21") + "</answer>"
    task, = make_tasks("deduction", [response], step=2, buffer=[])
    assert task.valid and not task.formatted and task.outputs == ["42"]
    task.solve_rate = 0.5
    assert all(proposer_reward(task, kind, levels) == -1 for kind in PROPOSER_REWARDS for levels in ("released", "paper"))
    buffer = []
    assert add_to_buffer(buffer, [task]) == 1
    strict, = make_tasks("deduction", [response], step=2, buffer=[], rule="strict")
    assert not strict.valid and strict.reason == NO_PARSE


def test_parse_proposal_never_raises_on_random_text():
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "```", "```python\n", "```input\n",
              "```message\n", "\n", " ", "def f(a):", "1", "'é✓'", "`"]
    rng = random.Random(0)
    parsed = 0
    for _ in range(3000):
        parts = ["<think>t</think>", "<answer>", "```python\nx\n```", "```input\n1\n```", "```message\nm\n```", "</answer>"]
        for _ in range(rng.randrange(4)):
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(pieces))
        text = "".join(parts)
        for task_type in ("deduction", "abduction", "induction"):
            result = parse_proposal(task_type, text)
            assert result is None or isinstance(result, dict)
            parsed += result is not None
    assert parsed > 0


def test_prompt_example_format_parses():
    """The answer format each proposer prompt shows is one the parser accepts."""
    for task_type, text in [("deduction", proposer.proposal_prompt("deduction", seed_triplets())),
                            ("induction", proposer.induction_proposal_prompt(IDENTITY, 2))]:
        example = text[text.rindex("<answer>"):]
        assert parse_proposal(task_type, "<think>plan</think>\n" + example.strip()) is not None


def test_proposal_prompts_show_references_and_counts():
    refs = [Task("deduction", DOUBLE, ["21"], ["42"]), seed_triplets()[0]]
    text = proposer.proposal_prompt("abduction", refs)
    assert DOUBLE in text and "```input\n21\n```" in text and "```output\n42\n```" in text
    assert "Reference 2:" in text and "Reference 3:" not in text and "'Hello world'" in text
    text = proposer.induction_proposal_prompt(DOUBLE, 7)
    assert "7 blocks" in text and DOUBLE in text


# -----------------------------------------------------------------------------
# Rewards: hand-computed values, and the sharpening reward against a binomial sum

RATES = [0, 1 / 8, 0.25, 0.5, 0.75, 7 / 8, 1]


def test_learnability_reward_values():
    assert [PROPOSER_REWARDS["learnability"](r) for r in RATES] == [0, 0.875, 0.75, 0.5, 0.25, 0.125, 0]


def test_peaked_reward_values():
    assert [PROPOSER_REWARDS["peaked"](r) for r in RATES] == [0, 0.25, 0.5, 1, 0.5, 0.25, 0]


def test_sharpening_reward_against_binomial_pass_at_k():
    k = proposer.SHARPEN_K

    def gap(p):  # pass@k as P(at least one success in k draws), summed term by term
        pass_k = sum(math.comb(k, j) * p ** j * (1 - p) ** (k - j) for j in range(1, k + 1))
        return pass_k - p
    grid = [i / 100_000 for i in range(100_001)]
    peak = max(grid, key=gap)
    assert abs(peak - proposer.SHARPEN_PEAK) < 1e-4 and abs(peak - 0.2570) < 1e-3
    for r in RATES + [0.1, 0.3, 0.9]:
        assert abs(PROPOSER_REWARDS["sharpening"](r) - gap(r) / gap(peak)) < 1e-9
    assert PROPOSER_REWARDS["sharpening"](0) == 0 and PROPOSER_REWARDS["sharpening"](1) == 0
    assert max(PROPOSER_REWARDS["sharpening"](p) for p in grid) == pytest.approx(1, abs=1e-9)
    # by hand at k = 8: p* = 1 - 8^(-1/7) = 0.25700, peak gap 1 - (1 - p*)^8 - p* = 0.65012;
    # 1 - (7/8)^8 - 1/8 = 0.53139 and 1 - 0.75^8 - 0.25 = 0.64989
    assert PROPOSER_REWARDS["sharpening"](1 / 8) == pytest.approx(0.53139 / 0.65012, abs=1e-4)
    assert PROPOSER_REWARDS["sharpening"](0.25) == pytest.approx(0.64989 / 0.65012, abs=1e-4)


def test_proposer_reward_levels_as_released():
    """AZR's released reward manager: unparsed or invalid -1, solve rate 0 or 1 -0.5, else r."""
    unparsed = Task("deduction", "", [], valid=False, reason=NO_PARSE)
    invalid = Task("deduction", DOUBLE, ["'x', 2"], valid=False, reason="TypeError: ...")
    duplicate = Task("deduction", IDENTITY, ["'Hello world'"], valid=False, reason=DUPLICATE)
    for kind, reward in PROPOSER_REWARDS.items():
        assert proposer_reward(unparsed, kind) == -1
        assert proposer_reward(invalid, kind) == -1 and proposer_reward(duplicate, kind) == -1
        for r in RATES:
            valid = Task("deduction", DOUBLE, ["21"], ["42"], solve_rate=r)
            assert proposer_reward(valid, kind) == (reward(r) if 0 < r < 1 else -0.5)


def test_proposer_reward_levels_as_the_paper_writes_them():
    unparsed = Task("deduction", "", [], valid=False, reason=NO_PARSE)
    invalid = Task("deduction", DOUBLE, ["'x', 2"], valid=False, reason="TypeError: ...")
    duplicate = Task("deduction", IDENTITY, ["'Hello world'"], valid=False, reason=DUPLICATE)
    for kind, reward in PROPOSER_REWARDS.items():
        assert proposer_reward(unparsed, kind, "paper") == -1
        assert proposer_reward(invalid, kind, "paper") == -0.5 and proposer_reward(duplicate, kind, "paper") == -0.5
        for r in RATES:
            valid = Task("deduction", DOUBLE, ["21"], ["42"], solve_rate=r)
            assert proposer_reward(valid, kind, "paper") == reward(r)


# -----------------------------------------------------------------------------
# Buffers

def test_seeds_are_the_identity_on_hello_world():
    triplet, induction = seed_triplets()[0], seed_induction()[0]
    assert triplet.program == induction.program == IDENTITY
    assert triplet.inputs == ["'Hello world'"] and induction.inputs[0] == "'Hello world'"
    assert len(induction.inputs) >= 2 and induction.message  # one pair shown, one hidden
    # the stored outputs are what the executor computes
    for task in (triplet, induction):
        verdicts = executor.validate([(task.program, i) for i in task.inputs])
        assert [v.output for v in verdicts] == task.outputs


def test_buffer_keeps_repeats_unless_deduplicating():
    """AZR's training steps append every valid program, repeats included; its seeding deduplicates."""
    buffer = seed_triplets()
    again = Task("deduction", IDENTITY, ["'Hello world'"], ["'Hello world'"], step=3)
    assert add_to_buffer(buffer, [again, again]) == 2 and len(buffer) == 3
    assert add_to_buffer(buffer, [again], dedupe=True) == 0 and len(buffer) == 3


def test_buffer_dedup_is_by_program_and_input():
    buffer = seed_triplets()
    same_value = Task("deduction", IDENTITY + "\n", ["'Hello world' "], ["'Hello world'"], step=3)
    new_input = Task("abduction", IDENTITY, ["[1,2]"], ["[1, 2]"])
    same_spelled_differently = Task("deduction", IDENTITY, ["[1, 2]"], ["[1, 2]"])
    new_program = Task("deduction", DOUBLE, ["'Hello world'"], ["'Hello worldHello world'"])
    invalid = Task("deduction", "def g(): pass", ["1"], valid=False, reason="defines no top-level function f")
    added = add_to_buffer(buffer, [same_value, new_input, same_spelled_differently, new_program, invalid], dedupe=True)
    assert added == 2 and buffer == seed_triplets() + [new_input, new_program]
    assert task_key(new_input) == task_key(same_spelled_differently)
    assert add_to_buffer(buffer, [new_program], dedupe=True) == 0


def test_induction_buffer_dedup_uses_all_inputs():
    buffer = seed_induction()
    seed = buffer[0]
    more = Task("induction", IDENTITY, seed.inputs + ["3"], seed.outputs + ["3"], message="x")
    same = Task("induction", IDENTITY, list(seed.inputs), list(seed.outputs), message="other words")
    assert add_to_buffer(buffer, [more, same], dedupe=True) == 1 and buffer == [seed, more]


def test_save_load_round_trip(tmp_path):
    buffer = seed_triplets() + [
        Task("abduction", "def f(s):\n    return s + '✓'", ["'é'"], ["'é✓'"], step=7, solve_rate=0.375),
        Task("induction", DOUBLE, ["1", "2"], ["2", "4"], message="Doubles — ünïcode", step=2, solve_rate=None)]
    path = str(tmp_path / "buffer.jsonl")
    save_buffer(path, buffer)
    assert load_buffer(path) == buffer
    assert os.listdir(tmp_path) == ["buffer.jsonl"]  # the temporary file was renamed away
    with open(path, encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 3  # one task per line
    save_buffer(path, buffer[:1])  # overwrite
    assert load_buffer(path) == buffer[:1]


def test_sample_references_without_replacement_and_uniform():
    buffer = [Task("deduction", f"def f(a):\n    return a + {i}", ["1"], [str(1 + i)]) for i in range(10)]
    rng = random.Random(0)
    counts = Counter()
    draws = 20_000
    for _ in range(draws):
        refs = sample_references(buffer, 3, rng)
        assert len(refs) == 3 and len({id(t) for t in refs}) == 3  # no task twice
        counts.update(t.program for t in refs)
    # each task is drawn with probability 3/10: expected 6000, binomial sd about 65
    assert len(counts) == 10 and all(abs(c - 6000) < 5 * 65 for c in counts.values())
    assert sorted(map(id, sample_references(buffer[:4], 6, rng))) == sorted(map(id, buffer[:4]))
    # the caller's rng decides everything: the same state gives the same draw
    a, b = random.Random(5), random.Random(5)
    assert sample_references(buffer, 6, a) == sample_references(buffer, 6, b)


# -----------------------------------------------------------------------------
# make_tasks (runs the executor)

def triplet_response(program, text):
    return respond(block("python", program) + "\n" + block("input", text))


@pytest.mark.parametrize("task_type", ["deduction", "abduction"])
def test_make_tasks_triplets(monkeypatch, task_type):
    calls = []
    monkeypatch.setattr(executor, "validate", lambda jobs, real=executor.validate: calls.append(len(jobs)) or real(jobs))
    responses = [
        triplet_response(DOUBLE, "21"),                                        # valid
        triplet_response(IDENTITY, "'Hello world'"),                           # the seed again
        triplet_response(IDENTITY, "'Hi'"),                                    # same program, new input
        triplet_response("import os\ndef f(a):\n    return os.getcwd()", "1"),  # banned module
        triplet_response(DOUBLE, "None"),                                      # raises TypeError
        triplet_response("def f(a):\n    return id(a)", "[1]"),                # not deterministic
        "def f(a): return a",                                                  # does not parse
        triplet_response(DOUBLE, "21"),                                        # the first one again
    ]
    tasks = make_tasks(task_type, responses, step=4, buffer=seed_triplets())
    assert calls == [7]  # one validate call, without the unparsed response
    # AZR's released code has no duplicate check: the seed again and the repeat are valid, paid in full
    assert [t.valid for t in tasks] == [True, True, True, False, False, False, False, True]
    assert all(t.type == task_type and t.step == 4 for t in tasks)
    assert tasks[0].inputs == ["21"] and tasks[0].outputs == ["42"] and tasks[0].reason == ""
    assert tasks[6].reason == NO_PARSE and tasks[2].outputs == ["'Hi'"]
    assert "os" in tasks[3].reason and "TypeError" in tasks[4].reason and "deterministic" in tasks[5].reason
    assert all(t.outputs == [] for t in tasks if not t.valid)
    assert [proposer_reward(t, "learnability") for t in tasks if not t.valid] == [-1, -1, -1, -1]


def test_make_tasks_dedupe_against_the_buffer_and_the_batch():
    responses = [triplet_response(DOUBLE, "21"), triplet_response(IDENTITY, "'Hello world'"),
                 triplet_response(DOUBLE, "21"), triplet_response(DOUBLE, "22")]
    tasks = make_tasks("deduction", responses, step=1, buffer=seed_triplets(), dedupe=True)
    assert [t.valid for t in tasks] == [True, False, False, True]
    assert tasks[1].reason == tasks[2].reason == DUPLICATE


@pytest.mark.parametrize("rule", ["released", "strict"])
def test_make_tasks_induction(monkeypatch, rule):
    """The number of inputs asked for (released: at least that many, the last kept), every one running."""
    calls = []
    monkeypatch.setattr(executor, "validate", lambda jobs, real=executor.validate: calls.append(len(jobs)) or real(jobs))
    message = block("message", "Doubles its argument.")
    responses = [
        respond(block("input", "3") + block("input", "[1, 2]") + block("input", "'ab'") + message),  # valid
        respond(block("input", "3") + block("input", "None") + block("input", "'ab'") + message),    # one fails
        respond(block("input", "3") + block("input", "'ab'") + message),                             # too few
        respond(block("input", "'Hello world'") + block("input", "[1, 2, 3]") + block("input", "4") + message),
        respond(block("input", "3")),                                                                # no message
        respond(block("input", "None") + block("input", "1") + block("input", "2") + block("input", "3") + message),
    ]
    programs = [DOUBLE, DOUBLE, DOUBLE, IDENTITY, DOUBLE, DOUBLE]
    tasks = make_tasks("induction", responses, step=9, buffer=seed_induction(), programs=programs, num_inputs=3, rule=rule)
    # every input of the proposals with the right count, in one call
    assert calls == [9] if rule == "strict" else [12]
    assert [t.valid for t in tasks] == [True, False, False, True, False, rule == "released"]
    assert tasks[0].inputs == ["3", "[1, 2]", "'ab'"] and tasks[0].outputs == ["6", "[1, 2, 1, 2]", "'abab'"]
    assert tasks[0].message == "Doubles its argument." and tasks[0].program == DOUBLE and tasks[0].step == 9
    assert "TypeError" in tasks[1].reason and tasks[1].inputs == ["3", "None", "'ab'"] and tasks[1].outputs == []
    assert tasks[2].reason == ("2 inputs given, 3 asked for" if rule == "strict" else NO_PARSE)
    assert tasks[4].reason == NO_PARSE and tasks[4].program == DOUBLE
    if rule == "released":  # 4 inputs given: the first (None, which would fail) is dropped
        assert tasks[5].inputs == ["1", "2", "3"] and tasks[5].outputs == ["2", "4", "6"]
    buffer = seed_induction()
    assert add_to_buffer(buffer, tasks[:5]) == 2 and buffer[1:] == [tasks[0], tasks[3]]
    with pytest.raises(ValueError):
        make_tasks("induction", responses, step=9, buffer=[], programs=programs)


def test_make_tasks_empty_batch():
    assert make_tasks("deduction", [], step=0, buffer=seed_triplets()) == []
    assert make_tasks("induction", [], step=0, buffer=seed_induction(), programs=[], num_inputs=4) == []
