"""
The study in one command: every method trained from one base, evaluated, analysed, and the six
findings checked.

"Towards Understanding Self-play for LLM Reasoning" (arXiv 2510.27072) compares, from one base
model, AZR self-play (arXiv 2505.03335) with its learnability proposer reward, AZR with the study's
reward peaked at solve rate 0.5, AZR with a frozen proposer, RLVR and SFT. `python reproduce.py`
trains each of them for each seed (grpo.py, in a subprocess), then:
  pass@k      k = 1..n from n samples at temperature 1 of the toy world's held-out tasks, deduction
              and abduction (toyworld.answers), with the unbiased estimator of evaluate.py, for the
              base and every final checkpoint; other --benchmarks go through evaluate.py;
  entropy     per role and task type over training, every method overlaid, and the frozen
              proposer beside the learned one (analyze.plot_entropy);
  sparsity    each final checkpoint against the base (sparsity.py, analyze.sparsity_report);
  curriculum  the proposer's tasks over training (analyze.plot_curriculum, curriculum_rows);
  findings    the numbers saved to report/numbers.json, then the six verdicts computed from that
              file (findings.py).
Everything lands in --out: runs/<method>-seed<k>/ (a grpo.py run folder, plus the cached
evaluations heldout_eval.json, eval_benchmarks/ and sparsity.json) and report/ (report.md, its
figures, numbers.json, findings.json, and runs/ with each run's plain files: keep_artefacts). Stopped at any point, the same command resumes: a finished
run is skipped, one without its final checkpoint continues (grpo.py --resume), a cached
evaluation is read back. The study's phases are one pipeline a reader follows from training to
verdicts, and each phase is a short function over the others'.

    python reproduce.py                                  # the toy base: 5 runs of 30 steps, one seed
    python reproduce.py --seeds 3 --out runs/study3      # three seeds: verdicts weigh the spread
    python reproduce.py --model Qwen/Qwen2.5-Coder-0.5B --preset gpu --steps 200 \\
        --benchmarks math500 aime2024 humaneval --n 32
"""

import argparse
import contextlib
import functools
import gzip
import importlib.util
import io
import json
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
import sys
import time

from tqdm import tqdm

import executor
import grpo
from analyze import (CURRICULUM_HEADER, ENTROPY_HEADER, ROLES, curriculum_rows, entropy_curves, entropy_rows,
                     plot_curriculum, plot_entropy, plot_length_vs_difficulty, sparsity_report, table)
from benchmarks import BENCHMARKS, PACKAGES
from evaluate import pass_at_k_curve, plot_pass_at_k
from evaluate import main as evaluate_main
from findings import all_findings, mean, std, verdict_table
from models import load_model, model_name_problem
from runs import checkpoints, number, read_jsonl
from sparsity import sparsity, summarize
from toytasks import DEPTHS, HELDOUT_PER_DEPTH, heldout
from solver import TRIPLET_TYPES
from toyworld import answers

HERE = os.path.dirname(os.path.abspath(__file__))

# the study's methods: run name -> grpo.py flags
RUNS = {
    "azr": [],                                            # AZR, learnability reward
    "azr-peaked": ["--proposer-reward", "peaked"],        # the study's reward peaked at solve rate 0.5
    "azr-frozen": ["--freeze-proposer"],                  # the proposer samples but never trains
    "rlvr": ["--method", "rlvr", "--data", "toy"],        # the solver alone on fixed toy tasks
    "sft": ["--method", "sft", "--data", "toy"],          # cross-entropy on the same tasks' gold answers
}
SELF_PLAY = ("azr", "azr-peaked", "azr-frozen")           # the runs with proposals (tasks.jsonl)
# --quick: the smallest batches that still run every part, for tests and a first look
QUICK = ["--prompts", "2", "--group", "2", "--solve-samples", "2", "--seed-tasks", "0",
         "--task-types", "deduction,abduction"]
HELDOUT_SIZE = HELDOUT_PER_DEPTH * len(DEPTHS)            # the toy world's held-out tasks
TEMPERATURE = 1.0                                         # held-out pass@k samples: what self-play samples
EVAL_BENCHMARKS = tuple(b for b in BENCHMARKS if b not in ("tasks", "jsonl"))  # those that need no --data


# -----------------------------------------------------------------------------
# Settings


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="reproduce.py", description="The study (arXiv 2510.27072) in one command: AZR, its ablations, "
               "RLVR and SFT from one base; pass@k, entropy, sparsity, curriculum and the six findings.")
    p.add_argument("--model", default="toy", help="the base: built-in (toy, tiny, smollm2-135m), folder or hub id")
    p.add_argument("--preset", choices=sorted(grpo.PRESETS), default=None,
                   help="grpo.py's preset for every run (default: toy for --model toy, else gpu with CUDA, else cpu)")
    p.add_argument("--steps", type=number(int, 1), default=None, help="training steps per run (default: grpo.py's, toy 30, else 20)")
    p.add_argument("--seeds", type=number(int, 1), default=1, help="runs per method, seeds 0..N-1 (passed as grpo.py --seed)")
    p.add_argument("--methods", nargs="+", choices=list(RUNS), default=list(RUNS),
                   help="the methods to train (default: all five); a finding whose methods are left out is inconclusive")
    p.add_argument("--out", default=os.path.join("runs", "study"), help="the study's folder: runs/ and report/ in it")
    p.add_argument("--n", type=number(int, 1), default=32, help="samples per problem; pass@k for k = 1..n")
    p.add_argument("--benchmarks", nargs="+", choices=("toy",) + EVAL_BENCHMARKS, default=["toy"],
                   help="toy: the toy world's held-out tasks, deduction and abduction, at temperature 1; the others "
                        "through evaluate.py (its temperature 0.6, top-p 0.95), e.g. math500 aime2024 humaneval")
    p.add_argument("--tasks-per-type", type=number(int, 1, HELDOUT_SIZE), default=None,
                   help=f"held-out toy tasks per task type, spread evenly over depths (default: all {HELDOUT_SIZE})")
    p.add_argument("--max-new-tokens", type=number(int, 1), default=None,
                   help="longest response in training and evaluation (default: the preset's)")
    p.add_argument("--tol", type=number(float, 0), default=1e-5,
                   help="sparsity: |Δ| <= tol also counts as unchanged (the study: 1e-5)")
    p.add_argument("--quick", action="store_true",
                   help="reduced scale for tests and a first look: 2 prompts x 2 samples, 2 solve samples, no seed "
                        "tasks, deduction and abduction only")
    p.add_argument("--grpo-args", default="",
                   help="more grpo.py flags for every run, as one string after an =, e.g. "
                        "--grpo-args=\"--micro-batch 4\"; the study's own (--model, --seed, --steps, --out, --quick's, "
                        "the method's) come after them and win")
    p.add_argument("--jobs", type=number(int, 1), default=1,
                   help="training runs at once, each in its own process, the CPU's threads divided among them")
    p.add_argument("--dry-run", action="store_true", help="print what would be trained and evaluated; write nothing")
    args = p.parse_args(argv)
    args.methods = list(dict.fromkeys(args.methods))  # each once, in the order given
    check_args(p, args)
    return args


def check_args(p, args):
    """Refuse bad settings with the usage and one error line, exit status 2 (p.error), before anything is written;
    then resolve what grpo.py would use (its preset, steps, response length)."""
    problem = model_name_problem(args.model)
    if problem:
        p.error(f"--model {problem}")
    for name in args.benchmarks:
        if name in PACKAGES and importlib.util.find_spec(PACKAGES[name]) is None:
            p.error(f"--benchmarks {name}: its data package {PACKAGES[name]} is not installed; see the README, Evaluation")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out}: a file, not a folder; give a folder")
    try:
        args.grpo_args = shlex.split(args.grpo_args)
    except ValueError as e:
        p.error(f"--grpo-args: {e}")
    for method in args.methods:  # grpo.py's own checks, its one-line message passed on as ours
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):
                settings = grpo.get_args(train_argv(args, method, 0))
        except SystemExit:
            lines = captured.getvalue().strip().splitlines()
            reason = lines[-1].removeprefix("grpo.py: error: ") if lines else "grpo.py refused the settings"
            p.error(f"grpo.py flags of {method}: {reason}")
    args.tasks_per_type = args.tasks_per_type or HELDOUT_SIZE
    args.steps = args.steps or grpo.PRESET_STEPS.get(settings.preset, 20)
    args.eval_max_new_tokens = settings.max_new_tokens
    args.settings = vars(settings)


def train_argv(args, method, seed):
    """grpo.py's flags for one run (without --out)."""
    return (args.grpo_args + (QUICK if args.quick else []) + ["--model", args.model, "--seed", str(seed)]
            + (["--preset", args.preset] if args.preset else []) + (["--steps", str(args.steps)] if args.steps else [])
            + (["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []) + RUNS[method])


# -----------------------------------------------------------------------------
# Training: one grpo.py run per method and seed, skipped when finished, resumed when not


def run_folder(args, method, seed):
    return os.path.join(args.out, "runs", f"{method}-seed{seed}")


def run_state(folder, steps):
    """done (a checkpoint at step >= steps), resume (a config.json, no final checkpoint) or new."""
    found = checkpoints(folder)
    if found and found[-1][0] >= steps:
        return "done"
    return "resume" if os.path.isfile(os.path.join(folder, "config.json")) else "new"


def run_training(argv, threads=None):
    """grpo.py with these flags in a fresh Python process, with `threads` CPU threads (OMP_NUM_THREADS,
    which torch reads at start; default: all); its exit status."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    return subprocess.run([sys.executable, os.path.join(HERE, "grpo.py")] + argv, env=env).returncode


def train_all(args, plan):
    """Train (or resume) every unfinished run of the plan, args.jobs at a time, each process with
    the CPU's threads divided among the jobs (two processes asking for all the threads each would
    run several times slower). A failed run stops the study once the others have ended; the same
    command resumes it."""
    todo = []
    for method, seed, folder in plan:
        state = run_state(folder, args.steps)
        if state != "done":
            todo.append((folder, ["--resume", "--out", folder, "--steps", str(args.steps)] if state == "resume"
                         else train_argv(args, method, seed) + ["--out", folder]))
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool, \
            tqdm(total=len(plan), initial=len(plan) - len(todo), desc="training runs", unit="run") as bar:
        running = {pool.submit(run_training, argv, threads): folder for folder, argv in todo}
        for folder, argv in todo:
            tqdm.write(f"{'resuming' if '--resume' in argv else 'training'} {folder}")
        for done in as_completed(running):
            folder, code = running[done], done.result()
            if code != 0 or run_state(folder, args.steps) != "done":
                failed.append(f"{folder} (exit status {code})")
            bar.update()
    if failed:
        sys.exit(f"reproduce.py: training {', '.join(failed)} failed; run the same command again to resume")


# -----------------------------------------------------------------------------
# Evaluation: pass@k of the base and each final checkpoint, cached in the run's folder


@functools.lru_cache(maxsize=1)
def heldout_tasks(count):
    """`count` held-out toy tasks, evenly spread over the set (which is ordered by depth); built
    once per process."""
    tasks = heldout()
    return [tasks[i * len(tasks) // count] for i in range(count)]


def write_json(path, data):
    """Write JSON whole or not at all: a kill never leaves half a cache file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def heldout_eval(args, folder, model_name, key):
    """{"toy deduction": {...}, "toy abduction": {...}}: each task's count of right answers among n
    samples at temperature 1 (toyworld.answers, graded by solver.solver_rewards(train=False)), and
    pass@k for k = 1..n. Cached in folder/heldout_eval.json under `key` and the sampling settings."""
    path = os.path.join(folder, "heldout_eval.json")
    settings = {"model": key, "n": args.n, "tasks": args.tasks_per_type, "max_new_tokens": args.eval_max_new_tokens,
                "temperature": TEMPERATURE}
    if os.path.isfile(path):
        with open(path) as f:
            cached = json.load(f)
        if cached["settings"] == settings:
            return cached["results"]
    model, tokenizer = load_model(model_name)
    tasks, results = heldout_tasks(args.tasks_per_type), {}
    for task_type in TRIPLET_TYPES:
        samples = answers(model, tokenizer, task_type, tasks, TEMPERATURE, args.n, max_new_tokens=args.eval_max_new_tokens)
        counts = [sum(right for right, _ in a) for a in samples]
        results[f"toy {task_type}"] = {"counts": counts, "problems": len(counts),
                                       "pass_at_k": {str(k): v for k, v in enumerate(pass_at_k_curve(counts, args.n), 1)}}
    os.makedirs(folder, exist_ok=True)
    write_json(path, {"settings": settings, "results": results})
    return results


def benchmark_eval(args, folder, model_name, benchmarks):
    """evaluate.py on the other benchmarks, in folder/eval_benchmarks (it resumes from its
    samples.jsonl; a pass_at_k.json with this n and every benchmark is read back without loading
    the model)."""
    out = os.path.join(folder, "eval_benchmarks")
    path = os.path.join(out, "pass_at_k.json")

    def cached():
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            data = json.load(f)
        if data["n"] != args.n or not all(model_name in data["results"].get(b, {}) for b in benchmarks):
            return None
        return {b: {"pass_at_k": data["results"][b][model_name]["pass_at_k"],
                    "problems": len(data["results"][b][model_name]["counts"])} for b in benchmarks}

    if cached() is None:
        evaluate_main(["--models", model_name, "--benchmarks", *benchmarks, "--n", str(args.n),
                       "--max-new-tokens", str(args.eval_max_new_tokens), "--out", out])
    return cached()


def final_checkpoint(folder):
    """(the folder of a run's last checkpoint, what identifies it in a cache: its name and when it
    was written, so that a checkpoint written again is evaluated again)."""
    checkpoint = checkpoints(folder)[-1][1]
    return checkpoint, f"{os.path.basename(checkpoint)}, written {os.stat(checkpoint).st_mtime_ns}"


def evaluate_all(args, plan):
    """{method: [results per seed]}, base first (one evaluation: it has no seeds)."""
    models = [("base", 0, os.path.join(args.out, "runs", "base"), args.model, args.model)]
    for method, seed, folder in plan:
        models.append((method, seed, folder, *final_checkpoint(folder)))
    others = [b for b in args.benchmarks if b != "toy"]
    results = {}
    for method, seed, folder, model_name, key in tqdm(models, desc="evaluation", unit="model"):
        r = heldout_eval(args, folder, model_name, key) if "toy" in args.benchmarks else {}
        if others:
            r.update(benchmark_eval(args, folder, model_name, others))
        results.setdefault(method, []).append(r)
    return results


# -----------------------------------------------------------------------------
# Numbers per run: entropy windows, sparsity (cached), curriculum


def no_nan(value):
    return None if value is None or value != value else value


def entropy_numbers(folder):
    """{role: {"first", "last", "mean"}}: the token entropy logged for each task type, over the
    first quarter of the steps, the last quarter (at least one step each) and all of them,
    averaged over task types. With a single step there is no first and last: None."""
    curves = entropy_curves(read_jsonl(os.path.join(folder, "metrics.jsonl")))
    out = {}
    for role in ROLES:
        series = [values for (r, _), (_, values) in curves.items() if r == role]
        if series:
            windows = [max(1, len(v) // 4) for v in series]
            two = all(len(v) >= 2 for v in series)
            out[role] = {"first": mean([mean(v[:w]) for v, w in zip(series, windows)]) if two else None,
                         "last": mean([mean(v[-w:]) for v, w in zip(series, windows)]) if two else None,
                         "mean": mean([mean(v) for v in series])}
    return out


def sparsity_numbers(args, folder):
    """The final checkpoint's sparsity against the base, overall: {"exact", "tol", "bf16_exact",
    "bf16_tol"}, cached in folder/sparsity.json."""
    checkpoint, key = final_checkpoint(folder)
    path = os.path.join(folder, "sparsity.json")
    settings = {"base": args.model, "checkpoint": key, "tol": args.tol}
    if os.path.isfile(path):
        with open(path) as f:
            cached = json.load(f)
        if cached["settings"] == settings:
            return cached["sparsity"]
    s = summarize(sparsity(args.model, checkpoint, args.tol))["all"]
    numbers = {"exact": s["same"] / s["numel"], "tol": s["close"] / s["numel"],
               "bf16_exact": s["same_bf16"] / s["numel"], "bf16_tol": s["close_bf16"] / s["numel"]}
    write_json(path, {"settings": settings, "sparsity": numbers})
    return numbers


def curriculum_numbers(folder):
    """All task types together: the mean solve rate of valid proposals in each half of the steps,
    and the Spearman correlation of solve rate with the solver's response length, stratified by
    task type (curriculum.length_vs_difficulty); and that correlation per task type."""
    rows = curriculum_rows(folder)
    row = next(r for r in rows if r[1] == "all")
    return {"valid_tasks": row[2], "first_half": no_nan(row[3]), "second_half": no_nan(row[4]), "spearman": no_nan(row[5]),
            "spearman_by_type": {r[1]: no_nan(r[5]) for r in rows if r[1] != "all"}}


# -----------------------------------------------------------------------------
# The report


def seeds_text(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{values[0]:.4f}" if len(values) == 1 else f"{mean(values):.4f} ± {std(values):.4f}"


def pass_at_k_section(args, evaluations, report):
    """One figure per benchmark (task type), every method's mean curve over seeds; and a table."""
    benches = list(next(iter(evaluations.values()))[0]) if evaluations else []
    ks = sorted({1, 2, 4, 8, 16, 32, args.n} & set(range(1, args.n + 1)))
    md = ["## pass@k", "", f"n = {args.n} samples per problem; pass@k for k = 1..n by the unbiased estimator "
          "1 - C(n - c, k) / C(n, k) (Chen et al., arXiv 2107.03374), averaged over problems. The toy held-out tasks "
          f"({args.tasks_per_type} per task type, spread over depths) are sampled at temperature {TEMPERATURE}, as "
          "self-play samples; other benchmarks as evaluate.py does. Trained methods: the mean over seeds.", ""]
    rows = []
    for bench in benches:
        results = {}
        for method, per_seed in evaluations.items():
            curves = [r[bench]["pass_at_k"] for r in per_seed]
            label = method if len(curves) == 1 else f"{method} (mean of {len(curves)} seeds)"
            results[label] = {"pass_at_k": {k: mean([c[str(k)] for c in curves]) for k in range(1, args.n + 1)},
                              "counts": [0] * per_seed[0][bench]["problems"]}
            rows.append([bench, method] + [seeds_text([c[str(k)] for c in curves]) for k in ks])
        name = f"pass_at_k_{bench.replace(' ', '_')}.png"
        plot_pass_at_k({bench: results}, args.n, os.path.join(report, name))
        md += [f"![pass@k, {bench}]({name})", ""]
    return md + [table(["benchmark", "method"] + [f"pass@{k}" for k in ks], rows), ""]


SPARSITY_NOTE = (
    "How the comparison is made meaningful at this scale: the weights are trained in float32 with the preset's "
    "learning rate ({lr:g}). AdamW moves every weight that gets any gradient by about the learning rate, so in "
    "float32 nearly every weight may move, and exact float32 sparsity says little. The bf16 view rounds the base and "
    "the checkpoint to bf16 (8 significant bits) before comparing: it shows which updates survive bf16 rounding, "
    "which is what the study counts on its bf16 checkpoints. The findings use the bf16 view with exact zeros. "
    "Both views are computed the same way at every scale; only their reading changes.")


def write_report(args, plan, evaluations, numbers, records, command):
    report = os.path.join(args.out, "report")
    seed0 = [folder for _, seed, folder in plan if seed == 0]
    md = ["# The study, reproduced", "",
          "AZR self-play (arXiv 2505.03335) against its ablations, RLVR and SFT from one base, after \"Towards "
          "Understanding Self-play for LLM Reasoning\" (arXiv 2510.27072).", "",
          table(["setting", "value"], [["command", f"`python reproduce.py {command}`"], ["base", args.model],
                                       ["preset", args.settings["preset"]], ["steps per run", args.steps],
                                       ["seeds", args.seeds], ["methods", ", ".join(args.methods)],
                                       ["learning rate", f"{args.settings['lr']:g}"], ["weights", args.settings["dtype"]],
                                       ["samples per problem (n)", args.n], ["benchmarks", ", ".join(args.benchmarks)]]),
          "", "Figures show seed 0; tables and the findings use every seed.", "",
          "## Findings", "", "Each verdict is computed from numbers.json alone (findings.py): a difference decides "
          "only when it exceeds the larger standard deviation across seeds, and never below the quantity's "
          "resolution (named in each criterion); with one seed the resolution alone decides, and the verdicts then "
          "say nothing about the noise between seeds.", "", verdict_table(records), ""]
    md += pass_at_k_section(args, evaluations, report)

    plot_entropy(seed0, os.path.join(report, "entropy.png"))
    frozen = [f for f in seed0 if os.path.basename(f).startswith(("azr-seed", "azr-frozen-seed"))]
    plot_entropy(frozen, os.path.join(report, "entropy_frozen.png"))
    md += ["## Entropy dynamics", "", "Mean full-vocabulary token entropy of each policy over its own responses, per "
           "role and task type, as logged in training. Solid: proposer; dashed: solver. Every method:", "",
           "![entropy](entropy.png)", "", "The frozen proposer beside the learned one (AZR, learnability reward):", "",
           "![entropy, frozen proposer](entropy_frozen.png)", "",
           table(ENTROPY_HEADER, [r for _, _, folder in plan for r in entropy_rows(folder)]), ""]

    md += ["## Update sparsity", "", SPARSITY_NOTE.format(lr=args.settings["lr"]), ""]
    items = [(os.path.basename(f), args.model, checkpoints(f)[-1][1]) for f in seed0]
    if items:
        overall, kinds, overlap = sparsity_report(items, args.tol, False, report)
        md += [f"Each final checkpoint against the base: the fraction of parameters unchanged (S = 1 - ||Δ||₀ / n, "
               f"arXiv 2505.11711), exactly and within tol = {args.tol:g}, in the checkpoint dtype and in bf16.", "",
               "### Overall", "", overall, "", "### Per module kind", "", kinds, "",
               "### Per layer (bf16)", "", "![sparsity per layer](sparsity_layers.png)", ""]
        if overlap:
            md += ["### Overlap of the update masks", "", "Jaccard |A ∩ B| / |A ∪ B| of the entries each checkpoint "
                   "changed (Δ != 0 in bf16).", "", overlap, ""]
        md += ["### Every seed (bf16, exact)", "",
               table(["method", "sparsity"], [[m, seeds_text([s["bf16_exact"] for s in numbers["methods"][m]["sparsity"]])]
                                              for m in args.methods]), ""]

    play = [f for f in seed0 if os.path.basename(f).rsplit("-seed", 1)[0] in SELF_PLAY]
    plot_curriculum(play, os.path.join(report, "curriculum.png"))
    plot_length_vs_difficulty(play, os.path.join(report, "length_vs_difficulty.png"))
    md += ["## Curriculum", "", "The proposer's tasks over training (tasks.jsonl): solve rate of the valid tasks, "
           "valid rate and program complexity per step; and the solver's mean response length on each valid task "
           "against its solve rate. RLVR and SFT propose nothing.", "", "![curriculum](curriculum.png)", "",
           "![length vs difficulty](length_vs_difficulty.png)", "",
           table(CURRICULUM_HEADER, [r for m, _, folder in plan if m in SELF_PLAY for r in curriculum_rows(folder)]), ""]
    with open(os.path.join(report, "report.md"), "w") as f:
        f.write("\n".join(md))


# -----------------------------------------------------------------------------
# The command


ARTEFACTS = ("config.json", "metrics.jsonl", "tasks.jsonl", "seed_tasks.jsonl", "heldout_eval.json", "sparsity.json")


def keep_artefacts(plan, report):
    """Each run's plain files beside the report, in report/runs/<run>/, so that every verdict can be
    recomputed by hand without the checkpoints: its config, metrics and tasks (gzipped, as
    runs.read_jsonl reads them), seeding proposals, cached evaluation counts and sparsity."""
    for _, _, folder in plan:
        into = os.path.join(report, "runs", os.path.basename(folder))
        os.makedirs(into, exist_ok=True)
        for name in ARTEFACTS:
            source = os.path.join(folder, name)
            if not os.path.exists(source):
                continue
            if name.endswith(".jsonl"):
                with open(source, "rb") as f, open(os.path.join(into, name + ".gz"), "wb") as raw, \
                        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:  # no time stamp: the same bytes each time
                    shutil.copyfileobj(f, g)
            else:
                shutil.copyfile(source, os.path.join(into, name))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args(argv)
    plan = [(m, s, run_folder(args, m, s)) for m in args.methods for s in range(args.seeds)]
    if args.dry_run:
        for method, seed, folder in plan:
            state = run_state(folder, args.steps)
            flags = ["--resume", "--out", folder, "--steps", str(args.steps)] if state == "resume" else \
                train_argv(args, method, seed) + ["--out", folder]
            print(f"{state:6s} {folder}" + ("" if state == "done" else f": python grpo.py {shlex.join(flags)}"))
        print(f"then: pass@k (n = {args.n}) on {', '.join(args.benchmarks)}, entropy, sparsity, curriculum, findings "
              f"into {os.path.join(args.out, 'report')}")
        return None
    start = time.time()
    train_all(args, plan)
    evaluations = evaluate_all(args, plan)
    report = os.path.join(args.out, "report")
    os.makedirs(report, exist_ok=True)
    curves = lambda method: [{b: r["pass_at_k"] for b, r in e.items()} for e in evaluations[method]]  # noqa: E731
    numbers = {"n": args.n, "settings": {"model": args.model, "steps": args.steps, "seeds": args.seeds,
                                         "tasks_per_type": args.tasks_per_type, "benchmarks": args.benchmarks,
                                         "tol": args.tol},
               "methods": {"base": {"pass_at_k": curves("base")}}}
    for method in tqdm(args.methods, desc="analysis", unit="method"):
        folders = [folder for m, _, folder in plan if m == method]
        numbers["methods"][method] = {
            "pass_at_k": curves(method),
            "entropy": [entropy_numbers(f) for f in folders],
            "sparsity": [sparsity_numbers(args, f) for f in folders],
            "curriculum": [curriculum_numbers(f) for f in folders] if method in SELF_PLAY else []}
    write_json(os.path.join(report, "numbers.json"), numbers)
    with open(os.path.join(report, "numbers.json")) as f:  # the verdicts come from the saved file alone
        records = all_findings(json.load(f))
    write_json(os.path.join(report, "findings.json"), records)
    write_report(args, plan, evaluations, numbers, records, shlex.join(argv))
    keep_artefacts(plan, report)
    executor.close_pool()
    print(verdict_table(records))
    print(f"wrote {os.path.join(report, 'report.md')} ({time.time() - start:.0f} s)")
    return records


if __name__ == "__main__":
    main()
