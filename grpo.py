"""
AZR self-play trained with a GRPO-family policy-gradient loss written by hand.

Absolute Zero (AZR, arXiv 2505.03335, section 3) trains one causal LM in two roles: as proposer it
writes Python tasks (deduction, abduction, induction) and is rewarded for their learnability, as
solver it answers them and is rewarded for correctness, checked by running the code (executor.py).
Both roles are updated with a clipped policy-gradient loss:
  - advantages: TRR++ (one baseline per (role, task type) over the batch, AZR section 3.3.5),
    GRPO (one per prompt group, divided by the std; arXiv 2402.03300) or Dr. GRPO (one per prompt
    group, no std; arXiv 2503.20783);
  - per-token ratio rho = exp(logp - old_logp) with PPO clipping, optional k3 KL to a reference;
  - token-mean (DAPO, arXiv 2503.14476), sequence-mean of token-means (GRPO) or sum / constant
    length (Dr. GRPO).
The full-vocabulary entropy of every response token, logged per role and task type, is the
study's entropy-dynamics measurement (arXiv 2510.27072, section 4); it comes from the same chunked
pass as the log-probs (logprobs.py).

The file reads in the order a step runs: settings, the advantage, the loss, the rollouts (proposer,
then solver), the update, the loop. The run folder it writes is described in runs.py.

    python grpo.py                # the toy base (toybase.py, built on first use), its toy preset
    python grpo.py --model <hub id or folder>
"""

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from executor import close_pool
from logprobs import sequence_logprobs_and_entropy
from chat import TEMPLATES, completion, render_prompt, resolve_template
from models import load_model, model_name_problem
from proposer import (PROPOSER_REWARDS, REWARD_LEVELS, add_to_buffer, induction_proposal_prompt, load_buffer, make_tasks,
                      proposal_prompt, proposer_reward, sample_references, save_buffer, seed_induction, seed_triplets,
                      task_key)
from runs import keep_lines_until, last_checkpoint, save_checkpoint
from sampling import sample
from solver import TASK_TYPES, solver_prompt, solver_rewards

# -----------------------------------------------------------------------------
# Self-play: settings. Flags left unset take the preset's value; the full config is saved per run.

PRESETS = {
    # a laptop: tiny batches, short responses, float32
    "cpu": dict(dtype="float32", amp=False, prompts=2, group=2, solve_samples=4, references=3, induction_inputs=4,
                max_new_tokens=192, micro_batch=4, gen_batch=16, lr=1e-5, grad_ckpt=False, mini_batches=1,
                template="auto", seed_tasks=0),
    # one 80 GB GPU, 0.5B-3B, AZR as released (scripts/selfplay/coder3b.sh, azr_ppo_trainer.yaml): 64
    # tasks per (role, task type) with one sample each (rollout.n = 1), 384 sequences in mini-batches
    # of 128 (three optimizer steps), n = 8 solve-rate samples, K = 6 references, 10 induction
    # inputs, the R1 scaffold, 256 seed tasks. Float32 master weights with bf16 compute: a pure bf16
    # AdamW would round most 1e-6 updates away, which would fake the update sparsity the study
    # measures (3B: 12 GB weights + 12 grads + 25 Adam). Responses up to 1024 tokens, not 8096.
    "gpu": dict(dtype="float32", amp=True, prompts=64, group=1, solve_samples=8, references=6, induction_inputs=10,
                max_new_tokens=1024, micro_batch=8, gen_batch=128, lr=1e-6, grad_ckpt=True, mini_batches=3,
                template="r1", seed_tasks=256),
    # the toy base of toybase.py (0.9M parameters) on a laptop: 64 samples per role and task type,
    # so that each batch holds right answers too, and a learning rate for a small model
    "toy": dict(dtype="float32", amp=False, prompts=8, group=8, solve_samples=4, references=3, induction_inputs=4,
                max_new_tokens=160, micro_batch=64, gen_batch=128, lr=2e-4, grad_ckpt=False, mini_batches=1,
                template="auto", seed_tasks=16),
}
PRESET_STEPS = {"toy": 30}  # default --steps (else 20): toy's 30 take about 14 minutes on 2 cores


def get_args(argv=None):
    p = argparse.ArgumentParser(prog="grpo.py", description="AZR self-play with a hand-written GRPO loss.")
    p.add_argument("--model", default="toy",
                   help="hub id, local folder, or built-in: toy (toybase.py, built on first use), tiny, smollm2-135m")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<time>)")
    p.add_argument("--steps", type=int, default=None, help="training steps in all (default: the preset's, 20 or toy's 30)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="defaults for a laptop CPU, one GPU, or the toy base (default: toy for --model toy, else gpu if CUDA is available)")
    p.add_argument("--task-types", default=",".join(TASK_TYPES), help="comma-separated subset of " + ", ".join(TASK_TYPES))
    p.add_argument("--prompts", type=int, help="prompts per (role, task type) per step")
    p.add_argument("--group", type=int, help="samples per prompt (G); prompts x group = batch per (role, task type)")
    p.add_argument("--solve-samples", type=int, help="solver samples per valid proposal for its solve rate (AZR n = 8)")
    p.add_argument("--references", type=int, help="reference triplets shown to the proposer (AZR K = 6)")
    p.add_argument("--induction-inputs", type=int, help="inputs the induction proposer must give, all running (AZR: 10)")
    p.add_argument("--seed-tasks", type=int, help="before training, the base proposes until this many valid triplets "
                   "and induction tasks fill the buffers (AZR: 256)")
    p.add_argument("--template", choices=TEMPLATES, default=None,
                   help="prompt scaffold: r1 (AZR's, chat template blanked, <think> prefilled), chat (the tokenizer's "
                        "template), auto (chat if the tokenizer has a template, else r1)")
    p.add_argument("--max-new-tokens", type=int, help="longest response")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; log-probs use the same")
    p.add_argument("--advantage", choices=sorted(ADVANTAGE_MODES), default="trr++",
                   help="trr++: baseline per (role, task type), whitened over tokens (AZR as released); trr++-seq: "
                        "the same over sequences; grpo: per prompt; drgrpo: per prompt, no std")
    p.add_argument("--loss-agg", choices=["token-mean", "seq-mean-token-mean", "seq-sum-norm"], default="token-mean",
                   help="token-mean (DAPO, verl), sequence mean of token means (GRPO), sum / max-new-tokens (Dr. GRPO)")
    p.add_argument("--clip-low", type=float, default=0.2, help="ratio clip below 1")
    p.add_argument("--clip-high", type=float, default=0.2, help="ratio clip above 1 (DAPO: 0.28)")
    p.add_argument("--kl-coef", type=float, default=0.0, help="k3 KL to the frozen initial model (AZR: 0)")
    p.add_argument("--entropy-coef", type=float, default=0.001, help="entropy bonus: loss - coef x token-mean entropy (AZR: 0.001)")
    p.add_argument("--proposer-reward", choices=sorted(PROPOSER_REWARDS), default="learnability",
                   help="learnability (AZR), peaked at solve rate 0.5 (the study), or sharpening")
    p.add_argument("--reward-levels", choices=REWARD_LEVELS, default="released",
                   help="proposer penalties: released (invalid -1, solve rate 0 or 1 -0.5) or paper (invalid -0.5, 0 or 1 -> 0)")
    p.add_argument("--duplicate-penalty", action="store_true",
                   help="a proposal repeating a buffer task or an earlier one of its batch is invalid (AZR: off)")
    p.add_argument("--skip-zero-var", action="store_true",
                   help="leave zero-variance groups out of the loss (AZR keeps them: they add tokens and the entropy bonus)")
    p.add_argument("--freeze-proposer", action="store_true", help="the proposer samples but gets no gradient")
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument("--mini-batches", type=int, help="optimizer steps per batch (AZR: 384 sequences / 128 = 3)")
    p.add_argument("--micro-batch", type=int, help="sequences per forward/backward (gradient accumulation)")
    p.add_argument("--gen-batch", type=int, help="sequences decoded at once")
    p.add_argument("--chunk-size", type=int, default=128, help="positions per chunk of the log-prob/entropy pass")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None, help="gradient checkpointing")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="dtype of the weights")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for each forward (weights and the optimizer step stay in --dtype)")
    p.add_argument("--save-every", type=int, default=10, help="checkpoint every this many steps (and at the end)")
    p.add_argument("--seed", type=int, default=0, help="seeds sampling and reference draws, step by step")
    args = p.parse_args(argv)
    args.preset = args.preset or ("toy" if args.model == "toy" else "gpu" if torch.cuda.is_available() else "cpu")
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.task_types = [t.strip() for t in args.task_types.split(",") if t.strip()]
    check_args(p, args)
    return args


def check_args(p, args):
    """Refuse bad settings with one line and exit status 2 (argparse's p.error), before anything
    is loaded or written."""
    bad = [t for t in args.task_types if t not in TASK_TYPES]
    if bad or not args.task_types:
        p.error(f"--task-types: unknown {bad or 'empty list'}; choose from {', '.join(TASK_TYPES)}")
    for name in ("steps", "prompts", "group", "solve_samples", "references", "max_new_tokens", "mini_batches",
                 "micro_batch", "gen_batch", "chunk_size", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    for name in ("seed_tasks", "kl_coef", "entropy_coef", "clip_low", "clip_high"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative, not {getattr(args, name)}")
    if args.induction_inputs < 2:
        p.error(f"--induction-inputs must be at least 2 (one pair shown, one hidden), not {args.induction_inputs}")
    if not args.lr > 0:
        p.error(f"--lr must be positive, not {args.lr}")
    if not args.temperature > 0:
        p.error(f"--temperature must be positive, not {args.temperature}")
    if args.clip_low >= 1:
        p.error(f"--clip-low must be below 1, not {args.clip_low}")
    if args.group == 1 and args.advantage in ("grpo", "drgrpo"):
        p.error(f"--advantage {args.advantage} needs --group of at least 2 (a group of one has no baseline); use trr++")
    if args.resume:
        if not args.out or not os.path.isfile(os.path.join(args.out, "config.json")):
            p.error(f"--resume: no run folder with a config.json at --out {args.out}; start a run without --resume")
    elif args.out and last_checkpoint(args.out):
        p.error(f"--out {args.out} already holds a run: pass --resume to continue it, or another --out")
    problem = model_name_problem(args.model)
    if problem:
        p.error(f"--model {problem}")


# -----------------------------------------------------------------------------
# advantages

# what each mode's groups are is the caller's choice: the TRR++ modes group by (role, task type)
# over the whole batch, GRPO and Dr. GRPO by prompt
ADVANTAGE_MODES = ("trr++", "trr++-seq", "grpo", "drgrpo")


def advantages(rewards, group_ids, mode, lengths=None, eps=1e-6):
    """Group-baseline advantages, one per sequence, for each group g of rewards:
        trr++:      A_i = (r_i - mu_g) / sqrt(var_g + 1e-8), mu and var over the response TOKENS of
                    the group: each sequence's reward counts once per token (lengths[i] times), var
                    with Bessel's correction over the token count. This is AZR's Task-Relative
                    REINFORCE++ as released (AZR section 3.3.5; verl's
                    compute_reinforce_plus_plus_outcome_advantage: the outcome reward on the last
                    token, gamma = 1 returns, masked_whiten over all response tokens).
        trr++-seq:  the same over sequences, each counting once (AZR eq. 8 as the paper writes it)
        grpo:       A_i = (r_i - mean_g(r)) / (std_g(r) + eps)         (arXiv 2402.03300)
        drgrpo:     A_i =  r_i - mean_g(r)                             (arXiv 2503.20783)
    std is the unbiased (n - 1) sample std, as torch.std and verl use it. group_ids: one hashable
    label per reward (e.g. ("solver", "deduction") for TRR++, a prompt index for GRPO), or an int
    tensor. lengths: response tokens per sequence, needed by trr++.

    Returns (A, zero_var): zero_var[i] is True where i's group has all rewards equal (a group of
    one included). Such a group carries no signal: its advantages are exactly 0; count it."""
    if mode == "trr++" and lengths is None:
        raise ValueError("trr++ whitens over tokens: pass each sequence's response length")
    labels = group_ids.tolist() if torch.is_tensor(group_ids) else list(group_ids)
    assert len(labels) == len(rewards)
    index = {}
    group = torch.tensor([index.setdefault(g, len(index)) for g in labels], device=rewards.device)
    weight = torch.as_tensor(lengths, dtype=rewards.dtype, device=rewards.device) if mode == "trr++" else \
        torch.ones_like(rewards)
    A = torch.zeros_like(rewards)
    zero_var = torch.zeros(len(labels), dtype=torch.bool, device=rewards.device)
    for g in range(len(index)):
        members = group == g
        r, w = rewards[members], weight[members]
        if (r == r[0]).all():
            zero_var[members] = True
            continue
        mu = (w * r).sum() / w.sum()
        if mode in ("trr++", "trr++-seq"):
            var = (w * (r - mu) ** 2).sum() / (w.sum() - 1)
            A[members] = (r - mu) * torch.rsqrt(var + 1e-8)
        elif mode == "grpo":
            A[members] = (r - mu) / (r.std() + eps)
        else:
            A[members] = r - mu
    return A, zero_var


# -----------------------------------------------------------------------------
# clipped policy loss


def aggregate(per_token, mask, mode, norm_length=None):
    """Reduce a (B, T) per-token loss over the response tokens (mask) to a scalar:
        token-mean:           sum_{b,t} l_bt m_bt / sum_{b,t} m_bt               (DAPO)
        seq-mean-token-mean:  1/B sum_b [sum_t l_bt m_bt / sum_t m_bt]           (GRPO)
        seq-sum-norm:         1/B sum_b [sum_t l_bt m_bt / norm_length]          (Dr. GRPO)
    norm_length is a constant (e.g. max_new_tokens) so long and short responses weigh the same
    per token. A row with no response token contributes 0 to seq-mean-token-mean."""
    mask = mask.bool()
    masked = torch.where(mask, per_token, 0.0)
    if mode == "token-mean":
        return masked.sum() / mask.sum()
    if mode == "seq-mean-token-mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if mode == "seq-sum-norm":
        return masked.sum() / (mask.shape[0] * norm_length)
    raise ValueError(f"unknown aggregation {mode!r}")


def policy_loss(logp, old_logp, advantages, mask, clip_low=0.2, clip_high=0.2, aggregation="token-mean",
                norm_length=None, kl_coef=0.0, ref_logp=None, entropy=None, entropy_coef=0.0):
    """Clipped surrogate loss (PPO, arXiv 1707.06347, eq. 7), per response token t of sequence b:
        rho = exp(logp - old_logp)
        l_t = -min(rho A_b, clip(rho, 1 - clip_low, 1 + clip_high) A_b) + kl_coef k3_t
        k3_t = exp(ref - logp) - (ref - logp) - 1                       (only with ref_logp)
        l_t -= entropy_coef H_t            (the entropy bonus, only with entropy: AZR's 0.001)
    then aggregate(l, mask, aggregation, norm_length). With token-mean this is verl's
    pg_loss - entropy_coeff * masked_mean(entropy), the released AZR objective. logp, old_logp, ref_logp, mask: (B, T);
    advantages: (B,), one per sequence. Gradient flows only through logp.

    Returns (loss, stats) with stats floats over response tokens: clip_frac (tokens whose gradient
    the clip removes), ratio_mean, and kl (mean k3) when ref_logp is given."""
    mask = mask.bool()
    A = advantages.detach()[:, None]
    # values outside the mask may be anything (padding): zero them before exp so they cannot overflow
    log_ratio = torch.where(mask, logp - old_logp.detach(), 0.0)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = -torch.minimum(ratio * A, clipped * A)
    # the clipped branch is the min (so no gradient) exactly when the ratio left the band on the side A pushes
    clip_active = ((A > 0) & (ratio > 1 + clip_high)) | ((A < 0) & (ratio < 1 - clip_low))
    n = mask.sum()
    stats = {"clip_frac": ((clip_active & mask).sum() / n).item(),
             "ratio_mean": (torch.where(mask, ratio, 0.0).sum() / n).item()}
    if ref_logp is not None:
        d = torch.where(mask, ref_logp.detach() - logp, 0.0)
        kl = d.exp() - d - 1
        stats["kl"] = (kl.detach().sum() / n).item()
        per_token = per_token + kl_coef * kl
    else:
        assert kl_coef == 0.0, "kl_coef needs ref_logp"
    if entropy is not None:
        stats["entropy"] = (torch.where(mask, entropy.detach(), 0.0).sum() / n).item()
        per_token = per_token - entropy_coef * torch.where(mask, entropy, 0.0)
    else:
        assert entropy_coef == 0.0, "entropy_coef needs entropy"
    return aggregate(per_token, mask, aggregation, norm_length), stats


# -----------------------------------------------------------------------------
# Rollouts: every response becomes a Row, the unit the update works on.

@dataclass
class Row:
    prompt_ids: list
    response_ids: list   # ends with the eos unless truncated; eos stays in the loss
    role: str            # 'proposer' or 'solver'
    task_type: str
    prompt: int          # prompt id within the step: the GRPO / Dr. GRPO group
    reward: float = 0.0
    truncated: bool = False
    train: bool = True   # False: no gradient (a frozen proposer)


def autocast(args, device):
    """bf16 autocast for one forward (and its backward), or nothing. Its cache of bf16 weight
    copies is off: a copy kept across an optimizer step would be stale (a later mini-batch's
    ratio would stay 1), and one first made under no_grad carries no autograd link on older torch."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(args.amp), cache_enabled=False)


def rollout(model, tokenizer, user_texts, n, args, seed, role, task_type, first_prompt):
    """n samples of each user text, as Rows (reward still 0) and their response texts as the model
    said them (chat.completion: with the r1 scaffold, after the prefilled <think>)."""
    template = resolve_template(tokenizer, args.template)
    prompts = [render_prompt(tokenizer, text, template) for text in user_texts]
    with autocast(args, model.device):
        out = sample(model, tokenizer, prompts, n, args.max_new_tokens, args.temperature, 1.0, seed, args.gen_batch)
    rows = []
    for b in range(len(out["texts"])):
        response = out["response_mask"][b].bool()
        prompt = out["attention_mask"][b].bool() & ~response
        rows.append(Row(out["input_ids"][b][prompt].tolist(), out["input_ids"][b][response].tolist(), role,
                        task_type, first_prompt + int(out["prompt_index"][b]), truncated=bool(out["truncated"][b])))
    return rows, [completion(t, template) for t in out["texts"]], out["prompt_index"].tolist()


def solver_tasks(fresh, buffer, n, rng):
    """The solver's n tasks of a step: this step's valid proposals, distinct (by task_key) and
    drawn at random, topped up from the buffer when there are fewer than n. Not the first n: those
    would all come from the first prompt or two (one group of samples), near-copies of each other."""
    distinct = list({task_key(t): t for t in fresh}.values())
    chosen = rng.sample(distinct, min(n, len(distinct)))
    return chosen + [rng.choice(buffer) for _ in range(n - len(chosen))]


def propose(model, tokenizer, task_type, buffers, args, rng, seed, step, first_prompt=0):
    """args.prompts x args.group proposals of one task type, as (rows, tasks): the proposer prompts
    show references from the triplet buffer (induction: one of its programs)."""
    if task_type == "induction":
        programs = [rng.choice(buffers["triplet"]).program for _ in range(args.prompts)]
        texts = [induction_proposal_prompt(p, args.induction_inputs) for p in programs]
    else:
        texts = [proposal_prompt(task_type, sample_references(buffers["triplet"], args.references, rng))
                 for _ in range(args.prompts)]
    rows, responses, index = rollout(model, tokenizer, texts, args.group, args, seed, "proposer", task_type, first_prompt)
    buffer = buffers["induction" if task_type == "induction" else "triplet"]
    tasks = make_tasks(task_type, responses, step, buffer, [programs[i] for i in index] if task_type == "induction" else None,
                       args.induction_inputs, args.duplicate_penalty)
    return rows, tasks


def seed_buffers(model, tokenizer, buffers, args, max_rounds=50):
    """AZR's seeding (azr.seed_dataset in its released code): before any update, the base model
    proposes until args.seed_tasks valid triplets (and induction tasks, when induction is trained)
    fill the buffers, or max_rounds rounds of proposals have been made."""
    wanted = {"triplet": args.seed_tasks if {"deduction", "abduction"} & set(args.task_types) else 0,
              "induction": args.seed_tasks if "induction" in args.task_types else 0}
    bar = tqdm(total=sum(wanted.values()), desc="seeding the buffers", unit="task")
    for round_ in range(max_rounds):
        missing = [name for name, n in wanted.items() if len(buffers[name]) < n]
        if not missing:
            break
        rng = random.Random(f"{args.seed}-seed-{round_}")
        for k, task_type in enumerate(t for t in args.task_types if ("induction" if t == "induction" else "triplet") in missing):
            _, tasks = propose(model, tokenizer, task_type, buffers, args, rng, args.seed * 1_000_003 - 1 - 7 * round_ - k, 0)
            add_to_buffer(buffers["induction" if task_type == "induction" else "triplet"], tasks)
        bar.n = sum(min(len(buffers[name]), n) for name, n in wanted.items())
        bar.refresh()
    bar.close()
    if any(len(buffers[name]) < n for name, n in wanted.items()):
        tqdm.write(f"seeding stopped after {max_rounds} rounds: {len(buffers['triplet'])} triplets, "
                   f"{len(buffers['induction'])} induction tasks")


def self_play(step, model, tokenizer, buffers, args):
    """One step of rollouts (AZR section 3.3, Algorithm 1): proposals, their solve rates and rewards,
    then the solver on this step's valid tasks (topped up from the buffer). Returns the rows, one
    record per proposal (the task, its proposer reward, the solver's mean response length on it)
    and timings."""
    rng = random.Random(f"{args.seed}-{step}")  # every draw derives from (seed, step): resume is exact
    seeds = iter(range(args.seed * 1_000_003 + step * 1_009, 1 << 62))
    rows, records, times = [], [], {"generate": 0.0, "execute": 0.0}
    fresh = {}  # task type -> this step's valid proposals, the solver's first tasks

    def timed(kind, fn, *a, **kw):
        t = time.perf_counter()
        result = fn(*a, **kw)
        times[kind] += time.perf_counter() - t
        return result

    for task_type in args.task_types:  # the proposer role
        t = time.perf_counter()
        new_rows, tasks = propose(model, tokenizer, task_type, buffers, args, rng, next(seeds), step, len(rows))
        times["generate"] += time.perf_counter() - t  # the proposals' execution is a small part of it
        valid = [t for t in tasks if t.valid]
        lengths = {}
        if valid:  # solve rate: the mean of n solver samples at evaluation reward (1/0)
            tries, answers, owner = timed("generate", rollout, model, tokenizer,
                                          [solver_prompt(task_type, t) for t in valid], args.solve_samples, args,
                                          next(seeds), "solver", task_type, 0)
            solved = timed("execute", solver_rewards, task_type, [valid[i] for i in owner], answers, train=False)
            for i, task in enumerate(valid):
                task.solve_rate = sum(s for s, o in zip(solved, owner) if o == i) / args.solve_samples
                lengths[id(task)] = sum(len(r.response_ids) for r, o in zip(tries, owner) if o == i) / args.solve_samples
        for row, task in zip(new_rows, tasks):
            row.reward = proposer_reward(task, args.proposer_reward, args.reward_levels)
            row.train = not args.freeze_proposer
            records.append({**asdict(task), "proposer_reward": row.reward, "solver_response_len": lengths.get(id(task))})
        rows += new_rows
        add_to_buffer(buffers["induction" if task_type == "induction" else "triplet"], valid)
        fresh[task_type] = valid

    for task_type in args.task_types:  # the solver role
        buffer = buffers["induction" if task_type == "induction" else "triplet"]
        chosen = solver_tasks(fresh[task_type], buffer, args.prompts, rng)
        new_rows, responses, index = timed("generate", rollout, model, tokenizer, [solver_prompt(task_type, t) for t in chosen],
                                           args.group, args, next(seeds), "solver", task_type, len(rows))
        rewards = timed("execute", solver_rewards, task_type, [chosen[i] for i in index], responses, train=True)
        for row, reward in zip(new_rows, rewards):
            row.reward = reward
        rows += new_rows
    return rows, records, times


# -----------------------------------------------------------------------------
# The update: one batch of rows, advantages, the clipped loss, one optimizer step per mini-batch.

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
    out = torch.zeros(response.shape, dtype=values[0].dtype, device=response.device)
    return out.masked_scatter(response.bool(), torch.cat(values))


def update(model, optimizer, rows, args, ref_model=None):
    """Advantages over the batch, then the clipped policy-gradient loss with the entropy bonus, one
    optimizer step per mini-batch. Returns the entropy of each row's response tokens, as (sum,
    count) so that means over rows are token means, and update statistics."""
    device = next(model.parameters()).device
    rewards = torch.tensor([r.reward for r in rows])
    trr = args.advantage.startswith("trr++")
    groups = [(r.role, r.task_type) if trr else (r.role, r.task_type, r.prompt) for r in rows]
    A, zero_var = advantages(rewards, groups, args.advantage, [len(r.response_ids) for r in rows])
    # frozen rows get no gradient; zero-variance groups stay in (A = 0: they add tokens to the
    # token mean and take the entropy bonus, as in AZR) unless --skip-zero-var
    trainable = [k for k, r in enumerate(rows) if r.train and not (args.skip_zero_var and zero_var[k])]
    parts = [part for part in (trainable[m::args.mini_batches] for m in range(args.mini_batches)) if part]
    # With one mini-batch the policy that sampled is the one being trained: the gradient pass's own
    # log-probs, detached, are the old ones, and its entropies are the ones to log. A no-grad pass
    # is needed only for the rows it leaves out, for every row when there are several optimizer
    # steps (old log-probs from before the first), and for the reference model's log-probs.
    on_policy = len(parts) == 1
    scored = [k for k in range(len(rows)) if not (on_policy and k in set(trainable))]
    old, ref = {}, {}
    entropy_sum, entropy_count = torch.zeros(len(rows)), torch.tensor([float(len(r.response_ids)) for r in rows])
    with torch.no_grad():
        for start, ids, attention, response in micro_batches([rows[k] for k in scored], args.micro_batch, device):
            mask = response.bool()
            with autocast(args, device):
                logp, H = sequence_logprobs_and_entropy(model, ids, attention, response, args.temperature, args.chunk_size)
            for b, k in enumerate(scored[start:start + len(ids)]):
                old[k], entropy_sum[k] = logp[b][mask[b]], H[b][mask[b]].float().sum().cpu()
        if ref_model is not None:
            for start, ids, attention, response in micro_batches([rows[k] for k in trainable], args.micro_batch, device):
                with autocast(args, device):
                    ref_logp, _ = sequence_logprobs_and_entropy(ref_model, ids, attention, response, args.temperature,
                                                                args.chunk_size)
                for b, k in enumerate(trainable[start:start + len(ids)]):
                    ref[k] = ref_logp[b][response[b].bool()]
    stats = {"zero_var_frac": zero_var.float().mean().item(), "grad_norm": 0.0, "clip_frac": 0.0}
    model.train()
    for part in parts:
        sub = [rows[k] for k in part]
        tokens = sum(len(r.response_ids) for r in sub)
        optimizer.zero_grad(set_to_none=True)
        for start, ids, attention, response in micro_batches(sub, args.micro_batch, device):
            keys = part[start:start + len(ids)]
            with autocast(args, device):
                logp, H = sequence_logprobs_and_entropy(model, ids, attention, response, args.temperature, args.chunk_size)
                if on_policy:
                    for b, k in enumerate(keys):
                        entropy_sum[k] = H[b][response[b].bool()].detach().float().sum().cpu()
                old_logp = logp.detach() if on_policy else placed([old[k] for k in keys], response)
                loss, loss_stats = policy_loss(
                    logp, old_logp, A[keys].to(device), response, args.clip_low, args.clip_high, args.loss_agg,
                    args.max_new_tokens, args.kl_coef, placed([ref[k] for k in keys], response) if ref else None,
                    H if args.entropy_coef > 0 else None, args.entropy_coef)
                # each micro-batch's share of the whole mini-batch's aggregate: tokens for token-mean,
                # sequences for the two per-sequence modes
                share = response.sum().item() / tokens if args.loss_agg == "token-mean" else len(ids) / len(sub)
            (loss * share).backward()
            stats["clip_frac"] += loss_stats["clip_frac"] * share / len(parts)
        stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        optimizer.step()  # outside autocast: the update is computed in the weights' dtype
    return (entropy_sum, entropy_count), stats


# -----------------------------------------------------------------------------
# Metrics and the loop

def step_metrics(step, rows, entropy, records, stats, times, buffers, args):
    """One line of metrics.jsonl: per (role, task type) reward, entropy (the token mean over all
    response tokens, as verl logs it; entropy_seq: the mean of per-response means), length,
    truncation; per task type the valid-proposal rate and the histogram of solve rates (k/n solved)."""
    entropy_sum, entropy_count = entropy
    m = {"step": step}
    for role in ("proposer", "solver"):
        for task_type in args.task_types:
            ks = [k for k, r in enumerate(rows) if r.role == role and r.task_type == task_type]
            if not ks:
                continue
            key = f"{role}/{task_type}"
            m[f"reward/{key}"] = sum(rows[k].reward for k in ks) / len(ks)
            m[f"entropy/{key}"] = (entropy_sum[ks].sum() / entropy_count[ks].sum().clamp(min=1)).item()
            m[f"entropy_seq/{key}"] = (entropy_sum[ks] / entropy_count[ks].clamp(min=1)).mean().item()
            m[f"response_len/{key}"] = sum(len(rows[k].response_ids) for k in ks) / len(ks)
            m[f"truncated/{key}"] = sum(rows[k].truncated for k in ks) / len(ks)
    for task_type in args.task_types:
        tasks = [t for t in records if t["type"] == task_type]
        m[f"valid_rate/{task_type}"] = sum(t["valid"] for t in tasks) / max(1, len(tasks))
        hist = [0] * (args.solve_samples + 1)
        for t in tasks:
            if t["valid"]:
                hist[round(t["solve_rate"] * args.solve_samples)] += 1
        m[f"solve_rate_hist/{task_type}"] = hist
    m["reward/mean"] = sum(r.reward for r in rows) / len(rows)
    m["entropy/mean"] = (entropy_sum.sum() / entropy_count.sum().clamp(min=1)).item()
    m["truncated/mean"] = sum(r.truncated for r in rows) / len(rows)
    m.update(stats)
    m["buffer/triplet"], m["buffer/induction"] = len(buffers["triplet"]), len(buffers["induction"])
    m.update({f"seconds/{k}": v for k, v in times.items()})
    return m


def train(args):
    """The run: load (or resume), seed the buffers, then one self-play step and one update per step."""
    if args.resume:
        steps = args.steps
        with open(os.path.join(args.out, "config.json")) as f:
            args = argparse.Namespace(**json.load(f))
        args.resume = True  # the saved config was written by a fresh run
        args.steps = steps or args.steps  # a resumed run may be given more steps; nothing else changes
    else:
        args.steps = args.steps or PRESET_STEPS.get(args.preset, 20)
        args.out = args.out or os.path.join("runs", f"{os.path.basename(args.model.rstrip('/'))}-{time.strftime('%Y%m%d-%H%M%S')}")
    checkpoint = last_checkpoint(args.out) if args.resume else None
    try:  # before anything is written; a hub id that cannot be reached ends here, in one line
        model, tokenizer = load_model(checkpoint or args.model, dtype=args.dtype)
    except ValueError as e:
        print(f"grpo.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    ref_model = None
    if args.kl_coef > 0:
        ref_model = load_model(args.model, dtype=args.dtype)[0].eval().requires_grad_(False)
    if not args.resume:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    buffers = {"triplet": seed_triplets(), "induction": seed_induction()}
    start = 0
    if checkpoint:
        state = torch.load(os.path.join(checkpoint, "trainer_state.pt"), weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        buffers = {name: load_buffer(os.path.join(checkpoint, f"buffer_{name}.jsonl")) for name in buffers}
    elif args.seed_tasks:
        seed_buffers(model, tokenizer, buffers, args)
        for name, buffer in buffers.items():
            save_buffer(os.path.join(args.out, f"seed_buffer_{name}.jsonl"), buffer)
    for name in ("metrics.jsonl", "tasks.jsonl"):
        keep_lines_until(os.path.join(args.out, name), start)
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=f"self-play {args.out}")
    for step in bar:
        rows, records, times = self_play(step + 1, model, tokenizer, buffers, args)
        t = time.perf_counter()
        entropy, stats = update(model, optimizer, rows, args, ref_model)
        times["update"] = time.perf_counter() - t
        metrics = step_metrics(step + 1, rows, entropy, records, stats, times, buffers, args)
        with open(os.path.join(args.out, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(metrics) + "\n")
        with open(os.path.join(args.out, "tasks.jsonl"), "a") as f:
            f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            save_checkpoint(args.out, step + 1, model, tokenizer, optimizer, buffers)
        bar.set_postfix(reward=f"{metrics['reward/mean']:.2f}", entropy=f"{metrics['entropy/mean']:.2f}",
                        valid=f"{sum(t['valid'] for t in records)}/{len(records)}")
    close_pool()
    return args.out


if __name__ == "__main__":
    train(get_args())
