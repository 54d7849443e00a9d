"""
The solver role of AZR self-play: prompts for the three task types, answer extraction, rewards.

AZR, arXiv 2505.03335, section 3.2. From a triplet (program p, input i, output o = p(i)) the solver gets
  deduction: p and i, and answers o (checked: gold o == the answered literal);
  abduction:  p and o, and answers an input (checked: p(answer) == gold o);
  induction:  a one-line message and half of the (input, output) pairs, and answers a program
              (checked: it maps every hidden input to its gold output).
Every response must have the form `<think> ... </think> <answer> ... </answer>` (the rule is in
extract_answer). This file also owns that format for the proposer role (proposer.py imports it).
Rewards come from executor.py, one batched executor call per task type and training step.
Nothing here depends on training, so evaluate.py reuses the prompts, extraction and rewards.
A task is a proposer.Task record; only its fields are used, so this file does not import it.

    python -m pytest tests/test_solver.py
"""

import re

import executor

TASK_TYPES = ("deduction", "abduction", "induction")  # AZR's three modes of reasoning

# The answer format, stated once for both roles (AZR section 3.1, the R1-style <think>/<answer>).
RESPONSE_FORMAT = (
    "First think step by step inside <think> </think>, then give your final answer inside "
    "<answer> </answer>, in exactly this form and with nothing after </answer>:\n"
    "<think> your reasoning </think>\n"
    "<answer> your answer </answer>"
)

DEDUCTION_PROMPT = """\
## Task: deduce the output of a Python function

Work out, without running it, the value that the function `f` below returns when it is called \
with the given input (the input is the argument list of the call f(...)).

```python
{program}
```

```input
{input}
```

{format}
Inside <answer>, write only the returned value as a Python literal, exactly as Python would \
print its repr: strings in quotes, a tuple in parentheses, a list in brackets. For example:
<answer> {{'age': 20, 'city': 'New York'}} </answer>
"""

ABDUCTION_PROMPT = """\
## Task: find an input of a Python function from its output

Find, without running it, an input for which the function `f` below returns the given output. \
Any input that produces this output is correct.

```python
{program}
```

```output
{output}
```

{format}
Inside <answer>, write only the input as the argument list of the call f(...): arguments \
separated by commas, strings in quotes. For example, for f(name, info):
<answer> 'John', {{'age': 20, 'city': 'New York'}} </answer>
"""

INDUCTION_PROMPT = """\
## Task: deduce a Python function from examples

A hidden Python function `f` produced the (input, output) pairs below; its author left a \
message about it. Write a function `f` that gives the same output as the hidden one on these \
inputs and on further hidden inputs of the same kind. Each input is the argument list of a call \
f(...).

Message: {message}

{pairs}

The function must follow these rules:
{rules}

{format}
Inside <answer>, write only your function in a ```python block. For example:
<answer>
```python
def f(a):
    return a
```
</answer>
"""

# What a valid program is (executor.check_program and executor.validate), told to both roles. The
# outputs named are those whose repr executor.parse_literal reads back as the same value: the only
# outputs an answer can ever match.
PROGRAM_RULES = f"""\
- Define one function named `f` that takes at least one argument and returns a value; helper \
functions and classes may be defined inside `f` or above it.
- `f` must be deterministic: the same input always gives the same output.
- Import only these modules, at the top: {", ".join(executor.ALLOWED_MODULES)}.
- No randomness, dates or time, files, network, input(), eval, exec, or double-underscore \
attributes (such as x.__class__).
- `f` must return within {executor.CPU_SECONDS} s of CPU time, and its output must be a literal that \
reads back as the same value: None, bool, int, float, complex, str, bytes, list, tuple, dict or set, \
but not frozenset, inf or nan; its repr is at most {executor.MAX_OUTPUT_CHARS} characters, with \
brackets nested at most {executor.MAX_NESTING} deep (brackets inside strings count too)."""

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# Exactly one of each tag (checked apart), in this order, with only whitespace outside them.
WELL_FORMED = re.compile(r"\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
# An answer that is a single fenced block, e.g. ```python ... ``` or ```output ... ```.
FENCED = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)

# -----------------------------------------------------------------------------
# Prompts


def induction_split(task):
    """Induction: the first len // 2 (input, output) pairs are shown, the rest are hidden.

    The hidden half is never smaller than the shown half, so the check covers as many inputs as
    the solver saw. Returns (shown, hidden), each a list of (input text, output repr)."""
    pairs = list(zip(task.inputs, task.outputs))
    half = len(pairs) // 2
    return pairs[:half], pairs[half:]


def solver_prompt(task_type, task):
    """The user text of the solver prompt (the caller renders it with models.render_chat).

    task_type picks the role the task plays: one triplet serves as a deduction and as an
    abduction task (AZR section 3.2)."""
    if task_type == "deduction":
        return DEDUCTION_PROMPT.format(program=task.program, input=task.inputs[0], format=RESPONSE_FORMAT)
    if task_type == "abduction":
        return ABDUCTION_PROMPT.format(program=task.program, output=task.outputs[0], format=RESPONSE_FORMAT)
    if task_type == "induction":
        shown, _ = induction_split(task)
        pairs = "\n\n".join(f"Example {n}:\n```input\n{i}\n```\n```output\n{o}\n```"
                            for n, (i, o) in enumerate(shown, 1))
        return INDUCTION_PROMPT.format(message=task.message, pairs=pairs, rules=PROGRAM_RULES,
                                       format=RESPONSE_FORMAT)
    raise ValueError(f"unknown task type {task_type!r}")


# -----------------------------------------------------------------------------
# Answers and rewards


def extract_answer(response):
    """The answer of a well-formed response, or None (a format error). Never raises.

    Well-formed: the response is `<think> T </think> <answer> A </answer>` with exactly one of
    each tag, in that order, and only whitespace before <think>, between </think> and <answer>,
    and after </answer>. So empty, truncated (no </answer>), tag-less, multi-answer and nested
    responses are format errors, as is text after </answer>. The answer is A stripped of
    surrounding whitespace; if A is a single fenced block (```python ... ```, ```output ... ```)
    the answer is that block's content. An empty answer is a format error."""
    if any(response.count(tag) != 1 for tag in TAGS):
        return None
    match = WELL_FORMED.fullmatch(response)
    if match is None:
        return None
    answer = match.group(1).strip()
    fenced = FENCED.fullmatch(answer)
    if fenced and "```" not in fenced.group(1):
        answer = fenced.group(1).strip()
    return answer or None


def _check(task_type, tasks, answers):
    """Verdicts for the given answers, one batched executor call per task type."""
    if task_type == "deduction":  # a pure comparison of literals: no process needed
        return [executor.check_deduction(t.outputs[0], a) for t, a in zip(tasks, answers)]
    if task_type == "abduction":
        return executor.check_abduction([(t.program, t.outputs[0], a) for t, a in zip(tasks, answers)])
    if task_type == "induction":
        return executor.check_induction([(a, induction_split(t)[1]) for t, a in zip(tasks, answers)])
    raise ValueError(f"unknown task type {task_type!r}")


def solver_rewards(task_type, tasks, responses, train=True):
    """Solver rewards for responses[j] to tasks[j], all played as task_type (AZR section 3.1, eqs. 5 and 6).

    Training (AZR's format-aware reward):
        r = -1    if the response does not parse (extract_answer is None)
        r = -0.5  if it parses but the answer is wrong or invalid
        r =  1    if the answer is correct
    Evaluation (train=False): r = 1 if correct else 0.
    All answers of the batch go to the executor in one call."""
    answers = [extract_answer(r) for r in responses]
    parsed = [j for j, a in enumerate(answers) if a is not None]
    verdicts = _check(task_type, [tasks[j] for j in parsed], [answers[j] for j in parsed])
    correct = {j: v.ok for j, v in zip(parsed, verdicts)}
    if not train:
        return [1.0 if correct.get(j) else 0.0 for j in range(len(responses))]
    return [-1.0 if j not in correct else 1.0 if correct[j] else -0.5 for j in range(len(responses))]
