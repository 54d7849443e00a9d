"""
Course assignments: the code handed out with a mechanism removed, graded by the project's own tests.

An exercise is one mechanism of the study (EXERCISES below, a table): the function(s) that compute
it, the paper and section it reproduces, a one-line statement, the tests that grade it, its points,
and the exercises whose functions those tests also call (do those first).

    python assignments.py list                                    # the exercises
    python assignments.py make hw1 [--only NAME ...]              # a copy with those functions blanked
    python assignments.py grade hw1 [--only NAME ...] [--json results.json]

`make` copies the repository (without .git, the top-level runs/ and caches) and replaces the body of each chosen
function with `raise NotImplementedError(...)` naming its exercise. The function is found on the
syntax tree and only its body goes: the signature, decorators and docstring stay (the docstring
says what to compute), and so does every other line of every file, tests included.

`grade` runs the exercises' tests on a folder's exercise files, in a pytest subprocess of its own
process group that is killed at the time limit (--timeout), all exercises in one process and, if
that one is cut, each exercise in its own, and scores points x (tests passed / tests). It works on a scratch copy of this repository into which only the graded exercises' files
come from the folder, so a student's edits to the tests or to any other file do not count. With
--json it writes the results in the format Gradescope's autograder reads (results.json).
docs/assignments.md is the instructor's guide.
"""

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from runs import number

ROOT = os.path.dirname(os.path.abspath(__file__))
# left out of every copy: the repository's history, run folders, caches
SKIPPED = (".git", "__pycache__", ".pytest_cache", ".cache", "*.egg-info", "*.pyc")  # anywhere
TOP_SKIPPED = ("runs",)  # the training runs at the top (docs/study-toy/runs is documentation: kept)

# -----------------------------------------------------------------------------
# The exercises


@dataclass(frozen=True)
class Exercise:
    name: str
    file: str               # the file that holds the functions
    functions: tuple        # their qualified names: "advantages", "_ChunkedLogpEntropy.backward"
    paper: str              # the paper, section or equation it reproduces
    statement: str          # one line: what the student writes
    tests: tuple            # pytest node ids that grade it
    points: int
    needs: tuple = ()       # exercises whose functions its tests also call


def node_ids(file, *names):
    return tuple(f"tests/{file}::{name}" for name in names)


EXERCISES = [
    Exercise("advantages", "grpo.py", ("advantages",),
             "TRR++: AZR arXiv 2505.03335 section 3.3.5, eq. 8; GRPO arXiv 2402.03300; Dr. GRPO arXiv 2503.20783",
             "one baseline per group: TRR++ whitened over tokens or sequences, GRPO with the std, Dr. GRPO without",
             node_ids("test_grpo_loss.py", "test_advantages_trr_seq_one_baseline_per_role_task",
                      "test_advantages_trr_whitens_over_tokens_like_a_per_token_loop",
                      "test_advantages_grpo_per_prompt_with_std", "test_advantages_drgrpo_per_prompt_no_std",
                      "test_advantages_zero_variance_and_singleton_groups_are_exactly_zero"), 15),
    Exercise("aggregation", "grpo.py", ("aggregate",),
             "token-mean: DAPO arXiv 2503.14476; sequence-mean: GRPO arXiv 2402.03300; sum / constant: "
             "Dr. GRPO arXiv 2503.20783",
             "reduce a per-token loss over the response tokens: token-mean, sequence-mean of token-means, sum / length",
             node_ids("test_grpo_loss.py", "test_aggregate_modes_by_hand", "test_aggregate_matches_a_loop"), 5),
    Exercise("policy-loss", "grpo.py", ("policy_loss",),
             "PPO arXiv 1707.06347 eq. 7; the k3 KL of GRPO arXiv 2402.03300 section 4.1.1; AZR's entropy bonus",
             "the clipped surrogate with an asymmetric band, the k3 KL to a reference, the entropy bonus, and their stats",
             node_ids("test_grpo_loss.py", "test_policy_loss_matches_loop", "test_policy_loss_ignores_garbage_outside_mask",
                      "test_policy_loss_clipping_removes_gradient_outside_band", "test_policy_loss_asymmetric_clip_band",
                      "test_policy_loss_k3_kl_formula_and_nonnegative", "test_policy_loss_gradient_only_through_logp",
                      "test_policy_loss_entropy_bonus_matches_a_loop"), 15, ("aggregation",)),
    Exercise("logprobs", "logprobs.py", ("_ChunkedLogpEntropy.forward",),
             "log pi(y_t) at the sampling temperature, and the entropy of the study arXiv 2510.27072 section 4",
             "per-token log-probs and full-vocabulary entropy from hidden states, a chunk of positions at a time",
             node_ids("test_grpo_loss.py", "test_chunked_values_match_naive",
                      "test_sequence_logprobs_match_model_logits", "test_sequence_logprobs_left_padding_matches_unpadded"),
             10),
    Exercise("logprobs-backward", "logprobs.py", ("_ChunkedLogpEntropy.backward",),
             "the gradients of log softmax and of the entropy; the study's entropy, arXiv 2510.27072 section 4",
             "the custom backward of the chunked pass: recompute each chunk's logits, no N x V tensor kept",
             node_ids("test_grpo_loss.py", "test_chunked_logp_entropy_match_naive_values_and_grads",
                      "test_chunked_single_chunk_equals_many_chunks", "test_chunked_bf16_upcasts_logits_and_keeps_grad_dtype",
                      "test_sequence_logprobs_gradients_match_model_logits"), 15, ("logprobs",)),
    Exercise("pass-at-k", "evaluate.py", ("pass_at_k",),
             "Chen et al. arXiv 2107.03374 section 2.1, eq. 1",
             "the unbiased pass@k from n samples with c correct, as a product that never forms the binomials",
             node_ids("test_evaluate.py", "test_pass_at_k_equals_the_average_over_all_size_k_subsets",
                      "test_pass_at_k_refuses_k_above_n_and_k_below_1",
                      "test_pass_at_k_stays_exact_where_binomials_overflow_floats",
                      "test_pass_at_k_curve_is_the_mean_over_problems_for_every_k"), 5),
    Exercise("sparsity", "sparsity.py", ("changed_mask", "tensor_sparsity"),
             "Mukherjee et al. arXiv 2505.11711; bf16 checkpoints as in the study arXiv 2510.27072",
             "which entries an update changed, and the counts unchanged exactly and within a tolerance, as stored and in bf16",
             node_ids("test_analyze.py", "test_tensor_sparsity_counts_the_planted_changes",
                      "test_bf16_checkpoints_are_compared_in_bf16", "test_jaccard_of_two_runs_update_masks",
                      "test_sparsity_streams_sharded_checkpoints_and_groups_by_layer_and_kind"), 5),
    Exercise("proposer-rewards", "proposer.py", ("learnability_reward", "peaked_reward"),
             "learnability: AZR arXiv 2505.03335 eq. 4; peaked at 0.5: the study arXiv 2510.27072",
             "the proposer's reward from a task's solve rate: AZR's learnability and the study's peaked alternative",
             node_ids("test_proposer.py", "test_learnability_reward_values", "test_peaked_reward_values",
                      "test_proposer_reward_levels_as_released", "test_proposer_reward_levels_as_the_paper_writes_them"), 5),
    Exercise("answer-extraction", "solver.py", ("well_formed", "last_answer", "extract_answer", "solver_answer"),
             "the <think>/<answer> format of AZR arXiv 2505.03335 section 3.1, read as AZR's released code reads it",
             "the format rules (released and strict) and the answer read from a response",
             node_ids("test_solver.py", "test_extract_answer_strict_table", "test_extract_answer_released_table",
                      "test_released_rule_matches_reference_on_random_text", "test_last_answer_needs_no_format",
                      "test_solver_answer_reads_as_released", "test_strict_rule_matches_reference_on_random_text"), 10),
    Exercise("solver-rewards", "solver.py", ("solver_rewards",),
             "AZR arXiv 2505.03335 section 3.1, eqs. 5 and 6",
             "the solver's rewards with the format penalties (training) or 1/0 (evaluation), one executor call a batch",
             node_ids("test_solver.py", "test_deduction_rewards",
                      "test_released_rule_accepts_text_after_the_answer_and_reads_the_last",
                      "test_abduction_rewards_accept_any_input_with_the_gold_output",
                      "test_induction_rewards_check_the_hidden_pairs",
                      "test_induction_answer_runs_with_the_gold_programs_imports", "test_empty_batch",
                      "test_one_executor_call_per_batch"), 5, ("answer-extraction",)),
    Exercise("determinism", "executor.py", ("validate",),
             "a valid proposal runs and is deterministic: AZR arXiv 2505.03335 section 3.3.3",
             "validate proposals: static checks, a literal input, two runs under two hash seeds giving one value",
             node_ids("test_executor.py", "test_validate_outputs_equal_an_in_process_run",
                      "test_nondeterminism_is_invalid", "test_a_set_of_strings_is_deterministic_in_any_order",
                      "test_an_output_that_does_not_read_back_is_invalid", "test_outputs_that_read_back_stay_valid",
                      "test_output_over_the_cap_is_invalid", "test_empty_batches_return_empty_lists"), 10),
]
BY_NAME = {e.name: e for e in EXERCISES}


def chosen(names):
    """The exercises named (all for None), in the table's order."""
    return [e for e in EXERCISES if names is None or e.name in names]


# -----------------------------------------------------------------------------
# Blanking a function, on the syntax tree


def find_function(tree, qualname):
    """The def node of qualname ("f", "Class.method") among a module's top-level statements."""
    nodes, kinds = tree.body, (ast.ClassDef,)
    parts = qualname.split(".")
    for depth, part in enumerate(parts):
        if depth == len(parts) - 1:
            kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
        node = next((n for n in nodes if isinstance(n, kinds) and n.name == part), None)
        if node is None:
            raise ValueError(f"no function {qualname}")
        nodes = node.body
    return node


def has_docstring(fn):
    first = fn.body[0]
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def replace_bodies(source, bodies):
    """source with the body of each function of bodies ({qualname: code}) replaced by that code
    (unindented; it gets the body's indent), the signature, decorators and docstring kept, every
    other byte unchanged.

    The positions come from the syntax tree: what goes is everything from the end of the
    docstring (or the first statement, if there is none) to the end of the line of the function's
    last statement, comments in the body included."""
    tree = ast.parse(source)
    lines = source.encode().splitlines(keepends=True)
    line_start = [0]
    for line in lines:
        line_start.append(line_start[-1] + len(line))
    at = lambda lineno, col: line_start[lineno - 1] + col  # ast columns are UTF-8 byte offsets
    spans = []
    for qualname, code in bodies.items():
        fn = find_function(tree, qualname)
        first = fn.body[0]
        indent = lines[first.lineno - 1][:first.col_offset].decode()
        if indent.strip():
            raise ValueError(f"{qualname}: its body starts on the line of its header; put it on lines of its own")
        code = ("\n" + indent).join(code.split("\n"))
        if has_docstring(fn):
            start, text = at(first.end_lineno, first.end_col_offset), "\n" + indent + code
        else:
            start, text = at(first.lineno, first.col_offset), code
        last = lines[fn.end_lineno - 1]  # after the last statement, the line holds at most a comment: it goes too
        spans.append((start, at(fn.end_lineno, len(last.rstrip(b"\r\n"))), text.encode()))
    data = b"".join(lines)
    for start, end, text in sorted(spans, reverse=True):  # from the end, so earlier positions hold
        data = data[:start] + text + data[end:]
    return data.decode()


def blank_line(exercise, qualname):
    message = f"exercise {exercise.name}: write {qualname} ({exercise.file}); its docstring says what to compute"
    return f"raise NotImplementedError({message!r})"


# -----------------------------------------------------------------------------
# make: a copy of the repository with the exercises' functions blanked


def copy_tree(source, out):
    """source copied to out (which may exist, empty), less SKIPPED anywhere and TOP_SKIPPED at the
    top, and less out itself when out lies inside source."""
    skip = shutil.ignore_patterns(*SKIPPED)
    inside, top = os.path.realpath(out), os.path.realpath(source)

    def ignore(folder, names):
        at_top = set(TOP_SKIPPED) & set(names) if os.path.realpath(folder) == top else set()
        return set(skip(folder, names)) | at_top | {n for n in names if os.path.realpath(os.path.join(folder, n)) == inside}
    shutil.copytree(source, out, ignore=ignore, symlinks=True, dirs_exist_ok=True)


def make(out, exercises, root=ROOT):
    copy_tree(root, out)
    for file in dict.fromkeys(e.file for e in exercises):
        path = os.path.join(out, file)
        with open(path, encoding="utf-8") as f:
            source = f.read()
        bodies = {q: blank_line(e, q) for e in exercises if e.file == file for q in e.functions}
        with open(path, "w", encoding="utf-8") as f:
            f.write(replace_bodies(source, bodies))


# -----------------------------------------------------------------------------
# grade: each exercise's tests in a subprocess with a time limit


def junit_cases(path):
    """[(test id, passed, why not)] from a pytest --junitxml file: a test passed when its testcase
    holds no failure, error or skipped element (a collection error is a testcase with an error,
    whose why ends with the last line of its traceback: the exception)."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = (case.get("classname") or "").rpartition(".")[2]
        bad = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        why = "" if bad is None else f"{bad.tag}: {(bad.get('message') or '').strip()}"
        if bad is not None and bad.tag == "error" and (bad.text or "").strip():
            why += " (" + bad.text.strip().splitlines()[-1].lstrip("E").strip() + ")"
        cases.append((f"{module}::{case.get('name')}", bad is None, why))
    return cases


def run_tests(folder, tests, timeout):
    """Runs pytest on the node ids tests in folder, in a process group of its own killed after
    timeout seconds. Returns (cases, note): junit_cases, [] when cut or when pytest wrote no
    results; note says why then."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the folder's code, nobody else's
    with tempfile.TemporaryDirectory() as tmp:
        xml, log = os.path.join(tmp, "junit.xml"), os.path.join(tmp, "pytest.log")
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                                     *tests], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return [], f"cut at the time limit of {timeout} s"
        if not os.path.exists(xml):
            with open(log, errors="replace") as f:
                return [], "pytest wrote no results: " + f.read()[-2000:]
        return junit_cases(xml), ""


def cases_of(exercise, cases):
    """The junit cases (run_tests') of an exercise's tests, a parametrized test's cases included."""
    wanted = {(os.path.basename(file)[:-3], name) for file, _, name in (t.partition("::") for t in exercise.tests)}
    return [c for c in cases if (c[0].partition("::")[0], c[0].partition("::")[2].partition("[")[0]) in wanted]


def grade(folder, exercises, timeout, root=ROOT, show=print):
    """One result per exercise, {name, passed, tests, score, max_score, output, seconds}: its tests
    run in a scratch copy of root holding folder's copies of the exercises' files; score = points x
    passed / tests. show gets the table's lines as they come.

    Every exercise's tests run first in one pytest process (one start of Python and torch, not one
    per exercise) cut at `timeout`; only if that run is cut (an exercise that loops forever, say),
    or none of an exercise's tests ran in it, does that
    exercise run alone, cut at its own `timeout`, so one cannot take the others down."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = os.path.join(tmp, "copy")
        copy_tree(root, scratch)
        for file in dict.fromkeys(e.file for e in exercises):  # the student's work; the rest is the grader's
            shutil.copy(os.path.join(folder, file), os.path.join(scratch, file))
        width = max(len(e.name) for e in exercises)
        show(f"{'exercise':<{width}}  tests    points")
        together, note = [], "cut"
        if len(exercises) > 1:
            start = time.monotonic()
            together, note = run_tests(scratch, list(dict.fromkeys(t for e in exercises for t in e.tests)), timeout)
            each = (time.monotonic() - start) / len(exercises)
        for e in exercises:
            cases, note_e, seconds = ([], note, 0.0) if note else (cases_of(e, together), "", each)
            if not cases:  # cut, or none of its tests ran (a test file that did not import): alone, on its own clock
                start = time.monotonic()
                cases, note_e = run_tests(scratch, e.tests, timeout)
                seconds = time.monotonic() - start
            passed = sum(ok for _, ok, _ in cases)
            score = round(e.points * passed / len(cases), 2) if cases else 0.0
            failed = [f"{name}: {why}"[:300] for name, ok, why in cases if not ok]
            output = note_e or f"{passed} of {len(cases)} tests passed" + "".join("\n  " + f for f in failed)
            results.append({"name": e.name, "passed": passed, "tests": len(cases), "score": score,
                            "max_score": e.points, "output": output, "seconds": round(seconds, 1)})
            shown = "cut" if note_e.startswith("cut") else f"{passed}/{len(cases)}"
            show(f"{e.name:<{width}}  {shown:<7}  {score:g}/{e.points}")
    show(f"{'total':<{width}}  {'':<7}  {sum(r['score'] for r in results):g}/{sum(e.points for e in exercises)}")
    return results


def gradescope(results, seconds):
    """The results as Gradescope's autograder reads them (results.json): a score, and per test
    (here: per exercise) its name, score, max_score, status and output."""
    return {"score": round(sum(r["score"] for r in results), 2), "execution_time": round(seconds),
            "tests": [{"name": r["name"], "score": r["score"], "max_score": r["max_score"],
                       "status": "passed" if r["score"] == r["max_score"] else "failed", "output": r["output"]}
                      for r in results]}


# -----------------------------------------------------------------------------
# The command line


def cmd_list(_):
    for e in EXERCISES:
        print(f"{e.name} ({e.points} points)  {e.file}: {', '.join(e.functions)}")
        print(f"  {e.statement}")
        print(f"  paper: {e.paper}")
        if e.needs:
            print(f"  after: {', '.join(e.needs)} (its tests call those functions too)")
        for file in dict.fromkeys(t.partition("::")[0] for t in e.tests):
            print(f"  tests in {file}: {', '.join(t.partition('::')[2] for t in e.tests if t.startswith(file + '::'))}")
    print(f"{len(EXERCISES)} exercises, {sum(e.points for e in EXERCISES)} points")


def cmd_make(args):
    exercises = chosen(args.only)
    make(args.out, exercises)
    print(f"wrote {args.out}: {len(exercises)} exercises blanked ({', '.join(e.name for e in exercises)})")


def cmd_grade(args):
    start = time.monotonic()
    results = grade(args.folder, chosen(args.only), args.timeout)
    seconds = time.monotonic() - start
    print(f"graded in {seconds:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(gradescope(results, seconds), f, indent=1)
        print(f"wrote {args.json}")


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="assignments.py", description="Course assignments: blank a mechanism, "
                                "grade it with its tests (docs/assignments.md).")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the exercises: functions, paper, statement, tests, points")
    mk = sub.add_parser("make", help="a copy of the repository with the exercises' function bodies blanked")
    mk.add_argument("out", help="the folder to write the copy to: a new or an empty one")
    gr = sub.add_parser("grade", help="run each exercise's tests against a folder and score them")
    gr.add_argument("folder", help="a folder holding the exercises' files: a student's copy written by make, a "
                    "submission, or the repository itself")
    gr.add_argument("--json", default=None, help="also write the results here, in Gradescope's results.json format")
    gr.add_argument("--timeout", type=number(int, 1), default=120,
                    help="seconds an exercise's tests may run before they are cut and score 0")
    for s in (mk, gr):
        s.add_argument("--only", nargs="+", choices=list(BY_NAME), metavar="NAME",
                       help=f"these exercises only (default: all): {', '.join(BY_NAME)}")
    args = p.parse_args(argv)
    check_args(args, {"list": p, "make": mk, "grade": gr}[args.command])
    return args


def check_args(args, p):
    """Refuse, with one line and exit status 2 (p.error), before anything is written: an output
    folder that holds something, a folder to grade that lacks the exercises' files, a --json
    whose folder does not exist."""
    if args.command == "make" and os.path.exists(args.out):
        if not os.path.isdir(args.out) or os.listdir(args.out):
            p.error(f"{args.out}: exists and is not empty; make writes a fresh copy")
    if args.command == "grade":
        if not os.path.isdir(args.folder):
            p.error(f"{args.folder}: not a folder")
        missing = [f for f in dict.fromkeys(e.file for e in chosen(args.only)) if not os.path.isfile(os.path.join(args.folder, f))]
        if missing:
            p.error(f"{args.folder}: no {', '.join(missing)} in it, the files of the exercises to grade")
        if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
            p.error(f"--json {args.json}: its folder does not exist")


if __name__ == "__main__":
    args = get_args()
    {"list": cmd_list, "make": cmd_make, "grade": cmd_grade}[args.command](args)
