"""
The training dynamics of self-play runs: entropy, update sparsity, and the proposer's curriculum.

Three of the study's analyses (SPEC.md sections 1, 4 and 6), each on any run folder written by
grpo.py and any pair of checkpoints:
  entropy     per-(role, task type) entropy curves from metrics.jsonl, runs overlaid: both roles
              should lose entropy, the proposer staying above the solver. And `probe`: the mean
              token entropy of each checkpoint on one fixed set of probe texts, so that runs and
              checkpoints are compared on the same tokens.
  sparsity    how many parameters an update left exactly unchanged (RLVR: most; SFT: few; AZR: in
              between), in the checkpoints' dtype and in bf16, exactly and within a tolerance,
              overall, per layer and per module kind; the Jaccard overlap of two runs' update masks;
              the rank of each matrix's update. Streams one tensor at a time from safetensors files,
              so a 3B pair never sits whole in memory.
  curriculum  from tasks.jsonl: the solve rate and program complexity of the proposer's tasks over
              training (harder tasks over time), and the solver's response length against the solve
              rate with a rank correlation (longer responses on harder tasks).
  report      all of it for a list of runs, as report.md with PNG figures and tables.

    python analyze.py entropy runs/a runs/b --out runs/analysis
    python analyze.py probe smollm2-135m runs/a/checkpoints/step_000010
    python analyze.py sparsity --base smollm2-135m runs/a/checkpoints/step_000010 runs/b/checkpoints/step_000010
    python analyze.py curriculum runs/a
    python analyze.py report runs/a runs/b --base smollm2-135m --out runs/report
"""

import argparse
import ast
import itertools
import json
import math
import os
import re
from collections import defaultdict
from contextlib import ExitStack

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
from safetensors import safe_open
from tqdm import tqdm

import models
from grpo import sequence_logprobs_and_entropy
from models import load_model, render_chat
from proposer import IDENTITY, Task, induction_proposal_prompt, proposal_prompt
from solver import solver_prompt

ROLES = ("proposer", "solver")
TASK_TYPES = ("deduction", "abduction", "induction")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_label(run):
    return os.path.basename(os.path.normpath(run))


def checkpoints(run):
    """[(step, folder)] of a run's checkpoints, in step order."""
    folder = os.path.join(run, "checkpoints")
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"step_\d+", n)) if os.path.isdir(folder) else []
    return [(int(n[5:]), os.path.join(folder, n)) for n in names]


# -----------------------------------------------------------------------------
# Entropy: the curves grpo.py logged, and a fixed probe set


def entropy_curves(metrics):
    """{(role, task type): (steps, entropies)} from metrics.jsonl lines (SPEC.md section 4: the
    mean full-vocabulary entropy of the policy over its own responses, per role and task type)."""
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
    """[(role, user text, response text)]: the twelve probes, in the formats of SPEC.md section 2."""
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
def probe_entropy(model, tokenizer, probes, temperature=1.0, chunk_size=128):
    """{role: mean token entropy, "all": ...} of the model on the probes' response tokens.

    Each probe is the chat-rendered prompt followed by its response and the eos token, as in a
    training row; at every response token the model's next-token distribution softmax(z / T) has
    entropy H = logsumexp(z) - sum_i softmax(z)_i z_i over the full vocabulary (SPEC.md section 4),
    computed by grpo.sequence_logprobs_and_entropy. The mean is over all response tokens of a role
    (a token mean, as grpo.py logs), and over all tokens for "all"."""
    model.eval()
    values = defaultdict(list)
    for role, user_text, response in probes:
        prompt = tokenizer(render_chat(tokenizer, user_text), add_special_tokens=False).input_ids
        answer = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + answer], device=model.device)
        mask = torch.tensor([[0] * len(prompt) + [1] * len(answer)], device=model.device)
        _, H = sequence_logprobs_and_entropy(model, ids, torch.ones_like(ids), mask, temperature, chunk_size)
        values[role].append(H[mask.bool()].float().cpu())
        values["all"].append(values[role][-1])
    return {role: torch.cat(v).mean().item() for role, v in values.items()}


def probe_models(names, temperature):
    """[(name, {role: entropy})] for models or checkpoint folders, loaded one at a time."""
    probes, rows = probe_set(), []
    for name in tqdm(names, desc="probe entropy", unit="model"):
        model, tokenizer = load_model(name)
        rows.append((name, probe_entropy(model, tokenizer, probes, temperature)))
        del model
    return rows


# -----------------------------------------------------------------------------
# Update sparsity (SPEC.md section 6), one tensor at a time

# module kind by name; norms first: "post_attention_layernorm" is a norm, not attention
MODULE_KINDS = (("norms", ("norm", "ln_")), ("embeddings", ("embed_tokens", "lm_head", "wte", "wpe")),
                ("attention", ("q_proj", "k_proj", "v_proj", "o_proj", "self_attn", "attn")),
                ("mlp", ("gate_proj", "up_proj", "down_proj", "mlp")))
LAYER = re.compile(r"\b(?:layers|h|blocks)\.(\d+)\.")
COUNTS = ("numel", "same", "close", "same_bf16", "close_bf16")


def module_kind(name):
    return next((kind for kind, marks in MODULE_KINDS if any(m in name for m in marks)), "other")


def layer_index(name):
    match = LAYER.search(name)
    return int(match.group(1)) if match else None


def changed_mask(base, new, tol=0.0, bf16=False):
    """True where the update changed an entry: |Δ| > tol, Δ = θ1 - θ0 computed in the pair's common
    dtype (the checkpoints'), or after rounding both to bf16 (the study's setting). tol = 0 marks
    every Δ != 0. The comparison with tol is made in float32 or wider, so tol is not rounded."""
    if bf16:
        base, new = base.to(torch.bfloat16), new.to(torch.bfloat16)
    else:
        dtype = torch.promote_types(base.dtype, new.dtype)
        base, new = base.to(dtype), new.to(dtype)
    delta = new - base
    return delta.to(torch.promote_types(delta.dtype, torch.float32)).abs() > tol


def tensor_sparsity(base, new, tol):
    """Counts for one tensor: numel; entries unchanged exactly (same) and within tol (close), in
    the checkpoints' dtype and in bf16. Sparsity S = 1 - ||Δ||_0 / n = same / numel."""
    counts = {"numel": base.numel()}
    for suffix, bf16 in (("", False), ("_bf16", True)):
        counts["same" + suffix] = base.numel() - int(changed_mask(base, new, 0.0, bf16).sum())
        counts["close" + suffix] = base.numel() - int(changed_mask(base, new, tol, bf16).sum())
    return counts


def update_rank(base, new):
    """Rank of the update matrix Δ = θ1 - θ0 in float32 (torch.linalg.matrix_rank, SVD with its
    default tolerance), for 2-D tensors; None otherwise."""
    if base.dim() != 2:
        return None
    return int(torch.linalg.matrix_rank(new.float() - base.float()))


def jaccard_counts(mask_a, mask_b):
    """(|A ∩ B|, |A ∪ B|) of two boolean masks: the parts of the Jaccard overlap of one tensor."""
    return int((mask_a & mask_b).sum()), int((mask_a | mask_b).sum())


def model_folder(name):
    """The local folder of a built-in name (toy, tiny, smollm2-135m), a folder, or a hub id (downloaded;
    only the safetensors files and the index are needed)."""
    if name in models.BUILTINS:
        return models.builtin_folder(name)
    if os.path.isdir(name):
        return name
    from huggingface_hub import snapshot_download
    return snapshot_download(name, allow_patterns=["*.safetensors", "*.json"])


def tensor_files(folder):
    """{tensor name: safetensors file} of a Hugging Face folder, single-file or sharded."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return {name: os.path.join(folder, file) for name, file in json.load(f)["weight_map"].items()}
    path = os.path.join(folder, "model.safetensors")
    with safe_open(path, "pt") as f:
        return {name: path for name in f.keys()}


def stream_tensors(folders):
    """Yield (name, [the tensor from each folder]) for every tensor name all folders hold, one name
    at a time: safe_open maps the files and get_tensor reads only the tensor asked for."""
    maps = [tensor_files(model_folder(f)) for f in folders]
    names = [n for n in maps[0] if all(n in m for m in maps[1:])]
    missing = {n for m in maps for n in m} - set(names)
    if missing:  # e.g. an lm_head saved by one side only: say so rather than compare silently less
        print(f"note: {len(missing)} tensor(s) not in every folder, left out: {', '.join(sorted(missing)[:5])}")
    with ExitStack() as stack:
        handles = {}
        for name in names:
            tensors = []
            for m in maps:
                if m[name] not in handles:
                    handles[m[name]] = stack.enter_context(safe_open(m[name], "pt"))
                tensors.append(handles[m[name]].get_tensor(name))
            yield name, tensors


def sparsity(base, checkpoint, tol=1e-5, rank=False):
    """One record per tensor of checkpoint vs base: name, kind, layer, shape, the tensor_sparsity
    counts, and with rank=True, for 2-D tensors, the update's rank and its maximum min(shape)."""
    records = []
    for name, (b, c) in tqdm(stream_tensors([base, checkpoint]), desc=f"sparsity {checkpoint}", unit="tensor", leave=False):
        if b.shape != c.shape:
            raise ValueError(f"{name}: shape {tuple(b.shape)} in the base, {tuple(c.shape)} in {checkpoint}")
        record = {"name": name, "kind": module_kind(name), "layer": layer_index(name), "shape": list(b.shape),
                  **tensor_sparsity(b, c, tol)}
        if rank and b.dim() == 2:
            record["rank"], record["full_rank"] = update_rank(b, c), min(b.shape)
        records.append(record)
    return records


def summarize(records, by=None):
    """{group: summed counts} over the tensor records, grouped by a record field ("kind", "layer")
    or all together (by=None, group "all"). Divide by numel for sparsities."""
    groups = defaultdict(lambda: dict.fromkeys(COUNTS + ("rank", "full_rank"), 0))
    for r in records:
        g = groups[r[by] if by else "all"]
        for k in COUNTS:
            g[k] += r[k]
        if "rank" in r:  # summed over matrices: rank / full_rank is a size-weighted mean fraction
            g["rank"] += r["rank"]
            g["full_rank"] += r["full_rank"]
    return dict(groups)


def jaccard(base, a, b, tol=0.0, bf16=True):
    """Jaccard overlap |A ∩ B| / |A ∪ B| of the entries two checkpoints changed from a common base
    (changed_mask; by default Δ != 0 in bf16, the study's setting), streamed tensor by tensor.
    nan when neither changed anything."""
    inter = union = 0
    for _, (t0, ta, tb) in stream_tensors([base, a, b]):
        i, u = jaccard_counts(changed_mask(t0, ta, tol, bf16), changed_mask(t0, tb, tol, bf16))
        inter, union = inter + i, union + u
    return inter / union if union else math.nan


# -----------------------------------------------------------------------------
# Curriculum: the proposer's tasks over training, from tasks.jsonl

# decision points of a program: if, conditional expression, loops, except clauses, comprehension
# loops, match cases
BRANCHES = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.comprehension, ast.match_case)


def program_complexity(program):
    """{"nodes", "depth", "branches"} of a program's AST, or None if it does not parse: nodes counts
    every node except the Load/Store/Del markers of names; depth counts the nodes on the longest
    path from the module down (the module is 1); branches counts BRANCHES nodes."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = depth = branches = 0
    stack = [(tree, 1)]
    while stack:  # iterative: a deeply nested program must not exhaust Python's recursion limit
        node, d = stack.pop()
        nodes, depth, branches = nodes + 1, max(depth, d), branches + isinstance(node, BRANCHES)
        stack += [(c, d + 1) for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]
    return {"nodes": nodes, "depth": depth, "branches": branches}


def spearman(x, y):
    """Spearman's rank correlation: the Pearson correlation of the ranks, tied values given the
    mean of their ranks. nan with fewer than two points or a constant variable."""
    def ranks(v):
        order, r, first = sorted(range(len(v)), key=v.__getitem__), [0.0] * len(v), 0
        for _, group in itertools.groupby(order, key=v.__getitem__):
            group = list(group)
            for i in group:  # the tied values hold ranks first+1 .. first+len: each gets their mean
                r[i] = first + (len(group) + 1) / 2
            first += len(group)
        return r
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def mean(values):
    return sum(values) / len(values) if values else None


def curriculum_by_step(records):
    """Per (task type, step) of tasks.jsonl records: proposals, valid rate, and over the valid tasks
    the mean solve rate and mean program complexity. Task type "all" pools the types."""
    groups = defaultdict(list)
    for r in records:
        groups[r["type"], r["step"]].append(r)
        groups["all", r["step"]].append(r)
    rows = []
    for (task_type, step), rs in sorted(groups.items()):
        valid = [r for r in rs if r["valid"]]
        shapes = [c for c in map(program_complexity, (r["program"] for r in valid)) if c]
        rows.append({"type": task_type, "step": step, "proposed": len(rs), "valid_rate": len(valid) / len(rs),
                     "solve_rate": mean([r["solve_rate"] for r in valid if r["solve_rate"] is not None]),
                     **{k: mean([c[k] for c in shapes]) for k in ("nodes", "depth", "branches")}})
    return rows


def length_vs_difficulty(records):
    """Per task type (and "all"): over valid tasks with a solve rate and the solver's mean response
    length, the count, the Spearman correlation of solve rate and length (the study: negative,
    harder tasks get longer responses), and the mean length at each solve rate."""
    points = defaultdict(list)
    for r in records:
        if r["valid"] and r.get("solve_rate") is not None and r.get("solver_response_len") is not None:
            for task_type in (r["type"], "all"):
                points[task_type].append((r["solve_rate"], r["solver_response_len"]))
    out = {}
    for task_type, pts in points.items():
        by_rate = defaultdict(list)
        for rate, length in pts:
            by_rate[rate].append(length)
        out[task_type] = {"tasks": len(pts), "spearman": spearman([p[0] for p in pts], [p[1] for p in pts]),
                          "length_by_solve_rate": {rate: mean(v) for rate, v in sorted(by_rate.items())}}
    return out


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
    """Probe entropy per checkpoint step: a colour per run, a line style per role."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for c, (label, rows) in enumerate(points.items()):
        for s, role in enumerate(ROLES):
            ax.plot([step for step, _ in rows], [e[role] for _, e in rows], STYLES[s], color=f"C{c}", marker="o",
                    ms=3, label=f"{label} {role}")
    ax.set(xlabel="checkpoint step (0 = base)", ylabel="probe entropy (nats)", title="mean token entropy on the probe set")
    finish(fig, [ax], path)


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
            ax.scatter(*zip(*pts), s=12, alpha=0.6, color=f"C{c}", label=f"{run_label(run)} (Spearman {rho:.2f})")
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
        rows.append([run_label(run), task_type, len(valid), mean([r["solve_rate"] for r in valid if r["step"] < middle]),
                     mean([r["solve_rate"] for r in valid if r["step"] >= middle]),
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
    rows = probe_models(args.models, args.temperature)
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
           "per role and task type, as logged during training (SPEC.md section 4). Solid: proposer; dashed: solver.",
           "", "![entropy](entropy.png)", "", table(ENTROPY_HEADER, [r for run in args.runs for r in entropy_rows(run)]), ""]

    probes, points = probe_set(), {}
    for run in tqdm(args.runs, desc="probe entropy", unit="run"):
        points[run_label(run)] = []
        for step, name in [(0, bases[run])] + checkpoints(run):
            model, tokenizer = load_model(name)
            points[run_label(run)].append((step, probe_entropy(model, tokenizer, probes, args.temperature)))
            del model
    plot_probe(points, os.path.join(args.out, "probe_entropy.png"))
    md += ["## Entropy on a fixed probe set", "", f"Mean token entropy (T = {args.temperature}) of each checkpoint on "
           f"the same {len(probes)} fixed prompt + response texts (teacher-forced), so checkpoints and runs are "
           "compared on the same tokens. Step 0 is the base model.", "", "![probe entropy](probe_entropy.png)", "",
           table(["run", "step", "proposer", "solver", "all"],
                 [[label, step, e["proposer"], e["solver"], e["all"]] for label, rows in points.items() for step, e in rows]), ""]

    last = [(f"{run_label(run)}/step_{checkpoints(run)[-1][0]}", bases[run], checkpoints(run)[-1][1])
            for run in args.runs if checkpoints(run)]
    md += ["## Update sparsity", ""]
    if last:
        overall, kinds, overlap = sparsity_report(last, args.tol, args.rank, args.out)
        md += ["Each run's last checkpoint against its base: the fraction of parameters left unchanged "
               f"(S = 1 - ||Δ||₀ / n, SPEC.md section 6), exactly and within tol = {args.tol}, in the checkpoints' "
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
    p = argparse.ArgumentParser(description="Entropy, update sparsity and curriculum of self-play runs.")
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
        s.add_argument("--tol", type=float, default=1e-5, help="|Δ| <= tol counts as unchanged (the study: 1e-5)")
        s.add_argument("--rank", action="store_true", help="also the rank of every 2-D update (an SVD each: slow for 3B)")
    for s in (probe, report):
        s.add_argument("--temperature", type=float, default=1.0, help="temperature of the probe entropy (training: 1.0)")
    for s in (entropy, probe, spars, curric, report):
        s.add_argument("--out", default=None, help="output folder (default runs/analysis; report: <first run>/report)")
    args = p.parse_args(argv)
    args.out = args.out or (os.path.join(args.runs[0], "report") if args.command == "report" else os.path.join("runs", "analysis"))
    return args


if __name__ == "__main__":
    args = get_args()
    os.makedirs(args.out, exist_ok=True)
    {"entropy": cmd_entropy, "probe": cmd_probe, "sparsity": cmd_sparsity, "curriculum": cmd_curriculum,
     "report": cmd_report}[args.command](args)
