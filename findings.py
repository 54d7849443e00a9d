"""
The study's six findings, each checked against saved numbers.

"Towards Understanding Self-play for LLM Reasoning" (arXiv 2510.27072) compares AZR self-play
(arXiv 2505.03335) with RLVR and SFT started from the same base, and reports six findings. Each
function below takes the numbers a reproduction saved (reproduce.py writes them to numbers.json)
and returns one record:
  finding    what the study found, in one line;
  study      the sentence of the study's abstract that names the analysis, quoted, and the result
             as we read it, paraphrased and marked as our words;
  criterion  the test applied to the numbers, written out with its thresholds;
  numbers    the numbers the verdict rests on: {label: [one value per seed]};
  verdict    "reproduced", "not reproduced" or "inconclusive"; or "not testable at this setting"
             where the numbers show that the run's setting cannot show the finding (finding 4).
Nothing here trains, samples or loads a model: every verdict can be recomputed from numbers.json.

The numbers: {"n": samples per problem (the largest k), "methods": {method: {field: [one entry per
seed]}}}, methods among base, azr (learnability reward), azr-peaked, azr-frozen, rlvr, sft, and
the fields:
  pass_at_k   {benchmark: {k: pass@k}}, k written as a string (a JSON key);
  entropy     {role: {"first": mean over the first window of steps, "last": over the last window,
              "mean": over all steps}}, each the mean over task types of the token entropy logged
              during training; and "first_median", "last_median", "median": the same windows'
              medians over their steps (with_window_medians);
  sparsity    {"bf16_exact", "bf16_tol", "exact", "tol"}: the fraction of parameters unchanged
              from the base, exactly or within the tolerance, in bf16 or in the checkpoint dtype;
  curriculum  {"first_half", "second_half"}: the mean solve rate of the valid proposed tasks in
              each half of training, as the moving solver saw them; "spearman": of solve rate against
              response length, stratified by task type; "spearman_by_type": {task type: that
              correlation}; "judge_base", "judge_final": [one solve rate per quarter of training]: a
              sample of each quarter's valid tasks solved by two fixed judges, the base and the final
              checkpoint; "nodes_by_quarter": the mean AST nodes of each quarter's valid programs;
  probe       {checkpoint step: the solver's mean token entropy on a fixed set of prompts and
              responses}, step "0" being the base;
and, outside "methods", optionally:
  sweep       {"steps": S, "rates": {learning rate: {method: [{"bf16_exact", "exact"} per seed]}}}:
              sparsity after S steps at each rate (finding 4 at each rate);
  budgets     {method: {"proposer", "solver"}}: the sequences each method trains on per step;
  contamination  the held-out tasks each method's runs saw and pass@k without them
              (contamination.contamination_numbers; with_clean_pass_at_k reads "pass_at_k_clean").
Methods "azr-long" and "azr-frozen-long" (long runs) decide finding 2 when present, and
"rlvr-matched" and "sft-matched" (trained on AZR's solver sequences per step) replace RLVR and
SFT in matched_budget(numbers).

Seeds. A difference of two means d = mean(a) - mean(b) decides a comparison only when |d| exceeds
the spread: the larger of the two sample standard deviations (n - 1) across seeds, and never less
than the resolution of the quantity (RESOLUTION: half a point of pass@k, 0.005 nats of entropy...),
so that a difference of 1e-4 nats between two runs of one seed decides nothing. Inside the spread
the comparison is undecided. With one seed the spread is the resolution alone: such a verdict
says nothing about the noise between seeds.
A finding is reproduced when every comparison it makes comes out as the study found, not
reproduced when any comes out the other way, and inconclusive otherwise (a comparison undecided,
or its numbers missing).
"""

import math

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable at this setting")
RL_METHODS = ("azr", "rlvr")  # the methods whose pass@k the first finding compares with the base
HELP_MARGIN = 0.02            # finding 5: the peaked reward "does not help" if its pass@1 is at most 2 points above
ENTROPY_REL_TOL = 0.5         # finding 5 (ours): entropy changes within half the larger change count as the same,
ENTROPY_SAME_FLOOR = 0.01     # ... or within 0.01 nats (ours: twice the entropy resolution), so that two flat
                              # curves, whose half-the-larger-change tolerance is below the spread, can agree
SPARSE_ENOUGH = 0.5           # finding 4 (ours): testable only if some method leaves over half the entries unchanged
DENSE_ENOUGH = 0.99           # finding 4 (ours): ... and some method changes more than 1 % of them
# the smallest difference that decides, per quantity, whatever the seeds' spread
RESOLUTION = {"pass@k": 0.005, "entropy": 0.005, "sparsity": 1e-4, "solve rate": 0.01, "spearman": 0.05}

# Changes to the findings since the toy-v2 study (docs/study-toy) ran, each landed in its own commit
# before the study on toy-v3 started: the report lists them (report.py), so that a reader can check
# that no criterion was chosen after the numbers it decides.
CRITERIA_COMMITS = (
    ("2598c62", "finding 5: two entropy changes also agree within 0.01 nats, so that two flat curves can agree"),
    ("19f9d86", "findings 2 and 5 also decided with the entropy windows' medians (shown beside; the verdicts "
                "stand on the means)"),
    ("5994fbf", "findings 1, 3 and 5 also decided on the held-out tasks no run trained on (shown beside)"),
    ("aea4f05", "finding 4 shows each comparison's margin in seed spreads (no criterion changed)"),
)


# -----------------------------------------------------------------------------
# Comparisons across seeds


def mean(values):
    """The arithmetic mean of any iterable of numbers; an empty one is an error (ZeroDivisionError)."""
    values = list(values)
    return sum(values) / len(values)


def std(values):
    """Sample standard deviation (n - 1); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def greater(a, b, margin=0.0, resolution=0.0):
    """Is mean(a) - mean(b) above margin? True if it is by more than the spread (the larger seed
    std of a and b, at least `resolution`), False if it is below by more than the spread, None if
    within it or if a side has no values."""
    if not a or not b:
        return None
    d, spread = mean(a) - mean(b) - margin, max(std(a), std(b), resolution)
    return True if d > spread else False if d < -spread else None


def spreads(a, b, resolution=0.0):
    """mean(a) - mean(b) in units of the spread `greater` uses: beyond +1 or -1 a comparison decides,
    so how far beyond (or short of) that a verdict stands. None if a side has no values."""
    if not a or not b:
        return None
    return (mean(a) - mean(b)) / max(std(a), std(b), resolution, 1e-300)


def within(a, b, tol, resolution=0.0):
    """Do mean(a) and mean(b) agree within tol? True if |d| + spread <= tol (even at the spread's
    edge), False if |d| - spread > tol, None between, or if a side has no values; the spread as
    in `greater`."""
    if not a or not b:
        return None
    d, spread = abs(mean(a) - mean(b)), max(std(a), std(b), resolution)
    return True if d + spread <= tol else False if d - spread > tol else None


def verdict(checks):
    """ "not reproduced" if any check came out the other way, "reproduced" if all came out as the
    study found, else "inconclusive"."""
    checks = list(checks)
    if any(c is False for c in checks):
        return "not reproduced"
    if checks and all(c is True for c in checks):
        return "reproduced"
    return "inconclusive"


# What the study says, per finding: the sentence of its abstract (arXiv 2510.27072) that names the
# analysis, quoted, and its result as we read it, paraphrased (marked so: the words are ours).
ABSTRACT = {
    "pass@k": "We further connect these dynamics to reasoning performance using pass@k evaluations.",
    "dynamics": "Our study examines parameter update sparsity, entropy dynamics of token distributions, and "
                "alternative proposer reward functions.",
}
STUDY = {
    "1": (ABSTRACT["pass@k"], "self-play raises pass@k at small k, and at large k the base catches up or wins: the "
                              "gains sharpen what the base can already do and are bounded by it"),
    "2": (ABSTRACT["dynamics"], "token entropy collapses in both roles over training; the proposer's entropy stays "
                                "above the solver's"),
    "3": (ABSTRACT["dynamics"], "with the proposer frozen the solver keeps a higher entropy but makes less progress: "
                                "the proposer is the crucial component"),
    "4": (ABSTRACT["dynamics"], "RLVR updates a small fraction of the parameters, SFT nearly all; AZR sits between"),
    "5": (ABSTRACT["dynamics"], "a proposer reward peaked at solve rate 0.5 did not help (about 2 points lower) and "
                                "left the entropy dynamics unchanged"),
    "6": (ABSTRACT["pass@k"], "(the curriculum analysis has no sentence of its own in the abstract) the proposer's "
                              "tasks get harder over training (their solve rate falls), and the solver's responses "
                              "get longer on harder tasks"),
}


def record(finding, criterion, numbers, checks, testable=True):
    """One finding's record; a setting that cannot show the finding (testable False) says so
    instead of a verdict. "study" holds the abstract's sentence and our paraphrase of the result."""
    quote, claim = STUDY[finding.split(".")[0]]
    return {"finding": finding, "study": f"abstract: \"{quote}\" Result (paraphrased, our words): {claim}.",
            "criterion": criterion, "numbers": numbers,
            "verdict": verdict(checks) if testable else "not testable at this setting"}


# -----------------------------------------------------------------------------
# Reading the saved numbers: one value per seed, missing ones left out


def finite(values):
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def entries(numbers, method, field):
    """A method's per-seed entries of one field ([] when the method or field is missing)."""
    return [e for e in numbers.get("methods", {}).get(method, {}).get(field) or [] if e is not None]


def largest_k(numbers):
    return int(numbers.get("n") or 0)


def pass_at(numbers, method, k):
    """Per seed: pass@k averaged over the benchmarks (every task type counts as one)."""
    values = []
    for curves in entries(numbers, method, "pass_at_k"):
        at_k = finite([c.get(str(k)) for c in curves.values()])
        if at_k and len(at_k) == len(curves):
            values.append(mean(at_k))
    return values


def entropy(numbers, method, role, which):
    """Per seed: a role's mean entropy over the first window, last window or all steps."""
    return finite([e.get(role, {}).get(which) for e in entries(numbers, method, "entropy")])


def entropy_change(numbers, method, role):
    """Per seed: last window minus first window."""
    return finite([e[role]["last"] - e[role]["first"] for e in entries(numbers, method, "entropy")
                   if role in e and None not in (e[role].get("first"), e[role].get("last"))])


def field(numbers, method, group, name):
    return finite([e.get(name) for e in entries(numbers, method, group)])


# -----------------------------------------------------------------------------
# The six findings


def decided(quantity):
    """The end of a criterion: when a difference decides."""
    return f"a difference decides only beyond the larger seed std, and never below {RESOLUTION[quantity]:g}"


def benchmark_names(numbers):
    """The benchmarks of the base's pass@k, in the order saved."""
    curves = entries(numbers, "base", "pass_at_k")
    return list(curves[0]) if curves else []


def pass_on(numbers, method, benchmark, k):
    """Per seed: pass@k on one benchmark."""
    return finite([c.get(benchmark, {}).get(str(k)) for c in entries(numbers, method, "pass_at_k")])


def level_or_below(a, b, resolution=0.0):
    """Is mean(a) level with mean(b) (within the spread, as in `greater`) or below it? False if it is
    above by more than the spread; None if a side has no values."""
    if not a or not b:
        return None
    return greater(a, b, resolution=resolution) is not True


def finding_pass_at_k(numbers, methods=RL_METHODS, contrast=("sft",)):
    k = largest_k(numbers)
    res = RESOLUTION["pass@k"]
    shown, checks = {}, []
    names = benchmark_names(numbers)
    for benchmark in names:
        base1, basek = pass_on(numbers, "base", benchmark, 1), pass_on(numbers, "base", benchmark, k)
        shown.update({f"{benchmark}: base pass@1": base1, f"{benchmark}: base pass@{k}": basek})
        for m in methods + tuple(contrast):
            p1, pk = pass_on(numbers, m, benchmark, 1), pass_on(numbers, m, benchmark, k)
            shown.update({f"{benchmark}: {m} pass@1": p1, f"{benchmark}: {m} pass@{k}": pk})
            if m in methods:
                checks += [greater(p1, base1, resolution=res), level_or_below(pk, basek, res)]
    return record(
        "1. pass@k: RL-trained models gain at small k; the base catches up at large k",
        f"(our operationalisation) on each benchmark, for each of {', '.join(methods)}: pass@1 above the base's, and "
        f"at the largest k (k = {k}) pass@k level with the base's or below it, level meaning within the spread; "
        f"{decided('pass@k')}. {', '.join(contrast).upper()} is shown beside them, not judged",
        shown, checks if names else [None])


def finding_entropy_collapse(numbers):
    res = RESOLUTION["entropy"]
    azr = "azr-long" if entries(numbers, "azr-long", "entropy") else "azr"  # the long runs decide when there are any
    shown, checks = {}, []
    for role in ("proposer", "solver"):
        first, last = entropy(numbers, azr, role, "first"), entropy(numbers, azr, role, "last")
        shown.update({f"{azr} {role} first window": first, f"{azr} {role} last window": last})
        checks.append(greater(first, last, resolution=res))
    proposer, solver = entropy(numbers, azr, "proposer", "mean"), entropy(numbers, azr, "solver", "mean")
    shown.update({f"{azr} proposer mean": proposer, f"{azr} solver mean": solver})
    checks.append(greater(proposer, solver, resolution=res))
    if azr == "azr-long":  # the short runs beside, not judged
        for role in ("proposer", "solver"):
            shown[f"azr {role} change (short runs)"] = entropy_change(numbers, "azr", role)
    return record(
        "2. entropy collapses in both roles of AZR; the proposer's stays above the solver's",
        f"AZR (learnability reward){', the long runs' if azr == 'azr-long' else ''}: for the proposer and for the "
        "solver, the mean token entropy over the last quarter of the steps below that over the first quarter (two "
        "steps at least); and the proposer's entropy, averaged over all steps, above the solver's; entropies in nats, "
        f"averaged over task types; {decided('entropy')}",
        shown, checks)


def probe_mean(numbers, method):
    """Per seed: the solver's probe entropy averaged over the run's checkpoints (the base, step 0,
    left out)."""
    values = []
    for probe in entries(numbers, method, "probe"):
        steps = finite([v for step, v in probe.items() if int(step) > 0])
        if steps:
            values.append(mean(steps))
    return values


def finding_frozen_proposer(numbers):
    frozen, azr = probe_mean(numbers, "azr-frozen"), probe_mean(numbers, "azr")
    frozen1, azr1 = pass_at(numbers, "azr-frozen", 1), pass_at(numbers, "azr", 1)
    return record(
        "3. a frozen proposer keeps entropy higher and makes less progress",
        "(our operationalisation) the solver's probe entropy (teacher-forced on one fixed set of prompts and "
        "responses, so that every checkpoint is scored on the same tokens), averaged over the run's checkpoints, "
        f"higher with a frozen proposer than in AZR with a learned one ({decided('entropy')}); and pass@1, averaged "
        f"over the benchmarks, lower with the frozen proposer ({decided('pass@k')}). The entropy logged in training "
        "(over each solver's own tasks and samples) is shown beside, not judged",
        {"azr-frozen solver probe entropy": frozen, "azr solver probe entropy": azr,
         "azr-frozen pass@1": frozen1, "azr pass@1": azr1,
         "azr-frozen solver last window (logged)": entropy(numbers, "azr-frozen", "solver", "last"),
         "azr solver last window (logged)": entropy(numbers, "azr", "solver", "last")},
        [greater(frozen, azr, resolution=RESOLUTION["entropy"]), greater(azr1, frozen1, resolution=RESOLUTION["pass@k"])])


def sparsity_record(by_method, setting, sparse_enough=SPARSE_ENOUGH, dense_enough=DENSE_ENOUGH):
    """Finding 4 on {method: [{"bf16_exact", ...} per seed]} at one setting (words for the finding's line)."""
    rlvr, azr, sft = ([s["bf16_exact"] for s in by_method.get(m) or [] if s and s.get("bf16_exact") is not None]
                      for m in ("rlvr", "azr", "sft"))
    res = RESOLUTION["sparsity"]
    means = [mean(v) for v in (rlvr, azr, sft) if v]
    shown = {"rlvr sparsity (bf16, exact)": rlvr, "azr sparsity (bf16, exact)": azr, "sft sparsity (bf16, exact)": sft}
    for m in ("rlvr", "azr", "sft"):
        exact = [s["exact"] for s in by_method.get(m) or [] if s and s.get("exact") is not None]
        if exact:
            shown[f"{m} sparsity (float32, exact)"] = exact
    for (a, name_a), (b, name_b) in (((rlvr, "RLVR"), (azr, "AZR")), ((azr, "AZR"), (sft, "SFT"))):
        if a and b:  # the margin of each comparison: it decides beyond +1 or -1
            shown[f"{name_a} - {name_b}, in spreads"] = [spreads(a, b, res)]
    return record(
        f"4. update sparsity: RLVR updates fewer parameters than AZR, AZR fewer than SFT ({setting})",
        "the sparsity of the checkpoint against the base in the bf16 view with exact zeros (the fraction of "
        f"parameters whose value rounded to bf16 is unchanged): RLVR above AZR and AZR above SFT; {decided('sparsity')}. "
        f"(ours) Not testable at this setting unless some method leaves more than {sparse_enough:.0%} of the entries "
        f"unchanged and some method changes more than {1 - dense_enough:.0%} of them: where every update is as large as "
        "bf16's spacing nearly everywhere, or nearly none is, sparsity measures the optimizer's step size, not the method",
        shown, [greater(rlvr, azr, resolution=res), greater(azr, sft, resolution=res)],
        testable=not means or (max(means) > sparse_enough and min(means) < dense_enough))


def finding_sparsity(numbers, sparse_enough=SPARSE_ENOUGH, dense_enough=DENSE_ENOUGH):
    return sparsity_record({m: entries(numbers, m, "sparsity") for m in ("rlvr", "azr", "sft")},
                           "the final checkpoints", sparse_enough, dense_enough)


def sparsity_sweep(numbers):
    """Finding 4 at each learning rate of numbers["sweep"], every rate reported: [record per rate]."""
    sweep = numbers.get("sweep") or {}
    return [sparsity_record(by_method, f"lr {float(rate):g}, {sweep.get('steps')} steps")
            for rate, by_method in sorted((sweep.get("rates") or {}).items(), key=lambda item: float(item[0]))]


def finding_peaked_reward(numbers, margin=HELP_MARGIN, relative=ENTROPY_REL_TOL, floor=ENTROPY_SAME_FLOOR):
    peaked1, azr1 = pass_at(numbers, "azr-peaked", 1), pass_at(numbers, "azr", 1)
    shown = {"azr-peaked pass@1": peaked1, "azr pass@1": azr1}
    checks = [greater(azr1, peaked1, -margin, RESOLUTION["pass@k"])]  # peaked - azr below the margin
    for role in ("proposer", "solver"):
        peaked, azr = entropy_change(numbers, "azr-peaked", role), entropy_change(numbers, "azr", role)
        shown.update({f"azr-peaked {role} entropy change": peaked, f"azr {role} entropy change": azr})
        tol = max(relative * max(abs(mean(peaked)), abs(mean(azr))), floor) if peaked and azr else 0.0
        checks.append(within(peaked, azr, tol, RESOLUTION["entropy"]))
    return record(
        "5. the peaked proposer reward does not help and leaves the entropy dynamics unchanged",
        f"pass@1, averaged over the benchmarks, with the peaked reward at most {100 * margin:g} points above AZR's "
        f"with the learnability reward, or below it ({decided('pass@k')}); and (our operationalisation) for each "
        f"role the entropy changes (last quarter of the steps minus first quarter) of the two within {relative:g} "
        f"of the larger change of the two or within {floor:g} nats, whichever is wider, the spread (the larger seed std, at least {RESOLUTION['entropy']:g}) "
        "added to the difference for agreement and taken from it for a failure",
        shown, checks)


def quarter(numbers, method, name, which):
    """Per seed: of a curriculum list of quarter values (None for a quarter without tasks), the first
    (which = 0) or last (-1) quarter that has one."""
    values = []
    for e in entries(numbers, method, "curriculum"):
        held = finite(e.get(name) or [])
        if len(held) >= 2:
            values.append(held[which])
    return values


def finding_curriculum(numbers):
    rho = field(numbers, "azr", "curriculum", "spearman")
    by_type = {}
    for entry in entries(numbers, "azr", "curriculum"):
        for task_type, value in (entry.get("spearman_by_type") or {}).items():
            by_type.setdefault(f"azr Spearman, {task_type}", []).extend(finite([value]))
    shown, checks = {}, []
    for judge in ("base", "final"):
        first, last = quarter(numbers, "azr", f"judge_{judge}", 0), quarter(numbers, "azr", f"judge_{judge}", -1)
        shown.update({f"azr tasks of the first quarter, solved by the {judge}": first,
                      f"azr tasks of the last quarter, solved by the {judge}": last})
        checks.append(greater(first, last, resolution=RESOLUTION["solve rate"]))
    shown.update({"azr AST nodes, first quarter": quarter(numbers, "azr", "nodes_by_quarter", 0),
                  "azr AST nodes, last quarter": quarter(numbers, "azr", "nodes_by_quarter", -1),
                  "azr solve rate in training, first half (moving solver)": field(numbers, "azr", "curriculum", "first_half"),
                  "azr solve rate in training, second half (moving solver)": field(numbers, "azr", "curriculum", "second_half"),
                  "azr Spearman (within task types)": rho, **by_type})
    checks.append(greater([0.0], rho, resolution=RESOLUTION["spearman"]))
    return record(
        "6. the proposer's tasks get harder over training; responses get longer on harder tasks",
        "AZR (learnability reward). Harder, (our operationalisation) under fixed judges: a sample of the valid tasks "
        "proposed in the first and in the last quarter of the steps (that hold any), every task type, each solved n times by the "
        "base and by the final checkpoint; for both judges the mean solve rate (the mean over task types) of the "
        f"last quarter's tasks below the first quarter's ({decided('solve rate')}). The solve rate the moving "
        "solver met in training mixes the tasks' difficulty with its progress: shown beside, not judged. Longer: the "
        "Spearman correlation of a task's solve rate with the solver's mean response length on it below 0, "
        "stratified by task type (ours: the task-weighted mean of the per-type correlations, each type shown; pooled "
        f"points would mix the types' levels) ({decided('spearman')})",
        shown, checks)


FINDINGS = (finding_pass_at_k, finding_entropy_collapse, finding_frozen_proposer, finding_sparsity,
            finding_peaked_reward, finding_curriculum)


def all_findings(numbers):
    """The six records, in the study's order, then finding 4 at each rate of a learning-rate sweep."""
    return [f(numbers) for f in FINDINGS] + sparsity_sweep(numbers)


MATCHED = {"rlvr": "rlvr-matched", "sft": "sft-matched"}


def matched_budget(numbers):
    """The numbers with RLVR and SFT replaced by their matched-budget runs (trained on as many solver
    sequences per step as AZR), or None when there are none."""
    methods = numbers.get("methods", {})
    if not any(m in methods for m in MATCHED.values()):
        return None
    swapped = {m: methods.get(MATCHED.get(m, m), {}) for m in methods if m not in MATCHED.values()}
    return {**numbers, "methods": swapped, "sweep": None}


MEDIANS = {"first": "first_median", "last": "last_median", "mean": "median"}


def with_window_medians(numbers):
    """The numbers with each run's logged entropy read as medians over the steps of a window (the
    first quarter, the last, all steps) instead of means, for findings 2 and 5 to be decided again:
    a one-step spike (a few long, high-entropy answers) moves a window's mean, not its median. None
    when the numbers predate the medians (reproduce.entropy_numbers writes both)."""
    methods = {}
    for method, entry in numbers.get("methods", {}).items():
        runs = []
        for run in entry.get("entropy", []):
            if any(name not in roles for roles in run.values() for name in MEDIANS.values()):
                return None
            runs.append({role: {which: roles[median] for which, median in MEDIANS.items()} for role, roles in run.items()})
        methods[method] = {**entry, "entropy": runs}
    return {**numbers, "methods": methods}


def with_clean_pass_at_k(numbers):
    """The numbers with every method's pass@k taken on the held-out tasks no run of any method
    trained on (numbers["contamination"]["pass_at_k_clean"], contamination.py); a method without
    those curves keeps none, so a finding that needs it is inconclusive. None without them."""
    clean = (numbers.get("contamination") or {}).get("pass_at_k_clean")
    if clean is None:
        return None
    methods = {m: {**entry, "pass_at_k": clean.get(m, [])} if "pass_at_k" in entry else entry
               for m, entry in numbers.get("methods", {}).items()}
    return {**numbers, "methods": methods}


def verdicts_that_differ(records, others):
    """The findings whose verdict differs between two lists of records of the same findings."""
    return [r["finding"] for r, o in zip(records, others) if r["verdict"] != o["verdict"]]


# -----------------------------------------------------------------------------
# The table


def show_values(values):
    """A seed list as text: the value for one seed, mean ± std for several, a dash for none."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{mean(values):.4g} ± {std(values):.2g} ({len(values)} seeds)"


def verdict_table(records):
    """A Markdown table of the records: finding, verdict, what the study says, criterion, numbers."""
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| finding | verdict | the study | criterion | numbers |", "|---|---|---|---|---|"]
    for r in records:
        numbers = "; ".join(f"{label} = {show_values(v)}" for label, v in r["numbers"].items())
        lines.append(f"| {cell(r['finding'])} | **{r['verdict']}** | {cell(r.get('study', ''))} | "
                     f"{cell(r['criterion'])} | {cell(numbers)} |")
    return "\n".join(lines)
