"""assignments.py: the exercise table names functions and tests that exist; blanking replaces a
function's body and nothing else; make writes a copy that imports and whose other tests pass;
grade scores from pytest's junit results, takes nothing of a student's but the exercises' files
and cuts an exercise that loops forever at its time limit; bad command lines are refused.

Slow (`python -m pytest -m slow tests/test_assignments.py`, in CI): the repository grades full
marks; a copy with every exercise blanked grades zero; blanking one exercise fails its tests; a
planted bug fails its own exercise and no other; the whole suite in a blanked copy fails only
where it reaches a blanked function."""

import ast
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import assignments
from assignments import EXERCISES, ROOT, Exercise, find_function, has_docstring, junit_cases, replace_bodies
from conftest import assert_usage_and_one_error, run_child


def read(path, root=ROOT):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        return f.read()


# -----------------------------------------------------------------------------
# The table

# the mechanisms the course must offer, by file
REQUIRED = {"grpo.py": {"advantages", "aggregate", "policy_loss"}, "logprobs.py": {"_ChunkedLogpEntropy.forward"},
            "evaluate.py": {"pass_at_k"}, "sparsity.py": {"changed_mask", "tensor_sparsity"},
            "proposer.py": {"learnability_reward", "peaked_reward"}, "solver.py": {"extract_answer", "solver_rewards"},
            "executor.py": {"validate"}}


def table_problems(exercises):
    """What is wrong with an exercise table, one line each: repeated names, missing files,
    functions or docstrings, tests not defined in their file, no points, a need that is not an
    exercise before it."""
    names = [e.name for e in exercises]
    problems = ["names repeat"] if len(set(names)) != len(names) else []
    for i, e in enumerate(exercises):
        if not os.path.isfile(os.path.join(ROOT, e.file)):
            problems.append(f"{e.name}: no file {e.file}")
            continue
        tree = ast.parse(read(e.file))
        for qualname in e.functions:
            try:
                if not has_docstring(find_function(tree, qualname)):
                    problems.append(f"{e.name}: {qualname} has no docstring")
            except ValueError:
                problems.append(f"{e.name}: no function {qualname}")
        for node in e.tests:
            file, _, test = node.partition("::")
            defined = {n.name for n in ast.parse(read(file)).body if isinstance(n, ast.FunctionDef)}
            if test not in defined:
                problems.append(f"{e.name}: no test {node}")
        if not e.tests or e.points <= 0:
            problems.append(f"{e.name}: no tests or no points")
        problems += [f"{e.name}: needs {n}, not an exercise before it" for n in e.needs if n not in names[:i]]
    return problems


def test_the_table_names_functions_with_docstrings_and_tests_that_exist():
    assert table_problems(EXERCISES) == []
    offered = {}
    for e in EXERCISES:
        offered.setdefault(e.file, set()).update(e.functions)
    assert all(functions <= offered.get(file, set()) for file, functions in REQUIRED.items()), offered


def test_the_table_check_reports_what_is_missing():
    first = EXERCISES[0]
    planted = [dataclasses.replace(first, functions=first.functions + ("no_such",),
                                   tests=first.tests + ("tests/test_grpo_loss.py::test_no_such",), needs=("later",)),
               dataclasses.replace(first, name="later", functions=("Model.no_such",), tests=(), file="grpo.py")]
    assert table_problems(planted) == [f"{first.name}: no function no_such",
                                       f"{first.name}: no test tests/test_grpo_loss.py::test_no_such",
                                       f"{first.name}: needs later, not an exercise before it",
                                       "later: no function Model.no_such", "later: no tests or no points"]


def test_the_instructors_guide_lists_the_exercises_as_the_table_holds_them():
    rows = re.findall(r"^\| ([\w-]+) \| ([\w.]+): ([^|]+?) \| (\d+) \| ?([^|]*?) ?\|$", read("docs/assignments.md"), re.M)
    assert rows == [(e.name, e.file, ", ".join(e.functions), str(e.points), ", ".join(e.needs)) for e in EXERCISES]


# -----------------------------------------------------------------------------
# Blanking on the syntax tree

SOURCE = '''"""A module."""
import functools

TABLE = {}  # a comment that stays


def register(fn):
    TABLE[fn.__name__] = fn
    return fn


@register
@functools.lru_cache(maxsize=None)
def square(x: int = len("héllo ✓")) -> int:
    """The square of x."""
    # a hint in the body goes too
    y = x * x
    return y  # so does this one


class Model:
    """A class."""

    scale = 2  # stays

    def forward(self, x):
        """x times the scale."""
        return x * self.scale

    def other(self):
        return "unchanged"


def plain(a):
    return a + 1


def inline(a): return a
'''


def test_replace_bodies_keeps_everything_but_the_body():
    raise_e1 = 'raise NotImplementedError("exercise e1")'
    out = replace_bodies(SOURCE, {"square": raise_e1, "Model.forward": raise_e1,
                                  "plain": "while False:\n    pass\nreturn 5"})
    before, after = ast.parse(SOURCE), ast.parse(out)
    for qualname, body in (("square", 2), ("Model.forward", 2), ("plain", 2)):
        old, new = find_function(before, qualname), find_function(after, qualname)
        assert ast.get_docstring(old) == ast.get_docstring(new) and len(new.body) == body
        old.body = new.body
    assert ast.dump(before) == ast.dump(after)  # nothing but those bodies changed: signatures, decorators
    assert "# a comment that stays" in out and "scale = 2  # stays" in out
    assert "a hint" not in out and "so does this one" not in out and "x * self.scale" not in out
    scope = {}
    exec(out, scope)
    assert "square" in scope["TABLE"]  # the decorators still run at import time
    with pytest.raises(NotImplementedError, match="exercise e1"):
        scope["square"](3)
    with pytest.raises(NotImplementedError, match="exercise e1"):
        scope["Model"]().forward(3)
    assert scope["Model"]().other() == "unchanged" and scope["plain"](1) == 5
    with pytest.raises(ValueError, match="line of its header"):
        replace_bodies(SOURCE, {"inline": raise_e1})
    with pytest.raises(ValueError, match="no function Model.backward"):
        replace_bodies(SOURCE, {"Model.backward": raise_e1})


def test_copies_leave_out_history_runs_caches_and_themselves(tmp_path):
    root = tmp_path / "repo"
    for path in ("a.py", "tests/test_a.py", ".git/HEAD", "runs/r/metrics.jsonl", "__pycache__/a.pyc",
                 "tests/__pycache__/t.pyc", ".pytest_cache/v", "docs/x.md", "docs/study/runs/r/config.json"):
        os.makedirs(root / os.path.dirname(path), exist_ok=True)
        (root / path).write_text(path)
    assignments.copy_tree(str(root), str(root / "hw"))  # an output folder inside the repository
    copied = {os.path.relpath(os.path.join(d, f), root / "hw") for d, _, files in os.walk(root / "hw") for f in files}
    assert copied == {"a.py", "tests/test_a.py", "docs/x.md", "docs/study/runs/r/config.json"}  # runs/ at the top only


# -----------------------------------------------------------------------------
# make


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "copy"
    assignments.make(str(out), EXERCISES)
    return str(out)


def tracked_files():
    try:
        done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    except OSError as e:
        pytest.skip(f"no git: {e}")
    if done.returncode != 0:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    listing = done.stdout
    return [f for f in listing.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def test_make_blanks_the_exercises_functions_and_changes_nothing_else(made):
    blanked = {}
    for e in EXERCISES:
        blanked.setdefault(e.file, []).extend((q, e.name) for q in e.functions)
    for path in tracked_files():
        with open(os.path.join(ROOT, path), "rb") as a, open(os.path.join(made, path), "rb") as b:
            original, copy = a.read(), b.read()
        if path not in blanked:
            assert original == copy, path
            continue
        before, after = ast.parse(original), ast.parse(copy)
        for qualname, name in blanked[path]:
            old, new = find_function(before, qualname), find_function(after, qualname)
            assert ast.get_docstring(old) == ast.get_docstring(new), qualname
            assert len(new.body) == 2 and isinstance(new.body[1], ast.Raise), qualname
            assert f"exercise {name}: write {qualname}" in ast.unparse(new.body[1]), qualname
            old.body = new.body
        assert ast.dump(before) == ast.dump(after), path  # signatures, decorators and the rest unchanged
    left_out = {".git", "__pycache__", ".pytest_cache"}
    assert not [d for d, dirs, _ in os.walk(made) if left_out & set(dirs)] and not os.path.exists(os.path.join(made, "runs"))


def test_the_made_copy_imports_every_module_and_its_unattached_tests_pass(made):
    modules = sorted(f[:-3] for f in os.listdir(made) if f.endswith(".py"))
    assert len(modules) > 20
    run_child([sys.executable, "-c", f"import {', '.join(modules)}"], cwd=made)
    # test files that reach no exercise's function
    run_child([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_docs.py",
               "tests/test_layers.py", "tests/test_findings.py"], cwd=made)


# -----------------------------------------------------------------------------
# grade, on a small repository of its own: scoring, junit, the grader's tests, the time limit


def test_junit_cases_reads_passes_failures_errors_and_skips(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text('<testsuites><testsuite name="pytest">'
                    '<testcase classname="tests.test_x" name="test_ok" time="0.1"/>'
                    '<testcase classname="tests.test_x" name="test_bad[1]"><failure message="assert 1 == 2">'
                    'trace</failure></testcase>'
                    '<testcase classname="" name="tests.test_y"><error message="collection failure">trace\n'
                    'E   SyntaxError: invalid syntax\n</error>'
                    '</testcase>'
                    '<testcase classname="tests.test_x" name="test_skip"><skipped message="no gpu"/></testcase>'
                    '</testsuite></testsuites>')
    assert junit_cases(str(path)) == [("test_x::test_ok", True, ""), ("test_x::test_bad[1]", False, "failure: assert 1 == 2"),
                                      ("::tests.test_y", False, "error: collection failure (SyntaxError: invalid syntax)"),
                                      ("test_x::test_skip", False, "skipped: no gpu")]


SMALL_TESTS = {
    "test_double.py": "from double import double\n\n\ndef test_double():\n    assert double(2) == 4\n\n\n"
                      "def test_double_negative():\n    assert double(-3) == -6\n\n\n"
                      "def test_double_zero():\n    assert double(0) == 0\n",
    "test_half.py": "from half import half\n\n\ndef test_half():\n    assert half(8) == 4\n",
}
SMALL = [Exercise("double", "double.py", ("double",), "", "", tuple(f"tests/test_double.py::test_double{s}"
                                                                     for s in ("", "_negative", "_zero")), 6),
         Exercise("half", "half.py", ("half",), "", "", ("tests/test_half.py::test_half",), 2)]


def small_repository(folder, double, half, tests=SMALL_TESTS):
    """A repository of two one-function modules, their tests and a pytest.ini."""
    os.makedirs(os.path.join(folder, "tests"))
    files = {"double.py": f'def double(x):\n    """2 x"""\n    {double}\n', "half.py": f'def half(x):\n    """x / 2"""\n    {half}\n',
             "pytest.ini": "[pytest]\ntestpaths = tests\npythonpath = .\n", **{f"tests/{n}": t for n, t in tests.items()}}
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return folder


def test_grade_scores_points_times_the_share_of_tests_passed_on_the_exercises_files_alone(tmp_path):
    root = small_repository(str(tmp_path / "root"), "return 2 * x", "return x // 2")
    # the student's double is right but for negatives and half does not parse; the student also
    # rewrote the tests to pass and added a conftest.py that patches double: only the exercises'
    # files count, the grader runs its own tests
    student = small_repository(str(tmp_path / "student"), "return 2 * abs(x)", "return x //",
                               tests={"test_double.py": "def test_double():\n    pass\n", "test_half.py": ""})
    with open(os.path.join(student, "conftest.py"), "w") as f:
        f.write("import double\ndouble.double = lambda x: 2 * x\n")
    lines = []
    results = assignments.grade(student, SMALL, 60, root=root, show=lines.append)
    assert [(r["name"], r["passed"], r["tests"], r["score"], r["max_score"]) for r in results] == \
        [("double", 2, 3, 4.0, 6), ("half", 0, 1, 0.0, 2)]  # half.py does not import: its test fails to collect
    assert "test_double_negative" in results[0]["output"] and "SyntaxError" in results[1]["output"]
    assert lines[-1].split() == ["total", "4/8"]
    report = assignments.gradescope(results, 3.2)
    assert report["score"] == 4.0 and [(t["name"], t["score"], t["max_score"], t["status"]) for t in report["tests"]] == \
        [("double", 4.0, 6, "failed"), ("half", 0.0, 2, "failed")]
    assert all(isinstance(t["output"], str) for t in report["tests"])


def process_gone(pid, wait=10):
    """Whether pid has ended (absent, or a zombie), waiting up to wait seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.2)
    return False


def test_an_exercise_that_loops_forever_is_cut_at_its_time_limit_and_scores_zero(tmp_path):
    # a copy whose learnability reward starts a helper process, then never returns: the grader must
    # stop at --timeout, kill the whole process group (the helper too) and score the exercise 0
    copy, pidfile = str(tmp_path / "copy"), tmp_path / "helper.pid"
    assignments.make(copy, [])
    path = os.path.join(copy, "proposer.py")
    # (it waits in a sleep, not a busy loop, so that its 30 s leave the other tier of CI a core)
    loop = (f"import subprocess, time\nwith open({str(pidfile)!r}, 'w') as f:\n"
            "    f.write(str(subprocess.Popen(['sleep', '300']).pid))\nwhile True:\n    time.sleep(1)")
    with open(path) as f:
        source = replace_bodies(f.read(), {"learnability_reward": loop})
    with open(path, "w") as f:
        f.write(source)
    start = time.monotonic()
    # graded beside another exercise: their run together is cut, then each runs alone, so the other scores in full
    done = run_child([sys.executable, "assignments.py", "grade", copy, "--only", "proposer-rewards", "solver-rewards",
                      "--timeout", "15", "--json", str(tmp_path / "results.json")], cwd=ROOT, timeout=300)
    assert time.monotonic() - start < 2 * 15 + 60
    with open(tmp_path / "results.json") as f:
        result, other = json.load(f)["tests"]
    assert result["score"] == 0 and result["output"] == "cut at the time limit of 15 s"
    assert other["name"] == "solver-rewards" and other["score"] == other["max_score"] > 0
    assert "proposer-rewards  cut" in done.stdout
    assert process_gone(int(pidfile.read_text()))


# -----------------------------------------------------------------------------
# The command line


def bad_arguments(tmp_path):
    """{name: (argv, what the error line says)} for each refusal, in the layout of refusal_layout."""
    return {
        "make into a folder that holds something": (["make", str(tmp_path / "full")], "exists and is not empty"),
        "make over a file": (["make", str(tmp_path / "file")], "exists and is not empty"),
        "make an unknown exercise": (["make", str(tmp_path / "new"), "--only", "advantages", "nope"],
                                     "argument --only: invalid choice: 'nope'"),
        "grade an unknown exercise": (["grade", ROOT, "--only", "nope"], "argument --only: invalid choice: 'nope'"),
        "grade a folder that is no copy": (["grade", str(tmp_path / "empty")], "no grpo.py, logprobs.py"),
        "grade a folder that does not exist": (["grade", str(tmp_path / "missing")], "not a folder"),
        "grade without time": (["grade", ROOT, "--timeout", "0"], "argument --timeout: must be at least 1"),
        "results into a missing folder": (["grade", ROOT, "--json", str(tmp_path / "no" / "r.json")],
                                          "its folder does not exist"),
    }


@pytest.mark.parametrize("name", list(bad_arguments(pathlib.Path("/"))))  # names only: paths come per test
def test_bad_arguments_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys, name):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    argv, message = bad_arguments(tmp_path)[name]
    with pytest.raises(SystemExit) as exit:
        assignments.get_args(argv)
    assert exit.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "assignments.py", message)
    assert sorted(os.listdir(tmp_path)) == ["empty", "file", "full"] and os.listdir(tmp_path / "full") == ["x"]


# -----------------------------------------------------------------------------
# Slow: the round trips over every exercise


def scores(results):
    return {r["name"]: (r["score"], r["max_score"]) for r in results}


@pytest.mark.slow
def test_the_repository_grades_full_marks():
    results = assignments.grade(ROOT, EXERCISES, 300)
    assert {name: s for name, (s, top) in scores(results).items() if s != top} == {}
    assert all(r["tests"] >= len(e.tests) for r, e in zip(results, EXERCISES))


@pytest.mark.slow
def test_a_copy_with_every_exercise_blanked_grades_zero(made):
    results = assignments.grade(made, EXERCISES, 300)
    assert {name: s for name, (s, _) in scores(results).items() if s != 0} == {}
    assert all(r["tests"] > 0 for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_blanking_an_exercise_fails_its_tests(tmp_path, exercise):
    copy = str(tmp_path / "copy")
    assignments.make(copy, [exercise])
    [result] = assignments.grade(copy, [exercise], 300)
    assert result["tests"] > 0 and result["passed"] < result["tests"], result["output"]


PLANTED = {  # exercise: (file, the right text, the planted bug)
    "advantages": ("grpo.py", "    return A, zero_var\n", "    return -A, zero_var\n"),
    "pass-at-k": ("evaluate.py", "range(n - c + 1, n + 1)", "range(n - c, n + 1)"),
    "policy-loss": ("grpo.py", "ratio.clamp(1 - clip_low, 1 + clip_high)", "ratio.clamp(1 - clip_high, 1 + clip_low)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_bug_fails_its_exercise_and_no_other(tmp_path, name):
    copy, (file, right, wrong) = str(tmp_path / "copy"), PLANTED[name]
    assignments.make(copy, [])
    source = read(file, copy)
    assert source.count(right) == 1
    with open(os.path.join(copy, file), "w", encoding="utf-8") as f:
        f.write(source.replace(right, wrong))
    results = scores(assignments.grade(copy, EXERCISES, 300))
    assert {n for n, (s, top) in results.items() if s != top} == {name}


@pytest.mark.slow
def test_the_whole_suite_in_a_blanked_copy_fails_only_where_it_reaches_a_blanked_function(made, tmp_path):
    xml = str(tmp_path / "junit.xml")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                    "-o", "junit_logging=all", "--ignore=tests/test_assignments.py"], cwd=made, capture_output=True)
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    failed = [c for c in cases if any(e.tag in ("failure", "error") for e in c)]
    other = [f"{c.get('classname')}::{c.get('name')}" for c in failed
             if "NotImplementedError" not in ET.tostring(c, encoding="unicode")
             or not any(f"exercise {e.name}: write" in ET.tostring(c, encoding="unicode") for e in EXERCISES)]
    said = {f"{c.get('classname')}::{c.get('name')}": " ".join(e.get("message") or "" for e in c)[-1500:] for c in failed}
    assert len(cases) > 100 and other == [], "\n".join(f"{o}: {said[o]}" for o in other)  # failed only at blanked functions
