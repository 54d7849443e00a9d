"""
Can the proposer's tasks matter? Two measurements that the study's proposer findings rest on.

The study (arXiv 2510.27072) credits the proposer with part of self-play's gain: a frozen proposer
makes less progress, the proposer's reward matters, and its tasks grow harder over training. In a
world where every task teaches the solver alike, those findings could only come out "no effect"
whatever the proposer does. So before the study decides them, two preconditions are measured
(the thresholds are ours, not the study's):

  (a) the world: RLVR from the base, at the study's budget and steps, on each of three pools of
      tasks: the easiest (programs of depth 1), the hardest (depth 3), and the mix the base itself
      proposes (AZR's seeding, selfplay.seed_buffers). Held-out pass@1 (the mean of deduction and
      abduction) per pool and seed. It holds when the best and the worst pool's means differ by
      GAP_POINTS more than the larger of their seed spreads (`world_verdict`);
  (b) the proposer's reach: how far a self-play run moves its valid proposals, the mean AST nodes
      (curriculum.program_complexity) of the first quarter of its steps against the last
      (`reach`), and what that move is worth by (a): the held-out pass@1 of a solver trained at the
      last quarter's size less at the first's, read off the line through (a)'s pools (their mean
      AST nodes against their mean pass@1, interpolated, flat beyond the pools; `worth`).

If (a) fails, the world cannot show a proposer effect at all; if it holds but (b) is small, the
proposer's reach is the lever, not the world. `python reproduce.py --preconditions` runs both and
puts this section in its report; `--only-preconditions` stops after it.
"""

import json
import os
from dataclasses import asdict

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from analyze import finish, table
from curriculum import program_complexity
from findings import mean, std
from proposer import Task, new_buffers, task_key
from selfplay import seed_buffers
from toytasks import fresh_tasks

POOLS = ("easiest", "proposed", "hardest")
POOL_DEPTHS = {"easiest": 1, "hardest": 3}  # the programs' depth in the toy world's generator (toytasks.DEPTHS)
GAP_POINTS = 5.0          # (ours) (a): best minus worst pool, in points of pass@1, beyond the larger seed spread
REACH_POINTS = 1.0        # (ours) (b): a learned proposer's move worth this many points more than the frozen one's
PROPOSED_TASKS = 400      # (ours) valid triplets the base proposes for the "proposed" pool
TASK_FIELDS = ("type", "program", "inputs", "outputs", "message", "valid")
TYPES = ("deduction", "abduction")


# -----------------------------------------------------------------------------
# The pools: task records of rlvr.py's --data format


def depth_pool(depth):
    """Fresh toy-world triplets (rlvr.py's --data toy, none from the held-out set) whose program has
    `depth` steps, as task records."""
    return [{k: asdict(g.task)[k] for k in TASK_FIELDS} for g in fresh_tasks() if g.depth == depth]


def proposed_pool(model, tokenizer, args):
    """The base's own proposals: AZR's seeding (selfplay.seed_buffers) of args.seed_tasks valid
    triplets, with grpo.py's settings `args`; each distinct valid one-input triplet, as a record."""
    records = seed_buffers(model, tokenizer, new_buffers(), args)
    kept = {}
    for r in records:
        if r["phase"] == "triplet" and r["valid"] and len(r["inputs"]) == 1:
            kept.setdefault(task_key(Task.from_record(r)), {k: r[k] for k in TASK_FIELDS})
    return list(kept.values())


def write_pool(path, records):
    """A pool's records as an rlvr.py --data file (runs.read_jsonl reads it back), written whole."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    os.replace(path + ".tmp", path)


def mean_nodes(records):
    """The mean AST nodes of the records' programs (those that parse), or None for none."""
    sizes = [c["nodes"] for c in (program_complexity(r["program"]) for r in records) if c]
    return mean(sizes) if sizes else None


# -----------------------------------------------------------------------------
# (a) the world


def pass_at_1(evaluation):
    """Held-out pass@1 of one run, in points: the mean over TYPES of heldout_eval's pass@1."""
    return 100 * mean([evaluation[f"toy {t}"]["pass_at_k"]["1"] for t in TYPES])


def world_verdict(points, gap=GAP_POINTS):
    """(a) from {pool: [pass@1 per seed, in points]}: the best and the worst pool by mean, their
    difference, the larger of their seed spreads (sample std; 0 with one seed), and whether the
    difference exceeds that spread by at least `gap`."""
    means = {p: mean(v) for p, v in points.items()}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    spread = max(std(points[best]), std(points[worst]))
    difference = means[best] - means[worst]
    return {"best": best, "worst": worst, "difference": difference, "spread": spread, "gap": gap,
            "holds": difference - spread >= gap}


# -----------------------------------------------------------------------------
# (b) the proposer's reach


def reach(records, steps):
    """Mean AST nodes of a self-play run's valid proposals (tasks.jsonl records, every task type) in
    the first quarter of its `steps` and in the last: {"first", "last", "move"} (None where a
    quarter has no valid proposal)."""
    quarter = max(1, steps // 4)
    first = [r for r in records if r["valid"] and r["step"] <= quarter]
    last = [r for r in records if r["valid"] and r["step"] > steps - quarter]
    a, b = mean_nodes(first), mean_nodes(last)
    return {"first": a, "last": b, "move": None if a is None or b is None else b - a}


def interpolate(x, points):
    """y at x on the line through points [(x, y)], sorted by x, flat beyond the first and the last."""
    points = sorted(points)
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def worth(move, line):
    """What a proposer's move ({"first", "last"} mean AST nodes) is worth in held-out pass@1
    points by (a): interpolate(last) - interpolate(first) on `line`, [(pool mean nodes, pool mean
    pass@1)]; None when the move is unknown."""
    if move["first"] is None or move["last"] is None:
        return None
    return interpolate(move["last"], line) - interpolate(move["first"], line)


def reach_verdict(runs, floor=REACH_POINTS):
    """(b) from the runs' records ({"method", "worth"}): per method the worth of its move per seed,
    and for each learned proposer whether its mean worth exceeds the frozen proposer's (azr-frozen:
    the move that is not the proposer's learning, since its reference tasks still change) by more
    than the larger seed spread and by at least `floor` points: "measurable", else "small" (none
    without a frozen run or worths). A long run (<method>-long) is held against the frozen
    proposer's long run."""
    worths = {}
    for r in runs:
        if r["worth"] is not None:
            worths.setdefault(r["method"], []).append(r["worth"])
    out = {}
    for method, values in worths.items():
        frozen = worths.get("azr-frozen-long" if method.endswith("-long") else "azr-frozen")  # the same length of run
        if method.startswith("azr-frozen") or not frozen:
            continue
        beyond = mean(values) - mean(frozen)
        spread = max(std(values), std(frozen))
        out[method] = {"beyond_frozen": beyond, "spread": spread, "floor": floor,
                       "measurable": beyond - spread >= floor}
    return {"worths": worths, "learned": out}


# -----------------------------------------------------------------------------
# Numbers, the report's section and its figure


def precondition_numbers(pools, evaluations, runs):
    """preconditions.json: pools {pool: {"nodes", "tasks", "pass_at_1": [per seed], per type}},
    (a)'s verdict, and per self-play run {"method", "seed", reach's fields, "worth"}.
    evaluations: {pool: [heldout_eval results per seed]}; runs: [(method, seed, tasks records, steps)]."""
    out = {"pools": {}, "runs": []}
    for pool, records in pools.items():
        out["pools"][pool] = {"tasks": len(records), "nodes": mean_nodes(records),
                              "pass_at_1": [pass_at_1(e) for e in evaluations[pool]],
                              **{t: [100 * e[f"toy {t}"]["pass_at_k"]["1"] for e in evaluations[pool]] for t in TYPES}}
    out["world"] = world_verdict({p: v["pass_at_1"] for p, v in out["pools"].items()})
    line = [(v["nodes"], mean(v["pass_at_1"])) for v in out["pools"].values()]
    for method, seed, records, steps in runs:
        move = reach(records, steps)
        out["runs"].append({"method": method, "seed": seed, **move, "worth": worth(move, line)})
    out["reach"] = reach_verdict(out["runs"])
    return out


def one_decimal(value):
    return "–" if value is None else f"{value:.1f}"


def spread_text(values):
    if not values:
        return ""
    return f"{mean(values):.1f} ± {std(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def preconditions_section(numbers, figure="preconditions.png"):
    """The report's section (Markdown lines): (a)'s table and verdict, (b)'s table, the figure."""
    w = numbers["world"]
    md = ["## Can the proposer's tasks matter? (preconditions)", "",
          "(a) RLVR from the base at the study's budget on three pools of tasks; held-out pass@1 in points (mean ± "
          "std over seeds). (b) How far each self-play run moved its valid proposals (mean AST nodes, first quarter "
          "of the steps against the last), and what that move is worth by (a)'s pools.", "",
          table(["pool", "tasks", "mean AST nodes", "pass@1", "deduction", "abduction"],
                [[p, v["tasks"], one_decimal(v["nodes"]), spread_text(v["pass_at_1"]), spread_text(v["deduction"]),
                  spread_text(v["abduction"])] for p, v in numbers["pools"].items()]), "",
          f"(a) {'holds' if w['holds'] else 'fails'}: {w['best']} minus {w['worst']} = {w['difference']:.1f} points, "
          f"the larger seed spread {w['spread']:.1f}, so {w['difference'] - w['spread']:.1f} beyond it "
          f"(needed: {w['gap']:g}, our threshold)"
          + (". With one seed no spread is measured: the verdict says nothing about the noise between seeds."
             if min(len(v["pass_at_1"]) for v in numbers["pools"].values()) < 2 else "."), ""]
    if numbers["runs"]:
        by_method = {}
        for r in numbers["runs"]:
            by_method.setdefault(r["method"], []).append(r)
        md += [table(["run", "nodes, first quarter", "nodes, last quarter", "move", "worth (points)"],
                     [[f"{r['method']}-seed{r['seed']}"] + [one_decimal(r[k]) for k in ("first", "last", "move", "worth")]
                      for r in numbers["runs"]]
                     + [[f"**{m}** ({len(rs)} seeds)"] + [spread_text([r[k] for r in rs if r[k] is not None]) or "–"
                                                        for k in ("first", "last", "move", "worth")]
                        for m, rs in by_method.items() if len(rs) > 1]), ""]
        verdict = (numbers.get("reach") or {}).get("learned") or {}
        md += [f"(b) {method}: {'measurable' if v['measurable'] else 'small'}: its move is worth {v['beyond_frozen']:+.1f} "
               f"points beyond the frozen proposer's, the larger seed spread {v['spread']:.1f} (needed: {v['floor']:g} "
               "beyond it, our threshold; the frozen proposer's move is the part that is not its learning)."
               for method, v in verdict.items()] + ([""] if verdict else [])
    return md + [f"![preconditions]({figure})", ""]


def plot_preconditions(numbers, path):
    """Left: (a), each pool's held-out pass@1 per seed against its mean AST nodes, the line (b)
    reads. Right: (b), each self-play run's first and last quarter on that line."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    pools = numbers["pools"]
    line = sorted((v["nodes"], mean(v["pass_at_1"])) for v in pools.values())
    for c, (pool, v) in enumerate(pools.items()):
        left.plot([v["nodes"]] * len(v["pass_at_1"]), v["pass_at_1"], "o", color=f"C{c}", ms=5, label=pool)
    left.plot([x for x, _ in line], [y for _, y in line], "k--", lw=1, label="pool means")
    left.set(xlabel="mean AST nodes of the pool", ylabel="held-out pass@1 (points)",
             title="(a) RLVR on each pool of tasks")
    right.plot([x for x, _ in line], [y for _, y in line], "k--", lw=1, label="(a)'s line")
    methods = list(dict.fromkeys(r["method"] for r in numbers["runs"]))
    labelled = set()  # one legend entry per method, whatever its seeds
    for r in numbers["runs"]:
        if r["move"] is None:
            continue
        c = f"C{methods.index(r['method']) + len(pools)}"
        xs = [r["first"], r["last"]]
        right.annotate("", xy=(xs[1], interpolate(xs[1], line)), xytext=(xs[0], interpolate(xs[0], line)),
                       arrowprops={"arrowstyle": "->", "color": c})
        right.plot(xs, [interpolate(x, line) for x in xs], "o", color=c, ms=4,
                   label=None if r["method"] in labelled else r["method"])
        labelled.add(r["method"])
    right.set(xlabel="mean AST nodes of valid proposals", ylabel="pass@1 worth by (a) (points)",
              title="(b) first quarter -> last quarter")
    finish(fig, [left, right], path, integer_x=False)

