"""
Scoring the policy: per-token log-probabilities and full-vocabulary entropy of given responses.

The clipped policy-gradient loss (grpo.py) needs log pi(y_t) of every response token at the
sampling temperature, and the entropy-dynamics analysis of the study (arXiv 2510.27072, section 4)
needs the entropy H = logsumexp(z) - sum_i softmax(z)_i z_i of the same next-token distributions.
Both come from one pass here, computed chunk_size positions at a time in forward and again in
backward (a custom autograd function), so the B x T x V float32 logits tensor, which dominates
memory at V = 151,936 (Qwen2.5), is never materialised, not even in backward
(`python perf.py logprobs` measures the peak memory against the usual full log_softmax).
"""

import functools
import inspect

import torch
from torch.autograd.function import once_differentiable
from transformers import DynamicCache

def _chunk_logits(hidden, weight, temperature):
    """z = hidden @ W^T / T for one chunk, in float32 (float64 stays float64, for tests).

    The matmul runs in the model's dtype and is upcast after, the same way HF generate gets the
    logits it samples from (bf16 lm_head, then .float(), then / T), so the loss scores the
    distribution it sampled from."""
    acc_dtype = torch.promote_types(hidden.dtype, torch.float32)
    return (hidden @ weight.T).to(acc_dtype) / temperature


def under_forwards_autocast(backward):
    """A custom backward run under the autocast state its forward saved in ctx.autocast, as
    torch.amp.custom_bwd does for one device type fixed in advance; here the device is the
    forward's own. Outside it, autograd runs a custom backward with autocast off."""
    @functools.wraps(backward)
    def run(ctx, *grads):
        device, enabled, dtype = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            return backward(ctx, *grads)
    return run


class _ChunkedLogpEntropy(torch.autograd.Function):
    """Forward and backward of token_logprobs_and_entropy; saves only hidden, weight and targets and
    recomputes each chunk's logits in backward, so both passes hold at most chunk_size x V logits."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk_size):
        """(logp, entropy), each (N,), of z = _chunk_logits(hidden, weight, temperature), chunk_size
        rows of hidden at a time (no N x V tensor): logp_n = z_n[targets_n] - logsumexp(z_n) and
        entropy_n = logsumexp(z_n) - sum_i softmax(z_n)_i z_n,i. Saves hidden, weight and targets
        (ctx.save_for_backward) and ctx.temperature, ctx.chunk_size, which backward reads."""
        logps, entropies = [], []
        for s in range(0, hidden.shape[0], chunk_size):
            z = _chunk_logits(hidden[s:s + chunk_size], weight, temperature)
            lse = z.logsumexp(-1)
            logps.append(z.gather(-1, targets[s:s + chunk_size, None]).squeeze(-1) - lse)
            # H = logsumexp(z) - sum_i softmax(z)_i z_i
            entropies.append(lse - (z.softmax(-1) * z).sum(-1))
        ctx.save_for_backward(hidden, weight, targets)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        device = hidden.device.type  # backward runs under the autocast forward ran under (torch.amp.custom_bwd's rule)
        ctx.autocast = device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
        return torch.cat(logps), torch.cat(entropies)

    @staticmethod
    @under_forwards_autocast
    @once_differentiable
    def backward(ctx, grad_logp, grad_entropy):
        """The gradients of the loss for hidden and weight, given grad_logp and grad_entropy (N,),
        each chunk's logits recomputed from what forward saved. With p = softmax(z), H the entropy:
            d logp_n / dz_n,i = 1[i = targets_n] - p_i,   dH_n / dz_n,i = -p_i (log p_i + H_n),
            z = hidden @ weight^T / T,  so  grad_hidden = grad_z @ weight / T,  grad_weight = grad_z^T @ hidden / T.
        grad_hidden in hidden's dtype; grad_weight summed over all positions in float32 (or wider)
        and returned in weight's dtype; None for an input that needs no gradient
        (ctx.needs_input_grad). Returns (grad_hidden, grad_weight, None, None, None).
        It runs under the autocast the forward ran under (under_forwards_autocast), so each chunk's
        logits are recomputed as forward computed them and, under bf16 autocast, the gradient is
        that of the bf16 forward, as autograd would give it (a float32 backward would differ)."""
        hidden, weight, targets = ctx.saved_tensors
        T, c = ctx.temperature, ctx.chunk_size
        acc_dtype = torch.promote_types(hidden.dtype, torch.float32)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        # the weight gradient sums over every position: accumulate it in float32, not bf16
        grad_weight = torch.zeros_like(weight, dtype=acc_dtype) if ctx.needs_input_grad[1] else None
        for s in range(0, hidden.shape[0], c):
            h = hidden[s:s + c]
            logq = _chunk_logits(h, weight, T).log_softmax(-1)
            p = logq.exp()
            H = -(p * logq).sum(-1, keepdim=True)
            g_logp, g_ent = grad_logp[s:s + c, None], grad_entropy[s:s + c, None]
            # d logp_y / dz_i = 1[i = y] - p_i ;  dH / dz_i = -p_i (log p_i + H) ;  dz/dx = 1/T
            grad_z = -p * (g_logp + g_ent * (logq + H))
            grad_z.scatter_add_(-1, targets[s:s + c, None], g_logp)
            grad_z /= T
            if grad_hidden is not None:
                grad_hidden[s:s + c] = grad_z.to(hidden.dtype) @ weight
            if grad_weight is not None:
                grad_weight += grad_z.T @ h.to(acc_dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def token_logprobs_and_entropy(hidden, lm_head_weight, targets, temperature=1.0, chunk_size=128):
    """Per-position log p(target) and entropy under softmax(z), z = hidden @ W^T / T.

    hidden (N, H): final hidden states at the positions that predict response tokens;
    lm_head_weight (V, H); targets (N,) token ids. Returns (logp, entropy), each (N,) in float32
    (float64 for float64 inputs):
        logp_n    = z_n[y_n] - logsumexp(z_n)
        entropy_n = logsumexp(z_n) - sum_i softmax(z_n)_i z_n,i
    Computed chunk_size positions at a time in forward and again in backward, so no N x V tensor
    exists; gradients reach hidden and lm_head_weight in their own dtype."""
    return _ChunkedLogpEntropy.apply(hidden, lm_head_weight, targets, temperature, chunk_size)


def sequence_logprobs_and_entropy(model, input_ids, attention_mask, response_mask, temperature=1.0,
                                  chunk_size=128, position_ids=None):
    """logp[b, t] = log pi(input_ids[b, t] | input_ids[b, :t]) at temperature T, and the entropy
    of that next-token distribution, for every t with response_mask[b, t]; 0 elsewhere. (B, T) each.

    Runs the decoder without its lm_head (hidden states only), takes the states at t - 1 that predict
    each response token t, and hands them to token_logprobs_and_entropy with the lm_head weight
    (tied to the input embeddings in small models, which is fine: gradients reach both uses).
    response_mask comes from the caller and is never derived from pad ids: where pad id == eos id
    the final EOS is a response token and must stay in the loss (the GRPO loss must score the distribution it sampled from).
    position_ids (B, T), optional: the positions the decoder numbers tokens with; default 0..T-1 in
    every row, exact for right-padded rows. For left-padded rows (sampling.sample's layout) pass
    sampling.position_ids(attention_mask), the positions the sampler used."""
    assert model.get_output_embeddings().bias is None, "logits are hidden @ W^T; an lm_head bias is not handled"
    response_mask = response_mask.bool()
    assert not response_mask[:, 0].any(), "a response token needs a preceding token to predict it"
    # default position ids (0..T-1) are exact for the right-padded rows the update builds; left
    # padding would shift a row's positions uniformly, which RoPE sees only as rounding
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 use_cache=False).last_hidden_state
    predicts = response_mask[:, 1:]
    logp, entropy = token_logprobs_and_entropy(hidden[:, :-1][predicts], model.get_output_embeddings().weight,
                                               input_ids[:, 1:][predicts], temperature, chunk_size)
    zeros = torch.zeros(input_ids.shape, dtype=logp.dtype, device=logp.device)
    return zeros.masked_scatter(response_mask, logp), zeros.masked_scatter(response_mask, entropy)


def grouped_sequence_logprobs_and_entropy(model, prompt_ids, response_ids, temperature=1.0, chunk_size=128):
    """The log-probs and entropies of G responses to one prompt, with the prompt forwarded once.

    prompt_ids: a sequence of P >= 1 token ids (list or 1-D tensor), no padding.
    response_ids: a list of G sequences of token ids, each of R_g >= 1 tokens (the eos included
      where the response has one).
    Returns (logp, entropy), each (G, R) with R = max R_g, float32 (float64 for a float64 model):
      logp[g, t] = log pi(response_g[t] | prompt, response_g[:t]) at temperature T, and the entropy
      of that next-token distribution, for t < R_g; 0 for t >= R_g. These are the values
      sequence_logprobs_and_entropy gives at the response positions P..P+R_g-1 of the rows
      prompt + response_g right-padded, up to rounding (the attention runs over other shapes).
    Gradients reach the model's parameters through the response pass and through the one prompt
    pass, which autograd sums over the G rows, as the G separate passes would.

    The prompt runs once through the decoder (use_cache=True); its KV cache is copied to the G rows
    and the right-padded responses run on top of it, at positions P..P+R-1 (padding comes after
    each response's tokens, so causal attention keeps it out of the real ones). The state that
    predicts the first response token is the prompt's last, shared by all G rows. Memory: the
    prompt's activations once plus G copies of its keys and values, instead of G prompt passes.
    Needs gradient checkpointing off (transformers turns use_cache off under it)."""
    assert model.get_output_embeddings().bias is None, "logits are hidden @ W^T; an lm_head bias is not handled"
    device = model.get_output_embeddings().weight.device
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long, device=device)[None]
    lengths = torch.tensor([len(r) for r in response_ids], device=device)
    assert prompt.shape[1] >= 1 and len(response_ids) >= 1 and int(lengths.min()) >= 1
    G, P, R = len(response_ids), prompt.shape[1], int(lengths.max())
    responses = torch.zeros((G, R), dtype=torch.long, device=device)
    for g, r in enumerate(response_ids):
        responses[g, :len(r)] = torch.as_tensor(r, dtype=torch.long, device=device)
    mask = torch.arange(R, device=device) < lengths[:, None]
    decoder = model.get_decoder()
    # the cache goes in under the keyword this transformers version names it (`cache`, formerly `past_key_values`)
    keyword = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    cache = DynamicCache()
    prompt_hidden = decoder(input_ids=prompt, use_cache=True, **{keyword: cache}).last_hidden_state  # (1, P, H)
    assert cache.get_seq_length() == P, "the prompt's keys and values were not cached: gradient checkpointing on?"
    cache.batch_repeat_interleave(G)  # differentiable: the gradients of the G copies add up in the prompt pass
    positions = torch.arange(P, P + R, device=device).expand(G, R)
    response_hidden = decoder(input_ids=responses, position_ids=positions, use_cache=True,
                              **{keyword: cache}).last_hidden_state  # (G, R, H)
    # the state at each position predicts the next token: the prompt's last state predicts token 0
    hidden = torch.cat([prompt_hidden[:, -1:].expand(G, 1, -1), response_hidden[:, :-1]], 1)
    logp, entropy = token_logprobs_and_entropy(hidden[mask], model.get_output_embeddings().weight, responses[mask],
                                               temperature, chunk_size)
    zeros = torch.zeros((G, R), dtype=logp.dtype, device=device)
    return zeros.masked_scatter(mask, logp), zeros.masked_scatter(mask, entropy)
