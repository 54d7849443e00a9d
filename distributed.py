"""
More than one GPU: the same training under PyTorch's own launcher, torchrun, one process ("rank")
per GPU, for the study at the sizes AZR released (its 7B and 14B coders), which one GPU cannot
train (README, "More than one GPU"). Nothing here runs unless torchrun started the process as one
of several ranks: alone, every function below returns at once, or returns its input, and says so.

    torchrun --nproc-per-node 8 grpo.py --model Qwen/Qwen2.5-Coder-7B      # one node, 8 GPUs
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 grpo.py --model ... --out /nfs/run  # each node, its rank

A step under N ranks computes what one process computes on the same batch:
  - rollouts: each rank samples, and runs in its own sandbox pool, its share of the step's
    prompts (`shared`), from a seed of its own (`rank_seed`); the Rows, tasks and solve rates
    are gathered so that every rank holds the whole batch in the order one process makes it.
    The advantages (TRR++'s token statistics per (role, task type) included) are then computed
    on every rank from the same numbers, and the buffers grow alike on every rank.
  - sampling needs whole weights: `full_weights` gathers them once for the step's rollouts, so a
    rank may decode as long as it needs without waiting for the others.
  - the update: the model is sharded with FSDP2 (`shard`: each decoder layer one group, the
    embeddings, final norm and lm_head the root's), so a rank keeps 1/N of the weights,
    gradients and AdamW state; DDP (a whole replica per rank) where FSDP2 is missing (torch
    older than 2.7). Each rank runs its share of the forward/backward passes (`rank_batches`),
    each loss already its share of the WHOLE batch's token (or sequence) mean; FSDP / DDP sum
    the ranks' gradients (`loss_scale`); then one optimizer step, as alone.
  - checkpoints: the weights and optimizer state are gathered to rank 0 (`full_state`), which
    writes the same Hugging Face folder a single process writes; rank 0 writes the run folder.
  - a rank whose rollout raises stops every rank with its error (`shared` gathers each rank's
    outcome); a rank that dies is ended by torchrun with the others. Checkpoints are written
    whole or not at all (runs.save_checkpoint), so the last one stays intact either way.
The process group: NCCL between GPUs (rank r on GPU LOCAL_RANK), gloo on CPUs.
"""

import os
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)
from torch.nn.parallel import DistributedDataParallel

try:  # FSDP2 as used here, with the setter full_weights needs: torch >= 2.7; DDP before it
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
except ImportError:
    fully_shard = None
if fully_shard is not None and not hasattr(FSDPModule, "set_reshard_after_forward"):
    fully_shard = None

# A rank waits in a collective for the slowest rank's rollout phase: longer than any one phase,
# so a timeout means a rank is gone (torchrun usually ends the others first)
TIMEOUT = timedelta(hours=1)


def launched():
    """Whether torchrun started this process as one of several ranks (it sets WORLD_SIZE, RANK,
    LOCAL_RANK). One rank under torchrun is a single process like any other."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank():
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def is_main():
    """Rank 0, the one that writes the run folder; alone, True."""
    return rank() == 0


def start():
    """Join the other ranks: NCCL on GPUs (this rank on GPU LOCAL_RANK, so that "cuda" means it),
    gloo on CPUs. Alone, nothing."""
    if not launched() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=TIMEOUT)


def stop():
    global _root, _model
    _root = _model = None
    if launched() and dist.is_initialized():
        dist.destroy_process_group()


def from_rank0(value):
    """Rank 0's value on every rank (e.g. a run folder named after the time); alone, value."""
    if not launched():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# -----------------------------------------------------------------------------
# Rollouts: each rank its share of the prompts, every rank the whole batch


def rank_seed(seed):
    """This rank's sampling seed for a call seeded `seed` (from the step's randomness): seed alone,
    seed x N + rank under N ranks. Distinct for every (seed, rank), and the same in a resumed run
    with as many ranks."""
    return seed * world_size() + rank() if launched() else seed


def shared(n, work, times=None):
    """work(lo, hi) on this rank's share [lo, hi) of n items, and the ranks' results joined in rank
    order, so that every rank gets what work(0, n) gives alone. work returns a list, or a tuple of
    lists, each joined. Alone: work(0, n). With `times` (a step's seconds by kind), the seconds this
    rank then waits for the others count as "generate": it waits for their sampling, mostly, and
    the step's seconds add up to its wall-clock time.

    Each rank's outcome is gathered, error or not: when a rank's work raises, every rank raises a
    RuntimeError with its traceback, so none waits for it in a later collective."""
    if not launched() or n == 0:
        return work(0, n)
    lo, hi = n * rank() // world_size(), n * (rank() + 1) // world_size()
    try:
        outcome = ("ok", work(lo, hi) if lo < hi else None)
    except Exception:
        outcome = ("error", traceback.format_exc())
    outcomes = [None] * world_size()
    start = time.perf_counter()
    dist.all_gather_object(outcomes, outcome)
    if times is not None:
        times["generate"] = times.get("generate", 0.0) + time.perf_counter() - start
    for r, (status, value) in enumerate(outcomes):
        if status == "error":
            raise RuntimeError(f"rank {r} failed; its error:\n{value}")
    parts = [value for _, value in outcomes if value is not None]
    if isinstance(parts[0], tuple):
        return tuple([x for part in parts for x in part[i]] for i in range(len(parts[0])))
    return [x for part in parts for x in part]


# -----------------------------------------------------------------------------
# The model: sharded for the update, whole for sampling


class Root(torch.nn.Module):
    """The module FSDP's root (or DDP) wraps: forward(fn) returns fn(model). FSDP gathers a group's
    weights in its module's forward and DDP readies its gradient reduction there, but no pass here
    calls the model's own forward (logprobs.py runs the decoder and reads the lm_head weight), so
    every pass of the sharded model runs inside this one (`forward`)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, fn):
        return fn(self.model)


_root = None   # the Root that FSDP or DDP wraps, and the model in it: set by shard
_model = None


def shard(model, bf16=False):
    """Under torchrun, shard `model` in place with FSDP2: each decoder layer a group (its weights
    gathered for its forward and backward only), the root's group the rest. With bf16 (--amp) the
    gathered weights are bf16 and the gradients are reduced in float32; the shards, gradients and
    AdamW state stay in the weights' dtype. Where FSDP2 is missing, DDP (whole replicas). Call it
    before the optimizer is made: the optimizer must hold the shards. Alone, nothing."""
    global _root, _model
    if not launched():
        return
    if fully_shard is None:
        device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        _root = DistributedDataParallel(Root(model), device_ids=device_ids, broadcast_buffers=False)
    else:
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else \
            MixedPrecisionPolicy()
        for layer in model.get_decoder().layers:
            fully_shard(layer, mp_policy=policy)
        _root = fully_shard(Root(model), mp_policy=policy)
        _root(lambda m: None)  # FSDP takes the first module to run forward for its root: this one
        _root.reshard()        # the root keeps its weights gathered after a forward; shards again
    _model = model


def forward(model, fn, *args):
    """fn(model, *args), inside the root's forward when `model` is the sharded one (FSDP gathers the
    weights, DDP readies the gradient reduction); alone, or for another model (the reference),
    just fn(model, *args)."""
    if model is _model:
        return _root(lambda m: fn(m, *args))
    return fn(model, *args)


@contextmanager
def full_weights(model):
    """The sharded model's whole weights on every rank inside the block (one gather per group),
    so that rollouts run any number of forwards per rank with no collective; shards again after.
    Alone, and under DDP, the weights are whole already: nothing."""
    if model is not _model or fully_shard is None:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for m in layers + [_root]:
        m.unshard()
    for m in layers:
        m.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for m in layers:
            m.set_reshard_after_forward(True)
        for m in layers + [_root]:
            m.reshard()


# -----------------------------------------------------------------------------
# The update: each rank its share of the passes, one optimizer step


def rank_batches(batches):
    """This rank's share of a pass's batches, as (keys, forwarded) pairs: alone, every batch as
    (batch, batch). Under N ranks, batches[rank::N], then passes of no row up to ceil(len / N),
    each forwarding the first batch for nothing ([], batches[0]): every rank must run as many
    forward and backward passes as the others, since FSDP gathers each layer's weights in each (and
    DDP reduces the gradients in each backward)."""
    if not launched():
        return [(batch, batch) for batch in batches]
    mine = [(batch, batch) for batch in batches[rank()::world_size()]]
    missing = -(-len(batches) // world_size()) - len(mine)
    return mine + [([], batches[0])] * missing if missing else mine


def loss_scale():
    """What a pass's loss (its share of the whole mini-batch's mean) is multiplied by before backward:
    1 alone; under N ranks N, since FSDP and DDP average the ranks' gradients where the mean over
    the whole batch needs their sum."""
    return world_size()


def merged(values, device):
    """Every rank's {row: tensor} (e.g. the old log-probs of the rows it scored) in one dict, the
    tensors on `device`; alone, values."""
    if not launched():
        return values
    parts = [None] * world_size()
    dist.all_gather_object(parts, {k: v.cpu() for k, v in values.items()})
    return {k: v.to(device) for part in parts for k, v in part.items()}


def summed(tensor):
    """The sum over ranks of a tensor each rank filled in part (e.g. the entropy of the rows it
    scored, 0 elsewhere); alone, the tensor."""
    if not launched():
        return tensor
    total = tensor.to("cuda" if torch.cuda.is_available() else "cpu", copy=True)
    dist.all_reduce(total)
    return total.to(tensor.device)


# -----------------------------------------------------------------------------
# Checkpoints: whole, written by rank 0


def full_state(model, optimizer):
    """(weights, optimizer state), gathered whole onto rank 0's CPU (None, None on the others):
    the weights as model.state_dict() names them, the tied ones sharing one tensor again (so that
    save_pretrained writes them once, as alone); the optimizer state keyed as a single process's
    optimizer.state_dict() keys it (0, 1, ... in model.parameters() order), so a checkpoint
    resumes under any number of ranks. Alone, (None, None): the caller saves its own."""
    if not launched():
        return None, None
    if _root is not None and fully_shard is not None:
        _root.reshard()  # a forward with no backward after it (a no-grad pass) leaves the root's gathered
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=options)
    state = get_optimizer_state_dict(model, optimizer, options=options)
    if not is_main():
        return None, None
    first = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        weights[name] = weights[first.setdefault(param, name)]
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    return weights, {"state": {index[name]: s for name, s in state["state"].items()},
                     "param_groups": [{**g, "params": [index[name] for name in g["params"]]}
                                      for g in state["param_groups"]]}


def load_optimizer(model, optimizer, state):
    """A checkpoint's optimizer state (keyed as optimizer.state_dict() keys it) into `optimizer`:
    alone as it is; under torchrun each rank keeps its shard of it."""
    if not launched():
        optimizer.load_state_dict(state)
        return
    names = [name for name, _ in model.named_parameters()]
    by_name = {"state": {names[i]: s for i, s in state["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))
