"""solver.py: answer extraction, the induction split, prompts, and solver rewards via the executor."""

import random
import re

import pytest

import executor
import solver
from proposer import Task
from solver import extract_answer, gold_imports, induction_split, last_answer, solver_answer, solver_prompt, solver_rewards, well_formed


@pytest.fixture(scope="module", autouse=True)
def close_executor_pool():
    yield
    executor.close_pool()


# -----------------------------------------------------------------------------
# extract_answer

FENCED_PROGRAM = "<think>sort it</think>\n<answer>\n```python\ndef f(a):\n    return sorted(a)\n```\n</answer>"

ANSWERS = [
    ("<think>x</think><answer>42</answer>", "42"),
    ("\n  <think> a\nb </think>\n\n<answer>  'héllo ✓ 世界'  </answer>\n", "'héllo ✓ 世界'"),
    ("<think>ünïcödé 🤔 reasoning</think> <answer>[1, 2]</answer>", "[1, 2]"),
    (FENCED_PROGRAM, "def f(a):\n    return sorted(a)"),
    ("<think>t</think><answer>```output\n5\n```</answer>", "5"),
    ("<think>t</think><answer>```\n'x'\n```</answer>", "'x'"),
    # two fenced blocks are not one block: the answer stays as written
    ("<think>t</think><answer>```input\n1\n```\n```input\n2\n```</answer>", "```input\n1\n```\n```input\n2\n```"),
    ("", None),                                                     # empty
    ("   \n ", None),                                               # blank
    ("<think>I will now compute the out", None),                    # truncated in think
    ("<think>t</think><answer>42", None),                           # truncated in answer
    ("<think>t</think><answer>42</answ", None),                     # truncated closing tag
    ("The answer is 42.", None),                                    # tag-less
    ("<answer>42</answer>", None),                                  # no think
    ("<think>t</think>", None),                                     # no answer
    ("<think>t</think><answer>1</answer><answer>2</answer>", None),  # two answers
    ("<think>a</think><think>b</think><answer>1</answer>", None),   # two thinks
    ("<think>a<think>b</think></think><answer>1</answer>", None),   # nested think
    ("<think>t</think><answer>1<answer>2</answer></answer>", None),  # nested answer
    ("<think>t<answer>1</answer></think><answer>2</answer>", None),  # answer inside think
    ("<answer>1</answer><think>t</think>", None),                   # wrong order
    ("Sure! <think>t</think><answer>1</answer>", None),              # text before think
    ("<think>t</think> so: <answer>1</answer>", None),              # text between
    ("<think>t</think><answer>1</answer> Hope this helps!", None),   # text after answer
    ("<think>t</think><answer>   </answer>", None),                 # empty answer
    ("<think>t</think><answer>```python\n```</answer>", None),       # empty fenced answer
    ("<THINK>t</THINK><ANSWER>1</ANSWER>", None),                   # tags are lower case
]


@pytest.mark.parametrize("response,expected", ANSWERS)
def test_extract_answer_strict_table(response, expected):
    assert extract_answer(response, "strict") == expected


# AZR's released rule: a prefix <think> ... </think> <answer> ... </answer>, anything after, the last <answer>
RELEASED_ANSWERS = [
    ("<think>x</think><answer>42</answer>", "42"),
    ("<think>t</think><answer>42</answer> Hope this helps!", "42"),            # text after </answer>
    ("<think>t</think><answer>1</answer><answer>2</answer>", "2"),             # the last answer
    ("<think>t</think> <answer>1</answer> more <answer>2", "2"),              # ... even unclosed
    ("\n <think>t</think>\n<answer> 1 </answer>", "1"),                        # leading whitespace
    ("<think>a</think><think>b</think><answer>1</answer>", "1"),               # two thinks
    ("<think>t</think><answer>   </answer>", ""),                            # empty: read, then wrong
    (FENCED_PROGRAM, "```python\ndef f(a):\n    return sorted(a)\n```"),      # fences kept for solver_answer
    ("<think>t</think><answer>42", None),                                    # truncated in answer
    ("The answer is 42.", None),
    ("<answer>42</answer>", None),                                           # no think
    ("Sure! <think>t</think><answer>1</answer>", None),                      # text before think
    ("<think>t</think> so: <answer>1</answer>", None),                       # text between
    ("<THINK>t</THINK><ANSWER>1</ANSWER>", None),
]


@pytest.mark.parametrize("response,expected", RELEASED_ANSWERS)
def test_extract_answer_released_table(response, expected):
    assert extract_answer(response) == extract_answer(response, "released") == expected


def reference_released(response):
    """AZR's released rule written with string operations: some </think> after a leading <think>
    is followed by whitespace, <answer>, and later </answer>; the answer follows the last <answer>."""
    s = response.strip()
    if not s.startswith("<think>"):
        return None
    ok = False
    at = s.find("</think>", len("<think>"))
    while at != -1 and not ok:
        rest = s[at + len("</think>"):].lstrip()
        ok = rest.startswith("<answer>") and "</answer>" in rest[len("<answer>"):]
        at = s.find("</think>", at + 1)
    if not ok:
        return None
    tail = response[response.rindex("<answer>") + len("<answer>"):]
    return (tail[:tail.index("</answer>")] if "</answer>" in tail else tail).strip()


def test_released_rule_matches_reference_on_random_text():
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "```", "\n", " ", "\t", "x", "42", "'é'", "<", "/"]
    rng = random.Random(1)
    outcomes = set()
    for _ in range(5000):
        parts = ["<think>", "t", "</think>", " ", "<answer>", "1", "</answer>"] if rng.random() < 0.5 else []
        for _ in range(rng.randrange(4) if parts else rng.randrange(12)):
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(pieces))
        text = "".join(parts)
        got = extract_answer(text)
        assert got == reference_released(text), text
        assert well_formed(text) == (got is not None)
        outcomes.add(got is None)
    assert outcomes == {True, False}


def test_last_answer_needs_no_format():
    assert last_answer("no think at all <answer> 7 </answer> trailing") == "7"
    assert last_answer("<answer>1</answer><answer>2") == "2"
    assert last_answer("nothing here") is None


@pytest.mark.parametrize("task_type,answer,expected", [
    ("deduction", "```output\n[1, 2]\n```", "[1, 2]"),
    ("deduction", "```output\n1\n```\n```output\n2\n```", "2"),        # the last block
    ("deduction", "So the output is 42.", "42"),
    ("deduction", "<output>5</output>", "5"),
    ("deduction", "# Output: 'x'", "'x'"),
    ("deduction", " 42 ", " 42 "),                                       # no pattern: the whole answer
    ("abduction", "```input\n'a', 2\n```", "'a', 2"),
    ("abduction", "The input is 3", "3"),
    ("abduction", "```output\n3\n```", "```output\n3\n```"),            # an output block is no input
    ("induction", "```python\ndef f(a):\n    return a\n```", "def f(a):\n    return a"),
    ("induction", "```\ndef g(a): pass\n```\n```python\ndef f(a):\n    return 1\n```", "def f(a):\n    return 1"),
    ("induction", "def f(a):\n    return a", None),                     # unfenced: nothing to read
])
def test_solver_answer_reads_as_released(task_type, answer, expected):
    assert solver_answer(task_type, answer) == expected
    assert solver_answer(task_type, answer, "strict") == answer


def test_gold_imports():
    assert gold_imports("import math\nfrom itertools import accumulate as acc\ndef f(a):\n    import re\n    return a") \
        == "import math\nfrom itertools import accumulate as acc\n"
    assert gold_imports("def f(a):\n    return a") == "" and gold_imports("def f(:") == ""


def reference_extract(response):
    """The documented rule, written with plain string operations instead of regular expressions."""
    tags = ["<think>", "</think>", "<answer>", "</answer>"]
    if any(response.count(t) != 1 for t in tags):
        return None
    at = [response.index(t) for t in tags]
    if at != sorted(at):
        return None
    ends = [a + len(t) for a, t in zip(at, tags)]
    outside = response[:at[0]] + response[ends[1]:at[2]] + response[ends[3]:]
    if outside.strip():
        return None
    answer = response[ends[2]:at[3]].strip()
    lines = answer.split("\n")
    if (len(lines) >= 2 and lines[0].startswith("```") and answer.endswith("```")
            and all(c.isalnum() or c in "_+-" for c in lines[0][3:].rstrip(" \t"))):
        inner = answer[len(lines[0]) + 1:-3]
        if "```" not in inner:
            answer = inner.strip()
    return answer or None


def test_strict_rule_matches_reference_on_random_text():
    """Random strings built from tags, fences, whitespace and unicode: the regex rule agrees with
    the string-operation rule everywhere, and never raises."""
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "```", "```python\n", "\n", " ", "\t",
              "x", "42", "'é'", "✓", "<", ">", "/", "think", "answer"]
    rng = random.Random(0)
    well_formed = 0
    for _ in range(5000):
        if rng.random() < 0.5:  # near-valid: a valid skeleton with a few random edits
            parts = ["<think>", "t", "</think>", " ", "<answer>", "1", "</answer>"]
            for _ in range(rng.randrange(3)):
                parts.insert(rng.randrange(len(parts) + 1), rng.choice(pieces))
        else:
            parts = [rng.choice(pieces) for _ in range(rng.randrange(12))]
        text = "".join(parts)
        got = extract_answer(text, "strict")
        assert got == reference_extract(text), text
        well_formed += got is not None
    assert 500 < well_formed < 4500  # both outcomes were exercised


# -----------------------------------------------------------------------------
# Prompts

def test_induction_split_is_first_half_shown():
    for n in range(2, 9):
        task = Task("induction", "def f(a):\n    return a", [str(i) for i in range(n)], [repr(i) for i in range(n)])
        shown, hidden = induction_split(task)
        assert len(shown) == n // 2 and len(hidden) == n - n // 2 >= len(shown) >= 1
        assert shown + hidden == [(str(i), repr(i)) for i in range(n)]


TRIPLET = Task("deduction", "def f(a):\n    return a * 2", ["21"], ["42"])


def test_deduction_prompt_shows_program_and_input_not_output():
    text = solver_prompt("deduction", TRIPLET)
    assert TRIPLET.program in text and "```input\n21\n```" in text
    assert "42" not in text and solver.RESPONSE_FORMAT in text


def test_abduction_prompt_shows_program_and_output_not_input():
    text = solver_prompt("abduction", TRIPLET)
    assert TRIPLET.program in text and "```output\n42\n```" in text
    assert "21" not in text and solver.RESPONSE_FORMAT in text


def test_induction_prompt_shows_message_and_shown_pairs_only():
    task = Task("induction", "def f(a):\n    return a[::-1]", ["'abc'", "'xy'", "'hello'", "'q'"],
                ["'cba'", "'yx'", "'olleh'", "'q'"], message="Reverses a string.")
    text = solver_prompt("induction", task)
    assert "Reverses a string." in text and "a[::-1]" not in text
    assert "'abc'" in text and "'cba'" in text and "'yx'" in text
    assert "hello" not in text and "olleh" not in text


# One program per kind of value the rules could name as an output
OUTPUT_EXAMPLES = {"None": "None", "bool": "True", "int": "-3", "float": "0.5", "complex": "1+2j", "str": "'s'",
                   "bytes": "b'b'", "list": "[1]", "tuple": "(1,)", "dict": "{1: 2}", "set": "{1, 2}",
                   "frozenset": "frozenset({1, 2})", "inf": "float('inf')", "nan": "float('nan')"}


def test_program_rules_allow_exactly_the_outputs_validate_accepts():
    # the rule on outputs lists what is allowed, then "but not" what is refused
    rule = next(line for line in solver.PROGRAM_RULES.splitlines() if "repr" in line)
    allowed, _, refused = rule.partition("but not")
    verdicts = executor.validate([(f"def f(a):\n    return {value}", "0") for value in OUTPUT_EXAMPLES.values()])
    for name, verdict in zip(OUTPUT_EXAMPLES, verdicts):
        named = [re.search(rf"\b{name}\b", part) is not None for part in (allowed, refused)]
        assert named == [verdict.ok, not verdict.ok], (name, verdict.reason)
    assert f"{executor.MAX_OUTPUT_CHARS} characters" in rule and f"{executor.MAX_NESTING} deep" in rule


def test_unknown_task_type_raises():
    with pytest.raises(ValueError):
        solver_prompt("error", TRIPLET)


# -----------------------------------------------------------------------------
# Rewards (these run the executor)

def respond(answer):
    return f"<think>Let me work it out.</think>\n<answer>{answer}</answer>"


def test_deduction_rewards():
    responses = [respond("42"), respond("```output\n42\n```"), respond("41"), respond("42.0"),
                 respond("'42'"), respond("forty-two"), "42", "<think>t</think><answer>42"]
    tasks = [TRIPLET] * len(responses)
    assert solver_rewards("deduction", tasks, responses, rule="strict") == [1, 1, -0.5, -0.5, -0.5, -0.5, -1, -1]
    assert solver_rewards("deduction", tasks, responses, evaluation=True, rule="strict") == [1, 1, 0, 0, 0, 0, 0, 0]
    assert solver_rewards("deduction", tasks, responses) == [1, 1, -0.5, -0.5, -0.5, -0.5, -1, -1]
    # the solve rate as released reads the last <answer> with no format check: the truncated one counts
    assert solver_rewards("deduction", tasks, responses, evaluation=True) == [1, 1, 0, 0, 0, 0, 0, 1]


def test_released_rule_accepts_text_after_the_answer_and_reads_the_last():
    tail = respond("42") + " Hope this helps! <answer>41</answer>"
    responses = [respond("42") + "\nDone.", tail, respond("The output is 42.")]
    assert solver_rewards("deduction", [TRIPLET] * 3, responses) == [1, -0.5, 1]
    assert solver_rewards("deduction", [TRIPLET] * 3, responses, rule="strict") == [-1, -1, -0.5]


def test_abduction_rewards_accept_any_input_with_the_gold_output():
    task = Task("abduction", "def f(a, b):\n    return (a + b) % 10", ["1, 2"], ["3"])
    responses = [respond("1, 2"), respond("13, 0"), respond("4, 4"), respond("'x', 1"),
                 respond("3"), respond("import os"), "", "<think>t</think><answer>1, 2</answer><answer>9, 4</answer>"]
    tasks = [task] * len(responses)
    assert solver_rewards("abduction", tasks, responses, rule="strict") == [1, 1, -0.5, -0.5, -0.5, -0.5, -1, -1]
    assert solver_rewards("abduction", tasks, responses, evaluation=True, rule="strict") == [1, 1, 0, 0, 0, 0, 0, 0]
    # released: the last of two answers (9, 4) is read, and it is right
    assert solver_rewards("abduction", tasks, responses) == [1, 1, -0.5, -0.5, -0.5, -0.5, -1, 1]
    assert solver_rewards("abduction", tasks, responses, evaluation=True) == [1, 1, 0, 0, 0, 0, 0, 1]


def test_induction_rewards_check_the_hidden_pairs():
    task = Task("induction", "def f(a):\n    return sorted(a)", ["[3, 1, 2]", "[2, 1]", "[5, 4]", "[9, 7, 8]"],
                ["[1, 2, 3]", "[1, 2]", "[4, 5]", "[7, 8, 9]"], message="Orders a list.")
    fits_shown_only = "def f(a):\n    return [1, 2, 3] if len(a) == 3 else [1, 2]"
    responses = [
        respond("```python\ndef f(xs):\n    return sorted(xs)\n```"),
        respond("def f(xs):\n    out = list(xs)\n    out.sort()\n    return out"),   # no fence
        respond(f"```python\n{fits_shown_only}\n```"),
        respond("```python\ndef f(a):\n    return tuple(sorted(a))\n```"),           # wrong type
        respond("```python\nimport os\ndef f(a):\n    return sorted(a)\n```"),        # banned
        respond("```python\ndef f(a)\n    return a\n```"),                             # syntax error
        respond("```python\ndef g(a):\n    return sorted(a)\n```"),                    # no f
        FENCED_PROGRAM.replace("</answer>", ""),                                        # truncated
    ]
    tasks = [task] * len(responses)
    assert solver_rewards("induction", tasks, responses, rule="strict") == [1, 1, -0.5, -0.5, -0.5, -0.5, -0.5, -1]
    assert solver_rewards("induction", tasks, responses, evaluation=True, rule="strict") == [1, 1, 0, 0, 0, 0, 0, 0]
    # released: an unfenced program is a format error (-1); the truncated one counts for the solve rate
    assert solver_rewards("induction", tasks, responses) == [1, -1, -0.5, -0.5, -0.5, -0.5, -0.5, -1]
    assert solver_rewards("induction", tasks, responses, evaluation=True) == [1, 0, 0, 0, 0, 0, 0, 1]


def test_induction_answer_runs_with_the_gold_programs_imports():
    task = Task("induction", "import math\ndef f(a):\n    return math.gcd(a, 12)", ["8", "9", "10", "18"],
                ["4", "3", "2", "6"], message="gcd with 12")
    uses_math = respond("```python\ndef f(a):\n    return math.gcd(a, 12)\n```")
    assert solver_rewards("induction", [task], [uses_math]) == [1]
    no_import = Task("induction", "def f(a):\n    return a", ["1", "2"], ["1", "2"], message="m")
    assert solver_rewards("induction", [no_import], [respond("```python\ndef f(a):\n    return math.floor(a)\n```")]) == [-0.5]


@pytest.mark.parametrize("task_type", ["deduction", "abduction", "induction"])
def test_empty_batch(task_type):
    assert solver_rewards(task_type, [], []) == []


@pytest.mark.parametrize("task_type,name", [("abduction", "check_abduction"), ("induction", "check_induction")])
def test_one_executor_call_per_batch(monkeypatch, task_type, name):
    calls = []
    real = getattr(executor, name)
    monkeypatch.setattr(executor, name, lambda jobs: calls.append(len(jobs)) or real(jobs))
    task = Task(task_type, "def f(a):\n    return a", ["1", "2"], ["1", "2"], message="m")
    answer = "1" if task_type == "abduction" else "```python\ndef f(a):\n    return a\n```"
    responses = [respond(answer)] * 5 + ["no tags"] * 3
    assert solver_rewards(task_type, [task] * 8, responses) == [1] * 5 + [-1] * 3
    assert calls == [5]  # one call, holding only the answers that parsed
