"""
Sampling: n completions of each prompt from the plain temperature-scaled softmax.

One model plays both AZR roles (arXiv 2505.03335, section 3); every rollout of proposer and solver,
and every evaluation sample, goes through `sample`. It draws from softmax(logits / T), cut to
top-p only when asked, and nothing else: the GRPO loss (grpo.py) scores responses under exactly
that distribution, so a hidden top-k (Hugging Face `generate` applies top_k = 50 unless told
otherwise) would make the sampled policy differ from the one the loss assumes.

    python sampling.py tiny "Write a Python function that reverses a string."
"""

import sys

import torch
from transformers import GenerationConfig

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


@torch.no_grad()
def sample(model, tokenizer, prompts, n, max_new_tokens, temperature=1.0, top_p=1.0, seed=None, batch_size=32):
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
    For log-probs consistent with the sampling, run the model on input_ids with attention_mask
    and position_ids(attention_mask).

    Prompts are tokenized without adding special tokens: the text is the whole model input.
    seed: seeds torch's global generator, so a seed gives the same samples for the same batch_size.
    batch_size bounds how many rows one generate call holds."""
    stops = stop_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    # transformers 5 fills every setting a generate call leaves unset from model.generation_config,
    # and a checkpoint's file may set top_k, min_p, repetition_penalty, ...: swap in a config with
    # only our settings for the call. top_k=0 disables HF's default top_k=50.
    config = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=top_p,
                              max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=pad_id)
    prompt_ids, prompt_mask = left_pad(tokenizer(list(prompts), add_special_tokens=False).input_ids, pad_id)
    prompt_index = torch.arange(len(prompts)).repeat_interleave(n)
    saved_config, was_training = model.generation_config, model.training
    model.generation_config = config
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    responses, lengths, finished = [], [], []
    try:
        for start in range(0, len(prompt_index), batch_size):
            rows = prompt_index[start:start + batch_size]
            width = int(prompt_mask[rows].sum(1).max())  # drop columns that are padding in every row
            out = model.generate(input_ids=prompt_ids[rows, -width:].to(model.device),
                                 attention_mask=prompt_mask[rows, -width:].to(model.device)).cpu()
            generated = out[:, width:]
            is_stop = torch.isin(generated, torch.tensor(stops))
            finished.append(is_stop.any(1))
            lengths.append(torch.where(finished[-1], is_stop.int().argmax(1) + 1, generated.shape[1]))
            responses.append(generated)
    finally:
        model.generation_config = saved_config
        model.train(was_training)
    lengths = torch.cat(lengths)
    L = max(r.shape[1] for r in responses)
    response = torch.cat([torch.nn.functional.pad(r, (0, L - r.shape[1]), value=pad_id) for r in responses])
    in_response = torch.arange(L) < lengths[:, None]
    response = response.masked_fill(~in_response, pad_id)
    prompt_rows, prompt_rows_mask = prompt_ids[prompt_index], prompt_mask[prompt_index]
    return {
        "input_ids": torch.cat([prompt_rows, response], 1),
        "attention_mask": torch.cat([prompt_rows_mask, in_response.long()], 1),
        "response_mask": torch.cat([torch.zeros_like(prompt_rows_mask), in_response.long()], 1),
        "prompt_index": prompt_index,
        "truncated": ~torch.cat(finished),
        "texts": tokenizer.batch_decode([r[:k] for r, k in zip(response, lengths.tolist())],
                                        skip_special_tokens=True),
    }


if __name__ == "__main__":
    model, tokenizer = load_model(sys.argv[1] if len(sys.argv) > 1 else "tiny")
    question = sys.argv[2] if len(sys.argv) > 2 else "Write a Python function that reverses a string."
    out = sample(model, tokenizer, [render_chat(tokenizer, question)], n=2, max_new_tokens=64, seed=0)
    for text, cut in zip(out["texts"], out["truncated"].tolist()):
        print(f"--- truncated={cut}\n{text}")
