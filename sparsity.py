"""
Update sparsity: which parameters a training run changed, and how the changes of two runs overlap.

The study (arXiv 2510.27072) compares how many parameters AZR, RLVR and SFT update, following
Mukherjee et al. (arXiv 2505.11711): RL updates a small subnetwork, SFT nearly every parameter.
Per tensor, the update Δ = θ1 - θ0 between a checkpoint and its base gives
    sparsity S = 1 - ||Δ||_0 / n,
counted exactly (Δ == 0) and within a tolerance (|Δ| <= 1e-5), in the checkpoints' dtype and after
rounding both to bf16 (the study's setting: bf16 checkpoints), overall, per layer and per module
kind; plus the Jaccard overlap of two runs' update masks and the rank of each matrix's update.
Tensors are streamed one at a time from the safetensors files, so a 3B pair never sits whole in
memory. `python analyze.py sparsity` is the command line.
"""

import json
import math
import os
import re
from collections import defaultdict
from contextlib import ExitStack

import torch
from safetensors import safe_open
from tqdm import tqdm

import models

# module kind by name; norms first: "post_attention_layernorm" is a norm, not attention
MODULE_KINDS = (("norms", ("norm", "ln_")), ("embeddings", ("embed_tokens", "lm_head", "wte", "wpe")),
                ("attention", ("q_proj", "k_proj", "v_proj", "o_proj", "self_attn", "attn")),
                ("mlp", ("gate_proj", "up_proj", "down_proj", "mlp")))
LAYER = re.compile(r"\b(?:layers|h|blocks)\.(\d+)\.")
COUNTS = ("numel", "same", "close", "same_bf16", "close_bf16")


def module_kind(name):
    return next((kind for kind, marks in MODULE_KINDS if any(m in name for m in marks)), "other")


def layer_index(name):
    match = LAYER.search(name)
    return int(match.group(1)) if match else None


def changed_mask(base, new, tol=0.0, bf16=False):
    """True where the update changed an entry: |Δ| > tol, Δ = θ1 - θ0 computed in the pair's common
    dtype (the checkpoints'), or after rounding both to bf16 (the study's setting). tol = 0 marks
    every Δ != 0. The comparison with tol is made in float32 or wider, so tol is not rounded."""
    if bf16:
        base, new = base.to(torch.bfloat16), new.to(torch.bfloat16)
    else:
        dtype = torch.promote_types(base.dtype, new.dtype)
        base, new = base.to(dtype), new.to(dtype)
    delta = new - base
    return delta.to(torch.promote_types(delta.dtype, torch.float32)).abs() > tol


def tensor_sparsity(base, new, tol):
    """Counts for one tensor: numel; entries unchanged exactly (same) and within tol (close), in
    the checkpoints' dtype and in bf16. Sparsity S = 1 - ||Δ||_0 / n = same / numel."""
    counts = {"numel": base.numel()}
    for suffix, bf16 in (("", False), ("_bf16", True)):
        counts["same" + suffix] = base.numel() - int(changed_mask(base, new, 0.0, bf16).sum())
        counts["close" + suffix] = base.numel() - int(changed_mask(base, new, tol, bf16).sum())
    return counts


def update_rank(base, new):
    """Rank of the update matrix Δ = θ1 - θ0 in float32 (torch.linalg.matrix_rank, SVD with its
    default tolerance), for 2-D tensors; None otherwise."""
    if base.dim() != 2:
        return None
    return int(torch.linalg.matrix_rank(new.float() - base.float()))


def jaccard_counts(mask_a, mask_b):
    """(|A ∩ B|, |A ∪ B|) of two boolean masks: the parts of the Jaccard overlap of one tensor."""
    return int((mask_a & mask_b).sum()), int((mask_a | mask_b).sum())


def model_folder(name):
    """The local folder of a built-in name (toy, tiny, smollm2-135m), a folder, or a hub id (downloaded;
    only the safetensors files and the index are needed)."""
    if name in models.BUILTINS:
        return models.builtin_folder(name)
    if os.path.isdir(name):
        return name
    from huggingface_hub import snapshot_download
    return snapshot_download(name, allow_patterns=["*.safetensors", "*.json"])


def tensor_files(folder):
    """{tensor name: safetensors file} of a Hugging Face folder, single-file or sharded."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return {name: os.path.join(folder, file) for name, file in json.load(f)["weight_map"].items()}
    path = os.path.join(folder, "model.safetensors")
    with safe_open(path, "pt") as f:
        return {name: path for name in f.keys()}


def stream_tensors(folders):
    """Yield (name, [the tensor from each folder]) for every tensor name all folders hold, one name
    at a time: safe_open maps the files and get_tensor reads only the tensor asked for."""
    maps = [tensor_files(model_folder(f)) for f in folders]
    names = [n for n in maps[0] if all(n in m for m in maps[1:])]
    missing = {n for m in maps for n in m} - set(names)
    if missing:  # e.g. an lm_head saved by one side only: say so rather than compare silently less
        print(f"note: {len(missing)} tensor(s) not in every folder, left out: {', '.join(sorted(missing)[:5])}")
    with ExitStack() as stack:
        handles = {}
        for name in names:
            tensors = []
            for m in maps:
                if m[name] not in handles:
                    handles[m[name]] = stack.enter_context(safe_open(m[name], "pt"))
                tensors.append(handles[m[name]].get_tensor(name))
            yield name, tensors


def sparsity(base, checkpoint, tol=1e-5, rank=False):
    """One record per tensor of checkpoint vs base: name, kind, layer, shape, the tensor_sparsity
    counts, and with rank=True, for 2-D tensors, the update's rank and its maximum min(shape)."""
    records = []
    for name, (b, c) in tqdm(stream_tensors([base, checkpoint]), desc=f"sparsity {checkpoint}", unit="tensor", leave=False):
        if b.shape != c.shape:
            raise ValueError(f"{name}: shape {tuple(b.shape)} in the base, {tuple(c.shape)} in {checkpoint}")
        record = {"name": name, "kind": module_kind(name), "layer": layer_index(name), "shape": list(b.shape),
                  **tensor_sparsity(b, c, tol)}
        if rank and b.dim() == 2:
            record["rank"], record["full_rank"] = update_rank(b, c), min(b.shape)
        records.append(record)
    return records


def summarize(records, by=None):
    """{group: summed counts} over the tensor records, grouped by a record field ("kind", "layer")
    or all together (by=None, group "all"). Divide by numel for sparsities."""
    groups = defaultdict(lambda: dict.fromkeys(COUNTS + ("rank", "full_rank"), 0))
    for r in records:
        g = groups[r[by] if by else "all"]
        for k in COUNTS:
            g[k] += r[k]
        if "rank" in r:  # summed over matrices: rank / full_rank is a size-weighted mean fraction
            g["rank"] += r["rank"]
            g["full_rank"] += r["full_rank"]
    return dict(groups)


def jaccard(base, a, b, tol=0.0, bf16=True):
    """Jaccard overlap |A ∩ B| / |A ∪ B| of the entries two checkpoints changed from a common base
    (changed_mask; by default Δ != 0 in bf16, the study's setting), streamed tensor by tensor.
    nan when neither changed anything."""
    inter = union = 0
    for _, (t0, ta, tb) in stream_tensors([base, a, b]):
        i, u = jaccard_counts(changed_mask(t0, ta, tol, bf16), changed_mask(t0, tb, tol, bf16))
        inter, union = inter + i, union + u
    return inter / union if union else math.nan
