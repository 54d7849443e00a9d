"""
The study in one command: every method trained from one base, evaluated, analysed, and the six
findings checked.

"Towards Understanding Self-play for LLM Reasoning" (arXiv 2510.27072) compares, from one base
model, AZR self-play (arXiv 2505.03335) with its learnability proposer reward, AZR with the study's
reward peaked at solve rate 0.5, AZR with a frozen proposer, RLVR and SFT. `python reproduce.py`
trains each of them for each seed (grpo.py, in a subprocess; three seeds by default), then:
  pass@k      k = 1..n from n samples at temperature 1 of the toy world's held-out tasks, deduction
              and abduction (toyworld.answers), with the unbiased estimator of evaluate.py, for the
              base and every final checkpoint; other --benchmarks go through evaluate.py;
  entropy     per role and task type over training, every method overlaid, and the frozen
              proposer beside the learned one (analyze.plot_entropy); and the solver's probe
              entropy at every checkpoint, on one fixed set of prompts and responses (finding 3);
  sparsity    each checkpoint against the base (sparsity.py, analyze.sparsity_report), and a
              learning-rate sweep: AZR, RLVR and SFT trained --sweep-steps steps at each of
              --sweep-lrs, so that finding 4 is decided at every rate (sweep_plan);
  curriculum  the proposer's tasks over training (analyze.plot_curriculum, curriculum_rows), and a
              sample of each quarter's tasks solved by two fixed judges, the base and the final
              checkpoint (judge_numbers, finding 6);
  long runs   with --long-steps, AZR and the frozen proposer continued (finding 2);
  budgets     the sequences each method trains on per step; with --matched-budget, RLVR and SFT
              also trained on AZR's solver sequences per step, and the findings decided again;
  preconditions  with --preconditions, whether the proposer's tasks can matter at all (preconditions.py):
              RLVR on the easiest, the hardest and the base's own tasks, and how far each self-play
              run moves its tasks; --only-preconditions stops there;
  findings    the numbers saved to report/numbers.json, then the verdicts computed from that
              file (findings.py), then report.md (report.py).
Everything lands in --out: runs/<method>-seed<k>/ (a grpo.py run folder, plus the cached
evaluations heldout_eval.json, eval_benchmarks/, sparsity.json, probe.json, judges.json: each
through `cached`), sweep/, preconditions/ and report/ (report.md, its figures, numbers.json,
findings.json, and runs/ with each run's plain files: report.keep_artefacts). Stopped at any point,
the same command resumes: a finished run is skipped, one without its final checkpoint continues
(grpo.py --resume), a cached evaluation is read back. The study's phases are one pipeline a reader
follows from training to verdicts, and each phase is a short function over the others'.

    python reproduce.py --jobs 2                         # the toy base: 5 methods x 3 seeds x 30 steps, the sweep
    python reproduce.py --jobs 2 --long-steps 60 --matched-budget    # and the long runs, matched budgets
    python reproduce.py --seeds 1 --sweep-lrs            # a first look: one seed, no sweep
    python reproduce.py --model Qwen/Qwen2.5-Coder-0.5B --preset gpu --steps 200 \\
        --benchmarks math500 aime2024 humaneval --n 32
"""

import argparse
import contextlib
from collections import namedtuple
import functools
import hashlib
import importlib.util
import io
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
import sys
import time

from tqdm import tqdm

import executor
import grpo
from analyze import ROLES, curriculum_rows, entropy_curves, probe_entropy
from chat import completion, render_prompt, resolve_template
from contamination import contamination_numbers
from curriculum import mean_or_none, program_complexity
from benchmarks import BENCHMARKS, PACKAGES
from evaluate import pass_at_k_curve
from evaluate import main as evaluate_main
from findings import all_findings, matched_budget, mean, verdict_table
from preconditions import (POOL_DEPTHS, POOLS, PROPOSED_TASKS, depth_pool, plot_preconditions, precondition_numbers,
                           preconditions_section, proposed_pool, write_pool)
from models import load_model, model_name_problem
from report import keep_artefacts, write_report
from runs import checkpoints, number, read_jsonl, trained_template
from sparsity import sparsity, summarize
from proposer import Task
from sampling import sample
from solver import TRIPLET_TYPES, solver_prompt
from toytasks import DEPTHS, HELDOUT_PER_DEPTH, Generated, heldout, heldout_tasks
from toyworld import answers, solved

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
SWEEP = ("azr", "rlvr", "sft")                            # finding 4's methods, trained at each --sweep-lrs rate
LONG = ("azr", "azr-frozen")                              # continued to --long-steps: finding 2 (and 3's curves)
MATCHED = {"rlvr-matched": "rlvr", "sft-matched": "sft"}  # --matched-budget: AZR's solver sequences per step
PROBES_PER_TYPE = 24                                      # (ours) fixed solver probes per task type, for finding 3
JUDGE_TASKS, JUDGE_SAMPLES = 16, 16                       # (ours) finding 6's fixed judges: tasks per type and quarter, samples
# --quick: the smallest batches that still run every part, for tests and a first look
QUICK = ["--prompts", "2", "--group", "2", "--solve-samples", "2", "--seed-tasks", "0",
         "--task-types", "deduction,abduction"]
Run = namedtuple("Run", "method seed folder")                          # one training run of the study
SweepRun = namedtuple("SweepRun", "rate method seed folder steps")      # one point of finding 4's sweep
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
    p.add_argument("--seeds", type=number(int, 1), default=3,
                   help="runs per method, seeds 0..N-1 (passed as grpo.py --seed); verdicts weigh their spread")
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
    p.add_argument("--sweep-lrs", nargs="*", type=number(float, 0, above=True), default=[1e-6, 1e-5, 1e-4],
                   help="finding 4 at each of these learning rates: AZR, RLVR and SFT trained --sweep-steps steps "
                        "per seed; the runs' own rate is added from their --sweep-steps checkpoint (none: no sweep)")
    p.add_argument("--sweep-steps", type=number(int, 1), default=10, help="steps of each sweep run")
    p.add_argument("--sweep-seeds", type=number(int, 1), default=None,
                   help="seeds of each sweep point (default: --seeds); at the runs' own rate, seeds beyond --seeds "
                        "train sweep runs of their own")
    p.add_argument("--long-steps", type=number(int, 2), default=None,
                   help="also continue AZR and the frozen proposer's runs to this many steps (e.g. 150), which then "
                        "decide finding 2 (entropy collapse)")
    p.add_argument("--matched-budget", action="store_true",
                   help="also train RLVR and SFT on as many solver sequences per step as AZR (more --prompts), "
                        "and decide the findings a second time with them")
    p.add_argument("--preconditions", action="store_true",
                   help="also measure whether the proposer's tasks can matter (preconditions.py): RLVR on the "
                        "easiest, the hardest and the base's own tasks, and how far each self-play run moves its tasks")
    p.add_argument("--only-preconditions", action="store_true",
                   help="train and measure only the preconditions (and the self-play runs of --methods they read), "
                        "then stop: report/preconditions.md")
    p.add_argument("--pool-seeds", type=number(int, 1), default=None,
                   help="the preconditions' RLVR runs per pool, seeds 0..N-1 (default: --seeds)")
    p.add_argument("--jobs", type=number(int, 1), default=1,
                   help="training runs at once, each in its own process, the CPU's threads divided among them")
    p.add_argument("--dry-run", action="store_true", help="print what would be trained and evaluated; write nothing")
    args = p.parse_args(argv)
    args.methods = list(dict.fromkeys(args.methods))  # each once, in the order given
    args.pool_seeds = args.pool_seeds or args.seeds
    args.sweep_seeds = args.sweep_seeds or args.seeds
    if args.only_preconditions:  # the self-play runs (b) reads, and nothing else of the study
        args.preconditions, args.sweep_lrs, args.long_steps, args.matched_budget = True, [], None, False
        args.methods = [m for m in args.methods if m in SELF_PLAY]
        if not args.methods:
            p.error("--only-preconditions: (b) reads self-play runs; keep azr, azr-peaked or azr-frozen among --methods")
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
    if args.long_steps is not None and args.long_steps <= args.steps:
        p.error(f"--long-steps {args.long_steps}: not beyond the runs' {args.steps} steps")
    args.sweep_lrs = sorted(set(args.sweep_lrs) - {settings.lr}) if set(args.methods) & set(SWEEP) else []
    args.matched_prompts = None
    args.budgets = budgets(args)
    if args.matched_budget:  # AZR's budget first, then the matched runs' own
        args.matched_prompts = matched_prompts(args, p)
        args.budgets = budgets(args)
    if args.preconditions and "toy" not in args.benchmarks:
        p.error("--preconditions: measured on the toy world's held-out tasks; keep toy among --benchmarks")
    args.eval_max_new_tokens = settings.max_new_tokens
    args.settings = vars(settings)


def train_argv(args, method, seed):
    """grpo.py's flags for one run (without --steps and --out, which training_job adds); a
    matched-budget method is its method's flags with more --prompts."""
    flags = RUNS[MATCHED.get(method, method)]
    if method in MATCHED:
        flags = flags + ["--prompts", str(args.matched_prompts)]
    return (args.grpo_args + (QUICK if args.quick else []) + ["--model", args.model, "--seed", str(seed)]
            + (["--preset", args.preset] if args.preset else [])
            + (["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []) + flags)


def budgets(args):
    """{method: {"proposer", "solver", "samples"}}: the sequences each method trains on per step, per
    role, and the solve-rate samples it draws without training on them (grpo.py's settings): AZR has
    --prompts proposer prompts x --group proposals and --prompts solver tasks x --group answers per
    task type, and --solve-samples answers to each proposal for its solve rate; RLVR --prompts x
    --group answers per task type; SFT --prompts x --group gold answers per task type."""
    out = {}
    for method in args.methods:
        s = grpo.get_args(train_argv(args, method, 0))
        per_type = s.prompts * s.group
        trains = s.method == "azr" and not s.freeze_proposer
        out[method] = {"task_types": len(s.task_types), "proposer": per_type * len(s.task_types) if trains else 0,
                       "solver": per_type * len(s.task_types),
                       "samples": per_type * s.solve_samples * len(s.task_types) if s.method == "azr" else 0}
    return out


def matched_prompts(args, p):
    """--prompts for RLVR and SFT so that they train on as many solver sequences per step as AZR."""
    if "azr" not in args.budgets or not {"rlvr", "sft"} & set(args.methods):
        p.error("--matched-budget: needs azr and rlvr or sft among --methods")
    fixed = grpo.get_args(train_argv(args, "rlvr", 0))
    prompts, left = divmod(args.budgets["azr"]["solver"], fixed.group * len(fixed.task_types))
    if left or not prompts:
        p.error(f"--matched-budget: AZR's {args.budgets['azr']['solver']} solver sequences per step are not a whole "
                f"number of RLVR prompts of {fixed.group} x {len(fixed.task_types)} task types")
    args.methods += [m for m, base in MATCHED.items() if base in args.methods and m not in args.methods]
    return prompts


# -----------------------------------------------------------------------------
# Training: one grpo.py run per method and seed, skipped when finished, resumed when not


def base_folder(args):
    """The base's folder among the runs: its cached evaluation and the probes, no training."""
    return os.path.join(args.out, "runs", "base")


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


def training_job(args, method, seed, folder, steps=None, extra=()):
    """(folder, steps, grpo.py flags) to train or resume one run to `steps` (default: the study's),
    or None when it is done. `extra` flags (a sweep's --lr) go before the study's --steps and --out."""
    steps = steps or args.steps
    state = run_state(folder, steps)
    if state == "done":
        return None
    if state == "resume":
        return folder, steps, ["--resume", "--out", folder, "--steps", str(steps)]
    return folder, steps, train_argv(args, method, seed) + list(extra) + ["--steps", str(steps), "--out", folder]


def train_all(args, jobs, what="training runs"):
    """Train (or resume) every job (training_job's, None for a finished run), args.jobs at a time,
    each process with the CPU's threads divided among the jobs (two processes asking for all the
    threads each would run several times slower). A failed run stops the study once the others
    have ended; the same command resumes it."""
    todo = [j for j in jobs if j is not None]
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool, \
            tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=what, unit="run") as bar:
        running = {pool.submit(run_training, argv, threads): (folder, steps) for folder, steps, argv in todo}
        for folder, _, argv in todo:
            tqdm.write(f"{'resuming' if '--resume' in argv else 'training'} {folder}")
        for done in as_completed(running):
            (folder, steps), code = running[done], done.result()
            if code != 0 or run_state(folder, steps) != "done":
                failed.append(f"{folder} (exit status {code})")
            bar.update()
    if failed:
        sys.exit(f"reproduce.py: training {', '.join(failed)} failed; run the same command again to resume")


def sweep_plan(args):
    """[SweepRun]: finding 4's learning-rate sweep. Each --sweep-lrs rate
    trains AZR, RLVR and SFT for --sweep-steps steps per seed (--sweep-seeds) in sweep/; the study's
    own rate is read from its runs' checkpoint at that step for the seeds it has (sweep runs of
    their own for any more seeds) (the learning rate is constant, and the runs draw
    each step's randomness from the seed and the step, so the first steps of a longer run are the
    short run), when --save-every wrote one."""
    plan = []
    own = args.settings["lr"]
    saved = args.sweep_steps <= args.steps and args.sweep_steps % args.settings["save_every"] == 0
    for rate in args.sweep_lrs + ([own] if saved and args.sweep_lrs else []):
        for method in (m for m in SWEEP if m in args.methods):
            for seed in range(args.sweep_seeds):
                folder = run_folder(args, method, seed) if rate == own and seed < args.seeds else \
                    os.path.join(args.out, "sweep", f"{method}-lr{rate:g}-seed{seed}")
                plan.append(SweepRun(rate, method, seed, folder, args.sweep_steps))
    return plan


def long_plan(args):
    """[Run]: the runs continued to --long-steps, each in <method>-long-seed<k>."""
    if args.long_steps is None:
        return []
    return [Run(m, s, os.path.join(args.out, "runs", f"{m}-long-seed{s}")) for m in LONG if m in args.methods
            for s in range(args.seeds)]


def start_long(args, method, seed, folder):
    """A long run starts as a copy of the finished study run (its config's folder rewritten), then
    resumes to --long-steps: the first steps are not trained twice."""
    if os.path.isdir(folder):
        return
    source = run_folder(args, method, seed)
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("*.json.tmp", "heldout_eval.json", "sparsity*.json",
                                                               "probe.json", "judges.json", "eval_benchmarks"))
    with open(os.path.join(tmp, "config.json")) as f:
        config = json.load(f)
    config["out"] = folder  # grpo.py --resume reads its folder back from the config
    write_json(os.path.join(tmp, "config.json"), config)
    os.replace(tmp, folder)


# -----------------------------------------------------------------------------
# The preconditions (preconditions.py): RLVR on three pools of tasks, in preconditions/


def pool_paths(args):
    """{pool: its task file}, in --out/preconditions/."""
    return {pool: os.path.join(args.out, "preconditions", f"{pool}.jsonl") for pool in POOLS}


def pool_folder(args, pool, seed):
    return os.path.join(args.out, "preconditions", f"{pool}-seed{seed}")


def write_pools(args):
    """Each pool's task file, written once: fresh tasks of one depth, or the base's own proposals
    (AZR's seeding with the study's AZR settings, PROPOSED_TASKS valid triplets, 8 with --quick), with the held-out
    programs left out of every pool as rlvr.py's fresh tasks leave them out."""
    held = {t.task.program.strip() for t in heldout()}
    for pool, path in pool_paths(args).items():
        if os.path.isfile(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if pool in POOL_DEPTHS:
            records = depth_pool(POOL_DEPTHS[pool])
        else:
            settings = grpo.get_args(train_argv(args, "azr", 0) + ["--seed-tasks", str(8 if args.quick else PROPOSED_TASKS),
                                                                   "--task-types", ",".join(TRIPLET_TYPES)])
            model, tokenizer = load_model(args.model)
            records = proposed_pool(model, tokenizer, settings)
        write_pool(path, [r for r in records if r["program"].strip() not in held])


def precondition_jobs(args):
    """(a)'s runs: RLVR from the base on each pool (its file as --data), each seed, the study's steps."""
    return [training_job(args, "rlvr", seed, pool_folder(args, pool, seed), extra=["--data", path])
            for pool, path in pool_paths(args).items() for seed in range(args.pool_seeds)]


def precondition_numbers_of(args, plan, long=()):
    """preconditions.json's numbers: the pools' held-out evaluations, and each self-play run's tasks
    (the long runs' too, as <method>-long, over their --long-steps)."""
    pools = {pool: read_jsonl(path) for pool, path in pool_paths(args).items()}
    evaluations = {pool: [heldout_eval(args, pool_folder(args, pool, s), *final_checkpoint(pool_folder(args, pool, s)))
                          for s in range(args.pool_seeds)] for pool in tqdm(POOLS, desc="preconditions", unit="pool")}
    runs = [(r.method, r.seed, read_jsonl(os.path.join(r.folder, "tasks.jsonl")), args.steps) for r in plan
            if r.method in SELF_PLAY]
    runs += [(f"{r.method}-long", r.seed, read_jsonl(os.path.join(r.folder, "tasks.jsonl")), args.long_steps)
             for r in long if run_state(r.folder, args.long_steps) == "done"]
    return precondition_numbers(pools, evaluations, runs)


# -----------------------------------------------------------------------------
# Evaluation: pass@k of the base and each final checkpoint, cached in the run's folder


def write_json(path, data):
    """Write JSON whole or not at all: a kill never leaves half a cache file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def cached(path, settings, field, compute, key=None):
    """compute()'s result, kept in the JSON file `path` as {"settings": settings, field: result} and
    read back while the settings are the same (else computed again). With `key`, one file holds
    many results, {"settings": ..., field: {key: result}} (one per checkpoint), each computed once.
    Every study cache is one of these, written whole (write_json)."""
    data = {}
    if os.path.isfile(path):
        with open(path) as f:
            data = json.load(f)
    if data.get("settings") != settings:
        data = {"settings": settings, **({field: {}} if key is not None else {})}
    if key is None and field not in data:
        data[field] = compute()
        write_json(path, data)
    elif key is not None and key not in data[field]:
        data[field][key] = compute()
        write_json(path, data)
    return data[field] if key is None else data[field][key]


def heldout_eval(args, folder, model_name, key):
    """{"toy deduction": {...}, "toy abduction": {...}}: each task's count of right answers among n
    samples at temperature 1 (toyworld.answers, graded by solver.solver_rewards(evaluation=True)), and
    pass@k for k = 1..n. Cached in folder/heldout_eval.json under `key` and the sampling settings."""
    settings = {"model": key, "n": args.n, "tasks": args.tasks_per_type, "max_new_tokens": args.eval_max_new_tokens,
                "temperature": TEMPERATURE, "template": template_of(args, model_name)}

    def compute():
        model, tokenizer = load_model(model_name)
        tasks, results = heldout_tasks(args.tasks_per_type), {}
        for task_type in TRIPLET_TYPES:
            samples = answers(model, tokenizer, task_type, tasks, TEMPERATURE, args.n,
                              max_new_tokens=args.eval_max_new_tokens, template=settings["template"])
            counts = [sum(right for right, _ in a) for a in samples]
            results[f"toy {task_type}"] = {"counts": counts, "problems": len(counts), "pass_at_k": {
                str(k): v for k, v in enumerate(pass_at_k_curve(counts, args.n), 1)}}
        return results
    return cached(os.path.join(folder, "heldout_eval.json"), settings, "results", compute)


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
    return checkpoint_key(checkpoints(folder)[-1][1])


def evaluate_all(args, plan):
    """{method: [results per seed]}, base first (one evaluation: it has no seeds)."""
    models = [("base", 0, base_folder(args), args.model, args.model)]
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
    """{role: {"first", "last", "mean", "first_median", "last_median", "median"}}: the token entropy
    logged for each task type over the first quarter of the steps, the last quarter (at least one
    step each) and all of them, as the mean over those steps and as their median (a one-step spike,
    a few long high-entropy answers, moves the mean, not the median), averaged over task types. With
    a single step there is no first and last: None."""
    curves = entropy_curves(read_jsonl(os.path.join(folder, "metrics.jsonl")))
    out = {}
    for role in ROLES:
        series = [values for (r, _), (_, values) in curves.items() if r == role]
        if series:
            windows = [max(1, len(v) // 4) for v in series]
            two = all(len(v) >= 2 for v in series)
            out[role] = {}
            for suffix, center in (("", mean), ("_median", statistics.median)):
                out[role].update({
                    "first" + suffix: mean([center(v[:w]) for v, w in zip(series, windows)]) if two else None,
                    "last" + suffix: mean([center(v[-w:]) for v, w in zip(series, windows)]) if two else None,
                    ("mean" if not suffix else "median"): mean([center(v) for v in series])})
    return out


def sparsity_numbers(args, folder, checkpoint=None):
    """A checkpoint's sparsity against the base, overall: {"exact", "tol", "bf16_exact", "bf16_tol"},
    cached in folder/sparsity.json under the checkpoint (default: the run's final one)."""
    checkpoint, key = checkpoint_key(checkpoint) if checkpoint else final_checkpoint(folder)

    def compute():
        s = summarize(sparsity(args.model, checkpoint, args.tol))["all"]
        return {"exact": s["same"] / s["numel"], "tol": s["close"] / s["numel"],
                "bf16_exact": s["same_bf16"] / s["numel"], "bf16_tol": s["close_bf16"] / s["numel"]}
    return cached(os.path.join(folder, "sparsity.json"), {"base": args.model, "tol": args.tol}, "checkpoints", compute,
                  key)


def checkpoint_key(checkpoint):
    """(checkpoint, what identifies it in a cache: its name and when it was written)."""
    return checkpoint, f"{os.path.basename(checkpoint)}, written {os.stat(checkpoint).st_mtime_ns}"


def checkpoint_at(folder, step):
    """The run's checkpoint at `step` (a folder), or None."""
    return dict(checkpoints(folder)).get(step)


def sparsity_over_steps(args, folder):
    """{step: sparsity_numbers} for every checkpoint of the run (--save-every apart)."""
    return {str(step): sparsity_numbers(args, folder, checkpoint) for step, checkpoint in checkpoints(folder)}


def template_of(args, model):
    """The scaffold a model of the study is scored in: the one its run trained with
    (runs.trained_template), the study's runs' for the base."""
    return trained_template(model) or args.settings["template"]


def probe_texts(args):
    """[("solver", user text, response)]: the fixed probes of finding 3. PROBES_PER_TYPE held-out toy
    tasks per task type (deduction and abduction), each with one response of the base sampled at
    temperature 1 (seed 0): every checkpoint is then scored, by teacher forcing, on the same
    tokens, so that their entropies compare the models and not the tasks each solver happened to
    meet or the answers it happened to write. Cached in runs/base/probes.json."""
    settings = {"model": args.model, "per_type": PROBES_PER_TYPE, "template": args.settings["template"]}

    def compute():
        model, tokenizer = load_model(args.model)
        template = resolve_template(tokenizer, settings["template"])
        tasks, probes = heldout_tasks(PROBES_PER_TYPE), []
        for task_type in TRIPLET_TYPES:
            texts = [solver_prompt(task_type, t.task) for t in tasks]
            out = sample(model, tokenizer, [render_prompt(tokenizer, t, template) for t in texts], 1,
                         args.eval_max_new_tokens, TEMPERATURE, seed=0)
            probes += sorted(("solver", texts[k], completion(text, template))
                             for k, text in zip(out["prompt_index"].tolist(), out["texts"]))
        return probes
    return [tuple(p) for p in cached(os.path.join(base_folder(args), "probes.json"), settings, "probes", compute)]


def probe_numbers(args, folder, probes, base_entropy):
    """{step: the solver's mean token entropy on the probes}, step "0" the base, then each
    checkpoint of the run (analyze.probe_entropy); cached in folder/probe.json."""
    def entropy_of(checkpoint):
        model, tokenizer = load_model(checkpoint)
        return probe_entropy(model, tokenizer, probes, TEMPERATURE, template=template_of(args, checkpoint))["solver"]
    settings = {"probes": hashlib.sha256(json.dumps(probes).encode()).hexdigest()}  # the same probes, not merely as many
    out = {"0": base_entropy}
    for step, checkpoint in checkpoints(folder):
        out[str(step)] = cached(os.path.join(folder, "probe.json"), settings, "checkpoints",
                                functools.partial(entropy_of, checkpoint), checkpoint_key(checkpoint)[1])
    return out


def base_probe_entropy(args, probes):
    model, tokenizer = load_model(args.model)
    return probe_entropy(model, tokenizer, probes, TEMPERATURE, template=template_of(args, args.model))["solver"]


def quarter_of(step, steps):
    """0..3: the quarter of training a step (1..steps) falls in."""
    return min(3, (step - 1) * 4 // steps)


def judge_numbers(args, folder, steps):
    """Finding 6 under fixed judges: per quarter of the run's steps, a sample of JUDGE_TASKS valid
    proposed tasks per task type (seeded), each answered JUDGE_SAMPLES times at temperature 1 by the
    base and by the final checkpoint; {"judge_base", "judge_final": [solve rate per quarter, the mean
    over task types of the mean over tasks], "nodes_by_quarter": [mean AST nodes of ALL the
    quarter's valid programs, the mean over task types]}. A quarter with no valid task is None.
    Cached in folder/judges.json."""
    checkpoint, key = final_checkpoint(folder)
    settings = {"base": args.model, "checkpoint": key, "tasks": JUDGE_TASKS, "samples": JUDGE_SAMPLES,
                "max_new_tokens": args.eval_max_new_tokens, "template": template_of(args, checkpoint)}
    return cached(os.path.join(folder, "judges.json"), settings, "numbers",
                  functools.partial(judged, args, folder, steps, checkpoint))


def judged(args, folder, steps, checkpoint):
    """judge_numbers' numbers, computed."""
    groups = {}
    for r in read_jsonl(os.path.join(folder, "tasks.jsonl")):
        if r["valid"]:
            groups.setdefault((r["type"], quarter_of(r["step"], steps)), []).append(r)
    rng = random.Random(0)
    chosen = {key: rng.sample(v, min(JUDGE_TASKS, len(v))) for key, v in sorted(groups.items())}
    by_quarter = lambda values: [mean_or_none([mean(v) for (_, q), v in values.items() if q == k and v])  # noqa: E731
                                 for k in range(4)]
    numbers = {"nodes_by_quarter": by_quarter({k: [c["nodes"] for c in map(program_complexity, (r["program"] for r in v)) if c]
                                               for k, v in groups.items()})}
    for judge, name in (("base", args.model), ("final", checkpoint)):
        model, tokenizer = load_model(name)
        rates = {}
        for task_type in sorted({t for t, _ in chosen}):
            keys = [k for k in chosen if k[0] == task_type]
            tasks = [Generated(Task.from_record(r), 0, (), [])
                     for k in keys for r in chosen[k]]
            rates_flat = solved(model, tokenizer, task_type, tasks, TEMPERATURE, JUDGE_SAMPLES, args.eval_max_new_tokens,
                                template=template_of(args, name))
            for k in keys:
                rates[k], rates_flat = rates_flat[:len(chosen[k])], rates_flat[len(chosen[k]):]
        numbers[f"judge_{judge}"] = by_quarter(rates)
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
# The command


def training_jobs(args, plan, sweep, long):
    """The study's training phases, each a list of training_job: with --preconditions their RLVR
    runs, the runs, finding 4's sweep (its own-rate points come from the runs) and the long runs."""
    return [("precondition runs", precondition_jobs(args) if args.preconditions else []),
            ("training runs", [training_job(args, r.method, r.seed, r.folder) for r in plan]),
            ("sweep runs", [training_job(args, r.method, r.seed, r.folder, r.steps, ["--lr", f"{r.rate:g}"])
                            for r in sweep if r.folder != run_folder(args, r.method, r.seed)]),
            ("long runs", [None if run_state(f, args.long_steps) == "done" else
                           (f, args.long_steps, ["--resume", "--out", f, "--steps", str(args.long_steps)])
                           for f in (r.folder for r in long)])]  # each a copy of its study run, resumed (start_long)


def study_numbers(args, plan, sweep, long, evaluations):
    """numbers.json: every quantity the verdicts read (findings.py's docstring lists the fields)."""
    curves = lambda method: [{b: r["pass_at_k"] for b, r in e.items()} for e in evaluations[method]]  # noqa: E731
    numbers = {"n": args.n, "settings": {"model": args.model, "steps": args.steps, "seeds": args.seeds,
                                         "tasks_per_type": args.tasks_per_type, "benchmarks": args.benchmarks,
                                         "tol": args.tol, "lr": args.settings["lr"], "long_steps": args.long_steps,
                                         "temperature": TEMPERATURE, "probes_per_type": PROBES_PER_TYPE,
                                         "judge_tasks": JUDGE_TASKS, "judge_samples": JUDGE_SAMPLES},
               "budgets": args.budgets, "methods": {"base": {"pass_at_k": curves("base")}}}
    probes = probe_texts(args)
    base_entropy = base_probe_entropy(args, probes)
    for method in tqdm(args.methods, desc="analysis", unit="method"):
        folders = [r.folder for r in plan if r.method == method]
        play = MATCHED.get(method, method) in SELF_PLAY
        numbers["methods"][method] = {
            "pass_at_k": curves(method),
            "entropy": [entropy_numbers(f) for f in folders],
            "sparsity": [sparsity_numbers(args, f) for f in folders],
            "sparsity_steps": [sparsity_over_steps(args, f) for f in folders] if method in SWEEP else [],
            "probe": [probe_numbers(args, f, probes, base_entropy) for f in folders],
            "curriculum": [{**curriculum_numbers(f), **(judge_numbers(args, f, args.steps) if method == "azr" else {})}
                           for f in folders] if play else []}
    for method in LONG:
        folders = [r.folder for r in long if r.method == method]
        if folders:
            numbers["methods"][f"{method}-long"] = {"entropy": [entropy_numbers(f) for f in folders],
                                                    "probe": [probe_numbers(args, f, probes, base_entropy) for f in folders]}
    numbers["contamination"] = contamination_numbers(
        [g.task.program for g in heldout_tasks(args.tasks_per_type)],
        {m: [r.folder for r in plan if r.method == m] for m in args.methods}, evaluations, args.n)
    if args.preconditions:
        numbers["preconditions"] = precondition_numbers_of(args, plan, long)
    if sweep:
        rates = {}
        for r in tqdm(sweep, desc="sweep sparsity", unit="run"):
            rates.setdefault(f"{r.rate:g}", {}).setdefault(r.method, []).append(
                sparsity_numbers(args, r.folder, checkpoint_at(r.folder, r.steps)))
        numbers["sweep"] = {"steps": args.sweep_steps, "rates": rates}
    return numbers


def only_preconditions(args, plan, long, report):
    """--only-preconditions: report/preconditions.json, .md and .png, and each run's plain files."""
    numbers = precondition_numbers_of(args, plan, long)
    write_json(os.path.join(report, "preconditions.json"), numbers)
    plot_preconditions(numbers, os.path.join(report, "preconditions.png"))
    md = preconditions_section(numbers)
    with open(os.path.join(report, "preconditions.md"), "w") as f:
        f.write("\n".join(md))
    keep_artefacts([r.folder for r in plan + long] + [pool_folder(args, p, s) for p in POOLS for s in range(args.pool_seeds)],
                   report)
    executor.close_pool()
    print("\n".join(md))
    return numbers


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args(argv)
    plan = [Run(m, s, run_folder(args, m, s)) for m in args.methods for s in range(args.seeds)]
    sweep, long = sweep_plan(args), long_plan(args)
    phases = training_jobs(args, plan, sweep, long)
    if args.dry_run:
        for what, jobs in phases:
            print(f"{what}:")
            for folder, steps, flags in (j for j in jobs if j is not None):
                print(f"  {folder} ({steps} steps): python grpo.py {shlex.join(flags)}")
            print(f"  {sum(j is None for j in jobs)} done" if jobs else "  none")
        print(f"then: pass@k (n = {args.n}) on {', '.join(args.benchmarks)}, entropy, probe entropy, sparsity, "
              f"curriculum with fixed judges, findings into {os.path.join(args.out, 'report')}")
        return None
    start = time.time()
    if args.preconditions:
        write_pools(args)
    for what, jobs in phases:
        if what == "long runs":  # each starts as a copy of its finished study run
            for method, seed, folder in long:
                start_long(args, method, seed, folder)
        train_all(args, jobs, what)
    report = os.path.join(args.out, "report")
    os.makedirs(report, exist_ok=True)
    if args.only_preconditions:
        return only_preconditions(args, plan, long, report)
    evaluations = evaluate_all(args, plan)
    write_json(os.path.join(report, "numbers.json"), study_numbers(args, plan, sweep, long, evaluations))
    with open(os.path.join(report, "numbers.json")) as f:  # the verdicts come from the saved file alone
        numbers = json.load(f)
    records = all_findings(numbers)
    write_json(os.path.join(report, "findings.json"), records)
    matched = all_findings(matched_budget(numbers)) if matched_budget(numbers) else None
    if matched:
        write_json(os.path.join(report, "findings_matched_budget.json"), matched)
    write_report(args, plan, long, evaluations, numbers, records, matched, shlex.join(argv))
    folders = dict.fromkeys([base_folder(args)] + [r.folder for r in plan + long] + [r.folder for r in sweep]
                            + ([pool_folder(args, p, s) for p in POOLS for s in range(args.pool_seeds)]
                               if args.preconditions else []))
    keep_artefacts(folders, report)
    executor.close_pool()
    print(verdict_table(records))
    print(f"wrote {os.path.join(report, 'report.md')} ({time.time() - start:.0f} s)")
    return records


if __name__ == "__main__":
    main()
