"""logprobs.grouped_sequence_logprobs_and_entropy: G responses scored on one prompt pass give the
values and the parameter gradients of the unshared pass (sequence_logprobs_and_entropy on each
prompt + response row), on tiny Qwen2 and Llama models in float64 (their RMSNorms still compute in
float32, which bounds how closely gradients summed in another order agree)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from logprobs import grouped_sequence_logprobs_and_entropy, sequence_logprobs_and_entropy
from models import load_model

torch.set_num_threads(1)


@pytest.fixture(params=["qwen2", "llama"])
def model(request, tmp_path, monkeypatch):
    if request.param == "qwen2":
        monkeypatch.setenv("AZR_CACHE", str(tmp_path / "cache"))
        return load_model("tiny", device="cpu", dtype=torch.float64)[0].train()
    with torch.random.fork_rng():
        torch.manual_seed(2)
        config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
        return LlamaForCausalLM(config).double().train()


def unshared(model, prompt, responses, temperature):
    """sequence_logprobs_and_entropy on the right-padded rows prompt + response, response columns only."""
    P, R = len(prompt), max(map(len, responses))
    ids = torch.zeros(len(responses), P + R, dtype=torch.long)
    attention, response_mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for g, r in enumerate(responses):
        ids[g, :P + len(r)] = torch.tensor(prompt + r)
        attention[g, :P + len(r)] = 1
        response_mask[g, P:P + len(r)] = 1
    logp, entropy = sequence_logprobs_and_entropy(model, ids, attention, response_mask, temperature, chunk_size=7)
    return logp[:, P:], entropy[:, P:]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_grouped_equals_unshared_values_and_gradients(model, temperature):
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (13,), generator=g).tolist()
    responses = [torch.randint(0, vocab, (k,), generator=g).tolist() for k in (9, 1, 5, 9)]
    weights = torch.randn(2, len(responses), 9, generator=g, dtype=torch.float64)
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for score in (unshared, lambda m, p, r, t: grouped_sequence_logprobs_and_entropy(m, p, r, t, chunk_size=7)):
        logp, entropy = score(model, prompt, responses, temperature)
        loss = (weights[0] * logp).sum() + (weights[1] * entropy).sum()
        results.append((logp, entropy, torch.autograd.grad(loss, params)))
    (logp, entropy, grads), (glogp, gentropy, ggrads) = results
    assert glogp.shape == (4, 9) and glogp.dtype == torch.float64
    mask = torch.arange(9) < torch.tensor([9, 1, 5, 9])[:, None]
    assert (glogp[~mask] == 0).all() and (gentropy[~mask] == 0).all() and (glogp[mask] < 0).all()
    assert torch.allclose(glogp, logp, atol=1e-10) and torch.allclose(gentropy, entropy, atol=1e-10)
    # the RMSNorms compute in float32 even in a float64 model, so the G rows' gradients summed into
    # the one prompt pass round at float32 precision (a few 1e-7 of the largest entry)
    for p, a, b in zip(params, grads, ggrads):
        assert torch.allclose(a, b, rtol=0, atol=1e-5 * a.abs().max()), (a - b).abs().max() / a.abs().max()


def test_grouped_refuses_gradient_checkpointing(model):
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    with pytest.raises(AssertionError, match="gradient checkpointing"):
        grouped_sequence_logprobs_and_entropy(model, [1, 2, 3], [[4, 5], [6]])
