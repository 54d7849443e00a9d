"""
The study's report: report.md, its figures and its tables, written from the study's numbers
(numbers.json, findings.json) and its runs' folders; and each run's plain files beside it, so
that every verdict can be recomputed by hand without a checkpoint.

reproduce.py runs the pipeline (plan, train, evaluate, numbers, verdicts) and calls `write_report`
and `keep_artefacts` last; the figures and tables are analyze.py's, shared with its own command
line, and the preconditions' section is preconditions.py's.
"""

import gzip
import os
import shutil

from analyze import (CURRICULUM_HEADER, ENTROPY_HEADER, curriculum_rows, entropy_rows, plot_curriculum, plot_entropy,
                     plot_length_vs_difficulty, plot_probe, plot_sparsity_sweep, sparsity_report, table)
from contamination import contamination_section
from evaluate import plot_pass_at_k
from findings import (CRITERIA_COMMITS, FINDINGS, finding_entropy_collapse, finding_peaked_reward, mean, sparsity_sweep, std, verdict_table,
                      verdicts_that_differ, with_window_medians)
from preconditions import plot_preconditions, preconditions_section
from runs import checkpoints


# -----------------------------------------------------------------------------
# The report: report.md, its figures and tables


def seeds_text(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{values[0]:.4f}" if len(values) == 1 else f"{mean(values):.4f} ± {std(values):.4f}"


def pass_at_k_section(args, evaluations, numbers, report):
    """One figure per benchmark (task type), every method's mean curve over seeds; and a table."""
    benches = list(next(iter(evaluations.values()))[0]) if evaluations else []
    ks = sorted({1, 2, 4, 8, 16, 32, args.n} & set(range(1, args.n + 1)))
    md = ["## pass@k", "", f"n = {args.n} samples per problem; pass@k for k = 1..n by the unbiased estimator "
          "1 - C(n - c, k) / C(n, k) (Chen et al., arXiv 2107.03374), averaged over problems. The toy held-out tasks "
          f"({args.tasks_per_type} per task type, spread over depths) are sampled at temperature {numbers['settings']['temperature']}, as "
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


def budget_section(args):
    rows = [[m, b["task_types"], b["proposer"], b["solver"], b["proposer"] + b["solver"], b["samples"]]
            for m, b in args.budgets.items()]
    return ["## Budgets", "", "What each method trains on per step (grpo.py's settings): AZR trains both roles on "
            "every task type, the frozen proposer's run its solver only; RLVR and SFT the solver on the triplet types. "
            "AZR also draws --solve-samples answers per proposal for its solve rate, never trained on. With "
            "--matched-budget, RLVR and SFT are trained a second time on as many solver sequences per step as AZR.", "",
            table(["method", "task types", "proposer sequences", "solver sequences", "trained sequences",
                   "solve-rate samples"], rows), ""]


def sweep_section(args, numbers, report):
    """Finding 4 at every rate: the sweep's sparsity per method and seed, a figure, and the verdict."""
    sweep = numbers.get("sweep")
    md = ["### Sparsity against the learning rate (finding 4 at each rate)", ""]
    if not sweep:
        return md + ["No sweep (--sweep-lrs given none).", ""]
    rates = sorted(sweep["rates"].items(), key=lambda item: float(item[0]))
    verdicts = {rate: r["verdict"] for (rate, _), r in zip(rates, sparsity_sweep(numbers))}  # in the same order
    rows, points = [], {}
    for rate, by_method in rates:
        for method, values in by_method.items():
            bf16 = [v["bf16_exact"] for v in values if v and v.get("bf16_exact") is not None]
            if bf16:
                points.setdefault(method, []).append((float(rate), mean(bf16), std(bf16)))
            rows.append([f"{float(rate):g}" + (" (the runs')" if float(rate) == args.settings["lr"] else ""), method,
                         seeds_text([v["bf16_exact"] for v in values]), seeds_text([v["exact"] for v in values]),
                         verdicts[rate]])
    figure = []
    if points:
        plot_sparsity_sweep(points, os.path.join(report, "sparsity_sweep.png"))
        figure = ["![sparsity against the learning rate](sparsity_sweep.png)", ""]
    return md + [f"Each method trained {sweep['steps']} steps at each rate, every seed; the runs' own rate is their "
                 f"checkpoint at step {sweep['steps']}. Sparsity: the fraction of entries unchanged from the base, in "
                 "the bf16 view and exactly in float32. Every rate is reported.", ""] + figure + [
        table(["learning rate", "method", "sparsity (bf16, exact)", "sparsity (float32, exact)", "verdict"], rows), ""]


def steps_section(numbers):
    """Sparsity (bf16, exact) at each checkpoint of the runs, mean over seeds."""
    rows = []
    for method, entry in numbers["methods"].items():
        per_seed = entry.get("sparsity_steps") or []
        for step in sorted({int(k) for e in per_seed for k in e}):
            rows.append([method, step, seeds_text([e[str(step)]["bf16_exact"] for e in per_seed if str(step) in e]),
                         seeds_text([e[str(step)]["exact"] for e in per_seed if str(step) in e])])
    return ["### Sparsity over the checkpoints", "", table(["method", "step", "sparsity (bf16, exact)",
                                                            "sparsity (float32, exact)"], rows), ""] if rows else []


def probe_section(numbers, report):
    """Finding 3's probe entropy: each method's mean over seeds per checkpoint step, a figure and a table."""
    points, rows = {}, []
    for method, entry in numbers["methods"].items():
        per_seed = entry.get("probe") or []
        steps = sorted({int(k) for e in per_seed for k in e})
        if steps:
            points[method] = [(step, {"solver": mean([e[str(step)] for e in per_seed if str(step) in e])}) for step in steps]
            rows += [[method, step, seeds_text([e[str(step)] for e in per_seed if str(step) in e])] for step in steps]
    if not points:
        return []
    plot_probe(points, os.path.join(report, "probe_entropy.png"))
    return ["### Probe entropy over the checkpoints (finding 3)", "",
            f"The solver's mean token entropy, teacher-forced on {numbers['settings']['probes_per_type']} fixed held-out deduction and as many "
            "abduction prompts, each with one response of the base (temperature 1, seed 0): every checkpoint scored on "
            "the same tokens (analyze.probe_entropy). Step 0 is the base; mean over seeds.", "",
            "![probe entropy](probe_entropy.png)", "", table(["method", "step", "probe entropy (nats)"], rows), ""]


def judges_section(numbers):
    """Finding 6 under fixed judges: per quarter of training, the solve rate of a sample of the
    quarter's tasks by the base and by the final checkpoint, and the programs' AST nodes."""
    per_seed = [e for e in numbers["methods"].get("azr", {}).get("curriculum") or [] if e.get("judge_base")]
    if not per_seed:
        return []
    rows = [[f"quarter {q + 1}"] + [seeds_text([e[name][q] for e in per_seed])
                                    for name in ("judge_base", "judge_final", "nodes_by_quarter")] for q in range(4)]
    return ["### The proposer's tasks under fixed judges (finding 6)", "",
            f"AZR's valid proposed tasks, {numbers['settings']['judge_tasks']} per task type and quarter of training "
            f"(seeded sample), each answered {numbers['settings']['judge_samples']} times at temperature 1 by two fixed judges, the base and the final checkpoint; "
            "the solve rate is the mean over task types. AST nodes: all the quarter's valid programs. Mean over seeds.", "",
            table(["tasks proposed in", "solved by the base", "solved by the final checkpoint", "AST nodes"], rows), ""]


def medians_section(numbers, records):
    """Findings 2 and 5 decided again with each entropy window's median over its steps in place of
    its mean (findings.with_window_medians): whether a verdict rests on a one-step spike."""
    medians = with_window_medians(numbers)
    if medians is None:
        return []
    entropic = [FINDINGS.index(f) for f in (finding_entropy_collapse, finding_peaked_reward)]
    again = [FINDINGS[i](medians) for i in entropic]
    differ = verdicts_that_differ([records[i] for i in entropic], again)
    return ["### With the entropy windows' medians", "", "The logged entropy has one-step spikes (a few long, "
            "high-entropy answers). Findings 2 and 5 decided again with each window's median over its steps "
            "instead of its mean: " + (f"the verdicts differ on {'; '.join(differ)}." if differ else
                                       "the same verdicts."), "", verdict_table(again), ""]


def write_report(args, plan, long, evaluations, numbers, records, matched, command):
    """report/report.md and its figures. plan, long: the study's runs and long runs (each with
    .method, .seed, .folder); records, matched: findings.all_findings of numbers and of the
    matched budgets (None without); command: reproduce.py's arguments as typed."""
    proposing = {m for m, entry in numbers["methods"].items() if entry.get("curriculum")}  # self-play: tasks.jsonl
    report = os.path.join(args.out, "report")
    seed0 = [r for r in plan if r.seed == 0]
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
          "say nothing about the noise between seeds. \"the study\" quotes the sentence of the study's abstract "
          "that names the analysis and paraphrases its result (our words).", "", verdict_table(records), ""]
    md += ["### Criteria fixed before this study", "", "Changes to findings.py since the toy-v2 study "
           "(docs/study-toy), each in its own commit before this study started:", "",
           *[f"- `{commit}`: {what}" for commit, what in CRITERIA_COMMITS], ""]
    md += medians_section(numbers, records)
    if matched:
        differ = verdicts_that_differ(records, matched)
        md += ["### With matched budgets", "", "RLVR and SFT trained on as many solver sequences per step as AZR "
               f"(--prompts {args.matched_prompts}): " + (f"the verdicts differ on {'; '.join(differ)}."
                                                         if differ else "the same verdicts."), "",
               verdict_table(matched), ""]
    md += budget_section(args)
    md += pass_at_k_section(args, evaluations, numbers, report)
    md += contamination_section(numbers, records)

    plot_entropy([r.folder for r in seed0], os.path.join(report, "entropy.png"))
    plot_entropy([r.folder for r in seed0 if r.method in ("azr", "azr-frozen")], os.path.join(report, "entropy_frozen.png"))
    if long:
        plot_entropy([r.folder for r in long if r.seed == 0], os.path.join(report, "entropy_long.png"))
    md += ["## Entropy dynamics", "", "Mean full-vocabulary token entropy of each policy over its own responses, per "
           "role and task type, as logged in training. Solid: proposer; dashed: solver. Every method:", "",
           "![entropy](entropy.png)", "", "The frozen proposer beside the learned one (AZR, learnability reward):", "",
           "![entropy, frozen proposer](entropy_frozen.png)", "",
           table(ENTROPY_HEADER, [row for r in plan + long for row in entropy_rows(r.folder)]), ""]
    if long:
        md += [f"### The long runs ({args.long_steps} steps, finding 2)", "", "![entropy, long runs](entropy_long.png)", ""]
    md += probe_section(numbers, report)

    md += ["## Update sparsity", "", SPARSITY_NOTE.format(lr=args.settings["lr"]), ""]
    items = [(os.path.basename(r.folder), args.model, checkpoints(r.folder)[-1][1]) for r in seed0]
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
    md += steps_section(numbers) + sweep_section(args, numbers, report)

    play = [r.folder for r in seed0 if r.method in proposing]
    plot_curriculum(play, os.path.join(report, "curriculum.png"))
    plot_length_vs_difficulty(play, os.path.join(report, "length_vs_difficulty.png"))
    md += ["## Curriculum", "", "The proposer's tasks over training (tasks.jsonl): solve rate of the valid tasks, "
           "valid rate and program complexity per step; and the solver's mean response length on each valid task "
           "against its solve rate. RLVR and SFT propose nothing.", "", "![curriculum](curriculum.png)", "",
           "![length vs difficulty](length_vs_difficulty.png)", "",
           table(CURRICULUM_HEADER, [row for r in plan if r.method in proposing for row in curriculum_rows(r.folder)]), ""]
    md += judges_section(numbers)
    if "preconditions" in numbers:
        plot_preconditions(numbers["preconditions"], os.path.join(report, "preconditions.png"))
        md += preconditions_section(numbers["preconditions"])
    with open(os.path.join(report, "report.md"), "w") as f:
        f.write("\n".join(md))


# -----------------------------------------------------------------------------
# The runs' plain files beside the report


ARTEFACTS = ("config.json", "metrics.jsonl", "tasks.jsonl", "seed_tasks.jsonl", "heldout_eval.json", "sparsity.json",
             "probe.json", "judges.json", "probes.json")  # probes.json: the base's, the fixed probes of finding 3


def keep_artefacts(folders, report):
    """Each run's plain files beside the report, in report/runs/<run>/, so that every verdict can be
    recomputed by hand without the checkpoints: its config, metrics and tasks (gzipped, as
    runs.read_jsonl reads them), seeding proposals, cached evaluation counts, sparsity, probe
    entropy and fixed judges."""
    for folder in folders:
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
