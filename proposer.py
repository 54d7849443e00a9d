"""
The proposer role of AZR self-play: task records, proposal prompts and parsing, validation of
proposals into tasks, the task buffers (one per task type), and the proposer rewards.

AZR, arXiv 2505.03335, section 3. The deduction and abduction proposers see K references drawn from
their own buffer and write a new program `f` with one input; the induction proposer sees one
program drawn from the two triplet buffers (as AZR's released code does) and writes several inputs
and a one-line message. A proposal is valid when executor.validate accepts it; a valid task joins
the buffer of its type, and the solver plays it (solver.py). The proposer is then
paid by how often the solver solved its task (PROPOSER_REWARDS). All randomness comes from a
random.Random the caller passes in, so a resumed run draws the same references.

    python -m pytest tests/test_proposer.py
"""

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields

import executor
from solver import CODE_BLOCK, PROGRAM_RULES, RESPONSE_FORMAT, extract_answer, last_answer, well_formed

IDENTITY = "def f(a):\n    return a"  # the seed program of every buffer (AZR section 3.3.1)
NO_PARSE = "response does not parse"  # the reason that earns the -1 format penalty
DUPLICATE = "duplicates a buffer task (same program and inputs)"


@dataclass
class Task:
    """One task: a triplet (program, input, output), or an induction task (program, several
    inputs with their outputs, message). Stored in the buffers and in the run's task log."""
    type: str                  # 'deduction', 'abduction' or 'induction': the proposer that made it
                               # (the triplet seed says 'deduction'; a triplet serves both roles)
    program: str
    inputs: list[str]          # argument-list texts as written in f(...); one for a triplet
    outputs: list[str] = field(default_factory=list)  # repr of f(*input) per input, from the executor
    message: str = ""          # induction: the proposer's one-line message
    step: int = 0              # training step that proposed it; 0 for the seeds
    valid: bool = True
    reason: str = ""           # why it is not valid
    solve_rate: float | None = None  # fraction of solver samples that solved it, once measured
    formatted: bool = True     # the proposer's response passed the format rule (solver.well_formed);
                               # a valid task whose response did not still joins its buffer (AZR as released)

    @classmethod
    def from_record(cls, record):
        """A Task from a record of a run's tasks.jsonl, a buffer file or a pool file: its Task
        fields, the rest (a proposer reward, a phase) left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


# -----------------------------------------------------------------------------
# Prompts

INPUT_RULES = """\
- Write an input as the argument list of the call f(...): arguments separated by commas, \
strings in quotes, for example 'John', {'age': 20, 'city': 'New York'}
- Use only Python literals: numbers, strings, lists, tuples, dicts, sets, True, False, None."""

PROPOSAL_GOALS = {
    "deduction": "Someone will be shown your function and your input and must work out, without "
                 "running it, the output that `f` returns.",
    "abduction": "Someone will be shown your function and the output it returns for your input, "
                 "and must find, without running it, an input that produces that output.",
}

PROPOSAL_PROMPT = """\
## Task: write a new Python function `f` and one input for it

{goal} Make the task as hard as you can while keeping it solvable by careful step-by-step \
reasoning, and make `f` clearly different from the reference functions below: a new idea, not \
a small edit of one of them.

### Rules for the function
{program_rules}

### Rules for the input
{input_rules}

### Reference functions, each with an input and its output
{references}

### Answer format
{format}
Inside <answer>, write the function in one ```python block and its input in one ```input block, \
for example:
<answer>
```python
def f(name, info):
    ...
```
```input
'John', {{'age': 20, 'city': 'New York'}}
```
</answer>
"""

INDUCTION_PROPOSAL_PROMPT = """\
## Task: choose inputs for a Python function and write a message about it

Someone will be shown your message and the outputs that the function `f` below returns for half \
of your inputs, and must write, without seeing `f`, a function that also returns the right \
outputs for the other half. Choose {n} different inputs that together reveal what `f` does, and \
a one-line message that helps without giving the code away. Make the task hard but solvable.

```python
{program}
```

### Rules
{input_rules}
- Every input must make `f` return a value without an error.
- Put each input in its own ```input block: {n} blocks.
- Put the message in one ```message block, on one line; do not quote the code of `f`.

### Answer format
{format}
Inside <answer>, write the {n} ```input blocks and the ```message block, for example:
<answer>
```input
'John', {{'age': 20, 'city': 'New York'}}
```
```input
'Sammy', {{'age': 37, 'city': 'Los Angeles'}}
```
```message
Builds a greeting from a name and the person's details.
```
</answer>
"""


def proposal_prompt(task_type, references):
    """User text of the deduction or abduction proposer prompt, showing the reference triplets
    (AZR: K = 6 drawn by sample_references). The caller renders it with chat.render_prompt."""
    shown = "\n\n".join(
        f"Reference {n}:\n```python\n{t.program}\n```\n```input\n{t.inputs[0]}\n```\n```output\n{t.outputs[0]}\n```"
        for n, t in enumerate(references, 1))
    return PROPOSAL_PROMPT.format(goal=PROPOSAL_GOALS[task_type], program_rules=PROGRAM_RULES,
                                  input_rules=INPUT_RULES, references=shown, format=RESPONSE_FORMAT)


def induction_proposal_prompt(program, num_inputs):
    """User text of the induction proposer prompt for a program drawn from the triplet buffers."""
    return INDUCTION_PROPOSAL_PROMPT.format(n=num_inputs, program=program, input_rules=INPUT_RULES,
                                            format=RESPONSE_FORMAT)


# -----------------------------------------------------------------------------
# Proposals into tasks

BLOCK = re.compile(r"```(python|input|message)[ \t]*\n(.*?)```", re.DOTALL)
# AZR's released parsers (rewards/code_reward.py: parse_code_input_output, parse_inputs_message):
# the first code block (```python or a bare ```), the first ```input block, all ```input blocks
# for induction, the first ```message block (or <message> tag, or "# Message:" line).
FLAGS = re.DOTALL | re.IGNORECASE
INPUT_BLOCK = re.compile(r"```input\s*\n?(.*?)\n?```", FLAGS)
INPUT_LINE = re.compile(r"# Input:\s*(.*?)(?=\n```|$)", FLAGS)
MESSAGE = [re.compile(p, FLAGS) for p in (r"```message\s*\n?(.*?)\n?```", r"<message>\s*(.*?)\s*</message>",
                                          r"# Message:\s*(.*?)(?=\n```|$)")]
DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)


def parse_proposal(task_type, response, rule="released", num_inputs=None):
    """The blocks of a proposal, or None when the response does not parse. Never raises.

      deduction, abduction -> {'program', 'input'}; induction -> {'inputs', 'message'} (python
      blocks are ignored: the program is the buffer's, not the proposer's).
    released (AZR's reading): the blocks are read from the text after the last <answer> with no
      format check (the format decides the reward apart: Task.formatted). The program is the first
      code block and must hold a `def`; the input the first ```input block (or a "# Input:" line).
      Induction: at least num_inputs ```input blocks, of which the last num_inputs are kept (all
      when num_inputs is None), and a message (a ```message block, a <message> tag or a
      "# Message:" line).
    strict: the blocks are read from a well-formed answer only (solver.extract_answer, strict). A
      block is ```python, ```input or ```message, a newline, its text, and a closing ```; blocks in
      other languages are ignored. Every block read must hold non-blank text. Exactly one python
      and one input block; induction: one or more input blocks and exactly one message block."""
    if rule == "released":
        return _parse_released(task_type, response, num_inputs)
    answer = extract_answer(response, rule)
    if answer is None:
        return None
    blocks = {"python": [], "input": [], "message": []}
    for lang, text in BLOCK.findall(answer):
        if not text.strip():
            return None
        blocks[lang].append(text.strip())
    if task_type == "induction":
        if not blocks["input"] or len(blocks["message"]) != 1:
            return None
        return {"inputs": blocks["input"], "message": blocks["message"][0]}
    if len(blocks["python"]) != 1 or len(blocks["input"]) != 1:
        return None
    return {"program": blocks["python"][0], "input": blocks["input"][0]}


def _parse_released(task_type, response, num_inputs):
    answer = last_answer(response)
    if answer is None:
        return None
    if task_type == "induction":
        inputs = [text.strip() for text in INPUT_BLOCK.findall(answer)]
        message = next((m.group(1).strip() for m in (p.search(answer) for p in MESSAGE) if m), None)
        if not inputs or len(inputs) < (num_inputs or 1) or message is None:
            return None
        return {"inputs": inputs[-num_inputs:] if num_inputs else inputs, "message": message}
    code = CODE_BLOCK.search(answer)
    given = INPUT_BLOCK.search(answer) or INPUT_LINE.search(answer)
    if code is None or given is None or not DEF.search(code.group(1)):
        return None
    return {"program": code.group(1).strip(), "input": given.group(1).strip()}


def _input_key(text):
    """Inputs that are the same value written differently ('[1,2]', '[1, 2]') count as one."""
    try:
        return repr(executor.parse_arguments(text))
    except ValueError:
        return text.strip()


def task_key(task):
    """Identity of a task in a buffer: same program text and same input values, in order."""
    return task.program.strip(), tuple(_input_key(i) for i in task.inputs)


def make_tasks(task_type, responses, step, buffer, programs=None, num_inputs=None, dedupe=False, rule="released"):
    """One Task per proposer response, in order, with valid, reason and outputs filled.

    All programs of the batch are run in one executor.validate call. A task is invalid when the
    response does not parse (reason NO_PARSE) or when validation fails (the executor's reason).
    Responses are read by parse_proposal under `rule`; Task.formatted records well_formed(response, rule).
    Induction, as AZR's released code rules it (reward_managers.py, gen_code_f): programs[j] is
    the buffer program shown in prompt j; the proposal must give `num_inputs` inputs (the number
    the prompt asked for; released: at least that many, the last ones kept), and every one must
    run on the program, else the task is invalid.
    dedupe (off in AZR's released code, which pays a repeated task like any other): a task equal by
    task_key to a task of `buffer` or to an earlier task of the same batch is invalid (DUPLICATE);
    a triplet is checked before it runs, an induction task before its inputs run.
    An invalid task keeps the proposed inputs, with no outputs. The buffer is not changed:
    add_to_buffer does that."""
    if task_type == "induction" and (num_inputs is None or num_inputs < 2):
        raise ValueError("induction proposals need num_inputs >= 2: one pair shown, one hidden")
    known = {task_key(t) for t in buffer} if dedupe else set()
    tasks, jobs = [], []
    for j, response in enumerate(responses):
        proposal = parse_proposal(task_type, response, rule, num_inputs)
        program = programs[j] if task_type == "induction" else (proposal or {}).get("program", "")
        formatted = well_formed(response, rule)
        if proposal is None:
            tasks.append(Task(task_type, program, [], step=step, valid=False, reason=NO_PARSE, formatted=formatted))
            continue
        inputs = proposal["inputs"] if task_type == "induction" else [proposal["input"]]
        task = Task(task_type, program, inputs, message=proposal.get("message", ""), step=step, formatted=formatted)
        if task_type == "induction" and len(inputs) != num_inputs:
            task.valid, task.reason = False, f"{len(inputs)} inputs given, {num_inputs} asked for"
        elif dedupe and task_key(task) in known:
            task.valid, task.reason = False, DUPLICATE
        else:
            known.add(task_key(task))
            jobs += [(program, i) for i in inputs]
        tasks.append(task)
    verdicts = iter(executor.validate(jobs))
    for task in tasks:
        if not task.valid:
            continue
        results = [next(verdicts) for _ in task.inputs]
        failed = next((v for v in results if not v.ok), None)
        if failed is not None:
            task.valid, task.reason = False, failed.reason
        else:
            task.outputs = [v.output for v in results]
    return tasks


# -----------------------------------------------------------------------------
# Buffers: plain lists of valid Tasks, one per task type, as AZR's released trainer keeps its
# datasets (trainer/ppo/azr_ray_trainer.py, DatasetManager): deduction proposals in the deduction
# buffer ('output'), abduction in the abduction one ('input'), induction tasks apart ('problem').
# Both triplet buffers start from the same seed triplets; repeats are kept, as AZR keeps them.


def seed_triplets():
    """A triplet buffer's seed: the identity program on 'Hello world' (AZR section 3.3.1)."""
    return [Task("deduction", IDENTITY, ["'Hello world'"], ["'Hello world'"])]


def seed_induction():
    """The induction buffer's seed: the identity program, on 'Hello world' and on a second input
    so that the solver sees one pair and is checked on another (solver.induction_split)."""
    return [Task("induction", IDENTITY, ["'Hello world'", "[1, 2, 3]"], ["'Hello world'", "[1, 2, 3]"],
                 message="Returns its argument unchanged.")]


BUFFERS = ("deduction", "abduction", "induction")  # one per task type, named for it


def new_buffers():
    """The buffers of a fresh run, each holding its seed."""
    return {"deduction": seed_triplets(), "abduction": seed_triplets(), "induction": seed_induction()}


def add_to_buffer(buffer, tasks, dedupe=False):
    """Append the valid tasks; with dedupe only those not already in the buffer (by task_key), as
    AZR's seeding does (update_seed), where its training steps keep repeats. Returns how many joined."""
    known = {task_key(t) for t in buffer} if dedupe else set()
    added = 0
    for task in tasks:
        if task.valid and task_key(task) not in known:
            buffer.append(task)
            if dedupe:
                known.add(task_key(task))
            added += 1
    return added


def sample_references(buffer, k, rng):
    """min(k, len(buffer)) tasks drawn uniformly without replacement with rng (a random.Random)."""
    return rng.sample(buffer, min(k, len(buffer)))


def save_buffer(path, buffer):
    """Write the buffer as JSON lines, one task per line. Written to a temporary file and renamed,
    so a run killed while saving leaves the previous file intact for its resume."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for task in buffer:
            f.write(json.dumps(asdict(task), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_buffer(path):
    """Read a buffer written by save_buffer."""
    with open(path, encoding="utf-8") as f:
        return [Task(**json.loads(line)) for line in f if line.strip()]


# -----------------------------------------------------------------------------
# Proposer rewards. r̄ is the solve rate of a valid task: the fraction of the solver's n samples
# (AZR: n = 8) that solved it, i.e. the mean of solver.solver_rewards(..., evaluation=True).

SHARPEN_K = 8  # k of the sharpening reward: AZR's n solver samples per task


def learnability_reward(solve_rate):
    """AZR's learnability reward: r = 1 - r̄ if 0 < r̄ < 1, else 0.

    A task the solver always or never solves teaches it nothing; among the others, harder pays more."""
    return 1.0 - solve_rate if 0 < solve_rate < 1 else 0.0


def peaked_reward(solve_rate):
    """The study's alternative, peaked at r̄ = 0.5: r = 1 - 2|r̄ - 0.5| if 0 < r̄ < 1, else 0."""
    return 1.0 - 2.0 * abs(solve_rate - 0.5) if 0 < solve_rate < 1 else 0.0


def _sharpening_gap(p, k=SHARPEN_K):
    """pass@k - pass@1 of a solver that solves the task with probability p: 1 - (1 - p)^k - p."""
    return 1.0 - (1.0 - p) ** k - p


# The gap's maximum: d/dp = k(1 - p)^(k-1) - 1 = 0 at p* = 1 - k^(-1/(k-1)) (about 0.257 for k = 8).
SHARPEN_PEAK = 1.0 - SHARPEN_K ** (-1.0 / (SHARPEN_K - 1))


def sharpening_reward(solve_rate):
    """Our alternative: pay for what sharpening can still gain on the task.

        r = (1 - (1 - r̄)^k - r̄) / max_p (1 - (1 - p)^k - p),   k = SHARPEN_K = 8

    The numerator is pass@k - pass@1 for independent samples at solve rate r̄. The study finds
    that self-play gains come from sharpening: pass@1 rises toward what the base model already
    reaches in k tries, and no further (the support bound). So a task is worth proposing in
    proportion to that gap: it is 0 for a task never solved (outside the support: nothing to
    sharpen) and for one always solved (nothing to gain), with no special case needed. Against
    learnability (linear, largest for the rarest success) it pays about the same for any task
    solved in 1 to 3 of 8 samples (0.82 to 1.0), so one lucky success is not worth more than a
    task solved a quarter of the time, and it pays less for easy tasks (0.19 at 7/8). Against the
    peaked reward it is asymmetric, peaking on the hard side of 0.5 at r̄* = 1 - k^(-1/(k-1))
    (about 0.26). Divided by the peak value so that r lies in [0, 1] like the other rewards, on
    the scale of the -0.5 / -1 format penalties."""
    return _sharpening_gap(solve_rate) / _sharpening_gap(SHARPEN_PEAK)


PROPOSER_REWARDS = {
    "learnability": learnability_reward,
    "peaked": peaked_reward,
    "sharpening": sharpening_reward,
}


# Reward levels: "released" as AZR's released code pays them (reward_managers.py, "Combining Rewards
# for Generation Tasks": a program that fails validation has its format score set to 0, and an
# accuracy of 0 after one_minus becomes -0.5); "paper" as AZR's paper writes them (eq. 4 with the
# format penalty of eq. 6: a well-formed but invalid proposal -0.5, r = 0 outside 0 < r̄ < 1).
REWARD_LEVELS = ("released", "paper")


def proposer_reward(task, kind, levels="released"):
    """The proposer's reward for one task, kind a key of PROPOSER_REWARDS, r = PROPOSER_REWARDS[kind](r̄):
        released: -1 if the response does not parse, fails the format rule, or its task is invalid;
                  -0.5 if the solve rate r̄ is 0 or 1; r otherwise
        paper:    -1 if the response does not parse or fails the format rule; -0.5 if its task is
                  invalid; r otherwise (every reward is 0 at r̄ = 0 and r̄ = 1)"""
    if task.reason == NO_PARSE or not task.formatted:
        return -1.0
    if not task.valid:
        return -1.0 if levels == "released" else -0.5
    if levels == "released" and not 0 < task.solve_rate < 1:
        return -0.5
    return PROPOSER_REWARDS[kind](task.solve_rate)
