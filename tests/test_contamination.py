"""contamination.py: the programs a run saw (self-play's seed tasks and proposals, RLVR's data), the
held-out tasks no run of a method saw, pass@k on them by hand, the findings decided again on the
tasks no method saw (planted to agree and to differ), and the shipped study's figures."""

import gzip
import json
import os

import pytest

import contamination
import findings
from conftest import assert_usage_and_one_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = [f"def f(x):\n    return x + {i}" for i in range(4)]


def write_run(folder, method, proposals=(), seeds=(), data="toy", gz=False):
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"method": method, "data": data}, f)
    for name, programs in (("tasks.jsonl", proposals), ("seed_tasks.jsonl", seeds)):
        if programs or method == "azr":
            lines = "".join(json.dumps({"program": p, "valid": i % 2 == 0}) + "\n" for i, p in enumerate(programs))
            if gz:
                with gzip.open(os.path.join(folder, name + ".gz"), "wt") as f:
                    f.write(lines)
            else:
                with open(os.path.join(folder, name), "w") as f:
                    f.write(lines)
    return str(folder)


def test_a_run_saw_its_seed_tasks_and_proposals_valid_or_not_and_rlvr_its_data(tmp_path):
    azr = write_run(tmp_path / "azr", "azr", proposals=[PROGRAMS[0] + "\n", "def f(x):\n    return 9"], seeds=[PROGRAMS[1]])
    assert contamination.run_programs(azr) == {PROGRAMS[0], PROGRAMS[1], "def f(x):\n    return 9"}
    kept = write_run(tmp_path / "kept", "azr", proposals=[PROGRAMS[2]], gz=True)  # a report keeps them gzipped
    assert contamination.run_programs(kept) == {PROGRAMS[2]}
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"type": "deduction", "program": PROGRAMS[3], "inputs": ["1"], "outputs": ["4"]}) + "\n")
    rlvr = write_run(tmp_path / "rlvr", "rlvr", data=str(data))
    assert contamination.run_programs(rlvr) == {PROGRAMS[3]}


def test_the_fresh_pool_holds_no_held_out_program():
    held = {g.task.program.strip() for g in contamination.heldout_tasks(150)}
    assert held and not held & contamination.data_programs("toy")
    assert held <= contamination.data_programs("heldout")


def test_pass_at_k_on_the_kept_tasks_by_hand():
    results = {"toy deduction": {"counts": [4, 0, 2, 1]}, "toy abduction": {"counts": [0, 4, 4, 3]}, "math500": {"counts": [1]}}
    curves = contamination.curves_on(results, [2, 3], 4)
    assert set(curves) == {"toy deduction", "toy abduction"}  # only the held-out toy tasks are indexed
    assert curves["toy deduction"]["1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert curves["toy deduction"]["2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)  # 1 - C(n - c, 2) / C(n, 2)
    assert curves["toy abduction"]["1"] == pytest.approx((4 / 4 + 3 / 4) / 2)
    assert curves["toy deduction"]["4"] == pytest.approx(1.0)
    assert contamination.curves_on(results, [], 4) == {}


def evaluation(deduction, abduction):
    return {"toy deduction": {"counts": deduction}, "toy abduction": {"counts": abduction}}


def planted(tmp_path, frozen_counts):
    """A study of 4 held-out tasks: azr's seeds saw programs 0 and 1, the frozen proposer's saw 0,
    RLVR saw none; so the clean task set is {2, 3}."""
    folders = {"azr": [write_run(tmp_path / "azr0", "azr", proposals=[PROGRAMS[0]]),
                       write_run(tmp_path / "azr1", "azr", seeds=[PROGRAMS[1]])],
               "azr-frozen": [write_run(tmp_path / "frozen0", "azr", proposals=[PROGRAMS[0]])]}
    evaluations = {"base": [evaluation([1, 1, 1, 1], [1, 1, 1, 1])],
                   "azr": [evaluation([4, 4, 3, 3], [4, 4, 3, 3]), evaluation([4, 4, 3, 3], [4, 4, 3, 3])],
                   "azr-frozen": [evaluation(*frozen_counts)]}
    return contamination.contamination_numbers(PROGRAMS, folders, evaluations, 4), evaluations


def test_the_tasks_each_method_never_saw_and_those_no_method_saw(tmp_path):
    c, _ = planted(tmp_path, ([4, 4, 1, 1], [4, 4, 1, 1]))
    assert c["seen"] == {"azr": [1, 1], "azr-frozen": [1]}
    assert c["unseen"] == {"azr": [2, 3], "azr-frozen": [1, 2, 3]} and c["clean"] == [2, 3]
    assert c["pass_at_k_unseen"]["azr-frozen"][0]["toy deduction"]["1"] == pytest.approx((1 + 0.25 + 0.25) / 3)
    assert c["pass_at_k_clean"]["base"][0]["toy abduction"]["1"] == pytest.approx(0.25)
    assert c["pass_at_k_clean"]["azr"][1]["toy deduction"]["1"] == pytest.approx(0.75)


def numbers_of(c, evaluations):
    curves = lambda m: [{b: {"1": sum(r["counts"]) / len(r["counts"]) / 4} for b, r in e.items()} for e in evaluations[m]]  # noqa: E731
    return {"n": 4, "methods": {m: {"pass_at_k": curves(m)} for m in evaluations}, "contamination": c}


def test_a_verdict_that_rests_on_seen_tasks_changes_on_the_clean_ones(tmp_path):
    # the frozen proposer below AZR on the whole set (it misses the tasks AZR saw), above it on the clean ones
    c, evaluations = planted(tmp_path, ([0, 0, 4, 4], [0, 0, 4, 4]))
    numbers = numbers_of(c, evaluations)
    whole, clean = findings.pass_at(numbers, "azr-frozen", 1), findings.pass_at(findings.with_clean_pass_at_k(numbers), "azr-frozen", 1)
    assert whole == [pytest.approx(0.5)] and clean == [pytest.approx(1.0)]
    text = "\n".join(contamination.contamination_section(numbers, findings.all_findings(numbers)))
    assert "| azr | 1, 1 of 4 | 87.5 ± 0.0 | 75.0 ± 0.0 (2 tasks) | 75.0 ± 0.0 |" in text
    assert "the verdicts differ on 3. a frozen proposer" in text


def test_the_same_verdicts_where_the_clean_tasks_agree_with_the_whole_set(tmp_path):
    c, evaluations = planted(tmp_path, ([4, 4, 3, 3], [4, 4, 3, 3]))  # the frozen proposer level with AZR everywhere
    numbers = numbers_of(c, evaluations)
    text = "\n".join(contamination.contamination_section(numbers, findings.all_findings(numbers)))
    assert "no method saw: the same verdicts." in text
    assert contamination.contamination_section({"methods": {}}, []) == []  # numbers from before contamination


def test_the_shipped_study_recomputes_from_its_report_folder():
    """The README's figures for docs/study-toy: each AZR run saw 82 to 90 of the 150 held-out
    tasks' programs, RLVR and SFT none, and 40 tasks no run saw."""
    numbers = contamination.from_report(os.path.join(ROOT, "docs", "study-toy"))
    c = numbers["contamination"]
    assert c["seen"]["azr"] == [89, 82, 88] and c["seen"]["rlvr"] == c["seen"]["sft"] == [0, 0, 0]
    assert len(c["clean"]) == 40 and "base" not in c["pass_at_k_clean"]
    whole = [e["toy deduction"]["1"] for e in numbers["methods"]["rlvr"]["pass_at_k"]]
    assert [e["toy deduction"]["1"] for e in c["pass_at_k_unseen"]["rlvr"]] == pytest.approx(whole)  # all 150 unseen


def test_a_folder_that_is_not_a_report_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        contamination.main([str(tmp_path)])
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "contamination.py", "no numbers.json and runs/")
