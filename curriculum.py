"""
The proposer's curriculum: how hard the tasks it invents are, over training.

The study (arXiv 2510.27072) reads AZR's curriculum from the proposer's tasks: their solve rate
(the solver's mean reward on them, AZR's learnability signal) falls over training as tasks get
harder, and the solver's responses get longer on harder tasks. From a run's tasks.jsonl this file
computes, per task type and step, the valid rate, the mean solve rate and the program complexity
(AST nodes, depth, branches) of the valid tasks, and the rank correlation of solve rate and the
solver's response length. `python analyze.py curriculum` is the command line.
"""

import ast
import itertools
import math
from collections import defaultdict

from findings import mean

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


def mean_or_none(values):
    """findings.mean, or None for no values (a step with no valid task has no mean solve rate)."""
    return mean(values) if values else None


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
                     "solve_rate": mean_or_none([r["solve_rate"] for r in valid if r["solve_rate"] is not None]),
                     **{k: mean_or_none([c[k] for c in shapes]) for k in ("nodes", "depth", "branches")}})
    return rows


def length_vs_difficulty(records):
    """Per task type: over valid tasks with a solve rate and the solver's mean response length, the
    count, the Spearman correlation of solve rate and length (the study: negative, harder tasks get
    longer responses), and the mean length at each solve rate. "all" is stratified by task type
    (ours): the task-weighted mean of the types' correlations, never one correlation of the pooled
    points, which would mix the types' levels (induction tasks are both easy and long)."""
    points = defaultdict(list)
    for r in records:
        if r["valid"] and r.get("solve_rate") is not None and r.get("solver_response_len") is not None:
            points[r["type"]].append((r["solve_rate"], r["solver_response_len"]))
    out = {}
    for task_type, pts in points.items():
        by_rate = defaultdict(list)
        for rate, length in pts:
            by_rate[rate].append(length)
        out[task_type] = {"tasks": len(pts), "spearman": spearman([p[0] for p in pts], [p[1] for p in pts]),
                          "length_by_solve_rate": {rate: mean_or_none(v) for rate, v in sorted(by_rate.items())}}
    rhos = [(v["spearman"], v["tasks"]) for v in out.values() if not math.isnan(v["spearman"])]
    out["all"] = {"tasks": sum(len(p) for p in points.values()),
                  "spearman": sum(r * n for r, n in rhos) / sum(n for _, n in rhos) if rhos else math.nan}
    return out
