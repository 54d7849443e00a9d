"""perf.py's gpu sub-command on the CPU: the tiny size runs the gpu preset's self-play step and
update end to end and reports every figure; the Qwen2.5 shapes have their published parameter counts."""

import pytest
import torch

import perf
import models



@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a busy 2-core machine; restored for the tests after this one
    yield
    torch.set_num_threads(threads)


def test_gpu_bench_runs_the_tiny_size_end_to_end(capsys, one_thread):
    """1 prompt per (role, task type), 6 new tokens, two steps: per step and phase (rollouts, solve
    rates, update) positive seconds, and for the sampling phases decode steps and prefill
    seconds; every invalid proposal fed by a valid task, so the solve-rate phase runs; a checkpoint
    of the tiny model's size; nothing NaN; the loop equal to generate, tokens and log-probs, on the
    left-padded mixed-length batch (float32 on the CPU: exact); and the table printed."""
    results = perf.bench_gpu(["tiny"], prompts=1, max_new_tokens=6)
    out = capsys.readouterr().out
    figures = results["tiny"]
    assert "error" not in figures and figures["parameters"] == 263_424
    for step in ("step 1", "step 2"):
        phases = figures[step]
        assert phases["rows"] == 6 * 1 and phases["valid"] == 3  # three proposals, all fed valid tasks
        for phase in perf.PHASES:
            assert phases[phase]["seconds"] > 0, (step, phase)
        for phase in ("rollouts", "solve rates"):  # one decode each
            assert phases[phase]["decode_steps"] >= 5 and phases[phase]["prefill_s"] > 0, (step, phase)
        assert 1 <= phases["response_min"] <= phases["response_max"] <= 6
        if torch.cuda.is_available():
            assert phases["update"]["peak_allocated_gib"] > 0
    assert figures["checkpoint"]["seconds"] > 0 and 0.001 < figures["checkpoint"]["gb"] < 0.01
    assert figures["finite"] is True
    parity = figures["parity"]
    assert parity["same_tokens"] == 1.0 and parity["logp_gap"] < 1e-4
    assert parity["prompt_lengths"][0] < parity["prompt_lengths"][1]  # mixed lengths, left-padded
    fixed = figures["fixed length"]
    assert fixed["decode_steps"] >= 5 and fixed["ms_per_decode_step"] > 0  # more when the prefill budget splits the rows
    assert "byte tokenizer" in out and "valid toy task" in out and "nothing NaN: yes" in out
    assert any(line.split()[:3] == ["tiny", "1", "rollouts"] for line in out.splitlines())  # the table's rows
    assert any(line.split()[:3] == ["tiny", "2", "update"] for line in out.splitlines())


@pytest.mark.parametrize("size, total, non_embedding", [("0.5b", 0.49e9, 0.36e9), ("1.5b", 1.54e9, 1.31e9),
                                                        ("3b", 3.09e9, 2.77e9)])
def test_qwen_shapes_have_the_published_parameter_counts(size, total, non_embedding):
    """Built on the meta device (no memory): the totals and non-embedding counts of Qwen2.5's model cards."""
    model = perf.random_qwen(size, models.byte_tokenizer(), torch.device("meta"))
    count = sum(p.numel() for p in model.parameters())  # the tied lm_head counted once
    embedding = model.get_input_embeddings().weight.numel()
    assert model.config.vocab_size == 151936 and model.config.tie_word_embeddings
    assert round(count / 1e9, 2) == total / 1e9 and round((count - embedding) / 1e9, 2) == non_embedding / 1e9


def test_tiny_shape_fits_the_byte_tokenizer():
    assert perf.QWEN_SHAPES["tiny"]["vocab_size"] == len(models.byte_tokenizer())


@pytest.mark.parametrize("size, total", [("7b", 7.62e9), ("14b", 14.77e9)])
def test_the_larger_qwen_shapes_have_the_published_totals(size, total):
    """Qwen2.5-7B and -14B, untied: embeddings and lm_head each counted."""
    model = perf.random_qwen(size, models.byte_tokenizer(), torch.device("meta"))
    assert not model.config.tie_word_embeddings and model.config.vocab_size == 152064
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == total / 1e9


def test_memory_per_rank_is_the_sharded_16_bytes_and_the_whole_bf16_weights(capsys):
    """On the tiny shape, whose parameters the loaded tiny model counts: 16 B per parameter over N
    ranks, and 2 B per parameter on every rank."""
    P = sum(p.numel() for p in models.load_model("tiny")[0].parameters())
    table = perf.bench_memory(sizes=("tiny",), ranks=(1, 4))
    assert table["tiny"][1] == pytest.approx(18 * P / 1e9) and table["tiny"][4] == pytest.approx((4 + 2) * P / 1e9)
    assert "tiny" in capsys.readouterr().out
