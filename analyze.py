"""
The training dynamics of runs: entropy, update sparsity and the proposer's curriculum, as figures,
tables and one Markdown report.

Three of the study's analyses (arXiv 2510.27072), each on any run folder written by grpo.py
(runs.py describes it) and any pair of checkpoints:
  entropy     per-(role, task type) entropy curves from metrics.jsonl, runs overlaid: both roles
              should lose entropy, the proposer staying above the solver. And `probe`: the mean
              token entropy of each checkpoint on one fixed set of probe texts, so that runs and
              checkpoints are compared on the same tokens.
  sparsity    how many parameters an update left unchanged (sparsity.py: RLVR most, SFT few, AZR
              in between), overall, per layer and per module kind, the Jaccard overlap of two
              runs' update masks, the rank of each matrix's update.
  curriculum  from tasks.jsonl (curriculum.py): the solve rate and program complexity of the
              proposer's tasks over training, and response length against difficulty.
  report      all of it for a list of runs, as report.md with PNG figures and tables.

    python analyze.py entropy runs/a runs/b --out runs/analysis
    python analyze.py probe smollm2-135m runs/a/checkpoints/step_000010
    python analyze.py sparsity --base smollm2-135m runs/a/checkpoints/step_000010 runs/b/checkpoints/step_000010
    python analyze.py curriculum runs/a
    python analyze.py report runs/a runs/b --base smollm2-135m --out runs/report
"""

import argparse
import itertools
import json
import os
from collections import defaultdict

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

from chat import TEMPLATES, teacher_forced
from curriculum import curriculum_by_step, length_vs_difficulty, mean_or_none
from logprobs import sequence_logprobs_and_entropy
from models import load_model, model_name_problem
from proposer import IDENTITY, Task, induction_proposal_prompt, proposal_prompt
from runs import checkpoints, eval_templates, number, read_jsonl, run_label
from solver import TASK_TYPES, solver_prompt
from sparsity import jaccard, sparsity, summarize

ROLES = ("proposer", "solver")


# -----------------------------------------------------------------------------
# Entropy: the curves grpo.py logged, and a fixed probe set


def entropy_curves(metrics):
    """{(role, task type): (steps, entropies)} from metrics.jsonl lines (the mean
    full-vocabulary entropy of the policy over its own responses, per role and task type)."""
    curves = {}
    for role, task_type in itertools.product(ROLES, TASK_TYPES):
        name = f"entropy/{role}/{task_type}"
        points = [(m["step"], m[name]) for m in metrics if name in m]
        if points:
            curves[role, task_type] = tuple(map(list, zip(*points)))
    return curves


# The probe set: fixed texts, each a prompt and a response written here (not sampled), in both
# roles and all task types. Every checkpoint is scored on the same tokens by teacher forcing, so
# its number can be compared across checkpoints and runs; the entropy logged during training is
# over each policy's own samples, which change as it trains. The programs are small ones of the
# kind AZR proposes, starting from the seed identity program.
PROBE_TASKS = [
    Task("deduction", IDENTITY, ["'Hello world'"], ["'Hello world'"]),
    Task("deduction", "def f(a):\n    return sorted(set(a), reverse=True)[:3]", ["[3, 1, 4, 1, 5, 9, 2, 6]"], ["[9, 6, 5]"]),
    Task("deduction", "def f(s, k):\n    return ''.join(c * k for c in s if c.isalpha())", ["'a1b2', 2"], ["'aabb'"]),
    Task("deduction", "def f(n):\n    total = 0\n    for i in range(1, n + 1):\n        if i % 3 == 0:\n"
         "            total += i\n    return total", ["10"], ["18"]),
]
PROBE_INDUCTION = Task("induction", PROBE_TASKS[1].program, ["[3, 1, 4, 1, 5, 9, 2, 6]", "[1, 2]", "[7, 7, 8, 0]", "[5]"],
                       ["[9, 6, 5]", "[2, 1]", "[8, 7, 0]", "[5]"], message="The largest distinct values, largest first.")
THINK = "<think> I read the code of f and follow it step by step on the {what}. </think>\n"


def probe_set():
    """[(role, user text, response text)]: the twelve probes, in the formats of solver.py and proposer.py."""
    probes = []
    for task in PROBE_TASKS:
        probes.append(("solver", solver_prompt("deduction", task),
                       THINK.format(what="input") + f"<answer> {task.outputs[0]} </answer>"))
        probes.append(("solver", solver_prompt("abduction", task),
                       THINK.format(what="output") + f"<answer> {task.inputs[0]} </answer>"))
    probes.append(("solver", solver_prompt("induction", PROBE_INDUCTION),
                   THINK.format(what="examples") + f"<answer>\n```python\n{PROBE_INDUCTION.program}\n```\n</answer>"))
    for task_type, shown, new in (("deduction", [0, 1, 2], 3), ("abduction", [0, 1, 3], 2)):
        task = PROBE_TASKS[new]
        probes.append(("proposer", proposal_prompt(task_type, [PROBE_TASKS[i] for i in shown]),
                       THINK.format(what="references") + f"<answer>\n```python\n{task.program}\n```\n```input\n"
                       f"{task.inputs[0]}\n```\n</answer>"))
    blocks = "".join(f"```input\n{i}\n```\n" for i in PROBE_INDUCTION.inputs)
    probes.append(("proposer", induction_proposal_prompt(PROBE_INDUCTION.program, len(PROBE_INDUCTION.inputs)),
                   THINK.format(what="program") + f"<answer>\n{blocks}```message\n{PROBE_INDUCTION.message}\n```\n</answer>"))
    return probes


@torch.no_grad()
def probe_entropy(model, tokenizer, probes, temperature=1.0, chunk_size=128, template="chat"):
    """{role: mean token entropy, "all": ...} of the model on the probes' response tokens.

    Each probe is the prompt rendered in the scaffold `template` (the one the model trained with:
    runs.eval_templates) followed by its response and the eos token, as in a
    training row; at every response token the model's next-token distribution softmax(z / T) has
    entropy H = logsumexp(z) - sum_i softmax(z)_i z_i over the full vocabulary,
    computed by logprobs.sequence_logprobs_and_entropy. The mean is over all response tokens of a role
    (a token mean, as grpo.py logs), and over all tokens for "all"."""
    model.eval()
    values = defaultdict(list)
    for role, user_text, response in probes:
        prompt_text, response = teacher_forced(tokenizer, user_text, response, template)
        prompt = tokenizer(prompt_text, add_special_tokens=False).input_ids
        answer = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + answer], device=model.device)
        mask = torch.tensor([[0] * len(prompt) + [1] * len(answer)], device=model.device)
        _, H = sequence_logprobs_and_entropy(model, ids, torch.ones_like(ids), mask, temperature, chunk_size)
        values[role].append(H[mask.bool()].float().cpu())
        values["all"].append(values[role][-1])
    return {role: torch.cat(v).mean().item() for role, v in values.items()}


def probe_models(names, temperature, template=None):
    """[(name, {role: entropy})] for models or checkpoint folders, loaded one at a time, each probed
    in the scaffold it trained with (runs.eval_templates: a base takes its runs'; `template` for all)."""
    probes, rows, templates = probe_set(), [], eval_templates(names, template)
    for name in tqdm(names, desc="probe entropy", unit="model"):
        model, tokenizer = load_model(name)
        rows.append((name, probe_entropy(model, tokenizer, probes, temperature, template=templates[name])))
        del model
    return rows


# -----------------------------------------------------------------------------
# Figures and tables

STYLES = ["-", "--", ":", "-."]


def finish(fig, axes, path, integer_x=True):
    """Grid and legend on every panel ("no data" on an empty one), whole-number ticks for steps
    and layers, then save the PNG."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if integer_x:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if ax.has_data():
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_entropy(runs, path):
    """One panel per task type: entropy over steps, a colour per run, solid proposer, dashed solver."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for c, run in enumerate(runs):
        for (role, task_type), (steps, values) in entropy_curves(read_jsonl(os.path.join(run, "metrics.jsonl"))).items():
            axes[TASK_TYPES.index(task_type)].plot(steps, values, STYLES[ROLES.index(role)], color=f"C{c}", marker="o",
                                                   ms=3, label=f"{run_label(run)} {role}")
    for ax, task_type in zip(axes, TASK_TYPES):
        ax.set(title=task_type, xlabel="step", ylabel="mean token entropy (nats)")
    finish(fig, axes, path)


def plot_probe(points, path):
    """Probe entropy per checkpoint step: a colour per run, a line style per role (the roles the
    rows hold)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for c, (label, rows) in enumerate(points.items()):
        for s, role in enumerate(ROLES):
            if role not in rows[0][1]:
                continue
            ax.plot([step for step, _ in rows], [e[role] for _, e in rows], STYLES[s], color=f"C{c}", marker="o",
                    ms=3, label=f"{label} {role}")
    ax.set(xlabel="checkpoint step (0 = base)", ylabel="probe entropy (nats)", title="mean token entropy on the probe set")
    finish(fig, [ax], path)


def plot_sparsity_sweep(points, path):
    """Sparsity against the learning rate: {method: [(rate, mean, std)]}, a line per method with the
    seeds' std as error bars, the rate on a log axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for c, (method, rows) in enumerate(points.items()):
        rows = sorted(rows)
        ax.errorbar([r for r, _, _ in rows], [m for _, m, _ in rows], yerr=[e for _, _, e in rows], color=f"C{c}",
                    marker="o", ms=4, capsize=3, label=method)
    rates = sorted({r for rows in points.values() for r, _, _ in rows})
    ax.set_xscale("log")
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set(xlabel="learning rate", ylabel="sparsity (fraction unchanged, bf16)", ylim=(-0.02, 1.02),
           title="update sparsity against the learning rate")
    finish(fig, [ax], path, integer_x=False)


def plot_sparsity_layers(results, path):
    """Per-layer sparsity of each checkpoint, in bf16: solid Δ = 0, dashed |Δ| <= tol."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for c, (label, records) in enumerate(results.items()):
        layers = {k: v for k, v in summarize(records, "layer").items() if k is not None}
        xs = sorted(layers)
        ax.plot(xs, [layers[x]["same_bf16"] / layers[x]["numel"] for x in xs], "-", color=f"C{c}", marker="o", ms=4,
                label=f"{label}: Δ = 0")
        ax.plot(xs, [layers[x]["close_bf16"] / layers[x]["numel"] for x in xs], "--", color=f"C{c}", marker="s", ms=3,
                label=f"{label}: |Δ| ≤ tol")
    ax.set(xlabel="layer", ylabel="sparsity (fraction unchanged, bf16)", ylim=(-0.02, 1.02), title="update sparsity per layer")
    finish(fig, [ax], path)


def plot_curriculum(runs, path):
    """Four panels over steps: mean solve rate of the valid tasks, valid rate, AST nodes and
    branches of the valid programs; a colour per task type, a line style per run."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for s, run in enumerate(runs):
        rows = curriculum_by_step(read_jsonl(os.path.join(run, "tasks.jsonl")))
        for ax, field in zip(axes, ("solve_rate", "valid_rate", "nodes", "branches")):
            for c, task_type in enumerate(TASK_TYPES):
                pts = [(r["step"], r[field]) for r in rows if r["type"] == task_type and r[field] is not None]
                if pts:
                    ax.plot(*zip(*pts), STYLES[s % 4], color=f"C{c}", marker="o", ms=3, label=f"{run_label(run)} {task_type}")
    for ax, title in zip(axes, ("solve rate of valid tasks", "valid proposals", "AST nodes (valid)", "branches (valid)")):
        ax.set(title=title, xlabel="step")
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
    finish(fig, axes, path)


def plot_length_vs_difficulty(runs, path):
    """The solver's mean response length on each valid task against the task's solve rate."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, run in enumerate(runs):
        records = read_jsonl(os.path.join(run, "tasks.jsonl"))
        pts = [(r["solve_rate"], r["solver_response_len"]) for r in records
               if r["valid"] and r.get("solve_rate") is not None and r.get("solver_response_len") is not None]
        if pts:
            rho = length_vs_difficulty(records)["all"]["spearman"]
            ax.scatter(*zip(*pts), s=12, alpha=0.6, color=f"C{c}",
                       label=f"{run_label(run)} (Spearman within task types {rho:.2f})")
    ax.set(xlabel="solve rate (1 = easy)", ylabel="solver response length (tokens)", title="response length vs difficulty")
    finish(fig, [ax], path, integer_x=False)


def table(header, rows):
    """A Markdown table; floats with 4 decimals, None as a dash."""
    cell = lambda v: "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows])


# no "|" in headers: it would split a Markdown cell
SPARSITY_HEADER = ["checkpoint", "group", "parameters", "S exact", "S within tol", "S exact, bf16", "S within tol, bf16",
                   "update rank / max"]


def sparsity_rows(label, groups):
    """Rows of SPARSITY_HEADER from summed counts: the four sparsities and the update rank fraction."""
    return [[label, g, s["numel"], s["same"] / s["numel"], s["close"] / s["numel"], s["same_bf16"] / s["numel"],
             s["close_bf16"] / s["numel"], s["rank"] / s["full_rank"] if s["full_rank"] else None]
            for g, s in groups.items()]


ENTROPY_HEADER = ["run", "role", "task type", "first step", "last step", "change"]


def entropy_rows(run):
    """Rows of ENTROPY_HEADER, one per logged (role, task type) curve of a run."""
    curves = entropy_curves(read_jsonl(os.path.join(run, "metrics.jsonl")))
    return [[run_label(run), role, task_type, v[0], v[-1], v[-1] - v[0]] for (role, task_type), (_, v) in curves.items()]


CURRICULUM_HEADER = ["run", "task type", "valid tasks", "solve rate, first half", "solve rate, second half",
                     "Spearman(solve rate, length)"]


def curriculum_rows(run):
    """Rows of CURRICULUM_HEADER per task type of a run: the first half of the steps is those
    before the middle step, the second half the rest."""
    records = read_jsonl(os.path.join(run, "tasks.jsonl"))
    lengths = length_vs_difficulty(records)
    steps = sorted({r["step"] for r in records})
    middle = steps[len(steps) // 2] if steps else 0
    rows = []
    for task_type in TASK_TYPES + ("all",):
        valid = [r for r in records if r["valid"] and r["solve_rate"] is not None and task_type in (r["type"], "all")]
        rows.append([run_label(run), task_type, len(valid), mean_or_none([r["solve_rate"] for r in valid if r["step"] < middle]),
                     mean_or_none([r["solve_rate"] for r in valid if r["step"] >= middle]),
                     lengths.get(task_type, {}).get("spearman")])
    return rows


# -----------------------------------------------------------------------------
# Commands


def sparsity_report(items, tol, rank, out):
    """Sparsity of checkpoints, items [(label, base, checkpoint folder)]: per-tensor records to
    sparsity.jsonl, the per-layer figure, and Markdown tables (overall, per module kind, and the
    Jaccard overlap of each pair of checkpoints with the same base)."""
    results = {label: sparsity(base, folder, tol, rank) for label, base, folder in items}
    with open(os.path.join(out, "sparsity.jsonl"), "w") as f:
        f.writelines(json.dumps({"checkpoint": label, **r}) + "\n" for label, records in results.items() for r in records)
    plot_sparsity_layers(results, os.path.join(out, "sparsity_layers.png"))
    overall = table(SPARSITY_HEADER, [row for label, rs in results.items() for row in sparsity_rows(label, summarize(rs))])
    kinds = table(SPARSITY_HEADER, [row for label, rs in results.items() for row in sparsity_rows(label, summarize(rs, "kind"))])
    pairs = [[la, lb, jaccard(ba, fa, fb)] for (la, ba, fa), (lb, bb, fb) in itertools.combinations(items, 2) if ba == bb]
    overlap = table(["checkpoint A", "checkpoint B", "Jaccard of the bf16 update masks"], pairs) if pairs else ""
    return overall, kinds, overlap


def cmd_entropy(args):
    plot_entropy(args.runs, os.path.join(args.out, "entropy.png"))
    print(table(ENTROPY_HEADER, [r for run in args.runs for r in entropy_rows(run)]))
    print(f"wrote {args.out}/entropy.png")


def cmd_probe(args):
    rows = probe_models(args.models, args.temperature, args.template)
    with open(os.path.join(args.out, "probe_entropy.jsonl"), "w") as f:
        f.writelines(json.dumps({"model": name, **e}) + "\n" for name, e in rows)
    print(table(["model", "proposer", "solver", "all"], [[name, e["proposer"], e["solver"], e["all"]] for name, e in rows]))
    print(f"wrote {args.out}/probe_entropy.jsonl")


def cmd_sparsity(args):
    overall, kinds, overlap = sparsity_report([(c, args.base, c) for c in args.checkpoints], args.tol, args.rank, args.out)
    print(f"tol = {args.tol}\n\n{overall}\n\n{kinds}\n\n{overlap}")
    print(f"wrote {args.out}/sparsity.jsonl, {args.out}/sparsity_layers.png")


def cmd_curriculum(args):
    plot_curriculum(args.runs, os.path.join(args.out, "curriculum.png"))
    plot_length_vs_difficulty(args.runs, os.path.join(args.out, "length_vs_difficulty.png"))
    with open(os.path.join(args.out, "curriculum.jsonl"), "w") as f:
        for run in args.runs:
            f.writelines(json.dumps({"run": run, **row}) + "\n" for row in curriculum_by_step(read_jsonl(os.path.join(run, "tasks.jsonl"))))
    print(table(CURRICULUM_HEADER, [r for run in args.runs for r in curriculum_rows(run)]))
    print(f"wrote {args.out}/curriculum.png, {args.out}/length_vs_difficulty.png, {args.out}/curriculum.jsonl")


def cmd_report(args):
    configs = {}
    for run in args.runs:
        with open(os.path.join(run, "config.json")) as f:
            configs[run] = json.load(f)
    bases = {run: args.base or configs[run]["model"] for run in args.runs}
    md = ["# Self-play training dynamics", "",
          table(["run", "model", "steps", "task types", "proposer reward", "frozen proposer", "base"],
                [[run_label(r), c["model"], len(read_jsonl(os.path.join(r, "metrics.jsonl"))), ", ".join(c["task_types"]),
                  c["proposer_reward"], c["freeze_proposer"], bases[r]] for r, c in configs.items()]), ""]

    plot_entropy(args.runs, os.path.join(args.out, "entropy.png"))
    md += ["## Entropy dynamics", "", "Mean full-vocabulary token entropy of the policy over its own responses, "
           "per role and task type, as logged during training (arXiv 2510.27072). Solid: proposer; dashed: solver.",
           "", "![entropy](entropy.png)", "", table(ENTROPY_HEADER, [r for run in args.runs for r in entropy_rows(run)]), ""]

    points = {}
    for run in args.runs:
        steps = [(0, bases[run])] + checkpoints(run)
        scored = probe_models([name for _, name in steps], args.temperature, args.template)
        points[run_label(run)] = [(step, e) for (step, _), (_, e) in zip(steps, scored)]
    plot_probe(points, os.path.join(args.out, "probe_entropy.png"))
    md += ["## Entropy on a fixed probe set", "", f"Mean token entropy (T = {args.temperature}) of each checkpoint on "
           f"the same {len(probe_set())} fixed prompt + response texts (teacher-forced), so checkpoints and runs are "
           "compared on the same tokens. Step 0 is the base model.", "", "![probe entropy](probe_entropy.png)", "",
           table(["run", "step", "proposer", "solver", "all"],
                 [[label, step, e["proposer"], e["solver"], e["all"]] for label, rows in points.items() for step, e in rows]), ""]

    last = [(f"{run_label(run)}/step_{checkpoints(run)[-1][0]}", bases[run], checkpoints(run)[-1][1])
            for run in args.runs if checkpoints(run)]
    md += ["## Update sparsity", ""]
    if last:
        overall, kinds, overlap = sparsity_report(last, args.tol, args.rank, args.out)
        md += ["Each run's last checkpoint against its base: the fraction of parameters left unchanged "
               f"(S = 1 - ||Δ||₀ / n, arXiv 2505.11711), exactly and within tol = {args.tol}, in the checkpoints' "
               "dtype and after rounding both to bf16 (the study's setting)."
               + (" Update rank: rank of Δ over min(shape), summed over matrices." if args.rank else ""), "",
               "### Overall", "", overall, "", "### Per module kind", "", kinds, "",
               "### Per layer (bf16)", "", "![sparsity per layer](sparsity_layers.png)", ""]
        if overlap:
            md += ["### Overlap of the update masks", "", "Jaccard |A ∩ B| / |A ∪ B| of the entries each checkpoint "
                   "changed (Δ != 0 in bf16); nan when neither changed any.", "", overlap, ""]
    else:
        md += ["No checkpoints.", ""]

    plot_curriculum(args.runs, os.path.join(args.out, "curriculum.png"))
    plot_length_vs_difficulty(args.runs, os.path.join(args.out, "length_vs_difficulty.png"))
    md += ["## Curriculum", "", "The proposer's tasks over training (tasks.jsonl): solve rate of the valid tasks, "
           "valid rate and program complexity (AST nodes, branches) per step; and the solver's mean response length "
           "on each valid task against its solve rate.", "", "![curriculum](curriculum.png)", "",
           "![length vs difficulty](length_vs_difficulty.png)", "",
           table(CURRICULUM_HEADER, [r for run in args.runs for r in curriculum_rows(run)]), ""]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(md))
    print(f"wrote {args.out}/report.md")


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="analyze.py", description="Entropy, update sparsity and curriculum of self-play runs.")
    sub = p.add_subparsers(dest="command", required=True)
    entropy = sub.add_parser("entropy", help="per-(role, task type) entropy curves of runs, overlaid")
    entropy.add_argument("runs", nargs="+", help="run folders written by grpo.py")
    probe = sub.add_parser("probe", help="mean token entropy of models or checkpoints on the fixed probe set")
    probe.add_argument("models", nargs="+", help="built-in names, checkpoint folders or hub ids")
    spars = sub.add_parser("sparsity", help="update sparsity, Jaccard overlap and update rank of checkpoints vs a base")
    spars.add_argument("checkpoints", nargs="+", help="checkpoint folders (Hugging Face, safetensors)")
    spars.add_argument("--base", required=True, help="the base model: built-in name, folder or hub id")
    curric = sub.add_parser("curriculum", help="solve rate, complexity and response length of the proposer's tasks")
    curric.add_argument("runs", nargs="+", help="run folders written by grpo.py")
    report = sub.add_parser("report", help="all analyses of runs as report.md with figures and tables")
    report.add_argument("runs", nargs="+", help="run folders written by grpo.py")
    report.add_argument("--base", default=None, help="base model for sparsity and probe step 0 (default: each run's --model)")
    for s in (spars, report):
        s.add_argument("--tol", type=number(float, 0), default=1e-5, help="|Δ| <= tol counts as unchanged (the study: 1e-5)")
        s.add_argument("--rank", action="store_true", help="also the rank of every 2-D update (an SVD each: slow for 3B)")
    for s in (probe, report):
        s.add_argument("--temperature", type=number(float, 0, above=True), default=1.0, help="temperature of the probe entropy (training: 1.0)")
        s.add_argument("--template", choices=TEMPLATES, default=None,
                       help="prompt scaffold of the probes (default: each checkpoint's run's own; a base takes its runs')")
    for s in (entropy, probe, spars, curric, report):
        s.add_argument("--out", default=None, help="output folder (default runs/analysis; report: <first run>/report)")
    args = p.parse_args(argv)
    check_args(args, {"entropy": entropy, "probe": probe, "sparsity": spars, "curriculum": curric,
                      "report": report}[args.command])
    args.out = args.out or (os.path.join(args.runs[0], "report") if args.command == "report" else os.path.join("runs", "analysis"))
    return args


# the files each command reads from a run folder
RUN_FILES = {"entropy": ("metrics.jsonl",), "curriculum": ("tasks.jsonl",),
             "report": ("config.json", "metrics.jsonl", "tasks.jsonl")}


def check_args(args, p):
    """Refuse what cannot be analysed with one line and exit status 2 (p.error), before anything is
    loaded or written: missing run files, models that are no model, checkpoints without weights."""
    for run in getattr(args, "runs", []):
        missing = [name for name in RUN_FILES[args.command] if not os.path.isfile(os.path.join(run, name))]
        if missing:
            p.error(f"{run}: not a run folder written by grpo.py (no {', '.join(missing)})")
    for name in getattr(args, "models", []) + [m for m in [getattr(args, "base", None)] if m]:
        problem = model_name_problem(name)
        if problem:
            p.error(problem)
    if args.command == "probe":
        try:
            eval_templates(args.models, args.template)
        except ValueError as e:
            p.error(str(e))
    for folder in getattr(args, "checkpoints", []):
        if not (os.path.isfile(os.path.join(folder, "model.safetensors"))
                or os.path.isfile(os.path.join(folder, "model.safetensors.index.json"))):
            p.error(f"{folder}: no model.safetensors (or its index) in it; pass a checkpoint folder")


if __name__ == "__main__":
    args = get_args()
    os.makedirs(args.out, exist_ok=True)
    {"entropy": cmd_entropy, "probe": cmd_probe, "sparsity": cmd_sparsity, "curriculum": cmd_curriculum,
     "report": cmd_report}[args.command](args)
