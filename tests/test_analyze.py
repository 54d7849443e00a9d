"""analyze.py: probe entropy against torch.distributions.Categorical, update sparsity on synthetic
checkpoints with planted changes (exact, within tolerance, lost to bf16 rounding; sharded files),
Jaccard overlap and update rank against hand-computed values, curriculum statistics on a
hand-written tasks.jsonl, and a report from a synthetic run folder."""

import json
import math
import os

import pytest
import torch
from safetensors.torch import save_file

import analyze
from conftest import assert_usage_and_one_error
import executor
import sparsity as sparsity_module
from analyze import entropy_curves, probe_entropy, probe_set
from curriculum import curriculum_by_step, length_vs_difficulty, program_complexity, spearman
from sparsity import (changed_mask, jaccard, jaccard_counts, layer_index, module_kind, sparsity, summarize,
                      tensor_sparsity, update_rank)
from chat import render_chat
from models import load_model
from proposer import parse_proposal
from runs import run_label
from solver import extract_answer

torch.set_num_threads(1)


# -----------------------------------------------------------------------------
# entropy


def test_probe_entropy_equals_categorical_entropy_of_the_same_logits():
    model, tokenizer = load_model("tiny")
    torch.manual_seed(0)
    with torch.no_grad():  # a random perturbation, so the distributions are far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    probes, T = probe_set(), 0.7
    expected = {"proposer": [], "solver": [], "all": []}
    with torch.no_grad():
        for role, user_text, response in probes:
            prompt = tokenizer(render_chat(tokenizer, user_text), add_special_tokens=False).input_ids
            answer = tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
            logits = model(torch.tensor([prompt + answer])).logits[0].double()
            # position t predicts token t + 1: the response tokens are predicted from len(prompt) - 1 on
            H = torch.distributions.Categorical(logits=logits[len(prompt) - 1:-1] / T).entropy()
            expected[role].append(H)
            expected["all"].append(H)
    got = probe_entropy(model, tokenizer, probes, temperature=T, chunk_size=64)
    for role, values in expected.items():
        assert got[role] == pytest.approx(torch.cat(values).mean().item(), rel=1e-5), role
    assert got["solver"] < math.log(len(tokenizer))  # not the uniform distribution


def test_probe_texts_are_right_answers_in_the_azr_formats():
    probes = probe_set()
    assert len(probes) == 12 and {r for r, _, _ in probes} == {"proposer", "solver"}
    for task in analyze.PROBE_TASKS + [analyze.PROBE_INDUCTION]:
        verdicts = executor.validate([(task.program, i) for i in task.inputs])
        assert [v.output for v in verdicts] == task.outputs
    executor.close_pool()
    for role, _, response in probes:
        assert extract_answer(response) is not None
    assert parse_proposal("deduction", probes[-3][2])["program"] == analyze.PROBE_TASKS[3].program
    assert parse_proposal("induction", probes[-1][2])["inputs"] == analyze.PROBE_INDUCTION.inputs


def test_entropy_curves_read_each_role_and_task_type_from_metrics():
    metrics = [{"step": 1, "entropy/proposer/deduction": 2.0, "entropy/solver/deduction": 1.5, "entropy/mean": 1.7},
               {"step": 2, "entropy/proposer/deduction": 1.8, "entropy/solver/deduction": 1.1}]
    assert entropy_curves(metrics) == {("proposer", "deduction"): ([1, 2], [2.0, 1.8]),
                                       ("solver", "deduction"): ([1, 2], [1.5, 1.1])}


# -----------------------------------------------------------------------------
# sparsity: synthetic checkpoints with planted changes
#
# Base entries are 1.0 or 0.0 (float32). Planted changes, with tol = 1e-5:
#   a: 1.0 + 4e-6   changed; within tol; lost in bf16 (1 + 4e-6 rounds to 1)
#   b: 1.0 + 1e-3   changed; beyond tol; lost in bf16 (bf16 spacing at 1 is 2^-7): the rounding case
#   c: 1.0 + 0.5    changed everywhere
#   d: 0.0 + 2e-5   changed; beyond tol; changed in bf16 too (bf16 keeps 8 exponent bits)
#   e: 0.0 + 3e-6   changed; within tol; changed in bf16 but within tol there
# so, from the counts (a, b, c, d, e):
#   changed exact = a+b+c+d+e,  beyond tol = b+c+d,  changed bf16 = c+d+e,  beyond tol bf16 = c+d
PLANTS = {"a": (1.0, 4e-6), "b": (1.0, 1e-3), "c": (1.0, 0.5), "d": (0.0, 2e-5), "e": (0.0, 3e-6)}
TENSORS = {  # name: (shape, planted counts)
    "model.embed_tokens.weight": ((10, 4), dict(a=1, b=2, c=0, d=3, e=0)),
    "model.layers.0.self_attn.q_proj.weight": ((6, 6), dict(a=2, b=0, c=5, d=0, e=1)),
    "model.layers.0.mlp.up_proj.weight": ((4, 8), dict(a=0, b=4, c=1, d=1, e=2)),
    "model.layers.1.self_attn.o_proj.weight": ((6, 6), dict(a=3, b=3, c=3, d=0, e=0)),
    "model.layers.1.post_attention_layernorm.weight": ((6,), dict(a=1, b=0, c=0, d=0, e=1)),
    "model.norm.weight": ((6,), dict()),
}


def expected_counts(shape, plants):
    n = math.prod(shape)
    get = lambda *keys: sum(plants.get(k, 0) for k in keys)
    return {"numel": n, "same": n - get(*"abcde"), "close": n - get(*"bcd"), "same_bf16": n - get(*"cde"),
            "close_bf16": n - get(*"cd")}


def planted_pair(seed=0):
    """(base, checkpoint) state dicts: every entry of the base is 1.0 or 0.0 and the checkpoint
    differs exactly at the planted entries, at random positions."""
    g = torch.Generator().manual_seed(seed)
    base, new = {}, {}
    for name, (shape, plants) in TENSORS.items():
        n = math.prod(shape)
        b = (torch.rand(n, generator=g) < 0.5).float()
        c = b.clone()
        positions = iter(torch.randperm(n, generator=g).tolist())
        for kind, count in plants.items():
            start, step = PLANTS[kind]
            for _ in range(count):
                i = next(positions)
                b[i] = start
                c[i] = torch.tensor(start, dtype=torch.float32) + step
        base[name], new[name] = b.reshape(shape), c.reshape(shape)
    return base, new


def write_folder(folder, tensors, shards=1):
    """A checkpoint folder: model.safetensors, or shards with a model.safetensors.index.json."""
    os.makedirs(folder)
    if shards == 1:
        save_file(tensors, os.path.join(folder, "model.safetensors"))
        return str(folder)
    names, weight_map = sorted(tensors), {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, os.path.join(folder, file))
        weight_map.update({n: file for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return str(folder)


def test_tensor_sparsity_counts_the_planted_changes():
    base, new = planted_pair()
    for name, (shape, plants) in TENSORS.items():
        assert tensor_sparsity(base[name], new[name], 1e-5) == expected_counts(shape, plants), name


def test_sparsity_streams_sharded_checkpoints_and_groups_by_layer_and_kind(tmp_path):
    base, new = planted_pair()
    records = sparsity(write_folder(tmp_path / "base", base), write_folder(tmp_path / "ckpt", new, shards=3), tol=1e-5)
    assert {r["name"] for r in records} == set(TENSORS)
    for r in records:
        shape, plants = TENSORS[r["name"]]
        assert {k: r[k] for k in sparsity_module.COUNTS} == expected_counts(shape, plants)
        assert r["shape"] == list(shape)

    def total(names):
        sums = dict.fromkeys(sparsity_module.COUNTS, 0)
        for name in names:
            for k, v in expected_counts(*TENSORS[name]).items():
                sums[k] += v
        return sums
    pick = lambda key: {k: v for k, v in key.items() if k in sparsity_module.COUNTS}
    assert pick(summarize(records)["all"]) == total(TENSORS)
    by_kind = summarize(records, "kind")
    assert pick(by_kind["attention"]) == total([n for n in TENSORS if "_proj" in n and "mlp" not in n])
    assert pick(by_kind["norms"]) == total([n for n in TENSORS if "norm" in n])
    by_layer = summarize(records, "layer")
    assert set(by_layer) == {0, 1, None}
    assert pick(by_layer[1]) == total([n for n in TENSORS if ".layers.1." in n])


def test_bf16_checkpoints_are_compared_in_bf16():
    base = torch.tensor([1.0, 1.0, 0.0], dtype=torch.bfloat16)
    new = torch.tensor([1.0 + 2 ** -7, 1.0, 2e-5], dtype=torch.bfloat16)  # one bf16 step at 1; unchanged; 2e-5
    counts = tensor_sparsity(base, new, 1e-5)
    assert counts == {"numel": 3, "same": 1, "close": 1, "same_bf16": 1, "close_bf16": 1}
    assert changed_mask(base, new, 1e-5).tolist() == [True, False, True]


def test_module_kind_and_layer_from_the_tensor_name():
    cases = {"model.layers.12.self_attn.k_proj.weight": ("attention", 12),
             "model.layers.3.mlp.down_proj.weight": ("mlp", 3),
             "model.layers.0.post_attention_layernorm.weight": ("norms", 0),
             "model.layers.0.self_attn.q_norm.weight": ("norms", 0),
             "model.embed_tokens.weight": ("embeddings", None), "lm_head.weight": ("embeddings", None),
             "model.norm.weight": ("norms", None), "model.rotary_emb.inv_freq": ("other", None)}
    for name, (kind, layer) in cases.items():
        assert (module_kind(name), layer_index(name)) == (kind, layer), name


def test_jaccard_of_two_runs_update_masks(tmp_path):
    # one tensor of 10 entries; run A changes entries {0, 1, 2, 5}, run B {1, 2, 3, 4, 5}; a second
    # tensor: A changes {0}, B nothing. Intersection {1, 2, 5} = 3, union {0..5} + {0} = 7.
    base = {"x": torch.zeros(10), "y": torch.zeros(3)}
    a = {"x": torch.zeros(10), "y": torch.zeros(3)}
    b = {"x": torch.zeros(10), "y": torch.zeros(3)}
    a["x"][[0, 1, 2, 5]] = 0.5
    b["x"][[1, 2, 3, 4, 5]] = -0.25
    a["y"][0] = 1.0
    assert jaccard_counts(a["x"] != 0, b["x"] != 0) == (3, 6)
    folders = [write_folder(tmp_path / n, t) for n, t in (("base", base), ("a", a), ("b", b))]
    assert jaccard(*folders) == pytest.approx(3 / 7)
    assert math.isnan(jaccard(folders[0], folders[0], folders[0]))  # nothing changed in either


def test_update_rank_against_planted_low_rank_updates():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(12, 9, generator=g)
    u, v = torch.randn(12, 2, generator=g), torch.randn(2, 9, generator=g)
    assert update_rank(base, base + u @ v) == 2
    assert update_rank(base, base) == 0
    assert update_rank(base, base + torch.randn(12, 9, generator=g)) == 9  # full rank: min(12, 9)
    assert update_rank(torch.zeros(5), torch.ones(5)) is None  # not a matrix


# -----------------------------------------------------------------------------
# curriculum

def test_program_complexity_against_hand_counts():
    # Module, FunctionDef, arguments, arg, Return, Name: 6 nodes; depth Module > FunctionDef > Return > Name
    assert program_complexity("def f(a):\n    return a") == {"nodes": 6, "depth": 4, "branches": 0}
    program = "def f(a):\n    if a > 0:\n        return [x for x in range(a)]\n    return a"
    # Module, FunctionDef, arguments, arg, If, Compare, Name a, Gt, Constant 0, Return, ListComp,
    # Name x, comprehension, Name x, Call, Name range, Name a, Return, Name a: 19 nodes; the deepest
    # path Module > FunctionDef > If > Return > ListComp > comprehension > Call > Name: 8;
    # branches: the if and the comprehension's for
    assert program_complexity(program) == {"nodes": 19, "depth": 8, "branches": 2}
    assert program_complexity("def f(:") is None


def test_spearman_against_hand_computed_values():
    # ranks of y: 1, 3, 2, 4; sum d^2 = 2; 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    # ties: x ranks 1.5, 1.5, 3, 4; Pearson of the ranks = 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))


IDENTITY = "def f(a):\n    return a"
BRANCHY = "def f(a):\n    if a > 0:\n        return [x for x in range(a)]\n    return a"
TASKS = [  # a hand-written tasks.jsonl: two steps, two task types
    dict(type="deduction", step=1, program=IDENTITY, valid=True, solve_rate=1.0, solver_response_len=10.0),
    dict(type="deduction", step=1, program="", valid=False, solve_rate=None, solver_response_len=None),
    dict(type="abduction", step=1, program=BRANCHY, valid=True, solve_rate=0.5, solver_response_len=30.0),
    dict(type="deduction", step=2, program=BRANCHY, valid=True, solve_rate=0.25, solver_response_len=40.0),
    dict(type="deduction", step=2, program=IDENTITY, valid=True, solve_rate=0.75, solver_response_len=20.0),
    dict(type="abduction", step=2, program="", valid=False, solve_rate=None, solver_response_len=None),
]


def test_curriculum_by_step_against_hand_computed_values():
    rows = {(r["type"], r["step"]): r for r in curriculum_by_step(TASKS)}
    assert set(rows) == {("deduction", 1), ("deduction", 2), ("abduction", 1), ("abduction", 2), ("all", 1), ("all", 2)}
    d1, d2, a2, all1 = rows["deduction", 1], rows["deduction", 2], rows["abduction", 2], rows["all", 1]
    assert (d1["proposed"], d1["valid_rate"], d1["solve_rate"], d1["nodes"]) == (2, 0.5, 1.0, 6)
    assert (d2["valid_rate"], d2["solve_rate"], d2["nodes"], d2["depth"], d2["branches"]) == (1.0, 0.5, 12.5, 6, 1)
    assert (a2["valid_rate"], a2["solve_rate"], a2["nodes"]) == (0.0, None, None)
    # step 1 pooled: 3 proposals, 2 valid (identity, solve 1.0; branchy, solve 0.5)
    assert (all1["proposed"], all1["valid_rate"], all1["solve_rate"], all1["branches"]) == (3, 2 / 3, 0.75, 1)


def test_length_vs_difficulty_against_hand_computed_values():
    out = length_vs_difficulty(TASKS)
    # deduction: (1.0, 10), (0.25, 40), (0.75, 20): length falls as the solve rate rises, perfectly
    assert out["deduction"]["tasks"] == 3 and out["deduction"]["spearman"] == pytest.approx(-1.0)
    # all: stratified by type, the task-weighted mean of the types' values; abduction's one point has none
    assert out["all"]["spearman"] == pytest.approx(-1.0) and out["all"]["tasks"] == 4
    assert out["abduction"]["length_by_solve_rate"] == {0.5: 30.0}
    assert math.isnan(out["abduction"]["spearman"])  # one point


def test_length_vs_difficulty_is_stratified_by_task_type():
    """Within each type harder tasks get longer answers, but one type is both easy and long: pooled,
    the points would correlate positively; within the types, and so stratified, negatively."""
    def task(task_type, rate, length):
        return {"type": task_type, "valid": True, "solve_rate": rate, "solver_response_len": length}
    records = ([task("deduction", r, 40 - 20 * r) for r in (0.0, 0.25, 0.5)]          # hard, short
               + [task("induction", r, 200 - 20 * r) for r in (0.75, 0.875, 1.0)])   # easy, long
    pooled = spearman([r["solve_rate"] for r in records], [r["solver_response_len"] for r in records])
    assert pooled > 0.5
    out = length_vs_difficulty(records)
    assert out["deduction"]["spearman"] == out["induction"]["spearman"] == pytest.approx(-1.0)
    assert out["all"]["spearman"] == pytest.approx(-1.0)


# -----------------------------------------------------------------------------
# the report, end to end on a synthetic run folder


def test_report_writes_markdown_and_figures(tmp_path):
    run = tmp_path / "run"
    base_model, tokenizer = load_model("tiny")
    with torch.no_grad():  # step 1 moves one matrix, as an update would
        base_model.model.layers[0].mlp.up_proj.weight.add_(0.01)
    base_model.save_pretrained(run / "checkpoints" / "step_000001")
    tokenizer.save_pretrained(run / "checkpoints" / "step_000001")
    (run / "config.json").write_text(json.dumps({"model": "tiny", "task_types": ["deduction", "abduction"],
                                                 "proposer_reward": "learnability", "freeze_proposer": False}))
    metrics = [{"step": s, "entropy/proposer/deduction": 2.0 - s / 10, "entropy/solver/deduction": 1.5 - s / 10}
               for s in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    out = tmp_path / "report"
    os.makedirs(out)
    analyze.cmd_report(analyze.get_args(["report", str(run), "--out", str(out)]))
    report = (out / "report.md").read_text()
    for section in ("## Entropy dynamics", "## Entropy on a fixed probe set", "## Update sparsity", "## Curriculum"):
        assert section in report
    for figure in ("entropy", "probe_entropy", "sparsity_layers", "curriculum", "length_vs_difficulty"):
        assert f"({figure}.png)" in report and (out / f"{figure}.png").stat().st_size > 0
    up = base_model.model.layers[0].mlp.up_proj.weight.numel()
    total = sum(p.numel() for p in base_model.parameters())
    label = run_label(str(run))  # the run's path: two runs named alike must not share a label
    assert f"| {label}/step_1 | all | {total} | {1 - up / total:.4f} |" in report


def test_runs_named_alike_in_different_folders_get_different_labels(tmp_path, monkeypatch):

    monkeypatch.chdir(tmp_path)
    assert run_label("a/run") != run_label("b/run")
    assert run_label(str(tmp_path / "a" / "run") + "/") == os.path.join("a", "run")


BAD_ANALYZE = [
    (["entropy", "/nonexistent"], "not a run folder"),
    (["curriculum", "/nonexistent"], "not a run folder"),
    (["report", "/nonexistent"], "not a run folder"),
    (["probe", "./no-such-model"], "no such folder"),
    (["sparsity", "/nonexistent/ckpt", "--base", "tiny"], "no model.safetensors"),
    (["sparsity", "{run}", "--base", "./nope"], "no such folder"),
    (["probe", "tiny", "--temperature", "0"], "argument --temperature: must be above 0"),
    (["report", "{run}", "--tol", "-1"], "argument --tol: must be at least 0"),
]


@pytest.mark.parametrize("argv, message", BAD_ANALYZE, ids=[" ".join(a) for a, _ in BAD_ANALYZE])
def test_bad_arguments_are_refused_in_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "metrics.jsonl", "tasks.jsonl", "model.safetensors"):
        (run / name).write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        analyze.get_args([a.format(run=run) for a in argv])
    assert exit_.value.code == 2
    assert_usage_and_one_error(capsys.readouterr().err, "analyze.py", message)
    assert sorted(os.listdir(tmp_path)) == before
