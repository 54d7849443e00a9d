"""
Sampling: n completions of each prompt from the plain temperature-scaled softmax.

One model plays both AZR roles (arXiv 2505.03335, section 3); every rollout of proposer and solver,
and every evaluation sample, goes through `sample`. It draws from softmax(logits / T), cut to
top-p only when asked, and nothing else: the GRPO loss (grpo.py) scores responses under exactly
that distribution, so a hidden top-k (Hugging Face `generate` applies top_k = 50 unless told
otherwise) would make the sampled policy differ from the one the loss assumes.

The decoding loop (`decode`) is written out here over the model's own forward and KV cache:
  - the n samples of a prompt share one prefill: the prompt runs once, its cache is copied to its n rows;
  - a row leaves the batch the step it ends (a stop token or max_new_tokens), its cache rows
    with it, so a batch never runs on to its longest row;
  - freed slots are refilled with the prompts waiting, so a call runs in as few forward passes
    as batch_size allows;
  - the cache lives in one preallocated buffer per layer (RoomyLayer), written in place;
  - each decode step of a Llama or Qwen2 model runs written out (`decode_step`: the model's
    arithmetic without its forward's per-operation overhead), any other model through its forward;
  - a prefill takes at most PREFILL_TOKENS prompt tokens, and logits that are not finite stop it.
`engine="eager"` runs every decode step through the model's own forward (the reference the
written-out step is tested against); `engine="hf"` samples with Hugging Face `generate`,
batch_size rows at a time (the reference the loop is tested against).

    python sampling.py tiny "Write a Python function that reverses a string."
"""

import inspect
import sys
from collections import deque

import torch
import torch.nn.functional as F
from transformers import Cache, DynamicCache, DynamicLayer, GenerationConfig

from chat import render_chat
from models import load_model, stop_ids


def position_ids(attention_mask):
    """Position of each token among its row's real tokens, 0 on padding: what generate numbers them.

    Pass it to the loss's forward pass over `sample`'s output. Llama and Qwen2 in transformers 5
    do not derive positions from the attention mask (they number columns 0..T-1), so a left-padded
    row would see positions shifted by its padding. RoPE makes attention depend on differences of
    positions only, so the shift changes the logits by rounding alone, but models with absolute
    position embeddings would change outright."""
    return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)


def left_pad(sequences, pad_id):
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask


# -----------------------------------------------------------------------------
# the decoding loop

ENGINES = ("loop", "eager", "hf")  # sample's engines: the loop, the loop through the model's forward, HF generate
# most prompt tokens one prefill forward takes (padding included): AZR's vLLM setting,
# max_num_batched_tokens = 16,384, bounds the activations of a long prompt batch
PREFILL_TOKENS = 16_384


def draw(logits, temperature, top_p):
    """One token per row from softmax(logits / T), cut to the smallest set of mass >= top_p when
    top_p < 1, and its log-prob under that (renormalised) distribution. logits (b, V)."""
    logq = (logits.float() / temperature).log_softmax(-1)
    if top_p < 1.0:
        sorted_logq, order = logq.sort(-1, descending=True)
        sorted_q = sorted_logq.exp()
        # drop a token when the tokens more likely than it already hold top_p of the mass
        cut_sorted = sorted_q.cumsum(-1) - sorted_q >= top_p
        cut = torch.zeros_like(cut_sorted).scatter(-1, order, cut_sorted)
        logq = logq.masked_fill(cut, float("-inf")).log_softmax(-1)
    # inverse-CDF sampling: the first token whose cumulative mass exceeds a uniform draw of the total
    # (right=True: never a token of zero mass). One uniform a row; on a CPU torch.multinomial takes
    # 15x longer (1.5 ms a step at the toy base's 903 ids, most of its decode step)
    mass = logq.exp().cumsum(-1)
    u = torch.rand(len(mass), 1, device=mass.device) * mass[:, -1:]
    token = torch.searchsorted(mass, u, right=True).squeeze(1).clamp_(max=mass.shape[1] - 1)
    return token, logq.gather(-1, token[:, None]).squeeze(1)


def forward(model, cache, **inputs):
    """model(**inputs, use_cache=True) reading and extending the KV cache `cache`, under the keyword
    this transformers version names it (`cache`, formerly `past_key_values`)."""
    keyword = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return model(**inputs, **{keyword: cache}, use_cache=True)


class RoomyLayer(DynamicLayer):
    """One layer's keys and values, in a room allocated on first admission, (rows, heads, columns, head
    dim); attention sees the view room[:rows, :, start:end]. A step writes in place (DynamicLayer
    copies the whole layer, torch.cat, every step: most of a step on a small model). Rows that end
    are dropped by moving the last rows into their slots, columns no row uses by moving start; new
    rows go below, their keys ending at column end. So only rows that move or arrive are copied,
    and all of them only when the view moves within the room (`compact`). The room starts zeroed,
    and a new row's padding columns are zeroed as it arrives, so the masked padding of a view is
    finite: on CUDA, attention may give NaN for a padding query that sees no key, and a NaN kept in
    the cache would poison every later step (its weight is 0, but 0 x NaN = NaN).
    Keys and values are held in the values' dtype, the one attention computes in: under bf16
    autocast with float32 weights the keys come out float32 (RoPE's cos and sin follow the
    embedding's dtype) while the values are bf16, and a float32 key cache would be half as large
    again and cast back to bf16 at every step."""

    def __init__(self, keys, values, mask, rows, columns):
        super().__init__()
        self.lazy_initialization(values, values)
        self.rooms = [t.new_zeros((rows, t.shape[1], columns, t.shape[3]), dtype=values.dtype) for t in (keys, values)]
        self.rows, self.start, self.end = 0, 0, keys.shape[2]
        self.add(keys, values, mask)

    def view(self):
        self.keys, self.values = (room[:self.rows, :, self.start:self.end] for room in self.rooms)

    def add(self, keys, values, mask):
        """New rows below the others: their keys and values (rows, heads, columns, head dim) end at
        column end, zeroed where their attention mask (rows, columns) is 0 (left padding)."""
        padding = (mask == 0)[:, None, :, None]
        for room, states in zip(self.rooms, (keys, values)):
            new = room[self.rows:self.rows + len(states), :, self.end - states.shape[2]:self.end]
            new.copy_(states)
            new.masked_fill_(padding, 0)
        self.rows, self.start = self.rows + len(keys), min(self.start, self.end - keys.shape[2])
        self.view()

    def update(self, key_states, value_states, *args, **kwargs):
        begin, self.end = self.end, self.end + key_states.shape[2]
        for room, states in zip(self.rooms, (key_states, value_states)):
            room[:self.rows, :, begin:self.end] = states
        self.view()
        return self.keys, self.values

    def drop(self, holes, movers, rows, width):
        """Copy rows `movers` into slots `holes`, then keep the first `rows` rows and the last `width` columns."""
        for room in self.rooms:
            room[holes, :, self.start:self.end] = room[movers, :, self.start:self.end]
        self.rows, self.start = rows, self.end - width
        self.view()

    def compact(self, width):
        """Move the view to end at column `width` (>= its width), the left end of the room."""
        filled = self.end - self.start
        for room in self.rooms:
            room[:self.rows, :, width - filled:width] = room[:self.rows, :, self.start:self.end].clone()
        self.start, self.end = width - filled, width
        self.view()


# -----------------------------------------------------------------------------
# one decode step, written out: the model's forward for one new token per row, in plain torch ops


def written_out(model):
    """Whether `decode_step` can run the model: a Llama-family decoder as transformers builds Llama
    and Qwen2 (pre-norm RMSNorm, rotary attention with grouped keys and values, a gated MLP without
    biases, no sliding window), attention by "sdpa" or "eager". Any other model decodes through its
    own forward."""
    config = model.config
    return (config.model_type in ("llama", "qwen2") and not getattr(config, "use_sliding_window", False)
            and getattr(config, "_attn_implementation", "sdpa") in ("sdpa", "eager")
            and not getattr(config, "pretraining_tp", 1) > 1 and not getattr(config, "mlp_bias", False))


def _attend(q, keys, values, bias, scale):
    """Attention of one query per row over the cached keys and values: softmax(q k^T scale + bias) v,
    bias 0 on the columns a row sees and -inf elsewhere. q (B, heads, head dim); keys and values
    (B, kv heads, columns, head dim); bias (B x kv heads, group, columns). The query heads that
    share a key-value head (grouped-query attention: query head h reads key-value head h // group)
    are one matrix product with it. Written out because CPU scaled-dot-product attention is slow
    for a single query (measured here: 1.0 ms against 0.27 ms a layer at 64 rows, 14 query heads
    over 2, 264 columns). Returns (B, heads x head dim)."""
    B, heads, dim = q.shape
    kv = keys.shape[1]
    scores = torch.baddbmm(bias, q.reshape(B * kv, heads // kv, dim), keys.reshape(B * kv, -1, dim).transpose(1, 2),
                           alpha=scale)
    return torch.bmm(scores.softmax(-1), values.reshape(B * kv, -1, dim)).view(B, heads * dim)


def decode_step(model, cache, token, mask):
    """The next-token logits (B, V) after one new token per row: what
    forward(model, cache, input_ids=token[:, None], attention_mask=mask, position_ids=...)
    gives, the new token at position_ids(mask)'s last column, its keys and values written into the
    cache's rooms in place (RoomyLayer.update). The same arithmetic, with no module calls, mask
    building or cache bookkeeping between the operations, and fewer of them (the residual added in
    the projection's product, rotary embedding on queries and keys at once, the attention's scale
    and mask in its first product): on a small model launching operations, not the arithmetic, is
    most of a decode step (about 60 a layer through the model's forward, about 20 here). For models
    where written_out is true; mask (B, columns) covers the cached columns and the new one."""
    inner = model.get_decoder()
    attn = inner.layers[0].self_attn
    B, dim = len(token), attn.head_dim
    heads, kv = attn.q_proj.out_features // dim, attn.k_proj.out_features // dim
    h = inner.embed_tokens(token)  # (B, H)
    cos, sin = (t.view(B, 1, dim) for t in inner.rotary_emb(h[:, None], position_ids(mask)[:, -1:]))
    half = dim // 2
    bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(mask == 0, float("-inf"))
    bias = bias[:, None, None, :].expand(B, kv, heads // kv, -1).reshape(B * kv, heads // kv, -1)
    for layer, room in zip(inner.layers, cache.layers):
        attn, mlp = layer.self_attn, layer.mlp
        norm = layer.input_layernorm
        x = F.rms_norm(h, norm.weight.shape, norm.weight, norm.variance_epsilon)
        q, k, v = (F.linear(x, p.weight, p.bias) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        qk = torch.cat((q, k), 1).view(B, heads + kv, dim)
        qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), -1) * sin  # rotary: x cos + rotate_half(x) sin
        keys, values = room.update(qk[:, heads:, None], v.view(B, kv, 1, dim))
        out = _attend(qk[:, :heads], keys, values, bias.to(qk.dtype), attn.scaling)
        h = _linear_added(h, out, attn.o_proj)
        norm = layer.post_attention_layernorm
        x = F.rms_norm(h, norm.weight.shape, norm.weight, norm.variance_epsilon)
        h = _linear_added(h, mlp.act_fn(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight), mlp.down_proj)
    norm = inner.norm  # the embedding and the lm_head as modules: once a step, and their hooks run
    return model.get_output_embeddings()(F.rms_norm(h, norm.weight.shape, norm.weight, norm.variance_epsilon))


def _linear_added(h, x, linear):
    """h + linear(x), the residual added within the product (one operation) where there is no bias
    and no autocast (which would cast the residual stream to bf16 with it)."""
    if linear.bias is not None or torch.is_autocast_enabled(h.device.type):
        return h + F.linear(x, linear.weight, linear.bias)
    return torch.addmm(h, x, linear.weight.t())


def prefill(model, prompt_ids, prompt_mask, repeats):
    """Run k distinct left-padded prompts once; return each layer's (keys, values), the attention
    mask and the next-token logits, row i repeated repeats[i] times (the samples sharing prompt i).
    When every prompt has one sample (AZR's rollout.n = 1) the prompts' keys and values are handed
    on as they are, with no copy."""
    width = int(prompt_mask.sum(1).max())  # drop columns that are padding in every row
    ids, mask = prompt_ids[:, -width:], prompt_mask[:, -width:]
    cache = DynamicCache()
    logits = forward(model, cache, input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                     logits_to_keep=1).logits[:, -1]
    if all(r == 1 for r in repeats):
        return [(layer.keys, layer.values) for layer in cache.layers], mask, logits
    index = torch.arange(len(repeats), device=ids.device).repeat_interleave(torch.tensor(repeats, device=ids.device))
    return [(layer.keys[index], layer.values[index]) for layer in cache.layers], mask[index], logits[index]


def admitted(active, new, rows, columns, steps):
    """The active rows (cache, mask, logits), or None, then the new rows (each layer's (keys,
    values), mask, logits), in one cache of RoomyLayers of `rows` x `columns` (allocated with the
    first rows); the narrower mask is left-padded with zeros. The view is compacted first where
    the new rows would not fit left of its end, or `steps` more positions right of it."""
    keys_values, mask, logits = new
    if active is None:
        return Cache(layers=[RoomyLayer(keys, values, mask, rows, columns) for keys, values in keys_values]), mask, logits
    cache, active_mask, active_logits = active
    width = max(active_mask.shape[1], mask.shape[1])
    for layer, (keys, values) in zip(cache.layers, keys_values):
        if layer.end < mask.shape[1] or layer.end + steps > columns:
            layer.compact(width)
        layer.add(keys, values, mask)
    pad = lambda m: F.pad(m, (width - m.shape[1], 0))
    return cache, torch.cat([pad(active_mask), pad(mask)]), torch.cat([active_logits, logits])


def kept(active, done):
    """The active rows (cache, mask, logits) without those that ended (`done`, bool), and without
    the cache columns only they used. The rows that stay keep their slots, except that the last
    ones move into the slots the ended ones left below them. Returns (active, order): row i now
    is row order[i] before."""
    cache, mask, logits = active
    stay = (~done).nonzero().squeeze(1)
    rows = len(stay)
    holes, movers = done[:rows].nonzero().squeeze(1), stay[stay >= rows]
    order = torch.arange(rows, device=done.device).index_copy_(0, holes, movers)
    mask = mask[order]
    width = int(mask.sum(1).max())
    for layer in cache.layers:
        layer.drop(holes, movers, rows, width)
    return (cache, mask[:, -width:], logits[order]), order


def decode(model, prompt_ids, prompt_mask, n, stops, max_new_tokens, temperature, top_p, batch_size, pad_id,
           prefill_tokens=PREFILL_TOKENS, written=True):
    """The loop: n samples of each (left-padded) prompt, at most batch_size rows decoded at once.

    Rows wait in a queue as groups (a prompt and at most batch_size samples of it). Each step:
    admit whole waiting groups while they fit beside the active rows and their prompts, padded to
    the longest, hold at most prefill_tokens tokens (one prefill for them all, each prompt
    forwarded once for its group; the first group always goes in); stop with an error naming the
    row if any logits are not finite; draw a token for every active row; drop the rows
    that ended, with their cache rows and the cache columns no row uses any more; run the others'
    new tokens, each at position_ids of its row's mask (`decode_step`, or with written=False the
    model's own forward: the reference, for any model). A group waits rather than being split, so a
    prompt is prefilled ceil(n / batch_size) times. The cache has min(batch_size, B) rows and
    P + 2 max_new_tokens columns: a view is at most P + max_new_tokens wide, so one moved to the
    left end leaves max_new_tokens columns, within which every row present ends.

    Returns (tokens (B, max_new_tokens) padded with pad_id, lengths (B,), stopped (B,) bool,
    logps (B, max_new_tokens) float32 log-probs of the drawn tokens), on the model's device."""
    device, B = model.device, len(prompt_ids) * n
    tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    stopped = torch.zeros(B, dtype=torch.bool, device=device)
    stop_tokens = torch.tensor(stops, dtype=torch.long, device=device)  # long even when empty (ignore_stops)
    waiting = deque((p, min(batch_size, n - k)) for p in range(len(prompt_ids)) for k in range(0, n, batch_size))
    started = 0  # rows admitted so far; row r of the output is the r-th admitted
    # the active rows: which output row each is, and (KV cache, attention mask over its columns, next-token logits)
    rows, active = torch.zeros(0, dtype=torch.long, device=device), None
    widths = prompt_mask.sum(1).tolist()
    while waiting or len(rows):
        group = []
        while waiting and len(rows) + sum(k for _, k in group) + waiting[0][1] <= batch_size and \
                (not group or (len(group) + 1) * max(widths[p] for p, _ in group + [waiting[0]]) <= prefill_tokens):
            group.append(waiting.popleft())
        if group:
            prompts, repeats = [p for p, _ in group], [k for _, k in group]
            new = prefill(model, prompt_ids[prompts].to(device), prompt_mask[prompts].to(device), repeats)
            active = admitted(active, new, min(batch_size, B), prompt_ids.shape[1] + 2 * max_new_tokens,
                              max_new_tokens)
            rows = torch.cat([rows, torch.arange(started, started + sum(repeats), device=device)])
            started += sum(repeats)
        finite = active[2].isfinite().all(-1)
        if not bool(finite.all()):
            row = int(rows[~finite][0])
            raise FloatingPointError(f"non-finite logits at decode step {int(lengths[row]) + 1} of output row {row} "
                                     f"(prompt {row // n}): the model or its KV cache holds NaN or inf")
        token, logp = draw(active[2], temperature, top_p)
        step = lengths[rows]
        tokens[rows, step], logps[rows, step], lengths[rows] = token, logp, step + 1
        stopped[rows] = torch.isin(token, stop_tokens)
        done = stopped[rows] | (step + 1 == max_new_tokens)
        ended = int(done.sum())
        if ended == len(rows):
            rows, active = rows[:0], None
        elif ended:
            active, order = kept(active, done)
            rows, token = rows[order], token[order]
        if len(rows):
            cache, mask = active[0], F.pad(active[1], (0, 1), value=1)
            if written:
                logits = decode_step(model, cache, token, mask)
            else:
                logits = forward(model, cache, input_ids=token[:, None], attention_mask=mask,
                                 position_ids=position_ids(mask)[:, -1:]).logits[:, -1]
            active = cache, mask, logits
    return tokens, lengths, stopped, logps


def generate_hf(model, prompt_ids, prompt_mask, n, stops, max_new_tokens, temperature, top_p, batch_size, pad_id):
    """The reference: Hugging Face `generate`, batch_size rows per call, each call running until
    its longest row ends. Returns (tokens, lengths, stopped) as `decode` does, on the CPU."""
    # transformers 5 fills every setting a generate call leaves unset from model.generation_config,
    # and a checkpoint's file may set top_k, min_p, repetition_penalty, ...: swap in a config with
    # only our settings for the call. top_k=0 disables HF's default top_k=50.
    config = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=top_p,
                              max_new_tokens=max_new_tokens, eos_token_id=stops or None, pad_token_id=pad_id)
    prompt_index = torch.arange(len(prompt_ids)).repeat_interleave(n)
    saved_config, model.generation_config = model.generation_config, config
    tokens, lengths, stopped = [], [], []
    try:
        for start in range(0, len(prompt_index), batch_size):
            rows = prompt_index[start:start + batch_size]
            width = int(prompt_mask[rows].sum(1).max())  # drop columns that are padding in every row
            out = model.generate(input_ids=prompt_ids[rows, -width:].to(model.device),
                                 attention_mask=prompt_mask[rows, -width:].to(model.device)).cpu()
            generated = out[:, width:]
            is_stop = torch.isin(generated, torch.tensor(stops, dtype=torch.long))
            stopped.append(is_stop.any(1))
            lengths.append(torch.where(stopped[-1], is_stop.int().argmax(1) + 1, generated.shape[1]))
            tokens.append(F.pad(generated, (0, max_new_tokens - generated.shape[1]), value=pad_id))
    finally:
        model.generation_config = saved_config
    return torch.cat(tokens), torch.cat(lengths), torch.cat(stopped)


# -----------------------------------------------------------------------------
# sample


@torch.no_grad()
def sample(model, tokenizer, prompts, n, max_new_tokens, temperature=1.0, top_p=1.0, seed=None, batch_size=32,
           engine="loop", return_logprobs=False, ignore_stops=False, prefill_tokens=PREFILL_TOKENS):
    """n completions of each prompt text (e.g. from `render_chat`), from softmax(logits / T),
    cut to the smallest set of mass >= top_p when top_p < 1, and nothing else (the distribution the GRPO loss assumes).

    Returns a dict of CPU tensors with one row per completion, the n rows of prompt i together:
      input_ids (B, T): prompt left-padded to P (the longest prompt), then the response from
        column P, right-padded. P is the same for every row, so logits[:, P-1:-1] predict all
        response tokens.
      attention_mask (B, T): 1 on prompt and response tokens.
      response_mask (B, T): 1 on response tokens, including the eos that ended the response. It is
        found as the first stop token generated, never from pad ids (which may equal eos).
      prompt_index (B,): which prompt the row answers.
      truncated (B,): bool, no stop token within max_new_tokens.
      texts: list of B response strings, special tokens removed.
      logprobs (B, T) float32, only with return_logprobs (engine "loop"): the log-prob each response
        token was drawn with (under the top-p cut when top_p < 1), 0 off the response.
    For log-probs consistent with the sampling, run the model on input_ids with attention_mask
    and position_ids(attention_mask).

    Prompts are tokenized without adding special tokens: the text is the whole model input.
    seed: seeds torch's global generator, so a seed gives the same samples for the same batch_size.
    batch_size bounds how many rows are decoded at once; prefill_tokens how many prompt tokens one
    prefill forward takes (engine "loop").
    engine: "loop" (this file's decoding loop, each decode step written out (`decode_step`) where
    the model allows, else its forward), "eager" (the same loop through the model's own forward at
    every step: the reference it is tested against) or "hf" (Hugging Face generate).
    ignore_stops: no token ends a row, so every response is max_new_tokens long and truncated is all
    True; a stop token drawn stays in the response like any other (the distribution is unchanged).
    For benchmarks of a fixed length, where random weights would otherwise end rows at random."""
    assert engine in ENGINES and max_new_tokens >= 1
    assert not (return_logprobs and engine == "hf"), "return_logprobs needs engine 'loop' or 'eager'"
    stops = stop_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    prompt_ids, prompt_mask = left_pad(tokenizer(list(prompts), add_special_tokens=False).input_ids, pad_id)
    prompt_index = torch.arange(len(prompts)).repeat_interleave(n)
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        settings = (n, [] if ignore_stops else stops, max_new_tokens, temperature, top_p, batch_size, pad_id)
        if engine != "hf":
            out = decode(model, prompt_ids, prompt_mask, *settings, prefill_tokens=prefill_tokens,
                         written=engine == "loop" and written_out(model))
        else:
            out = generate_hf(model, prompt_ids, prompt_mask, *settings)
    finally:
        model.train(was_training)
    tokens, lengths, stopped = (t.cpu() for t in out[:3])
    L = int(lengths.max())
    in_response = torch.arange(L) < lengths[:, None]
    response = tokens[:, :L].masked_fill(~in_response, pad_id)
    prompt_rows, prompt_rows_mask = prompt_ids[prompt_index], prompt_mask[prompt_index]
    result = {
        "input_ids": torch.cat([prompt_rows, response], 1),
        "attention_mask": torch.cat([prompt_rows_mask, in_response.long()], 1),
        "response_mask": torch.cat([torch.zeros_like(prompt_rows_mask), in_response.long()], 1),
        "prompt_index": prompt_index,
        "truncated": ~stopped,
        "texts": tokenizer.batch_decode([r[:k] for r, k in zip(response, lengths.tolist())],
                                        skip_special_tokens=True),
    }
    if return_logprobs:
        logps = out[3].cpu()[:, :L].masked_fill(~in_response, 0.0)
        result["logprobs"] = torch.cat([torch.zeros(prompt_rows.shape, dtype=torch.float32), logps], 1)
    return result


if __name__ == "__main__":
    model, tokenizer = load_model(sys.argv[1] if len(sys.argv) > 1 else "tiny")
    question = sys.argv[2] if len(sys.argv) > 2 else "Write a Python function that reverses a string."
    out = sample(model, tokenizer, [render_chat(tokenizer, question)], n=2, max_new_tokens=64, seed=0)
    for text, cut in zip(out["texts"], out["truncated"].tolist()):
        print(f"--- truncated={cut}\n{text}")
