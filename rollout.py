"""
Rollouts: prompts in, sampled responses out as Rows, the unit every training method works on;
and the pieces of a training step the study's three methods share, so that their comparison rests
on one copy of each.

A Row is one prompt and one response as token ids, with its role (proposer or solver), task type,
prompt group, reward, and whether it trains. `rollout` samples any mix of roles and task types in
one decode. AZR self-play (selfplay.py), RLVR (rlvr.py) and SFT (sft.py) all build Rows; the update (grpo.update) batches them back into tensors
(`micro_batches`). Shared by all three: the step's random draws (`step_randomness`), its timer
(`timed`), the split of a batch into optimizer steps (`mini_batch_split`) and the optimizer step
itself (`optimizer_step`).
"""

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

import distributed
from chat import completion, render_prompt, resolve_template
from sampling import sample
from solver import solver_prompt, solver_rewards


@dataclass
class Row:
    prompt_ids: list
    response_ids: list   # ends with the eos unless truncated; eos stays in the loss
    role: str            # 'proposer' or 'solver'
    task_type: str
    prompt_id: int       # the prompt's index within the step: the GRPO / Dr. GRPO group
    reward: float = 0.0
    truncated: bool = False
    learns: bool = True  # False: no gradient (a frozen proposer)


def step_randomness(seed, step):
    """A training step's random draws, from (seed, step) alone: a random.Random for its choices (tasks,
    references) and an iterator of seeds for its sampling calls. A resumed run draws what an unbroken
    one would, and AZR, RLVR and SFT draw the same for the same (seed, step)."""
    return random.Random(f"{seed}-{step}"), iter(range(seed * 1_000_003 + step * 1_009, 1 << 62))


def seeding_randomness(seed, phase, round_, task_types):
    """The random draws of one round of the seeding before step 1 (selfplay.seed_buffers): a
    random.Random for its choices and a sampling seed per task type, counted down from just below
    step_randomness's (which count up from seed * 1_000_003), so that no seeding call samples with a
    step's seed: 7 per round, the two triplet phase's types at 0 and 1, the induction phase's at 3."""
    start = seed * 1_000_003 - 1 - 7 * round_ - 3 * (phase == "induction")
    return random.Random(f"{seed}-seed-{phase}-{round_}"), [start - k for k in range(len(task_types))]


@contextmanager
def timed(times, kind):
    """Add the seconds the block takes to times[kind] (the `seconds/...` of metrics.jsonl)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        times[kind] = times.get(kind, 0.0) + time.perf_counter() - start


def mini_batch_split(keys, n):
    """keys in n interleaved mini-batches, one optimizer step each (AZR: n = 1, the whole batch)."""
    return [part for part in (keys[m::n] for m in range(n)) if part]


def adamw(model, lr, weight_decay):
    """AdamW over the model's parameters (verl's optimizer), fused into one kernel for all of them on
    one CUDA device (PyTorch's fused implementation: no per-tensor launches, no foreach
    temporaries), the default elsewhere, so CPU runs keep their numbers."""
    fused = all(p.device.type == "cuda" for p in model.parameters()) and not distributed.launched()  # FSDP: as before
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused or None)


def optimizer_step(model, optimizer, max_norm=1.0):
    """Clip the gradient's global norm to max_norm (verl's grad_clip, 1.0 in AZR's config), step, and
    free the gradients at once: kept, they would sit through the next step's rollouts (float32
    gradients are 12 GB at 3B). Outside autocast: the update is computed in the weights' dtype.
    Returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def autocast(args, device):
    """bf16 autocast for one forward (and its backward), or nothing. Its cache of bf16 weight
    copies is off: a copy kept across an optimizer step would be stale (a later mini-batch's
    ratio would stay 1), and one first made under no_grad carries no autograd link on older torch."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(args.amp), cache_enabled=False)


def rollout(model, tokenizer, asks, n, args, seed, first_prompt=0):
    """n samples of each ask, a (user text, role, task type), in ONE sample call whatever the roles
    and task types (the loop admits rows as others end, so short calls' tails overlap), as Rows
    (reward still 0, prompt first_prompt + the ask's index), their response texts as the model
    said them (chat.completion: with the r1 scaffold, after the prefilled <think>), and each row's
    ask index. Under torchrun each rank samples from a seed of its own (distributed.rank_seed;
    alone, `seed`)."""
    template = resolve_template(tokenizer, args.template)
    prompts = [render_prompt(tokenizer, text, template) for text, _, _ in asks]
    with autocast(args, model.device):
        out = sample(model, tokenizer, prompts, n, args.max_new_tokens, temperature=args.temperature, top_p=1.0,
                     seed=distributed.rank_seed(seed), batch_size=args.gen_batch,
                     engine=getattr(args, "sampler", "loop"),
                     ignore_stops=getattr(args, "ignore_stops", False))
    rows, index = [], out["prompt_index"].tolist()
    for b, k in enumerate(index):
        response = out["response_mask"][b].bool()
        prompt = out["attention_mask"][b].bool() & ~response
        _, role, task_type = asks[k]
        rows.append(Row(out["input_ids"][b][prompt].tolist(), out["input_ids"][b][response].tolist(), role,
                        task_type, first_prompt + k, truncated=bool(out["truncated"][b])))
    return rows, [completion(t, template) for t in out["texts"]], index


def positions_by(keys):
    """{key: the positions that hold it, in order}: keys[i] is position i's (a task type, a role and type)."""
    out = {}
    for k, key in enumerate(keys):
        out.setdefault(key, []).append(k)
    return out


def solver_rollout(model, tokenizer, tasks, args, seed, first_prompt, times, n=None, evaluation=False):
    """The solver's n (default args.group) answers to each (task type, task), every type in one
    sample call, as Rows (prompt: first_prompt + the task's index) with their rewards
    (solver.solver_rewards: the format penalties, then 1 or -0.5; with evaluation 1 or 0, a solve
    rate's): the solver's half of a step, the same in AZR self-play and RLVR, and AZR's solve-rate
    samples. Adds its seconds to times["generate"] and ["execute"]. Under torchrun each rank
    answers and rewards its share of the tasks, and all get every Row."""
    def answer(lo, hi):  # tasks[lo:hi]
        with timed(times, "generate"):
            rows, responses, index = rollout(model, tokenizer, [(solver_prompt(t, task), "solver", t)
                                                                for t, task in tasks[lo:hi]],
                                             n or args.group, args, seed=seed, first_prompt=first_prompt + lo)
        with timed(times, "execute"):
            for task_type, ks in positions_by([r.task_type for r in rows]).items():
                rewards = solver_rewards(task_type, [tasks[lo + index[k]][1] for k in ks], [responses[k] for k in ks],
                                         evaluation=evaluation, rule=args.format)
                for k, reward in zip(ks, rewards):
                    rows[k].reward = reward
        return rows
    return distributed.shared(len(tasks), answer, times)


def micro_batches(rows, size, device):
    """Right-padded (input_ids, attention_mask, response_mask) batches of at most `size` rows."""
    for start in range(0, len(rows), size):
        part = rows[start:start + size]
        width = max(len(r.prompt_ids) + len(r.response_ids) for r in part)
        ids = torch.zeros(len(part), width, dtype=torch.long)
        attention = torch.zeros(len(part), width, dtype=torch.long)
        response = torch.zeros(len(part), width, dtype=torch.long)
        for b, r in enumerate(part):
            p, n = len(r.prompt_ids), len(r.response_ids)
            ids[b, :p + n] = torch.tensor(r.prompt_ids + r.response_ids)
            attention[b, :p + n] = 1
            response[b, p:p + n] = 1
        yield start, ids.to(device), attention.to(device), response.to(device)


def placed(values, response):
    """Per-row response-token values laid out on a batch's (B, T) response mask, 0 elsewhere."""
    if not values:  # a pass of no row
        return torch.zeros(response.shape, device=response.device)
    out = torch.zeros(response.shape, dtype=values[0].dtype, device=response.device)
    return out.masked_scatter(response.bool(), torch.cat(values))
