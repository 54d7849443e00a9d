"""
The solver role of AZR self-play: prompts for the three task types, answer extraction, rewards.

AZR, arXiv 2505.03335, section 3.2. From a triplet (program p, input i, output o = p(i)) the solver gets
  deduction: p and i, and answers o (checked: gold o == the answered literal);
  abduction:  p and o, and answers an input (checked: p(answer) == gold o);
  induction:  a one-line message and half of the (input, output) pairs, and answers a program
              (checked: it maps every hidden input to its gold output).
Every response must have the form `<think> ... </think> <answer> ... </answer>`: AZR's released
rule by default (well_formed; anything may follow </answer>, the last <answer> counts), a strict
one on request. This file also owns that format for the proposer role (proposer.py imports it).
Rewards come from executor.py, one batched executor call per task type and training step.
Nothing here depends on training, so evaluate.py reuses the prompts, extraction and rewards.
A task is a proposer.Task record; only its fields are used, so this file does not import it.

    python -m pytest tests/test_solver.py
"""

import ast
import re

import executor

TASK_TYPES = ("deduction", "abduction", "induction")  # AZR's three modes of reasoning
TRIPLET_TYPES = ("deduction", "abduction")  # the types a triplet (program, input, output) plays

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

# The format rule, two ways (`--format` of grpo.py):
#   released: AZR's released rule (absolute_zero_reasoner/rewards/custom_evaluate.py, get_format_reward
#             and extract_answer, branch paper): the response starts with <think> ... </think> then
#             <answer> ... </answer>, and anything may follow; the answer is the text after the LAST
#             <answer>. A base model under the R1 scaffold often writes on after </answer>.
#   strict:   exactly one of each tag, in order, with only whitespace outside them; an answer that is a
#             single fenced block is that block's content.
FORMAT_RULES = ("released", "strict")
RELEASED_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
WELL_FORMED = re.compile(r"\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
# An answer that is a single fenced block, e.g. ```python ... ``` or ```output ... ```.
FENCED = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.DOTALL)

# How AZR's released reward manager reads the solver's answer out of the <answer> text
# (reward_managers.py, extract_input_output and code_reward.parse_code_function): the last match of
# the first of these patterns that matches, else the whole answer (deduction, abduction); the last
# fenced code block, else nothing (induction: an unfenced program is a format error).
ANSWER_PATTERNS = {
    kind: [re.compile(p, re.DOTALL | re.IGNORECASE) for p in (
        rf"```{kind}\s*\n?(.*?)\n?```", rf"# {kind.title()}:\s*(.*?)(?=\n```|$)", rf"{kind}\s*\((.*?)\)",
        rf"<{kind}>\s*(.*?)(?:</{kind}>|\s*$)", rf"the {kind} is\s*(.*?)\.?$")]
    for kind in ("input", "output")}
CODE_BLOCK = re.compile(r"```(?:python\s*)?\n?(.*?)\n?```", re.DOTALL | re.IGNORECASE)

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
    """The user text of the solver prompt (the caller renders it with chat.render_prompt).

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


def well_formed(response, rule="released"):
    """Whether a response passes the format rule (FORMAT_RULES); one that does not earns the -1
    penalty in training. released: <think> ... </think> then <answer> ... </answer> at the start
    (after whitespace: AZR strips the text), anything after; strict: see extract_answer."""
    if rule == "released":
        return RELEASED_FORMAT.match(response.strip()) is not None
    if rule == "strict":
        return all(response.count(tag) == 1 for tag in TAGS) and WELL_FORMED.fullmatch(response) is not None
    raise ValueError(f"unknown format rule {rule!r}; choose from {', '.join(FORMAT_RULES)}")


def last_answer(response):
    """AZR's answer extraction, with no format check: the text after the last <answer>, up to the
    next </answer> or the end, stripped; None when there is no <answer>."""
    if "<answer>" not in response:
        return None
    return response.split("<answer>")[-1].split("</answer>")[0].strip()


def extract_answer(response, rule="released"):
    """The answer of a response that passes the format rule, or None (a format error). Never raises.

    released: well_formed(response) and then last_answer(response); the answer may be empty.
    strict: the response is `<think> T </think> <answer> A </answer>` with exactly one of each tag,
    in that order, and only whitespace before <think>, between </think> and <answer>, and after
    </answer>. So empty, truncated (no </answer>), tag-less, multi-answer and nested responses are
    format errors, as is text after </answer>. The answer is A stripped of surrounding whitespace;
    if A is a single fenced block (```python ... ```, ```output ... ```) the answer is that block's
    content. An empty answer is a format error."""
    if not well_formed(response, rule):
        return None
    if rule == "released":
        return last_answer(response)
    answer = WELL_FORMED.fullmatch(response).group(1).strip()
    fenced = FENCED.fullmatch(answer)
    if fenced and "```" not in fenced.group(1):
        answer = fenced.group(1).strip()
    return answer or None


def solver_answer(task_type, answer, rule="released"):
    """What the solver answered, read from its answer text; None when nothing can be read.

    released (AZR's reading, ANSWER_PATTERNS): deduction the output, abduction the input, each from a
    fenced ```output / ```input block, a "# Output:" line, output(...), an <output> tag or "the
    output is ...", else the whole answer; induction the last fenced code block, None without one.
    strict: the answer as extract_answer returned it."""
    if rule == "strict":
        return answer
    if task_type == "induction":
        blocks = CODE_BLOCK.findall(answer)
        return blocks[-1].strip() if blocks else None
    for pattern in ANSWER_PATTERNS["output" if task_type == "deduction" else "input"]:
        found = pattern.findall(answer)
        if found:
            return found[-1]
    return answer


def gold_imports(program):
    """The top-level import statements of a (valid) program, one per line. AZR runs an induction
    answer with the gold program's imports in front of it (reward_managers.py: `imports` of the
    task), so a solver may use a module the hidden program imported without importing it."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return ""
    return "".join(ast.unparse(node) + "\n" for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def _check(task_type, tasks, answers):
    """Verdicts for the given answers, one batched executor call per task type."""
    if task_type == "deduction":  # a pure comparison of literals: no process needed
        return [executor.check_deduction(t.outputs[0], a) for t, a in zip(tasks, answers)]
    if task_type == "abduction":
        return executor.check_abduction([(t.program, t.outputs[0], a) for t, a in zip(tasks, answers)])
    if task_type == "induction":
        return executor.check_induction([(gold_imports(t.program) + a, induction_split(t)[1])
                                         for t, a in zip(tasks, answers)])
    raise ValueError(f"unknown task type {task_type!r}")


def solver_rewards(task_type, tasks, responses, evaluation=False, rule="released"):
    """Solver rewards for responses[j] to tasks[j], all played as task_type (AZR section 3.1, eqs. 5 and 6).

    Training (AZR's format-aware reward):
        r = -1    if the response fails the format rule (extract_answer is None) or no answer can
                  be read from it (solver_answer is None: an unfenced induction program, released)
        r = -0.5  if the answer is wrong or invalid
        r =  1    if the answer is correct
    Evaluation (evaluation=True): r = 1 if correct else 0; under the released rule with no format check:
    the last <answer> of the response is read as it is (last_answer), as AZR's released code reads
    the n solver samples that set a proposal's solve rate.
    All answers of the batch go to the executor in one call."""
    if not evaluation or rule == "strict":
        answers = [extract_answer(r, rule) for r in responses]
    else:
        answers = [last_answer(r) for r in responses]
    answers = [None if a is None else solver_answer(task_type, a, rule) for a in answers]
    parsed = [j for j, a in enumerate(answers) if a is not None]
    verdicts = _check(task_type, [tasks[j] for j in parsed], [answers[j] for j in parsed])
    correct = {j: v.ok for j, v in zip(parsed, verdicts)}
    if evaluation:
        return [1.0 if correct.get(j) else 0.0 for j in range(len(responses))]
    return [-1.0 if j not in correct else 1.0 if correct[j] else -0.5 for j in range(len(responses))]
