"""sampling.py's decoding loop (engine "loop"): it draws each token with the log-prob the loss
computes for it, it is greedy generate at a temperature near 0, finished rows leave the batch (the
loop's mechanics spied on through the model's forward, engine "eager"),
freed slots are refilled, and a prompt's samples share one prefill. Spies on the model's forward
calls count rows and prefills; tiny models built from config stand for Llama, Qwen2 and GPT-2
(absolute position embeddings, where wrong positions would change the logits outright)."""

import functools

import pytest
import torch
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import models
import sampling
from logprobs import sequence_logprobs_and_entropy
from models import load_model, stop_ids
from sampling import draw, left_pad, position_ids, sample
from test_models import boost_eos, check_layout, prompts_of

torch.set_num_threads(1)


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """The built-in tiny Qwen2, built in a fresh cache without the network."""
    monkeypatch.setenv("AZR_CACHE", str(tmp_path / "cache"))
    return load_model("tiny", device="cpu")


def from_config(kind):
    """A small random-init model of another architecture, with the byte tokenizer and its eos."""
    tokenizer = models.byte_tokenizer()
    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        if kind == "llama":
            model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                 **ids))
        else:  # GPT-2: learned absolute position embeddings
            model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2,
                                               n_positions=256, **ids))
    model.generation_config.eos_token_id = [tokenizer.eos_token_id]
    return model.eval(), tokenizer


def spy_forward(model, monkeypatch):
    """Record every forward call as (prefill?, input_ids, attention_mask, position_ids, cache columns)."""
    calls, forward = [], model.forward

    @functools.wraps(forward)
    def spy(*args, **kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        columns = cache.get_seq_length()
        calls.append((columns == 0, kwargs["input_ids"], kwargs["attention_mask"], kwargs["position_ids"], columns))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return calls


# -----------------------------------------------------------------------------
# the log-probs it draws with are the ones the loss computes


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_equal_the_loss_logprobs(tiny, arch, temperature):
    """logprobs.sequence_logprobs_and_entropy on the returned layout, with position_ids(attention_mask),
    gives every response token the log-prob it was drawn with: rows that ended early, rows cut at
    max_new_tokens, left-padded prompts, rows admitted to freed slots (batch_size 5 < 8 rows).
    Rows end early on 12 extra stop ids (a logit hook would not reach the loss, which applies the
    lm_head weight itself)."""
    model, tokenizer = tiny if arch == "qwen2" else from_config("gpt2")
    model.generation_config.eos_token_id = [tokenizer.eos_token_id] + list(range(12))
    stops = stop_ids(model, tokenizer)
    prompts = prompts_of(tokenizer)
    out = sample(model, tokenizer, prompts, n=4, max_new_tokens=12, temperature=temperature, seed=0, batch_size=5,
                 return_logprobs=True)
    ids, attn, resp = out["input_ids"], out["attention_mask"], out["response_mask"]
    last = (resp.cumsum(1) == 0).sum(1) + resp.sum(1) - 1  # each row's last response column
    ends = ids.gather(1, last[:, None]).squeeze(1)
    assert torch.equal(out["truncated"], ~torch.isin(ends, torch.tensor(stops)))
    assert out["truncated"].any() and not out["truncated"].all() and not attn[:, 0].all()
    assert out["logprobs"].dtype == torch.float32 and out["logprobs"].shape == ids.shape
    assert (out["logprobs"][resp == 0] == 0).all() and (out["logprobs"][resp == 1] < 0).all()
    with torch.no_grad():
        logp, _ = sequence_logprobs_and_entropy(model, ids, attn, resp, temperature, position_ids=position_ids(attn))
    assert torch.allclose(logp, out["logprobs"], atol=2e-5), (logp - out["logprobs"]).abs().max()
    if arch == "gpt2":  # absolute positions: without position_ids the left-padded rows score differently
        with torch.no_grad():
            shifted, _ = sequence_logprobs_and_entropy(model, ids, attn, resp, temperature)
        assert (shifted - out["logprobs"]).abs().max() > 1e-2


def test_logprobs_hold_over_many_refills_and_compactions(tiny, monkeypatch):
    """Prompts of different lengths through 3 slots: rows arrive beside rows of other widths, and
    the view of the cache moves within its room (RoomyLayer.compact) both ways: right, to make
    space for a wider prompt, and back to the left end when it reaches the right end. Every token
    still has the log-prob the loss gives it."""
    model, tokenizer = tiny
    model.generation_config.eos_token_id = [tokenizer.eos_token_id] + list(range(20))
    moves, compact = [], sampling.RoomyLayer.compact

    def recorded(layer, width):
        moves.append((layer.rows, layer.end, width, layer.rooms[0].shape[2]))
        compact(layer, width)

    monkeypatch.setattr(sampling.RoomyLayer, "compact", recorded)
    prompts = ["x", "a longer prompt, with more words in it", "mid-sized one", "ab"] * 3
    out = sample(model, tokenizer, prompts, n=2, max_new_tokens=10, seed=0, batch_size=3, return_logprobs=True)
    ids, attn, resp = out["input_ids"], out["attention_mask"], out["response_mask"]
    assert out["truncated"].any() and not out["truncated"].all()
    assert out["prompt_index"].tolist() == [i for i in range(12) for _ in range(2)]
    assert any(end < width for _, end, width, _ in moves)  # moved right, for a wider prompt
    assert any(end + 10 > columns for _, end, _, columns in moves)  # moved back from the right end
    with torch.no_grad():
        logp, _ = sequence_logprobs_and_entropy(model, ids, attn, resp, position_ids=position_ids(attn))
    assert torch.allclose(logp, out["logprobs"], atol=2e-5), (logp - out["logprobs"]).abs().max()


# -----------------------------------------------------------------------------
# near temperature 0 it is greedy generate


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_near_zero_temperature_is_greedy_generate(tiny, arch):
    model, tokenizer = tiny if arch == "qwen2" else from_config("llama")
    # wider logit gaps, so that no near-tie is decided by rounding differences between batch shapes
    model.lm_head.register_forward_hook(lambda module, inputs, logits: 10.0 * logits)
    prompts = prompts_of(tokenizer) + ["x", "def f(a):\n    return"]
    out = sample(model, tokenizer, prompts, n=2, max_new_tokens=20, temperature=1e-4, seed=0, batch_size=6)
    stops = stop_ids(model, tokenizer)
    ids, mask = left_pad(tokenizer(prompts, add_special_tokens=False).input_ids, tokenizer.pad_token_id)
    config = GenerationConfig(do_sample=False, max_new_tokens=20, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
    greedy = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.shape[1]:]
    P = ids.shape[1]
    for row in range(len(out["texts"])):
        expected = greedy[out["prompt_index"][row]].tolist()
        end = next((t + 1 for t, token in enumerate(expected) if token in stops), len(expected))
        got = out["input_ids"][row, P:][out["response_mask"][row, P:].bool()].tolist()
        assert got == expected[:end], row


# -----------------------------------------------------------------------------
# finished rows leave the batch; freed slots are refilled; one prefill per prompt


def test_finished_rows_leave_the_batch(tiny, monkeypatch):
    """With every row in one batch, decode step s runs exactly the rows whose response is longer
    than s tokens, and its cache holds no column that every one of those rows masks out."""
    model, tokenizer = tiny
    boost_eos(model, tokenizer, bonus=3.5)
    calls = spy_forward(model, monkeypatch)
    out = sample(model, tokenizer, prompts_of(tokenizer), n=6, max_new_tokens=16, seed=0, batch_size=12, engine="eager")
    lengths = out["response_mask"].sum(1)
    decodes = [call for call in calls if not call[0]]
    assert len(calls) - len(decodes) == 1 and len(decodes) == int(lengths.max()) - 1
    sizes = [len(call[1]) for call in decodes]
    assert sizes == [int((lengths > s).sum()) for s in range(1, int(lengths.max()))]
    assert sizes[-1] < sizes[0] and len(set(sizes)) > 2  # the batch shrank, step by step
    for _, ids, mask, positions, columns in decodes:
        assert ids.shape[1] == 1 and columns == mask.shape[1] - 1 == int(mask[:, :-1].sum(1).max())
        assert torch.equal(positions, mask.sum(1, keepdim=True) - 1)  # each row's count of real tokens before it


def test_loop_positions_are_position_ids(tiny, monkeypatch):
    """Every real token goes in at position_ids(attention_mask) of its row's final sequence, as in generate."""
    model, tokenizer = tiny
    boost_eos(model, tokenizer, bonus=-100.0)  # no row ends early, so the rows stay together
    calls = spy_forward(model, monkeypatch)
    out = sample(model, tokenizer, prompts_of(tokenizer), n=1, max_new_tokens=5, seed=0, engine="eager")
    positions = torch.cat([call[3] for call in calls], 1)  # the prompts, then 4 tokens (the 5th is not run)
    attn = out["attention_mask"][:, :-1]
    assert positions.shape == attn.shape and not attn.all()  # left padding was there
    assert torch.equal(positions[attn.bool()], position_ids(attn)[attn.bool()])


def test_a_prompt_is_prefilled_once_for_its_samples(tiny, monkeypatch):
    """One prefill row per distinct prompt, and its cache copied to the prompt's n rows: three
    prompts x 4 samples, 8 rows at a time, so the third group waits for the first 4 rows to end and
    is admitted beside the 4 still running."""
    model, tokenizer = tiny
    boost_eos(model, tokenizer, bonus=2.5)
    calls = spy_forward(model, monkeypatch)
    prompts = prompts_of(tokenizer) + ["x"]
    out = sample(model, tokenizer, prompts, n=4, max_new_tokens=16, seed=4, batch_size=8, engine="eager")
    check_layout(out, tokenizer, prompts, n=4, max_new_tokens=16)
    prefills = [(i, call) for i, call in enumerate(calls) if call[0]]
    assert [len(call[1]) for _, call in prefills] == [2, 1]  # 3 prompt rows forwarded for 12 samples
    encoded = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    forwarded = [row[mask.bool()].tolist() for _, call in prefills for row, mask in zip(call[1], call[2])]
    assert forwarded == encoded
    assert max(len(call[1]) for call in calls if not call[0]) <= 8  # batch_size bounds the rows decoded at once
    second = prefills[1][0]
    assert len(calls[second + 1][1]) > 4  # the refill joined rows still running


def test_more_samples_than_batch_size(tiny, monkeypatch):
    """n > batch_size: a prompt's samples go in groups of at most batch_size, one prefill each."""
    model, tokenizer = tiny
    calls = spy_forward(model, monkeypatch)
    out = sample(model, tokenizer, prompts_of(tokenizer), n=5, max_new_tokens=3, seed=0, batch_size=2, engine="eager")
    check_layout(out, tokenizer, prompts_of(tokenizer), n=5, max_new_tokens=3)
    assert sum(len(call[1]) for call in calls if call[0]) == 2 * 3  # ceil(5 / 2) prefills per prompt
    assert max(len(call[1]) for call in calls) <= 2


# -----------------------------------------------------------------------------
# draw: plain softmax(logits / T), cut to top-p only when asked


def test_draw_top_p_keeps_the_smallest_set_of_mass_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().expand(4000, 4)
    torch.manual_seed(0)
    token, logp = draw(logits, 1.0, 0.8)  # {0, 1} holds 0.8: 2 and 3 are cut
    assert set(token.tolist()) == {0, 1}
    assert torch.allclose(logp, (probs[0, token] / 0.8).log())
    token, logp = draw(logits, 1.0, 0.81)  # {0, 1, 2} is the smallest set holding 0.81
    assert set(token.tolist()) == {0, 1, 2}
    token, logp = draw(logits, 0.5, 1.0)  # no cut: softmax(logits / T)
    assert set(token.tolist()) == {0, 1, 2, 3}
    assert torch.allclose(logp, (logits / 0.5).log_softmax(-1)[0, token])


# -----------------------------------------------------------------------------
# ignore_stops: fixed-length responses, for benchmarks


@pytest.mark.parametrize("engine", ["loop", "hf"])
def test_ignore_stops_gives_every_row_max_new_tokens(tiny, engine):
    """With eos made likely, rows end early; with ignore_stops every row runs to max_new_tokens,
    eos tokens drawn on the way kept in the response, and each counts as truncated."""
    model, tokenizer = tiny
    boost_eos(model, tokenizer, bonus=4.0)
    prompts = prompts_of(tokenizer)
    out = sample(model, tokenizer, prompts, n=4, max_new_tokens=12, seed=0, batch_size=5, engine=engine)
    assert (out["response_mask"].sum(1) < 12).any() and not out["truncated"].all()
    out = sample(model, tokenizer, prompts, n=4, max_new_tokens=12, seed=0, batch_size=5, engine=engine,
                 ignore_stops=True)
    assert out["response_mask"].sum(1).tolist() == [12] * 8 and out["truncated"].all()
    P = out["input_ids"].shape[1] - 12
    assert (out["input_ids"][:, P:] == tokenizer.eos_token_id).any()  # drawn, and the row went on


# -----------------------------------------------------------------------------
# memory and numerics of the GPU path, shown on the CPU


def record_layers(monkeypatch):
    """The RoomyLayers the loop builds, as they are built."""
    layers, init = [], sampling.RoomyLayer.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        layers.append(self)
    monkeypatch.setattr(sampling.RoomyLayer, "__init__", recording)
    return layers


def test_the_cache_holds_keys_in_the_dtype_attention_computes_in(tiny, monkeypatch):
    """Under bf16 autocast with float32 weights RoPE gives float32 keys beside bf16 values: the
    cache keeps both in bf16 (a float32 key cache is 1.5x the memory, cast again every step)."""
    model, tokenizer = tiny
    layers = record_layers(monkeypatch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sample(model, tokenizer, ["ab", "abcdef"], 2, 6, seed=0, return_logprobs=True)
    assert layers and all(room.dtype == torch.bfloat16 for layer in layers for room in layer.rooms)
    assert out["logprobs"].isfinite().all()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():  # the premise: RoPE's keys are float32
        cache = sampling.DynamicCache()
        ids = tokenizer(["ab"], return_tensors="pt").input_ids
        sampling.forward(model, cache, input_ids=ids)
    assert cache.layers[0].keys.dtype == torch.float32 and cache.layers[0].values.dtype == torch.bfloat16


def test_prefill_hands_on_the_prompts_cache_without_a_copy_when_each_prompt_has_one_sample(tiny):
    model, tokenizer = tiny
    ids, mask = left_pad(tokenizer(["ab", "abcd"], add_special_tokens=False).input_ids, tokenizer.pad_token_id)
    seen = []
    real = sampling.DynamicCache

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self)
    with torch.no_grad():
        sampling.DynamicCache = Recording
        try:
            one = sampling.prefill(model, ids, mask, [1, 1])
            two = sampling.prefill(model, ids, mask, [2, 1])
        finally:
            sampling.DynamicCache = real
    assert all(k is layer.keys and v is layer.values for (k, v), layer in zip(one[0], seen[0].layers))
    assert len(two[1]) == 3 and two[0][0][0].data_ptr() != seen[1].layers[0].keys.data_ptr()
    torch.testing.assert_close(two[0][0][0][1], two[0][0][0][0])  # prompt 0's two samples share its keys


def test_prefill_takes_at_most_the_token_budget(tiny, monkeypatch):
    """With a budget of 12 prompt tokens, prompts of 5 real tokens are prefilled two at a time (10),
    and the samples are complete: every row, every token."""
    model, tokenizer = tiny
    calls = spy_forward(model, monkeypatch)
    out = sample(model, tokenizer, ["abcde"] * 6, 1, 4, seed=0, batch_size=8, prefill_tokens=12, ignore_stops=True)
    prefills = [c for c in calls if c[0]]
    assert [c[1].numel() for c in prefills] == [10, 10, 10]
    assert out["response_mask"].sum(1).tolist() == [4] * 6
    calls.clear()
    sample(model, tokenizer, ["abcde"] * 6, 1, 4, seed=0, batch_size=8, ignore_stops=True)
    assert [c[1].numel() for c in calls if c[0]] == [30]  # the default budget takes all six at once


def test_nan_in_the_cache_at_a_padding_position_changes_nothing(tiny, monkeypatch):
    """CUDA's attention may leave NaN where a padding query sees no key; planted in the prompt's
    keys and values at a padding column, it must not reach any logit (0 x NaN = NaN): the cache is
    zeroed there on admission, and the samples equal the clean ones."""
    model, tokenizer = tiny
    clean = sample(model, tokenizer, ["a", "abcdef"], 2, 6, seed=0, return_logprobs=True)
    real = sampling.prefill

    def planted(model, prompt_ids, prompt_mask, repeats):
        keys_values, mask, logits = real(model, prompt_ids, prompt_mask, repeats)
        pad = (mask == 0).nonzero()
        assert len(pad)
        for keys, values in keys_values:
            keys[pad[0, 0], :, pad[0, 1]] = float("nan")
            values[pad[0, 0], :, pad[0, 1]] = float("nan")
        return keys_values, mask, logits
    monkeypatch.setattr(sampling, "prefill", planted)
    dirty = sample(model, tokenizer, ["a", "abcdef"], 2, 6, seed=0, return_logprobs=True)
    assert torch.equal(clean["input_ids"], dirty["input_ids"])
    torch.testing.assert_close(clean["logprobs"], dirty["logprobs"])


def test_non_finite_logits_stop_with_the_step_and_the_row(tiny, monkeypatch):
    model, tokenizer = tiny
    real = sampling.forward
    calls = []

    def poisoned(model, cache, **inputs):
        out = real(model, cache, **inputs)
        calls.append(1)
        if len(calls) == 3:  # the prefill, then decode steps: the second decode step's logits of row 1
            out.logits[1, -1, 5] = float("nan")
        return out
    monkeypatch.setattr(sampling, "forward", poisoned)
    with pytest.raises(FloatingPointError, match=r"decode step 3 of output row 1 \(prompt 0\)"):
        sample(model, tokenizer, ["ab"], 2, 6, seed=0, ignore_stops=True, engine="eager")


# -----------------------------------------------------------------------------
# the written-out decode step against the model's own forward


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_the_written_out_step_gives_the_eager_loops_tokens(tiny, arch):
    """engine "loop" (sampling.decode_step) and "eager" (the model's forward at every step) draw the
    same tokens with the same log-probs for the same seed, in float32 on the CPU: left-padded
    prompts of mixed lengths, rows ending and refilled (batch 3 < 8 rows), on Qwen2 (the tiny
    model: q/k/v biases) and Llama. Their logits agree to float32 rounding."""
    model, tokenizer = tiny if arch == "qwen2" else from_config("llama")
    boost_eos(model, tokenizer, bonus=3.0)
    assert sampling.written_out(model)
    prompts = ["a", "abcdefgh", "abc", "hello there"]
    outs = [sample(model, tokenizer, prompts, 2, 24, seed=3, batch_size=3, return_logprobs=True, engine=engine)
            for engine in ("loop", "eager")]
    assert torch.equal(outs[0]["input_ids"], outs[1]["input_ids"])
    torch.testing.assert_close(outs[0]["logprobs"], outs[1]["logprobs"], rtol=1e-5, atol=1e-5)
    assert outs[0]["response_mask"].sum(1).min() < 24  # some rows ended early: the refills ran


def test_the_written_out_step_is_the_forward_under_bf16_autocast(tiny):
    """Under autocast the two steps' logits agree to bf16 rounding, and the residual stream stays
    float32 as in the model's forward."""
    model, tokenizer = tiny
    ids, mask = left_pad(tokenizer(["ab", "abcdef"], add_special_tokens=False).input_ids, tokenizer.pad_token_id)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        new = sampling.prefill(model, ids, mask, [1, 1])
        caches = [sampling.admitted(None, new, 2, ids.shape[1] + 8, 4) for _ in range(2)]
        token, step_mask = torch.tensor([5, 6]), torch.nn.functional.pad(mask, (0, 1), value=1)
        eager = sampling.forward(model, caches[0][0], input_ids=token[:, None], attention_mask=step_mask,
                                 position_ids=position_ids(step_mask)[:, -1:]).logits[:, -1]
        written = sampling.decode_step(model, caches[1][0], token, step_mask)
    assert written.dtype == eager.dtype
    torch.testing.assert_close(written.float(), eager.float(), rtol=0.05, atol=0.05)


def test_models_outside_the_llama_family_decode_through_their_forward():
    model, _ = from_config("gpt2")
    assert not sampling.written_out(model)
    llama, _ = from_config("llama")
    assert sampling.written_out(llama)
    llama.config.mlp_bias = True  # a gated MLP with biases: the written-out step has none
    assert not sampling.written_out(llama)
