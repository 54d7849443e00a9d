"""bench.py's gpu sub-command on the CPU: the tiny size runs the gpu preset's self-play step and
update end to end and reports every figure; the Qwen2.5 shapes have their published parameter counts."""

import pytest
import torch

import bench
import models



@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier on a busy 2-core machine; restored for the tests after this one
    yield
    torch.set_num_threads(threads)


def test_gpu_bench_runs_the_tiny_size_end_to_end(capsys, one_thread):
    """2 prompts per (role, task type), 8 new tokens: 12 sequences, every one exactly 8 tokens long
    (stop tokens ignored), every figure a positive number, and the notes printed."""
    results = bench.bench_gpu(["tiny"], prompts=2, max_new_tokens=8)
    out = capsys.readouterr().out
    figures = results["tiny"]
    assert "error" not in figures
    assert figures["sequences"] == 6 * 2 and figures["response_lengths"] == [8]
    assert figures["loop_tokens"] == figures["hf_tokens"] == 6 * 2 * 8  # the comparison's rows too
    for key in ("parameters", "prompt_tokens_mean", "prompt_tokens_max", "generate_s", "execute_s", "update_s",
                "step_tokens_per_s", "loop_tokens_per_s", "hf_tokens_per_s"):
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    assert figures["parameters"] == 263_424 and figures["valid_proposals"] == 0
    if torch.cuda.is_available():
        assert figures["peak_gib"] > 0
    else:
        assert figures["peak_gib"] is None and "not measured" in out
    assert "byte tokenizer" in out and "no solve-rate samples are drawn" in out and "(stop tokens ignored): yes" in out
    assert any(line.split()[:2] == ["tiny", "263k"] for line in out.splitlines())  # the table's row


@pytest.mark.parametrize("size, total, non_embedding", [("0.5b", 0.49e9, 0.36e9), ("1.5b", 1.54e9, 1.31e9),
                                                        ("3b", 3.09e9, 2.77e9)])
def test_qwen_shapes_have_the_published_parameter_counts(size, total, non_embedding):
    """Built on the meta device (no memory): the totals and non-embedding counts of Qwen2.5's model cards."""
    model = bench.random_qwen(size, models.byte_tokenizer(), torch.device("meta"))
    count = sum(p.numel() for p in model.parameters())  # the tied lm_head counted once
    embedding = model.get_input_embeddings().weight.numel()
    assert model.config.vocab_size == 151936 and model.config.tie_word_embeddings
    assert round(count / 1e9, 2) == total / 1e9 and round((count - embedding) / 1e9, 2) == non_embedding / 1e9


def test_tiny_shape_fits_the_byte_tokenizer():
    assert bench.QWEN_SHAPES["tiny"]["vocab_size"] == len(models.byte_tokenizer())


@pytest.mark.parametrize("size, total", [("7b", 7.62e9), ("14b", 14.77e9)])
def test_the_larger_qwen_shapes_have_the_published_totals(size, total):
    """Qwen2.5-7B and -14B, untied: embeddings and lm_head each counted."""
    model = bench.random_qwen(size, models.byte_tokenizer(), torch.device("meta"))
    assert not model.config.tie_word_embeddings and model.config.vocab_size == 152064
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == total / 1e9


def test_memory_per_rank_is_the_sharded_16_bytes_and_the_whole_bf16_weights(capsys):
    """On the tiny shape, whose parameters the loaded tiny model counts: 16 B per parameter over N
    ranks, and 2 B per parameter on every rank."""
    P = sum(p.numel() for p in models.load_model("tiny")[0].parameters())
    table = bench.bench_memory(sizes=("tiny",), ranks=(1, 4))
    assert table["tiny"][1] == pytest.approx(18 * P / 1e9) and table["tiny"][4] == pytest.approx((4 + 2) * P / 1e9)
    assert "tiny" in capsys.readouterr().out
