"""Tests of the GRPO mechanism: chunked log-probs and entropy (logprobs.py), advantages, the clipped loss.
Each formula is checked against an independent computation (full log_softmax,
torch.distributions.Categorical, the model's own logits, hand-written numbers, python loops)."""

import math
import os
import statistics
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grpo import LossBatch, advantages, aggregate, policy_loss
from logprobs import sequence_logprobs_and_entropy, token_logprobs_and_entropy

torch.set_num_threads(1)


# -----------------------------------------------------------------------------
# token_logprobs_and_entropy


def naive_logp_entropy(hidden, weight, targets, temperature):
    z = hidden @ weight.T / temperature
    logp = z.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    return logp, torch.distributions.Categorical(logits=z).entropy()


def random_problem(N, H, V, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g, dtype=dtype)
    weight = torch.randn(V, H, generator=g, dtype=dtype) * 0.5
    targets = torch.randint(0, V, (N,), generator=g)
    return hidden, weight, targets


def values_and_grads(fn, hidden, weight, targets, temperature):
    """Values of fn and the gradients of a random combination of both outputs w.r.t. hidden, weight."""
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logp, entropy = fn(h, w, targets, temperature)
    g = torch.Generator().manual_seed(1)
    c1, c2 = torch.randn(2, len(targets), generator=g, dtype=logp.dtype)
    (c1 * logp + c2 * entropy).sum().backward()
    return logp.detach(), entropy.detach(), h.grad, w.grad


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)], ids=["float64", "float32"])
def test_chunked_logp_entropy_match_naive_values_and_grads(temperature, dtype, tol):
    # N = 37, chunk 8: five chunks, the last one partial
    hidden, weight, targets = random_problem(37, 16, 211, dtype)
    chunked = values_and_grads(lambda h, w, y, T: token_logprobs_and_entropy(h, w, y, T, chunk_size=8),
                               hidden, weight, targets, temperature)
    naive = values_and_grads(naive_logp_entropy, hidden, weight, targets, temperature)
    for name, a, b in zip(["logp", "entropy", "grad hidden", "grad weight"], chunked, naive):
        assert a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_chunked_values_match_naive(dtype):
    """The values alone, no backward: every chunk size (one position, a partial last chunk, all at
    once) and temperature gives the log-probs and entropies of the full softmax of the same logits
    (in bf16: the bf16 logits, upcast), in float32 (float64 for float64 inputs)."""
    hidden, weight, targets = random_problem(37, 16, 211, dtype, seed=4)
    z = (hidden @ weight.T).double()
    for temperature in (1.0, 0.7):
        ref_logp = (z / temperature).log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
        ref_entropy = torch.distributions.Categorical(logits=z / temperature).entropy()
        for chunk_size in (1, 8, 128):
            with torch.no_grad():
                logp, entropy = token_logprobs_and_entropy(hidden, weight, targets, temperature, chunk_size)
            assert logp.shape == entropy.shape == (37,)
            assert logp.dtype == entropy.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
            tol = 1e-10 if dtype == torch.float64 else 1e-4
            torch.testing.assert_close(logp.double(), ref_logp, rtol=tol, atol=tol)
            torch.testing.assert_close(entropy.double(), ref_entropy, rtol=tol, atol=tol)


def test_chunked_single_chunk_equals_many_chunks():
    hidden, weight, targets = random_problem(20, 8, 50, torch.float64)
    one = values_and_grads(lambda h, w, y, T: token_logprobs_and_entropy(h, w, y, T, chunk_size=128),
                           hidden, weight, targets, 1.0)
    many = values_and_grads(lambda h, w, y, T: token_logprobs_and_entropy(h, w, y, T, chunk_size=3),
                            hidden, weight, targets, 1.0)
    for a, b in zip(one, many):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_chunked_bf16_upcasts_logits_and_keeps_grad_dtype():
    hidden, weight, targets = random_problem(24, 16, 100, torch.bfloat16)
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logp, entropy = token_logprobs_and_entropy(h, w, targets, 1.0, chunk_size=7)
    assert logp.dtype == entropy.dtype == torch.float32
    (logp.sum() + entropy.sum()).backward()
    assert h.grad.dtype == w.grad.dtype == torch.bfloat16
    # reference: the same bf16 logits, upcast, then float64 autograd
    z64 = (hidden @ weight.T).double().requires_grad_()
    ref_logp = z64.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    ref_entropy = torch.distributions.Categorical(logits=z64).entropy()
    torch.testing.assert_close(logp.double(), ref_logp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy.double(), ref_entropy, rtol=1e-5, atol=1e-5)
    (ref_logp.sum() + ref_entropy.sum()).backward()
    torch.testing.assert_close(h.grad.double(), z64.grad @ weight.double(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(w.grad.double(), z64.grad.T @ hidden.double(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("chunk_size", [8, 64])
def test_chunked_backward_under_bf16_autocast_is_the_gradient_of_the_bf16_forward(chunk_size):
    """float32 weights under bf16 autocast (--amp): the forward's logits are bf16 matmuls, and the
    backward, run after the autocast block as grpo.update runs it, must give the gradient of that
    forward, as autograd does for the naive computation, not of a float32 recomputation (which
    differs by bf16 rounding: checked too, so the comparison can fail)."""
    hidden, weight, targets = random_problem(40, 16, 211, torch.float32, seed=5)

    def under_autocast(fn):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logp, entropy = fn(h, w)
        g = torch.Generator().manual_seed(1)
        c1, c2 = torch.randn(2, len(targets), generator=g)
        (c1 * logp + c2 * entropy).sum().backward()  # outside the autocast block
        return h.grad, w.grad

    def naive(h, w):
        z = (h @ w.T).float() / 0.7
        logq = z.log_softmax(-1)
        return logq.gather(-1, targets[:, None]).squeeze(-1), -(logq.exp() * logq).sum(-1)
    chunked = under_autocast(lambda h, w: token_logprobs_and_entropy(h, w, targets, 0.7, chunk_size))
    reference = under_autocast(naive)
    float32 = values_and_grads(lambda h, w, y, T: token_logprobs_and_entropy(h, w, y, T, chunk_size),
                               hidden, weight, targets, 0.7)[2:]
    assert (float32[0] - reference[0]).abs().max() > 1e-3  # bf16 rounding is visible in the gradient
    torch.testing.assert_close(chunked[0], reference[0], rtol=0, atol=1e-6)
    # the weight's gradient sums over positions: per chunk in bf16, the chunks added in float32
    tol = 1e-6 if chunk_size >= len(targets) else 8e-2
    torch.testing.assert_close(chunked[1], reference[1], rtol=0, atol=tol)


# -----------------------------------------------------------------------------
# sequence_logprobs_and_entropy on tiny HF models

V, PAD = 100, 2  # pad id == eos id, as in SmolLM2


def tiny_model(arch):
    torch.manual_seed(0)
    kw = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, eos_token_id=PAD, pad_token_id=PAD, tie_word_embeddings=True)
    config = LlamaConfig(**kw) if arch == "llama" else Qwen2Config(**kw)
    model = (LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM)(config)
    return model.float().eval()


def padded_batch():
    """Row 0: prompt(4) + response(5) ending in EOS, then two pads (== EOS) outside the mask.
    Row 1: left-padded prompt(3) + response(6) without EOS, filling the row."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, V, (2, 11), generator=g)
    attn = torch.ones(2, 11, dtype=torch.long)
    resp = torch.zeros(2, 11, dtype=torch.bool)
    ids[0, 8:] = PAD          # EOS at 8, pads at 9 and 10
    attn[0, 9:] = 0
    resp[0, 4:9] = True       # the EOS is a response token
    ids[1, :2] = PAD
    attn[1, :2] = 0
    resp[1, 5:] = True
    return ids, attn, resp


def naive_sequence(model, ids, attn, resp, temperature):
    """From the full model's own logits: position t's token scored by the logits at t - 1."""
    logits = model(input_ids=ids, attention_mask=attn).logits / temperature
    logp = torch.zeros(ids.shape, dtype=logits.dtype)
    entropy = torch.zeros(ids.shape, dtype=logits.dtype)
    for b, t in resp.nonzero().tolist():
        logp[b, t] = logits[b, t - 1].log_softmax(-1)[ids[b, t]]
        entropy[b, t] = torch.distributions.Categorical(logits=logits[b, t - 1]).entropy()
    return logp, entropy


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_sequence_logprobs_match_model_logits(arch):
    model = tiny_model(arch)
    ids, attn, resp = padded_batch()
    with torch.no_grad():
        logp, entropy = sequence_logprobs_and_entropy(model, ids, attn, resp, temperature=0.7, chunk_size=4)
        ref_logp, ref_entropy = naive_sequence(model, ids, attn, resp, 0.7)
    assert logp.shape == entropy.shape == ids.shape
    torch.testing.assert_close(logp, ref_logp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy, rtol=1e-5, atol=1e-5)
    assert (logp[~resp] == 0).all() and (entropy[~resp] == 0).all()
    assert logp[0, 8] < 0  # the EOS (== pad id) is scored


def test_sequence_logprobs_left_padding_matches_unpadded():
    model = tiny_model("qwen2")
    ids, attn, resp = padded_batch()
    with torch.no_grad():
        logp, _ = sequence_logprobs_and_entropy(model, ids, attn, resp)
        alone, _ = sequence_logprobs_and_entropy(model, ids[1:, 2:], attn[1:, 2:], resp[1:, 2:])
    torch.testing.assert_close(logp[1, 2:], alone[0], rtol=1e-5, atol=1e-5)


def test_sequence_logprobs_gradients_match_model_logits():
    ids, attn, resp = padded_batch()
    grads = []
    for fn in (lambda m: sequence_logprobs_and_entropy(m, ids, attn, resp, 0.7, chunk_size=3),
               lambda m: naive_sequence(m, ids, attn, resp, 0.7)):
        model = tiny_model("llama")
        logp, entropy = fn(model)
        (logp.sum() - 0.3 * entropy.sum()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5, msg=name)


# -----------------------------------------------------------------------------
# advantages


def test_advantages_trr_seq_one_baseline_per_role_task():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.5, -1.0, 0.5, 0.5])
    groups = [("solver", "deduction")] * 3 + [("proposer", "abduction")] * 2 + [("solver", "induction")] * 2
    A, zero_var = advantages(rewards, groups, "trr++-seq")
    # group 1: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3)
    s1 = math.sqrt(1 / 3)
    # group 2: mean -0.25, unbiased std sqrt((0.75^2 + 0.75^2) / 1) = 0.75 * sqrt(2)
    s2 = 0.75 * math.sqrt(2)
    expected = torch.tensor([(2 / 3) / s1, (-1 / 3) / s1, (-1 / 3) / s1, 0.75 / s2, -0.75 / s2, 0.0, 0.0])
    torch.testing.assert_close(A, expected)
    assert zero_var.tolist() == [False] * 5 + [True] * 2


def test_advantages_trr_whitens_over_tokens_like_a_per_token_loop():
    """AZR as released: the outcome reward on every response token (gamma = 1 returns), whitened
    over all response tokens of a (role, task type) group; checked against a loop over tokens."""
    rewards = [1.0, -0.5, -0.5, 1.0, -1.0, 0.3, 0.9, 0.9]
    lengths = [3, 10, 1, 5, 7, 2, 4, 4]
    groups = ["a"] * 5 + ["b"] * 3
    A, zero_var = advantages(torch.tensor(rewards, dtype=torch.float64), groups, "trr++", lengths=lengths)
    expected = []
    for g in ("a", "b"):
        tokens = [r for r, n, h in zip(rewards, lengths, groups) if h == g for _ in range(n)]
        mu, var = statistics.mean(tokens), statistics.variance(tokens)  # Bessel over the token count
        expected += [(r - mu) / math.sqrt(var + 1e-8) for r, h in zip(rewards, groups) if h == g]
    torch.testing.assert_close(A, torch.tensor(expected, dtype=torch.float64))
    # a long wrong answer pulls the baseline more than a short one: not the per-sequence mean
    seq, _ = advantages(torch.tensor(rewards, dtype=torch.float64), groups, "trr++-seq")
    assert not torch.allclose(A, seq)
    assert not zero_var.any()
    with pytest.raises(ValueError):
        advantages(torch.tensor(rewards), groups, "trr++")


def test_advantages_grpo_per_prompt_with_std():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    prompts = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    A, zero_var = advantages(rewards, prompts, "grpo")
    # independent loop with the statistics module: stdev is the n - 1 sample std
    expected = []
    for i, r in enumerate(rewards.tolist()):
        group = [x for x, p in zip(rewards.tolist(), prompts.tolist()) if p == prompts[i]]
        expected.append(0.0 if len(set(group)) == 1 else (r - statistics.mean(group)) / (statistics.stdev(group) + 1e-6))
    torch.testing.assert_close(A, torch.tensor(expected))
    # prompt 0: mean 0.75, std 0.5 -> +0.5 and -1.5
    torch.testing.assert_close(A[:4], torch.tensor([0.5, -1.5, 0.5, 0.5]), rtol=1e-5, atol=1e-5)
    assert zero_var.tolist() == [False] * 4 + [True] * 8
    assert (A[4:] == 0).all()


def test_advantages_drgrpo_per_prompt_no_std():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, -0.5, -1.0, 1.0, -0.5])
    A, zero_var = advantages(rewards, ["a"] * 4 + ["b"] * 4, "drgrpo")
    torch.testing.assert_close(A, torch.tensor([0.25, -0.75, 0.25, 0.25, -0.25, -0.75, 1.25, -0.25]))
    assert not zero_var.any()


def test_advantages_zero_variance_and_singleton_groups_are_exactly_zero():
    # 0.1 * 3 / 3 != 0.1 in floating point: the flag, not r - mean, must make these zero
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 1.0, 0.0])
    for mode in ("trr++", "trr++-seq", "grpo", "drgrpo"):
        A, zero_var = advantages(rewards, [0, 0, 0, 1, 2, 2], mode, lengths=[3, 1, 4, 1, 5, 9])
        assert zero_var.tolist() == [True, True, True, True, False, False]
        assert (A[:4] == 0).all() and not A[:4].isnan().any()


# -----------------------------------------------------------------------------
# aggregate and policy_loss


def loop_loss(logp, old_logp, adv, mask, clip_low, clip_high, aggregation, norm_length, kl_coef, ref_logp):
    """Per-token python loop, written from the formulas (PPO eq. 7, DAPO, Dr. GRPO)."""
    B, T = len(mask), len(mask[0])
    seq_terms, total, count = [], 0.0, 0
    for b in range(B):
        s, n = 0.0, 0
        for t in range(T):
            if not mask[b][t]:
                continue
            rho = math.exp(logp[b][t] - old_logp[b][t])
            a = adv[b]
            l = -min(rho * a, min(max(rho, 1 - clip_low), 1 + clip_high) * a)
            if ref_logp is not None:
                d = ref_logp[b][t] - logp[b][t]
                l += kl_coef * (math.exp(d) - d - 1)
            s, n = s + l, n + 1
        seq_terms.append((s, n))
        total, count = total + s, count + n
    if aggregation == "token-mean":
        return total / count
    if aggregation == "seq-mean-token-mean":
        return sum(s / n for s, n in seq_terms) / B
    return sum(s / norm_length for s, n in seq_terms) / B


def loss_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 9
    old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    logp = old + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3  # ratios both inside and outside the band
    ref = old + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.2
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5], dtype=torch.float64)
    lengths = torch.tensor([9, 3, 6, 1])
    mask = torch.arange(T)[None] < lengths[:, None]
    return logp, old, adv, mask, ref


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-sum-norm"])
@pytest.mark.parametrize("clip_high,kl_coef", [(0.2, 0.0), (0.28, 0.1)])
def test_policy_loss_matches_loop(aggregation, clip_high, kl_coef):
    logp, old, adv, mask, ref = loss_batch()
    ref_logp = ref if kl_coef else None
    loss, stats = policy_loss(LossBatch(logp, old, adv, mask, ref_logp), 0.2, clip_high, aggregation, 16, kl_coef)
    expected = loop_loss(logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, clip_high, aggregation, 16,
                         kl_coef, ref.tolist() if kl_coef else None)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    sides = {"clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean"}
    assert set(stats) == (sides | {"kl"} if kl_coef else sides)
    ratios = [(math.exp(logp[b, t] - old[b, t]), adv[b].item()) for b, t in mask.nonzero().tolist()]
    assert stats["ratio_mean"] == pytest.approx(sum(r for r, _ in ratios) / len(ratios), rel=1e-10)
    clipped = [(a > 0 and r > 1 + clip_high) or (a < 0 and r < 0.8) for r, a in ratios]
    assert 0 < sum(clipped) < len(ratios)  # the batch exercises both sides of the band
    assert stats["clip_frac"] == pytest.approx(sum(clipped) / len(ratios))
    low = [a < 0 and r < 0.8 for r, a in ratios]
    assert 0 < sum(low) < sum(clipped)  # both sides clip in this batch
    assert stats["clip_frac_low"] == pytest.approx(sum(low) / len(ratios))
    assert stats["clip_frac_high"] == pytest.approx((sum(clipped) - sum(low)) / len(ratios))


def test_policy_loss_ignores_garbage_outside_mask():
    # padding positions may hold anything; exp(1e4) overflows, and inf * 0 would turn the gradient into nan
    logp, old, adv, mask, ref = loss_batch()
    clean, _ = policy_loss(LossBatch(logp, old, adv, mask, ref_logp=ref), kl_coef=0.1)
    logp = logp.masked_fill(~mask, 1e4).requires_grad_()
    loss, _ = policy_loss(LossBatch(logp, old, adv, mask, ref_logp=ref), kl_coef=0.1)
    loss.backward()
    assert loss.item() == clean.item()
    assert logp.grad.isfinite().all()


def test_aggregate_modes_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert aggregate(per_token, mask, "token-mean").item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert aggregate(per_token, mask, "seq-mean-token-mean").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(per_token, mask, "seq-sum-norm", norm_length=8).item() == pytest.approx((6 / 8 + 4 / 8) / 2)


def test_aggregate_matches_a_loop():
    """Each mode against a loop over rows and tokens, on a batch with an empty row (it counts 0 in
    the sequence mean) and large values outside the mask (they count nowhere)."""
    g = torch.Generator().manual_seed(7)
    per_token = torch.randn(5, 8, generator=g, dtype=torch.float64)
    lengths = [8, 3, 0, 5, 1]
    mask = torch.arange(8)[None] < torch.tensor(lengths)[:, None]
    per_token = per_token.masked_fill(~mask, 1e6)
    rows = [[per_token[b, t].item() for t in range(n)] for b, n in enumerate(lengths)]
    tokens = [x for row in rows for x in row]
    expected = {"token-mean": sum(tokens) / len(tokens),
                "seq-mean-token-mean": sum(sum(row) / len(row) if row else 0.0 for row in rows) / len(rows),
                "seq-sum-norm": sum(sum(row) / 10 for row in rows) / len(rows)}
    for mode, value in expected.items():
        assert aggregate(per_token, mask, mode, norm_length=10).item() == pytest.approx(value, rel=1e-12), mode
    with pytest.raises(ValueError):
        aggregate(per_token, mask, "sum")


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-sum-norm"])
def test_policy_loss_entropy_bonus_matches_a_loop(aggregation):
    """AZR's entropy bonus: the loss of the loop minus entropy_coef times the entropy aggregated the
    same way; its gradient reaches the entropy, and stats["entropy"] is the token mean."""
    logp, old, adv, mask, _ = loss_batch(seed=4)
    g = torch.Generator().manual_seed(8)
    entropy = (torch.rand(logp.shape, generator=g, dtype=torch.float64) * 3).masked_fill(~mask, float("nan"))
    entropy.requires_grad_()
    loss, stats = policy_loss(LossBatch(logp, old, adv, mask, entropy=entropy), 0.2, 0.28, aggregation, 16,
                                entropy_coef=0.3)
    plain = loop_loss(logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2, 0.28, aggregation, 16, 0.0, None)
    rows = [[entropy[b, t].item() for t in range(mask.shape[1]) if mask[b, t]] for b in range(len(mask))]
    tokens = [h for row in rows for h in row]
    bonus = {"token-mean": sum(tokens) / len(tokens), "seq-mean-token-mean": sum(sum(r) / len(r) for r in rows) / len(rows),
             "seq-sum-norm": sum(sum(r) / 16 for r in rows) / len(rows)}[aggregation]
    assert loss.item() == pytest.approx(plain - 0.3 * bonus, rel=1e-10)
    assert stats["entropy"] == pytest.approx(sum(tokens) / len(tokens), rel=1e-12)
    loss.backward()
    assert (entropy.grad[mask] < 0).all() and (entropy.grad[~mask] == 0).all()
    if aggregation == "token-mean":
        torch.testing.assert_close(entropy.grad[mask], torch.full((len(tokens),), -0.3 / len(tokens), dtype=torch.float64))


def test_policy_loss_clipping_removes_gradient_outside_band():
    # one token per case: (A > 0, ratio above the band), (A < 0, ratio below): clipped, no gradient;
    # (A > 0, ratio below), (A < 0, ratio above): the min keeps the unclipped term, gradient A * rho
    old = torch.zeros(4, 1, dtype=torch.float64)
    log_ratio = torch.tensor([[math.log(1.5)], [math.log(0.5)], [math.log(0.5)], [math.log(1.5)]], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    logp = log_ratio.clone().requires_grad_()
    mask = torch.ones(4, 1, dtype=torch.bool)
    loss, stats = policy_loss(LossBatch(logp, old, adv, mask), aggregation="seq-sum-norm", norm_length=1)
    loss.backward()
    # d/dlogp of -rho A / B (B = 4) = -rho A / 4
    torch.testing.assert_close(logp.grad[:, 0], torch.tensor([0.0, 0.0, -0.5 / 4, 1.5 / 4], dtype=torch.float64))
    assert stats["clip_frac"] == 0.5
    assert stats["ratio_mean"] == pytest.approx(1.0)


def test_policy_loss_asymmetric_clip_band():
    # DAPO clip-higher: with clip_high 0.28 a ratio of 1.25 and A > 0 still gets gradient, with 0.2 it does not
    logp = torch.tensor([[math.log(1.25)]], requires_grad=True)
    zero, adv, mask = torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1, dtype=torch.bool)
    loss, stats = policy_loss(LossBatch(logp, zero, adv, mask), clip_high=0.2)
    loss.backward()
    assert logp.grad.item() == 0.0 and stats["clip_frac"] == 1.0
    logp.grad = None
    loss, stats = policy_loss(LossBatch(logp, zero, adv, mask), clip_high=0.28)
    loss.backward()
    assert logp.grad.item() == pytest.approx(-1.25) and stats["clip_frac"] == 0.0


def test_policy_loss_k3_kl_formula_and_nonnegative():
    logp, old, adv, mask, ref = loss_batch(seed=5)
    _, stats = policy_loss(LossBatch(logp, old, adv, mask, ref_logp=ref), kl_coef=0.0)
    d = (ref - logp)[mask]
    assert stats["kl"] == pytest.approx((d.exp() - d - 1).mean().item(), rel=1e-12)
    # k3 >= 0 everywhere, 0 only where ref == logp
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)[:, None]
    for ref_value in (x, torch.zeros_like(x)):
        _, s = policy_loss(LossBatch(torch.zeros_like(x), torch.zeros_like(x), torch.zeros(101),
                                     torch.ones_like(x, dtype=torch.bool), ref_logp=ref_value))
        assert s["kl"] >= 0
    assert s["kl"] == 0.0


def test_policy_loss_gradient_only_through_logp():
    logp, old, adv, mask, ref = loss_batch(seed=2)
    logp, old, adv, ref = (t.clone().requires_grad_() for t in (logp, old, adv, ref))
    loss, _ = policy_loss(LossBatch(logp, old, adv, mask, ref_logp=ref), kl_coef=0.1)
    loss.backward()
    assert logp.grad is not None and logp.grad[mask].abs().sum() > 0
    assert (logp.grad[~mask] == 0).all()
    assert old.grad is None and adv.grad is None and ref.grad is None


def test_entropy_bonus_gradient_matches_autograd_of_the_full_softmax():
    """The loss with AZR's entropy bonus, its entropy from the chunked pass, has the gradient of the
    same loss built from the full softmax with autograd (torch.distributions.Categorical)."""
    hidden, weight, targets = random_problem(23, 8, 97, torch.float64, seed=3)
    B, T = 1, 23
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :3] = False
    A = torch.tensor([0.7], dtype=torch.float64)
    grads = []
    for chunked in (True, False):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        if chunked:
            logp, H = token_logprobs_and_entropy(h, w, targets, 0.8, chunk_size=5)
        else:
            z = h @ w.T / 0.8
            logp = z.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
            H = torch.distributions.Categorical(logits=z).entropy()
        loss, stats = policy_loss(LossBatch(logp[None], logp.detach()[None] - 0.1, A, mask, entropy=H[None]),
                                    entropy_coef=0.3)
        loss.backward()
        grads.append((loss.detach(), h.grad, w.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    # and the bonus is there: without it the gradient differs
    h = hidden.clone().requires_grad_()
    logp, H = token_logprobs_and_entropy(h, weight, targets, 0.8, chunk_size=5)
    policy_loss(LossBatch(logp[None], logp.detach()[None] - 0.1, A, mask))[0].backward()
    assert not torch.allclose(h.grad, grads[0][1])
