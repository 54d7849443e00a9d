"""findings.py: planted numbers that pass each finding, fail it, or leave it undecided across seeds."""

import json
import re

import pytest

import findings

# One seed of numbers that reproduce all six findings: (method, quantity) -> per-seed values.
PASSING = {
    ("base", "pass@1"): [0.10], ("base", "pass@32"): [0.60],
    ("azr", "pass@1"): [0.20], ("azr", "pass@32"): [0.60],            # gain 0.10 at k = 1, level at k = 32
    ("rlvr", "pass@1"): [0.18], ("rlvr", "pass@32"): [0.58],          # the base ahead at k = 32
    ("azr-peaked", "pass@1"): [0.19], ("azr-peaked", "pass@32"): [0.61],
    ("azr-frozen", "pass@1"): [0.12], ("azr-frozen", "pass@32"): [0.60],
    ("sft", "pass@1"): [0.11], ("sft", "pass@32"): [0.50],
    ("azr", "proposer first"): [2.0], ("azr", "proposer last"): [1.5],
    ("azr", "solver first"): [1.5], ("azr", "solver last"): [1.0],
    ("azr-peaked", "proposer first"): [2.0], ("azr-peaked", "proposer last"): [1.55],
    ("azr-peaked", "solver first"): [1.5], ("azr-peaked", "solver last"): [0.98],
    ("azr-frozen", "solver first"): [1.5], ("azr-frozen", "solver last"): [1.4],
    ("rlvr", "sparsity"): [0.9], ("azr", "sparsity"): [0.7], ("sft", "sparsity"): [0.1],
    ("azr", "first_half"): [0.5], ("azr", "second_half"): [0.3], ("azr", "spearman"): [-0.4],
    # fixed judges: the first quarter's tasks solved more often than the last quarter's, by both
    ("azr", "judge_base"): [[0.4, 0.35, 0.3, 0.2]], ("azr", "judge_final"): [[0.6, 0.5, 0.5, 0.4]],
    # probe entropy over checkpoints (step 0 is the base, left out of the mean): frozen stays higher
    ("azr", "probe"): [{"0": 1.5, "10": 1.2, "30": 1.0}], ("azr-frozen", "probe"): [{"0": 1.5, "10": 1.4, "30": 1.3}],
}


def build(flat):
    """numbers.json as reproduce.py writes it, from {(method, quantity): per-seed values}; a
    one-value list stands for every seed of its method."""
    numbers = {"n": 32, "methods": {}}
    for method in {m for m, _ in flat}:
        mine = {q: v for (m, q), v in flat.items() if m == method}
        seeds = max(len(v) for v in mine.values())
        at = lambda q, s: mine[q][s if len(mine[q]) > 1 else 0] if q in mine else None  # noqa: E731
        entry = {"pass_at_k": [], "entropy": [], "sparsity": [], "curriculum": []}
        for s in range(seeds):
            if "pass@1" in mine:
                curve = {"1": at("pass@1", s), "32": at("pass@32", s)}
                entry["pass_at_k"].append({"toy deduction": curve, "toy abduction": dict(curve)})
            roles = {}
            for role in ("proposer", "solver"):
                first, last = at(f"{role} first", s), at(f"{role} last", s)
                if first is not None:
                    middle = at(f"{role} mean", s)
                    roles[role] = {"first": first, "last": last, "mean": (first + last) / 2 if middle is None else middle}
            if roles:
                entry["entropy"].append(roles)
            if "sparsity" in mine:
                entry["sparsity"].append({"bf16_exact": at("sparsity", s), "bf16_tol": 1.0, "exact": 0.0, "tol": 1.0})
            if "first_half" in mine:
                entry["curriculum"].append({k: at(k, s) for k in ("first_half", "second_half", "spearman", "judge_base",
                                                                  "judge_final")})
            if "probe" in mine:
                entry.setdefault("probe", []).append(at("probe", s))
        numbers["methods"][method] = entry
    return numbers


def verdicts(flat):
    return [r["verdict"] for r in findings.all_findings(build(flat))]


def test_planted_numbers_reproduce_every_finding():
    assert verdicts(PASSING) == ["reproduced"] * 6


# (finding number, what changes): each makes its finding come out the other way
FAILING = [
    (1, {("rlvr", "pass@1"): [0.05]}),                                  # no gain at k = 1
    (1, {("rlvr", "pass@32"): [0.90]}),                                 # the gain grows with k: no catching up
    # gains at k = 1 (0.10) and stays above the base at k = 32 (0.05): a smaller gain, but not bounded
    (1, {("azr", "pass@32"): [0.65], ("azr-peaked", "pass@32"): [0.65]}),
    # the entropy rises (the peaked run's too, so that finding 5 still sees the same dynamics)
    (2, {("azr", "proposer last"): [2.3], ("azr-peaked", "proposer last"): [2.35]}),
    (2, {("azr", "solver first"): [0.9], ("azr-peaked", "solver first"): [0.88]}),
    (2, {("azr", "proposer mean"): [1.0]}),                             # the solver's (1.25) above the proposer's
    (3, {("azr-frozen", "probe"): [{"0": 1.5, "10": 1.0, "30": 0.8}]}),  # the frozen proposer's solver collapses more
    (3, {("azr-frozen", "pass@1"): [0.30]}),                            # and progresses more
    (4, {("rlvr", "sparsity"): [0.5]}),                                 # RLVR denser than AZR
    (4, {("sft", "sparsity"): [0.95]}),                                 # SFT sparser than AZR
    (5, {("azr-peaked", "pass@1"): [0.30]}),                            # the peaked reward helps by 10 points
    (5, {("azr-peaked", "solver last"): [1.9]}),                        # and changes the solver's entropy
    # the solver's entropy falls 0.04 nats with AZR and not at all with the peaked reward: within 0.1 nats,
    # but not the same dynamics
    (5, {("azr", "solver first"): [0.12], ("azr", "solver last"): [0.08],
         ("azr-peaked", "solver first"): [0.12], ("azr-peaked", "solver last"): [0.12]}),
    (6, {("azr", "judge_base"): [[0.2, 0.3, 0.3, 0.4]]}),               # the base solves later tasks more often
    (6, {("azr", "judge_final"): [[0.4, 0.5, 0.5, 0.6]]}),              # so does the final checkpoint
    (6, {("azr", "spearman"): [0.4]}),                                  # harder tasks, shorter answers
]


@pytest.mark.parametrize("finding, change", FAILING, ids=[f"{f}-{list(c)[0]}" for f, c in FAILING])
def test_planted_failures_are_not_reproduced(finding, change):
    got = verdicts({**PASSING, **change})
    assert got[finding - 1] == "not reproduced"
    assert got[:finding - 1] + got[finding:] == ["reproduced"] * 5  # the others untouched


# three seeds whose spread covers the difference: each finding undecided
OVERLAPPING = [
    (1, {("rlvr", "pass@1"): [0.03, 0.23, 0.13]}),                      # mean 0.13 vs base 0.10, std 0.10
    (2, {("azr", "proposer mean"): [1.0, 1.6, 1.3]}),                   # mean 1.3 vs the solver's 1.25, std 0.3
    (3, {("azr-frozen", "probe"): [{"10": 0.5}, {"10": 1.6}, {"10": 1.1}]}),  # mean 1.07 vs 1.1, std 0.55
    (4, {("rlvr", "sparsity"): [0.95, 0.55, 0.75]}),                    # mean 0.75 vs 0.7, std 0.2
    (5, {("azr-peaked", "pass@1"): [0.12, 0.32, 0.22]}),                # mean 0.22: 2 points up, std 0.1
    (6, {("azr", "spearman"): [-0.6, 0.4, -0.1]}),                      # mean -0.1, std 0.5
]


@pytest.mark.parametrize("finding, change", OVERLAPPING, ids=[str(f) for f, _ in OVERLAPPING])
def test_differences_inside_the_seed_spread_are_inconclusive(finding, change):
    got = verdicts({**PASSING, **change})
    assert got[finding - 1] == "inconclusive"
    assert got[:finding - 1] + got[finding:] == ["reproduced"] * 5


def test_sft_is_shown_beside_the_rl_methods_but_not_judged():
    """SFT above the base at the largest k (as SFT can be) leaves finding 1 as it is, and is reported."""
    record = findings.all_findings(build({**PASSING, ("sft", "pass@32"): [0.80]}))[0]
    assert record["verdict"] == "reproduced" and record["numbers"]["toy deduction: sft pass@32"] == [0.80]


def test_finding_1_is_decided_per_benchmark():
    numbers = build(PASSING)
    for entry in numbers["methods"]["azr"]["pass_at_k"]:
        entry["toy abduction"]["32"] = 0.70  # above the base on one benchmark only
    assert findings.all_findings(numbers)[0]["verdict"] == "not reproduced"


def test_small_entropy_changes_of_the_same_dynamics_agree():
    flat = {**PASSING, ("azr", "solver first"): [0.12], ("azr", "solver last"): [0.08],
            ("azr-peaked", "solver first"): [0.12], ("azr-peaked", "solver last"): [0.085]}
    assert verdicts(flat)[4] == "reproduced"


@pytest.mark.parametrize("azr_last, peaked_last, verdict", [
    (0.121, 0.118, "reproduced"),      # both flat (+0.001 and -0.002 nats): the most literal "unchanged"
    (0.100, 0.130, "not reproduced"),  # small but apart: -0.02 against +0.01 nats, 0.03 beyond the 0.01 floor
])
def test_flat_entropy_curves_can_agree_and_small_opposite_changes_cannot(azr_last, peaked_last, verdict):
    """Finding 5's "same entropy dynamics" with both changes below 0.01 nats: half the larger change
    is below the spread, so without the 0.01-nat floor two flat curves could never agree."""
    flat = {**PASSING, ("azr", "solver first"): [0.12], ("azr", "solver last"): [azr_last],
            ("azr-peaked", "solver first"): [0.12], ("azr-peaked", "solver last"): [peaked_last]}
    assert verdicts(flat)[4] == verdict


def test_the_same_difference_decides_once_the_seeds_agree():
    spread = {("azr", "pass@1"): [0.02, 0.22, 0.12]}
    tight = {("azr", "pass@1"): [0.19, 0.20, 0.21]}
    assert verdicts({**PASSING, **spread})[0] == "inconclusive"
    assert verdicts({**PASSING, **tight})[0] == "reproduced"


def test_one_seed_differences_below_the_resolution_decide_nothing():
    # 1e-4 nats between proposer and solver, and between first and last window: ties, not findings
    flat = {**PASSING, ("azr", "proposer first"): [5.5418], ("azr", "proposer last"): [5.5417],
            ("azr", "solver first"): [5.5419], ("azr", "solver last"): [5.5418]}
    assert verdicts(flat)[1] == "inconclusive"


@pytest.mark.parametrize("missing, finding", [("base", 1), ("azr-frozen", 3), ("sft", 4), ("azr-peaked", 5)])
def test_a_missing_method_leaves_its_finding_inconclusive(missing, finding):
    got = verdicts({k: v for k, v in PASSING.items() if k[0] != missing})
    assert got[finding - 1] == "inconclusive"


def test_no_numbers_at_all_is_inconclusive_everywhere():
    assert verdicts({}) == ["inconclusive"] * 6
    assert [r["verdict"] for r in findings.all_findings({})] == ["inconclusive"] * 6


def test_sparsity_where_every_method_moves_most_weights_is_not_testable():
    """At lr 2e-4 on a small float32 model every method changes 85-87 % of the bf16 entries: the
    order of three small numbers then says nothing about the methods."""
    saturated = {("rlvr", "sparsity"): [0.135], ("azr", "sparsity"): [0.147], ("sft", "sparsity"): [0.150]}
    assert verdicts({**PASSING, **saturated})[3] == "not testable at this setting"
    # the same order with the sparsest above half: testable, and the reversed order is a failure
    assert verdicts({**PASSING, ("rlvr", "sparsity"): [0.55], ("azr", "sparsity"): [0.6], ("sft", "sparsity"): [0.1]})[3] \
        == "not reproduced"


def test_finding_6_shows_each_task_types_spearman():
    numbers = build(PASSING)
    numbers["methods"]["azr"]["curriculum"][0]["spearman_by_type"] = {"deduction": -0.2, "induction": -0.3}
    record = findings.all_findings(numbers)[5]
    assert record["verdict"] == "reproduced"
    assert record["numbers"]["azr Spearman, deduction"] == [-0.2] and record["numbers"]["azr Spearman, induction"] == [-0.3]


def test_a_missing_spearman_is_inconclusive_not_a_failure():
    assert verdicts({**PASSING, ("azr", "spearman"): [None]})[5] == "inconclusive"
    assert verdicts({**PASSING, ("azr", "spearman"): [float("nan")]})[5] == "inconclusive"


def test_records_hold_the_four_fields_and_survive_json():
    numbers = build(PASSING)
    records = findings.all_findings(json.loads(json.dumps(numbers)))
    assert records == findings.all_findings(numbers)
    for r in records:
        assert set(r) == {"finding", "study", "criterion", "numbers", "verdict"} and r["verdict"] in findings.VERDICTS
        assert r["study"].startswith('abstract: "') and "(paraphrased, our words)" in r["study"]
        assert all(isinstance(v, list) for v in r["numbers"].values())
    assert "0.005" in records[0]["criterion"] and "k = 32" in records[0]["criterion"]


def test_the_comparisons():
    assert findings.greater([2.0], [1.0]) is True and findings.greater([1.0], [2.0]) is False
    assert findings.greater([1.0], [1.0]) is None and findings.greater([], [1.0]) is None
    assert findings.greater([1.0, 3.0], [1.5]) is None                  # 0.5 inside std 1.41
    assert findings.greater([1.2], [1.0], margin=0.1) is True           # 0.2 above a 0.1 margin
    assert findings.greater([1.05], [1.0], resolution=0.1) is None
    assert findings.within([1.0], [1.05], 0.1) is True and findings.within([1.0], [1.5], 0.1) is False
    assert findings.within([1.0, 1.2], [1.05], 0.1) is None             # 0.05 + std 0.14 > 0.1 > 0.05 - 0.14
    assert findings.std([1.0]) == 0.0 and findings.std([1.0, 3.0]) == pytest.approx(2 ** 0.5)


def test_verdict_table_has_a_row_per_finding_and_escapes_pipes():
    records = findings.all_findings(build(PASSING))
    records[0] = {**records[0], "criterion": "abs|d| <= tol"}
    lines = findings.verdict_table(records).splitlines()
    assert lines[0] == "| finding | verdict | the study | criterion | numbers |" and len(lines) == 2 + 6
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 6 for line in lines[2:])  # six unescaped: five cells
    assert "abs\\|d\\|" in lines[2] and "**reproduced**" in lines[2]
    assert "azr pass@1 = 0.2" in lines[2]
    seeds = findings.verdict_table(findings.all_findings(build({**PASSING, ("azr", "pass@1"): [0.19, 0.20, 0.21]})))
    assert "azr pass@1 = 0.2 ± 0.01 (3 seeds)" in seeds


def sweep(rates):
    """numbers["sweep"] from {rate: (rlvr, azr, sft) bf16 sparsity, one seed}."""
    return {"steps": 10, "rates": {rate: {m: [{"bf16_exact": v, "exact": 0.0}] for m, v in zip(("rlvr", "azr", "sft"), values)}
                                   for rate, values in rates.items()}}


def test_finding_4_is_decided_at_every_rate_of_the_sweep():
    numbers = {**build(PASSING), "sweep": sweep({"1e-06": (1.0, 1.0, 1.0),       # nothing moves: not testable
                                                  "0.0001": (0.9, 0.7, 0.2),      # the study's order
                                                  "1e-05": (0.6, 0.8, 0.3),       # RLVR denser than AZR
                                                  "0.0002": (0.10, 0.12, 0.13)})}  # everything moves: not testable
    records = findings.all_findings(numbers)
    assert [r["verdict"] for r in records[:6]] == ["reproduced"] * 6
    assert [(r["finding"].split("(")[-1], r["verdict"]) for r in records[6:]] == [
        ("lr 1e-06, 10 steps)", "not testable at this setting"), ("lr 1e-05, 10 steps)", "not reproduced"),
        ("lr 0.0001, 10 steps)", "reproduced"), ("lr 0.0002, 10 steps)", "not testable at this setting")]
    assert records[8]["numbers"]["azr sparsity (float32, exact)"] == [0.0]


def test_the_matched_budget_replaces_rlvr_and_sft():
    numbers = build(PASSING)
    assert findings.matched_budget(numbers) is None
    dense = build({("rlvr", "sparsity"): [0.5], ("sft", "sparsity"): [0.95]})["methods"]
    numbers["methods"]["rlvr-matched"], numbers["methods"]["sft-matched"] = dense["rlvr"], dense["sft"]
    numbers["sweep"] = sweep({"0.0001": (0.9, 0.7, 0.2)})
    matched = findings.all_findings(findings.matched_budget(numbers))
    assert len(matched) == 6 and matched[3]["verdict"] == "not reproduced"
    assert matched[3]["numbers"]["rlvr sparsity (bf16, exact)"] == [0.5]
    assert findings.all_findings(numbers)[3]["verdict"] == "reproduced"  # the unmatched runs as before


def test_long_runs_decide_entropy_collapse_when_present():
    numbers = build(PASSING)
    # long runs whose entropy rises: the long runs decide, and the finding fails
    numbers["methods"]["azr-long"] = build({("azr", "proposer first"): [1.5], ("azr", "proposer last"): [2.0],
                                            ("azr", "solver first"): [1.0], ("azr", "solver last"): [1.2]})["methods"]["azr"]
    record = findings.all_findings(numbers)[1]
    assert record["verdict"] == "not reproduced" and "the long runs" in record["criterion"]
    assert record["numbers"]["azr-long proposer first window"] == [1.5]
    assert record["numbers"]["azr solver change (short runs)"] == [-0.5]


def test_finding_6_judges_must_agree():
    """One fixed judge sees harder later tasks, the other easier ones: not reproduced; one judge
    level: inconclusive."""
    assert verdicts({**PASSING, ("azr", "judge_final"): [[0.4, 0.5, 0.5, 0.6]]})[5] == "not reproduced"
    assert verdicts({**PASSING, ("azr", "judge_final"): [[0.5, 0.5, 0.5, 0.5]]})[5] == "inconclusive"
    # the moving solver's figure alone cannot decide: without judges the finding is inconclusive
    assert verdicts({k: v for k, v in PASSING.items() if not k[1].startswith("judge")})[5] == "inconclusive"


def with_medians(numbers):
    """numbers with each entropy window's median planted equal to its mean."""
    for entry in numbers["methods"].values():
        for run in entry["entropy"]:
            for w in run.values():
                w.update(first_median=w["first"], last_median=w["last"], median=w["mean"])
    return numbers


def test_numbers_that_predate_the_medians_have_no_median_reading():
    assert findings.with_window_medians(build(PASSING)) is None


def test_medians_equal_to_the_means_decide_every_finding_the_same():
    numbers = with_medians(build(PASSING))
    assert [r["verdict"] for r in findings.all_findings(findings.with_window_medians(numbers))] == ["reproduced"] * 6


def test_a_collapse_that_rests_on_a_spike_is_not_reproduced_by_the_medians():
    numbers = with_medians(build(PASSING))
    solver = numbers["methods"]["azr"]["entropy"][0]["solver"]
    solver["first_median"] = solver["last"] - 0.2  # the first window's mean stands above its last only through a spike
    medians = findings.with_window_medians(numbers)
    assert medians["methods"]["azr"]["entropy"][0]["solver"]["first"] == solver["last"] - 0.2
    assert findings.finding_entropy_collapse(numbers)["verdict"] == "reproduced"
    assert findings.finding_entropy_collapse(medians)["verdict"] == "not reproduced"
    assert findings.verdicts_that_differ(findings.all_findings(numbers), findings.all_findings(medians))[0].startswith("2.")


def test_a_comparisons_margin_in_spreads_by_hand():
    # means 0.5 and 0.3, stds 0.1 and 0.05: 2 spreads, so `greater` decides True; -2 the other way round
    a, b = [0.4, 0.5, 0.6], [0.25, 0.3, 0.35]
    assert findings.spreads(a, b) == pytest.approx(2.0) and findings.greater(a, b) is True
    assert findings.spreads(b, a) == pytest.approx(-2.0) and findings.greater(b, a) is False
    assert findings.spreads([0.5], [0.3], resolution=0.4) == pytest.approx(0.5) and findings.greater([0.5], [0.3], resolution=0.4) is None
    assert findings.spreads([], b) is None
    record = findings.sparsity_record({"rlvr": [{"bf16_exact": v} for v in a], "azr": [{"bf16_exact": v} for v in b],
                                       "sft": [{"bf16_exact": 0.1}]}, "planted")
    assert record["numbers"]["RLVR - AZR, in spreads"] == [pytest.approx(2.0)]
