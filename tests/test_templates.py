"""A model is evaluated, probed and judged in the prompt scaffold it was trained with: a checkpoint
in its run's --template (its config.json), a base in the one of the runs compared with it,
--template for every model when given (runs.eval_templates). Checked on runs trained under r1 and
under chat, through evaluate.py, toyworld.answers and analyze.probe_entropy."""

import json
import os

import pytest
import torch

import analyze
import evaluate
import grpo
import toyworld
from chat import R1, R1_PREFILL, completion, render_prompt
from conftest import assert_usage_and_one_error
from models import load_model
from runs import eval_templates, last_checkpoint, trained_template
from toytasks import heldout

FAST = ["--model", "tiny", "--preset", "cpu", "--task-types", "deduction", "--max-new-tokens", "8", "--prompts", "1",
        "--group", "2", "--solve-samples", "2", "--steps", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{template: the last checkpoint of a one-step tiny run trained under it}, for r1 and chat."""
    out = {}
    for template in ("r1", "chat"):
        run = str(tmp_path_factory.mktemp(template) / "run")
        grpo.train(grpo.get_args(FAST + ["--template", template, "--out", run]))
        out[template] = last_checkpoint(run)
    return out


def fake_run(tmp_path, name, template):
    folder = tmp_path / name / "checkpoints" / "step_000001"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")  # a model folder, as far as the checks before loading look
    (tmp_path / name / "config.json").write_text(json.dumps({"template": template}))
    return str(folder)


def test_a_checkpoint_takes_its_runs_template_and_a_base_takes_its_runs(tmp_path):
    r1, chat = fake_run(tmp_path, "a", "r1"), fake_run(tmp_path, "b", "chat")
    assert trained_template(r1) == "r1" and trained_template(chat) == "chat"
    assert trained_template("tiny") is None and trained_template(str(tmp_path / "a")) is None  # a run folder is no checkpoint
    assert eval_templates(["tiny", r1]) == {"tiny": "r1", r1: "r1"}
    assert eval_templates(["tiny", chat]) == {"tiny": "chat", chat: "chat"}
    assert eval_templates(["tiny"]) == {"tiny": "auto"}
    assert eval_templates([r1, chat]) == {r1: "r1", chat: "chat"}  # no base: each its own
    assert eval_templates(["tiny", r1, chat], "chat") == {"tiny": "chat", r1: "chat", chat: "chat"}


def test_a_base_between_runs_of_two_templates_is_refused(tmp_path, capsys):
    r1, chat = fake_run(tmp_path, "a", "r1"), fake_run(tmp_path, "b", "chat")
    with pytest.raises(ValueError, match="different templates"):
        eval_templates(["tiny", r1, chat])
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        evaluate.get_args(["--models", "tiny", r1, chat, "--benchmarks", "gsm8k", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    assert_usage_and_one_error(capsys.readouterr().err, "evaluate.py", "different templates")


@pytest.mark.parametrize("template", ["r1", "chat"])
def test_evaluate_prompts_each_model_in_its_runs_template_and_records_it(tmp_path, trained, template, monkeypatch):
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps({"problem": "What is 2 + 3?", "answer": "5"}) + "\n")
    out, prompts, real = tmp_path / "out", [], evaluate.sample

    def recording(model, tokenizer, texts, *args, **kwargs):
        prompts.extend(texts)
        return real(model, tokenizer, texts, *args, **kwargs)
    monkeypatch.setattr(evaluate, "sample", recording)
    evaluate.main(["--models", trained[template], "tiny", "--benchmarks", "jsonl", "--data", str(data), "--n", "2",
                   "--max-new-tokens", "4", "--out", str(out)])
    with open(out / "samples.jsonl") as f:
        samples = [json.loads(line) for line in f]
    assert {r["model"] for r in samples} == {trained[template], "tiny"} and len(samples) == 4
    _, tokenizer = load_model("tiny")
    for r in samples:  # the base too: it is compared with a run of this template
        assert r["template"] == template
        assert r["response"].startswith(R1_PREFILL) == (template == "r1")
    assert len(prompts) == 4 and all("What is 2 + 3?" in p for p in prompts)
    for p in prompts:
        assert p.startswith(render_prompt(tokenizer, "", template)[:12])
        assert p.startswith(R1[:60]) == (template == "r1") and p.endswith(R1_PREFILL) == (template == "r1")


def test_evaluate_template_flag_overrides_the_runs(tmp_path, trained):
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps({"problem": "What is 2 + 3?", "answer": "5"}) + "\n")
    out = tmp_path / "out"
    evaluate.main(["--models", trained["r1"], "--benchmarks", "jsonl", "--data", str(data), "--n", "1",
                   "--max-new-tokens", "4", "--template", "chat", "--out", str(out)])
    with open(out / "samples.jsonl") as f:
        assert [json.loads(line)["template"] for line in f] == ["chat"]


def test_toyworld_answers_render_the_template_and_grade_what_the_model_said(monkeypatch):
    model, tokenizer = load_model("tiny")
    seen = []

    def fake_sample(model, tokenizer, prompts, n, *args, **kwargs):
        seen.extend(prompts)
        return {"prompt_index": torch.arange(len(prompts)), "texts": ["x"] * len(prompts)}
    graded = []
    monkeypatch.setattr(toyworld, "sample", fake_sample)
    monkeypatch.setattr(toyworld, "solver_rewards", lambda t, tasks, texts, evaluation: graded.extend(texts) or [0.0] * len(texts))
    tasks = heldout()[:2]
    toyworld.answers(model, tokenizer, "deduction", tasks, template="r1", prefix="<think> careful")
    assert all(p.endswith(R1_PREFILL + " careful") and "<|im_start|>" not in p for p in seen)
    assert graded == ["<think> careful" + "x"] * 2  # the prefill back in front, once
    seen.clear()
    toyworld.answers(model, tokenizer, "deduction", tasks, template="chat")
    assert all(p.startswith("<|im_start|>") for p in seen)


def test_probe_entropy_scores_the_same_tokens_in_either_template():
    """Under r1 the prompt ends with the prefilled <think>, so a probe response that starts with it
    scores its other tokens; the entropies differ from chat's, because the prompts do."""
    model, tokenizer = load_model("tiny")
    probes = [("solver", "What is f(2)?", "<think> trace </think> <answer>4</answer>")]
    r1 = analyze.probe_entropy(model, tokenizer, probes, template="r1")
    chat = analyze.probe_entropy(model, tokenizer, probes, template="chat")
    assert r1["solver"] != chat["solver"]
    seen = []
    real = analyze.sequence_logprobs_and_entropy

    def recording(model, ids, attention, mask, *args):
        seen.append(int(mask.sum()))
        return real(model, ids, attention, mask, *args)
    analyze.sequence_logprobs_and_entropy = recording
    try:
        analyze.probe_entropy(model, tokenizer, probes, template="r1")
        analyze.probe_entropy(model, tokenizer, probes, template="chat")
    finally:
        analyze.sequence_logprobs_and_entropy = real
    without = len(tokenizer(" trace </think> <answer>4</answer>", add_special_tokens=False).input_ids) + 1
    assert seen[0] == without and seen[1] > without


def test_a_run_writes_its_template_where_eval_reads_it(trained):
    for template, checkpoint in trained.items():
        assert trained_template(checkpoint) == template
        assert os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(checkpoint)), "config.json"))


def test_an_r1_completion_is_read_as_azr_reads_it():
    """With r1 the prefilled <think> comes back in front, and the text stops at a second
    "Assistant:" (AZR: sequence.split("Assistant:")[1]); a chat completion is the text as said."""
    said = " plan </think> <answer>3</answer> User: more?\nAssistant: <think> again"
    assert completion(said, "r1") == "<think> plan </think> <answer>3</answer> User: more?\n"
    assert completion(" a </think> <answer>1</answer>", "r1") == "<think> a </think> <answer>1</answer>"
    assert completion(said, "chat") == said
