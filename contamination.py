"""
Contamination: which held-out toy tasks a method trained on, and pass@k without them.

AZR keeps no data away from its proposer (arXiv 2505.03335, section 3: the proposer may write any
program), and the toy world's programs come from one small grammar, so a self-play run proposes
many of the held-out programs itself (in the toy-v2 study 82 to 90 of the 150 held-out tasks, by
program, in each AZR run). Nothing is forbidden here; the study reports instead, per method,
pass@k on the held-out tasks whose program no run of that method saw, beside the whole set, and
decides the findings again on the tasks no run of any method saw (`clean`).

A run "saw" a program when it is among its seed tasks or proposals, valid or not (the proposer's
gradient reaches every program it wrote, the solver's every valid one), or among its --data's
tasks for RLVR and SFT (the fresh toy-world pool leaves the held-out programs out by construction,
so there the count is 0). Programs compare as text, stripped of surrounding whitespace.

    python contamination.py docs/study-toy      # the table for a finished study's report folder
"""

import argparse
import functools
import json
import os
import sys

from evaluate import pass_at_k_curve
from findings import (FINDINGS, all_findings, finding_frozen_proposer, finding_pass_at_k, finding_peaked_reward, mean, std,
                      verdict_table, verdicts_that_differ, with_clean_pass_at_k)

READS_PASS_AT_K = (finding_pass_at_k, finding_frozen_proposer, finding_peaked_reward)  # the findings pass@k decides
from rlvr import load_data
from runs import read_jsonl
from toytasks import heldout_tasks


@functools.lru_cache(maxsize=4)
def data_programs(data):
    """The programs of a --data source (rlvr.load_data: toy, heldout or a file), loaded once."""
    return frozenset(g.task.program.strip() for g in load_data(data))


def plain_or_gz(folder, name):
    """folder/name, or its .gz copy as a report keeps it; None when neither is there."""
    for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.isfile(path):
            return path
    return None


def run_programs(folder):
    """The programs a run trained on: its seed tasks and proposals (valid or not) and, for RLVR and
    SFT, its --data's tasks (config.json names the method and data)."""
    programs = set()
    for name in ("seed_tasks.jsonl", "tasks.jsonl"):
        path = plain_or_gz(folder, name)
        if path:
            programs |= {r["program"].strip() for r in read_jsonl(path)}
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    if config.get("method") in ("rlvr", "sft"):
        programs |= data_programs(config["data"])
    return programs


def unseen(programs, seen):
    """Indices of the tasks (one program each) whose program is not in `seen`."""
    return [i for i, p in enumerate(programs) if p.strip() not in seen]


def curves_on(results, keep, n):
    """Of one evaluation ({benchmark: {"counts", ...}}), pass@k for k = 1..n on the held-out tasks
    `keep` alone, for each toy benchmark ("toy deduction", "toy abduction": the held-out tasks, one
    count each); {} where nothing is kept."""
    return {bench: {str(k): v for k, v in enumerate(pass_at_k_curve([r["counts"][i] for i in keep], n), 1)}
            for bench, r in results.items() if bench.startswith("toy ") and keep}


def contamination_numbers(programs, folders, evaluations, n):
    """numbers["contamination"]. programs: the held-out tasks' programs in evaluation order;
    folders: {method: [run folder per seed]}; evaluations: {method: [per seed {benchmark: {"counts"}}]},
    the base's included (it trained on nothing). Per method: how many tasks each seed saw, the tasks
    none of its seeds saw and pass@k on them; then the tasks no method saw (`clean`) and every
    method's pass@k on those."""
    seen = {m: [run_programs(f) for f in fs] for m, fs in folders.items()}
    mine = {m: unseen(programs, set().union(*s)) for m, s in seen.items()}
    clean = sorted(set(range(len(programs))).intersection(*mine.values()))
    return {"tasks": len(programs), "seen": {m: [len(programs) - len(unseen(programs, s)) for s in by] for m, by in seen.items()},
            "unseen": mine, "clean": clean,
            "pass_at_k_unseen": {m: [curves_on(e, mine[m], n) for e in evaluations[m]] for m in mine},
            "pass_at_k_clean": {m: [curves_on(e, clean, n) for e in runs] for m, runs in evaluations.items()}}


def at_1(curves):
    """pass@1 averaged over benchmarks, per seed."""
    return [mean(c["1"] for c in by.values()) for by in curves if by]


def seeds_text(values):
    return "–" if not values else f"{100 * mean(values):.1f}" + (f" ± {100 * std(values):.1f}" if len(values) > 1 else "")


def contamination_section(numbers, records):
    """The report's lines: per method, tasks seen and pass@1 on the whole set, on its unseen tasks
    and on the clean ones; then the findings decided again on the clean tasks (`records`: the
    findings on the whole set)."""
    c = numbers.get("contamination")
    if not c:
        return []
    total, clean = c["tasks"], len(c["clean"])
    rows = ["| method | tasks seen (per seed) | pass@1, all tasks | pass@1, tasks it never saw | pass@1, tasks no method saw |",
            "|---|---|---|---|---|"]
    for method, entry in numbers["methods"].items():
        if "pass_at_k" not in entry or method not in c["pass_at_k_clean"]:
            continue
        whole = at_1([{b: v for b, v in e.items() if b.startswith("toy ")} for e in entry["pass_at_k"]])
        seen = ", ".join(map(str, c["seen"].get(method, [0])))
        mine = (f"{seeds_text(at_1(c['pass_at_k_unseen'][method]))} ({len(c['unseen'][method])} tasks)"
                if method in c["unseen"] else "(all: trained on none)")
        rows.append(f"| {method} | {seen} of {total} | {seeds_text(whole)} | {mine} | {seeds_text(at_1(c['pass_at_k_clean'][method]))} |")
    md = ["## Held-out tasks a method trained on", "", "A self-play proposer may write any program, the held-out ones "
          "included (nothing is kept from it, as in AZR). Per method: held-out tasks (of the toy benchmarks) whose program a "
          "run saw among its seed tasks, proposals or data; pass@1 (mean of the toy task types, over seeds) on all of "
          f"them, on those no run of the method saw, and on the {clean} that no run of any method saw. The programs a "
          "proposer writes are mostly short ones, so the tasks left out are the deeper, harder ones: compare methods "
          "within a column, not a column with another.", "", *rows, ""]
    if not clean:
        return md + ["Every held-out task was seen by some method: the findings cannot be decided without them.", ""]
    again = [f(with_clean_pass_at_k(numbers)) for f in READS_PASS_AT_K]
    differ = verdicts_that_differ([records[FINDINGS.index(f)] for f in READS_PASS_AT_K], again)
    base = "" if c["pass_at_k_clean"].get("base") else (" (the base's counts are not among the study's files, so "
                                                         "finding 1 cannot be decided on them)")
    return md + [f"The findings that pass@k decides, decided again on the {clean} tasks no method saw{base}: "
                 + (f"the verdicts differ on {'; '.join(differ)}." if differ else "the same verdicts."), "",
                 verdict_table(again), ""]


def from_report(report):
    """A finished study's numbers.json with its contamination numbers computed from the report's own
    files: each run's tasks, config and held-out evaluation counts under report/runs (the base's
    where report/runs/base has them), and the held-out tasks the study evaluated on."""
    with open(os.path.join(report, "numbers.json")) as f:
        numbers = json.load(f)
    seeds, count = numbers["settings"]["seeds"], numbers["settings"]["tasks_per_type"]
    folders = {m: [os.path.join(report, "runs", f"{m}-seed{s}") for s in range(seeds)]
               for m, entry in numbers["methods"].items() if m != "base" and entry.get("pass_at_k")}
    evaluations = {m: [read_results(f) for f in fs] for m, fs in folders.items()}
    base = os.path.join(report, "runs", "base", "heldout_eval.json")
    if os.path.isfile(base):
        evaluations["base"] = [read_results(os.path.dirname(base))]
    programs = [g.task.program for g in heldout_tasks(count)]
    return {**numbers, "contamination": contamination_numbers(programs, folders, evaluations, numbers["n"])}


def read_results(folder):
    with open(os.path.join(folder, "heldout_eval.json")) as f:
        return json.load(f)["results"]


def main(argv=None):
    p = argparse.ArgumentParser(prog="contamination.py", description="Held-out toy tasks each method of a finished "
                                "study trained on, and pass@k without them, from the study's report folder alone.")
    p.add_argument("report", help="a study's report folder (reproduce.py's <out>/report, or docs/study-toy)")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.report, "numbers.json")) or not os.path.isdir(os.path.join(args.report, "runs")):
        p.error(f"{args.report}: no numbers.json and runs/ in it; give a study's report folder")
    numbers = from_report(args.report)
    print("\n".join(contamination_section(numbers, all_findings(numbers))))


if __name__ == "__main__":
    sys.exit(main())
