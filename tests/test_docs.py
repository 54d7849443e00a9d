"""The docs point at code that exists: every function the reading guide names is defined in the file
its row names, and every file of the README's table is in the repository."""

import ast
import gzip
import json
import os
import re
import subprocess

import pytest

import findings
import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def defined_names(path):
    """Top-level functions, classes and assigned names of a Python file."""
    names = set()
    for node in ast.parse(read(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def guide_rows():
    """(names, files) of each table row of the reading guide whose cells name a .py file: the
    backticked identifiers of the function cell, and the .py files of the file cell."""
    rows = []
    for line in read("docs/reading-guide.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.search(r"\w+\.py", cells[2]):
            continue
        named = re.sub(r"\([^)]*\)", "", cells[1])  # "(mode `trr++`)", "(logs ...)": not function names
        names = [n for n in re.findall(r"`([^`]+)`", named) if re.fullmatch(r"[A-Za-z_]\w*", n)]
        rows.append((names, re.findall(r"(\w+\.py)", cells[2])))
    return rows


def missing(rows):
    return [(name, files) for names, files in rows for name in names if not any(name in defined_names(f) for f in files)]


def test_every_function_the_reading_guide_names_exists():
    rows = guide_rows()
    assert len(rows) > 20  # the tables were found
    assert missing(rows) == []


def test_the_check_reports_a_function_that_is_not_there():
    assert missing([(["policy_loss", "no_such_function"], ["grpo.py"]), (["update"], ["sft.py"])]) == \
        [("no_such_function", ["grpo.py"]), ("update", ["sft.py"])]


def test_every_file_of_the_readme_table_exists():
    table = read("README.md").split("| file | what it is |", 1)[1].split("\n\n", 1)[0]
    files = re.findall(r"^\| `([\w./]+)` \|", table, re.MULTILINE)
    assert len(files) > 20 and [f for f in files if not os.path.exists(os.path.join(ROOT, f))] == []


# findings whose criterion changed after docs/study-toy ran, before any new study: finding 5's agreement of
# entropy changes gained a 0.01-nat floor (two flat curves can agree). Their verdicts and numbers still recompute.
CHANGED_SINCE_THE_STUDY = {"5"}
SHOWN_SINCE_THE_STUDY = ", in spreads"  # numbers a record shows since: finding 4's margins (not criteria)


def test_the_documented_study_recomputes_from_its_own_files():
    """docs/study-toy/ is the README's evidence: its verdicts come from its numbers.json alone
    (findings.py, as reproduce.py computed them), and every run of the study ships its plain files
    (config, metrics, tasks), so that a reader can recompute any verdict without a checkpoint."""
    study = os.path.join(ROOT, "docs", "study-toy")
    with open(os.path.join(study, "numbers.json")) as f:
        numbers = json.load(f)
    with open(os.path.join(study, "findings.json")) as f:
        shipped = json.load(f)
    recomputed = json.loads(json.dumps(findings.all_findings(numbers)))
    assert [(r["finding"], r["verdict"]) for r in recomputed] == [(r["finding"], r["verdict"]) for r in shipped]
    # criteria and numbers too, but for the criteria changed after the study ran
    kept = lambda records: [{k: ({n: x for n, x in v.items() if not n.endswith(SHOWN_SINCE_THE_STUDY)} if k == "numbers" else v)  # noqa: E731
                             for k, v in r.items() if k != "criterion" or r["finding"][0] not in CHANGED_SINCE_THE_STUDY}
                            for r in records]
    assert kept(recomputed) == kept(shipped)
    seeds, steps = numbers["settings"]["seeds"], numbers["settings"]["steps"]
    runs = [f"{m}-seed{s}" for m in numbers["methods"] if m != "base" for s in range(seeds)]
    runs += [f"{m}-lr{rate}-seed{s}" for rate, by in numbers.get("sweep", {}).get("rates", {}).items()
             for m in by if float(rate) != numbers["settings"]["lr"] for s in range(seeds)]
    assert len(runs) >= 15
    for run in runs:
        folder = os.path.join(study, "runs", run)
        for name in ("config.json", "metrics.jsonl.gz", "tasks.jsonl.gz"):
            assert os.path.isfile(os.path.join(folder, name)), f"{run}: no {name}"
    for run in runs:
        if "-lr" not in run and "-long" not in run:  # the study's own runs: all their steps are there
            with gzip.open(os.path.join(study, "runs", run, "metrics.jsonl.gz"), "rt") as f:
                assert sum(1 for _ in f) == steps, f"{run}: not {steps} steps of metrics"


def test_the_documented_studys_entropy_verdicts_stand_with_window_medians(tmp_path):
    """The README says no verdict of docs/study-toy rests on the logged entropy's one-step spikes:
    its entropy windows recompute from the runs' metrics (the means exactly as numbers.json holds
    them), and findings 2 and 5 come out the same with each window's median instead of its mean."""
    study = os.path.join(ROOT, "docs", "study-toy")
    with open(os.path.join(study, "numbers.json")) as f:
        numbers = json.load(f)
    for method, entry in numbers["methods"].items():
        for seed, shipped in enumerate(entry.get("entropy", [])):
            folder = tmp_path / f"{method}-seed{seed}"
            folder.mkdir()
            with gzip.open(os.path.join(study, "runs", folder.name, "metrics.jsonl.gz"), "rb") as f:
                (folder / "metrics.jsonl").write_bytes(f.read())
            entry["entropy"][seed] = reproduce.entropy_numbers(str(folder))
            assert {r: {k: w[k] for k in shipped[r]} for r, w in entry["entropy"][seed].items()} == shipped
    medians = findings.with_window_medians(numbers)
    assert medians is not None and findings.verdicts_that_differ(findings.all_findings(numbers),
                                                                 findings.all_findings(medians)) == []


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")), reason="no git history in this copy")
def test_the_criteria_commits_the_report_lists_changed_findings_py():
    for commit, what in findings.CRITERIA_COMMITS:
        changed = subprocess.run(["git", "show", "--name-only", "--format=", commit], cwd=ROOT, capture_output=True, text=True)
        assert changed.returncode == 0, f"{commit} ({what}): not in this history: {changed.stderr}"
        assert "findings.py" in changed.stdout.split(), f"{commit} ({what}) did not change findings.py"
