"""
The training of the study's three methods from one base (arXiv 2510.27072): AZR self-play with a
GRPO-family policy-gradient loss written by hand, RLVR with the same loss, and SFT.

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
What the default reduces to: one mini-batch, so one on-policy optimizer step per batch of
rollouts (AZR's released setting, ppo_epochs 1). The old log-probs are the new ones detached, the
ratio is exactly 1 and the clip never acts (clip_frac is 0 in metrics.jsonl): the loss is
REINFORCE with TRR++'s per-(role, task type) baseline, a token mean, and the entropy bonus. The
ratio leaves 1, and the clip acts, only with --mini-batches > 1 (a later mini-batch is scored by
weights already stepped), as in PPO.
The full-vocabulary entropy of every response token, logged per role and task type, is the
study's entropy-dynamics measurement; it comes from the same chunked pass as the log-probs
(logprobs.py).

The file reads as the algorithm: `training_step` (one step: the method's rollouts and rewards,
then the update), the advantages, the clipped loss, `update` (advantages, then per mini-batch:
forward, loss, backward, one optimizer step; the same for SFT with its cross-entropy), the
metrics line; then the settings (the three presets, every flag, and the checks of bad input) and
`train`, the loop that loads, resumes, seeds, logs and checkpoints. The rollouts are each
method's file (selfplay.py, rlvr.py, sft.py); the run folder is runs.py's.

    python grpo.py                # the toy base shipped in bases/, its toy preset
    python grpo.py --model <hub id or folder>
    python grpo.py --method rlvr --data toy   # the solver alone on fixed tasks; sft: on their gold answers
    torchrun --nproc-per-node 8 grpo.py --model <...> --preset gpu  # one rank per GPU (distributed.py)
"""

import argparse
import json
import os
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

import distributed
from executor import close_pool
from logprobs import grouped_sequence_logprobs_and_entropy, sequence_logprobs_and_entropy
from chat import TEMPLATES
from models import TOY_BASES, load_model, model_name_problem
from proposer import PROPOSER_REWARDS, REWARD_LEVELS, load_buffer, new_buffers, save_buffer
from rlvr import data_problem, load_data, rlvr_rollouts
from rollout import adamw, autocast, micro_batches, mini_batch_split, optimizer_step, placed, timed
from selfplay import seed_buffers, self_play
from sampling import ENGINES
from runs import TRACKERS, keep_lines_until, last_checkpoint, number, open_tracker, save_checkpoint, tracker_problem
from sft import sft_loss, sft_rows
from solver import FORMAT_RULES, TASK_TYPES, TRIPLET_TYPES

# -----------------------------------------------------------------------------
# One training step: what the loop at the bottom of the file runs, once per step


def training_step(step, model, tokenizer, optimizer, buffers, tasks, args, ref_model=None):
    """Step `step` of args.method. Returns its line of metrics.jsonl and its proposals' records.

    AZR (arXiv 2505.03335, Algorithm 1): the proposer writes tasks, n solver samples on each valid
    one set its solve rate and so the proposer's reward, the solver answers tasks from the buffers
    and is rewarded for correctness (selfplay.self_play); then advantages over the batch, the clipped
    loss with the entropy bonus, and one optimizer step (update). RLVR is the solver's half of that
    on fixed tasks (rlvr.rlvr_rollouts); SFT is cross-entropy on their gold answers (sft.py).
    Under torchrun every rank runs it: each samples its share, and all get the whole batch."""
    with distributed.full_weights(model):  # under FSDP the rollouts sample from whole weights (alone: nothing)
        if args.method == "azr":  # proposals and their solve rates, proposer rewards, the solver's answers and rewards
            rows, records, times = self_play(step, model, tokenizer, buffers, args)
        elif args.method == "rlvr":  # the solver's answers to fixed tasks and their rewards
            rows, records, times = rlvr_rollouts(step, model, tokenizer, tasks, args)
        else:  # the gold answers of fixed tasks
            rows, records, times = sft_rows(step, tokenizer, tasks, args), [], {}
    with timed(times, "update"):  # (RL) advantages, then the loss, one optimizer step per mini-batch
        token_entropy, stats = update(model, optimizer, rows, args, ref_model)
    return step_metrics(step, rows, token_entropy, records, stats, times, buffers, args), records


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
    per token. A row with no response token contributes 0 to seq-mean-token-mean; no row at all gives 0."""
    mask = mask.bool()
    masked = torch.where(mask, per_token, 0.0)
    rows = max(1, mask.shape[0])  # a pass of no row (distributed.rank_batches' padding) gives 0, not 0 / 0
    if mode == "token-mean":
        return masked.sum() / mask.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / rows
    if mode == "seq-sum-norm":
        return masked.sum() / (rows * norm_length)
    raise ValueError(f"unknown aggregation {mode!r}")


@dataclass
class LossBatch:
    """One forward pass's sequences for the loss: per-token tensors (B, T) over the same positions,
    and one advantage per sequence (B,)."""
    logp: torch.Tensor                     # log pi_theta of each token, with gradient
    old_logp: torch.Tensor                 # log pi_old: the policy that sampled the tokens
    advantages: torch.Tensor               # one per sequence
    mask: torch.Tensor                     # 1 on response tokens
    ref_logp: torch.Tensor | None = None   # log pi_ref, for the KL term
    entropy: torch.Tensor | None = None    # H_t, for the entropy bonus


def policy_loss(batch, clip_low=0.2, clip_high=0.2, aggregation="token-mean", norm_length=None, kl_coef=0.0,
                entropy_coef=0.0):
    """Clipped surrogate loss (PPO, arXiv 1707.06347, eq. 7), per response token t of sequence b:
        rho = exp(logp - old_logp)
        l_t = -min(rho A_b, clip(rho, 1 - clip_low, 1 + clip_high) A_b) + kl_coef k3_t
        k3_t = exp(ref - logp) - (ref - logp) - 1                       (only with ref_logp)
        l_t -= entropy_coef H_t            (the entropy bonus, only with entropy: AZR's 0.001)
    then aggregate(l, mask, aggregation, norm_length), all from `batch` (a LossBatch). With
    token-mean this is verl's pg_loss - entropy_coeff * masked_mean(entropy), the released AZR
    objective. Gradient flows only through batch.logp.

    Returns (loss, stats) with stats floats over response tokens: clip_frac (tokens whose gradient
    the clip removes), its two sides clip_frac_low (A < 0, ratio below 1 - clip_low) and
    clip_frac_high (A > 0, ratio above 1 + clip_high), ratio_mean, kl (mean k3) when ref_logp is
    given, and entropy (the mean) when entropy is given. A batch of no sequence has loss 0."""
    mask = batch.mask.bool()
    logp, A = batch.logp, batch.advantages.detach()[:, None]
    # values outside the mask may be anything (padding): zero them before exp so they cannot overflow
    log_ratio = torch.where(mask, logp - batch.old_logp.detach(), 0.0)
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = -torch.minimum(ratio * A, clipped * A)
    # the clipped branch is the min (so no gradient) exactly when the ratio left the band on the side A pushes
    clip_high_active, clip_low_active = (A > 0) & (ratio > 1 + clip_high), (A < 0) & (ratio < 1 - clip_low)
    n = mask.sum().clamp(min=1)
    stats = {"clip_frac": (((clip_high_active | clip_low_active) & mask).sum() / n).item(),
             "clip_frac_low": ((clip_low_active & mask).sum() / n).item(),
             "clip_frac_high": ((clip_high_active & mask).sum() / n).item(),
             "ratio_mean": (torch.where(mask, ratio, 0.0).sum() / n).item()}
    if batch.ref_logp is not None:
        d = torch.where(mask, batch.ref_logp.detach() - logp, 0.0)
        kl = d.exp() - d - 1
        stats["kl"] = (kl.detach().sum() / n).item()
        per_token = per_token + kl_coef * kl
    else:
        assert kl_coef == 0.0, "kl_coef needs ref_logp"
    if batch.entropy is not None:
        stats["entropy"] = (torch.where(mask, batch.entropy.detach(), 0.0).sum() / n).item()
        per_token = per_token - entropy_coef * torch.where(mask, batch.entropy, 0.0)
    else:
        assert entropy_coef == 0.0, "entropy_coef needs entropy"
    return aggregate(per_token, mask, aggregation, norm_length), stats


def loss_settings(args):
    """policy_loss's settings from grpo.py's flags."""
    return dict(clip_low=args.clip_low, clip_high=args.clip_high, aggregation=args.loss_agg,
                norm_length=args.max_new_tokens, kl_coef=args.kl_coef, entropy_coef=args.entropy_coef)


# -----------------------------------------------------------------------------
# The update: one batch of rows, advantages, the clipped loss, one optimizer step per mini-batch.

def shares_prompts(args):
    """Whether the update forwards a group's prompt once for its G samples (logprobs.
    grouped_sequence_logprobs_and_entropy): asked for (--share-prompts), possible (gradient
    checkpointing turns the KV cache off) and of use (G > 1 samples of one prompt: not in SFT, whose
    rows are distinct tasks, nor with one sample per prompt, as on the gpu preset; then --micro-batch
    rows go through each pass)."""
    return args.share_prompts and not args.grad_ckpt and args.group > 1 and args.method != "sft"


def block_of(row):
    """A row's (role, task type): the block AZR's loss weighs as one (--loss-weight blocks)."""
    return row.role, row.task_type


def batches_of(rows, keys, args):
    """The rows `keys` in forward passes: when shares_prompts, runs of consecutive rows that share
    their prompt (a group's G samples), at most --micro-batch rows each; else plain micro-batches
    of --micro-batch rows. With --loss-weight blocks no pass holds rows of two blocks."""
    out, shared, blocks = [], shares_prompts(args), args.loss_weight == "blocks"
    for k in keys:
        last = rows[out[-1][-1]] if out else None
        if out and len(out[-1]) < args.micro_batch and (not shared or last.prompt_ids == rows[k].prompt_ids) \
                and (not blocks or block_of(last) == block_of(rows[k])):
            out[-1].append(k)
        else:
            out.append([k])
    return out


def score(model, rows, keys, args):
    """(logp, entropy, response mask) of rows `keys` (one of batches_of's batches), any layout:
    (G, R) over the responses when the prompt is shared, (B, T) over whole rows otherwise."""
    device = next(model.parameters()).device
    if shares_prompts(args):
        logp, H = grouped_sequence_logprobs_and_entropy(model, rows[keys[0]].prompt_ids,
                                                        [rows[k].response_ids for k in keys], args.temperature,
                                                        args.chunk_size)
        lengths = torch.tensor([len(rows[k].response_ids) for k in keys], device=device)
        return logp, H, (torch.arange(logp.shape[1], device=device) < lengths[:, None]).long()
    _, ids, attention, response = next(micro_batches([rows[k] for k in keys], len(keys), device))
    logp, H = sequence_logprobs_and_entropy(model, ids, attention, response, args.temperature, args.chunk_size)
    return logp, H, response


def scored(model, rows, batch, args):
    """score() of one of this rank's passes, a (keys, forwarded) pair of distributed.rank_batches:
    the forwarded rows' (logp, entropy, mask); keys are all of them, or none for a pass that only
    keeps the ranks in step (update weighs its loss 0)."""
    keys, forwarded = batch
    return distributed.forward(model, score, rows, forwarded, args)


def entropy_sums(keys, H, mask):
    """{row: the sum of its response tokens' entropy}, for the rows of one pass."""
    return {k: H[b][mask[b].bool()].detach().float().sum().cpu() for b, k in enumerate(keys)}


def loss_shares(rows, part, args):
    """share(keys, mask): a pass's share of its mini-batch's loss (`part`, row indices): its tokens
    for token-mean, its sequences for the two per-sequence modes; with --loss-weight blocks its
    share of its (role, task type) block's tokens, each block weighing 1 / the number of blocks."""
    tokens = sum(len(rows[k].response_ids) for k in part)
    block_tokens = {}
    for k in part:
        block_tokens[block_of(rows[k])] = block_tokens.get(block_of(rows[k]), 0) + len(rows[k].response_ids)

    def share(keys, mask):
        if not keys:
            return 0.0
        if args.loss_weight == "blocks":
            return mask.sum().item() / block_tokens[block_of(rows[keys[0]])] / len(block_tokens)
        return mask.sum().item() / tokens if args.loss_agg == "token-mean" else len(keys) / len(part)
    return share


def update(model, optimizer, rows, args, ref_model=None):
    """The update of every method on one batch of rows: the advantages (RL), then per mini-batch
    each pass's forward, its loss, backward, and one optimizer step. AZR and RLVR take the clipped
    policy-gradient loss with the entropy bonus (policy_loss); SFT the cross-entropy of its gold
    answers (sft.sft_loss). Returns each row's response-token entropy as (sum, count), so that
    means over rows are token means, and the update's statistics (metrics.jsonl).

    Under torchrun every rank runs its share of each loop's passes, as many as the others
    (distributed.rank_batches pads with passes of no row), and the sums are added up at the end."""
    device = next(model.parameters()).device
    rl = args.method != "sft"
    stats = {"grad_norm": 0.0}
    trainable = list(range(len(rows)))
    if rl:
        rewards = torch.tensor([r.reward for r in rows])
        trr = args.advantage.startswith("trr++")
        # whose baseline each row shares: its (role, task type) for TRR++, its prompt's G samples for GRPO
        baselines = [(r.role, r.task_type) if trr else (r.role, r.task_type, r.prompt_id) for r in rows]
        A, zero_var = advantages(rewards, baselines, args.advantage, [len(r.response_ids) for r in rows])
        stats["zero_var_frac"] = zero_var.float().mean().item()
        # frozen rows get no gradient; zero-variance groups stay in (A = 0: they add tokens to the
        # token mean and take the entropy bonus, as in AZR) unless --skip-zero-var
        trainable = [k for k, r in enumerate(rows) if r.learns and not (args.skip_zero_var and zero_var[k])]
    parts = mini_batch_split(trainable, args.mini_batches)
    # With one mini-batch the policy that sampled is the one being trained: the gradient pass's own
    # log-probs, detached, are the old ones, and its entropies are the ones to log. A no-grad pass
    # is needed only for the rows it leaves out, for every row when there are several optimizer
    # steps (old log-probs from before the first), and for the reference model's log-probs.
    on_policy = not rl or (len(parts) == 1 and not args.two_pass)  # SFT needs no old log-probs
    in_grad_pass = set(trainable) if on_policy else set()
    old, row_entropy = old_logprobs(model, rows, [k for k in range(len(rows)) if k not in in_grad_pass], args, device)
    ref = reference_logprobs(ref_model, rows, trainable, args, device) if ref_model is not None else {}
    logged = ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean") + (("kl",) if ref_model is not None else ()) if rl \
        else ("loss",)
    stats.update(dict.fromkeys(logged, 0.0))  # token-weighted means over the batch
    model.train()
    for part in parts:
        share = loss_shares(rows, part, args)
        optimizer.zero_grad(set_to_none=True)
        for batch in distributed.rank_batches(batches_of(rows, part, args)):
            keys = batch[0]
            with autocast(args, device):
                logp, H, mask = scored(model, rows, batch, args)
                if not keys:  # a pass that only keeps the ranks in step: its graph, weighed 0
                    loss, loss_stats = 0.0 * (logp.sum() + H.sum()), dict.fromkeys(logged, 0.0)
                elif rl:
                    old_logp = logp.detach() if on_policy else placed([old[k] for k in keys], mask)
                    loss, loss_stats = policy_loss(LossBatch(
                        logp, old_logp, A[keys].to(device), mask, placed([ref[k] for k in keys], mask) if ref else None,
                        H if args.entropy_coef > 0 else None), **loss_settings(args))
                else:
                    loss, loss_stats = sft_loss(logp, mask)
                weight = share(keys, mask)
            (loss * weight * distributed.loss_scale()).backward()  # alone: x 1
            if on_policy:
                row_entropy.update(entropy_sums(keys, H, mask))
            for key in logged:
                stats[key] += loss_stats[key] * weight / len(parts)
        stats["grad_norm"] = optimizer_step(model, optimizer)
    # under torchrun each row's entropy and each pass's statistics are one rank's: add them up
    entropy_sum = torch.zeros(len(rows))
    for k, value in row_entropy.items():
        entropy_sum[k] = value
    entropy_count = torch.tensor([float(len(r.response_ids)) for r in rows])
    for key in logged:
        stats[key] = distributed.summed(torch.tensor(stats[key], dtype=torch.float64)).item()
    return (distributed.summed(entropy_sum), entropy_count), stats


def old_logprobs(model, rows, keys, args, device):
    """({row: log-probs of its response tokens}, {row: its entropy sum}) under the current weights,
    without gradient, for the rows `keys`: every rank's, on every rank (the entropies: this rank's)."""
    old, entropy = {}, {}
    with torch.no_grad():
        for batch in distributed.rank_batches(batches_of(rows, keys, args)):
            with autocast(args, device):
                logp, H, mask = scored(model, rows, batch, args)
            old.update({k: logp[b][mask[b].bool()] for b, k in enumerate(batch[0])})
            entropy.update(entropy_sums(batch[0], H, mask))
    return distributed.merged(old, device), entropy


def reference_logprobs(ref_model, rows, trainable, args, device):
    """{row: log-probs of its response tokens} under the reference model, for the rows `trainable`
    (the KL term): every rank's, on every rank. The reference is whole on every rank, so a rank
    scores only its own rows and skips the passes of no row."""
    ref = {}
    with torch.no_grad():
        for keys, _ in distributed.rank_batches(batches_of(rows, trainable, args)):
            if keys:
                with autocast(args, device):
                    logp, _, mask = score(ref_model, rows, keys, args)
                ref.update({k: logp[b][mask[b].bool()] for b, k in enumerate(keys)})
    return distributed.merged(ref, device)


# -----------------------------------------------------------------------------
# The metrics line

def step_metrics(step, rows, token_entropy, records, stats, times, buffers, args):
    """One line of metrics.jsonl: per (role, task type) reward, entropy (the token mean over all
    response tokens, as verl logs it; entropy_seq: the mean of per-response means), length,
    truncation; per task type the valid-proposal rate and the histogram of solve rates (k/n solved)."""
    entropy_sum, entropy_count = token_entropy  # per row: the sum over its response tokens, their number
    m = {"step": step}
    for role in ("proposer", "solver"):
        for task_type in args.task_types:
            ks = [k for k, r in enumerate(rows) if r.role == role and r.task_type == task_type]
            if not ks:
                continue
            key = f"{role}/{task_type}"
            if args.method != "sft":  # SFT has no reward
                m[f"reward/{key}"] = sum(rows[k].reward for k in ks) / len(ks)
            m[f"entropy/{key}"] = (entropy_sum[ks].sum() / entropy_count[ks].sum().clamp(min=1)).item()
            m[f"entropy_seq/{key}"] = (entropy_sum[ks] / entropy_count[ks].clamp(min=1)).mean().item()
            m[f"response_len/{key}"] = sum(len(rows[k].response_ids) for k in ks) / len(ks)
            m[f"truncated/{key}"] = sum(rows[k].truncated for k in ks) / len(ks)
    for task_type in args.task_types if records else ():  # RLVR and SFT have no proposals
        tasks = [t for t in records if t["type"] == task_type]
        m[f"valid_rate/{task_type}"] = sum(t["valid"] for t in tasks) / max(1, len(tasks))
        hist = [0] * (args.solve_samples + 1)
        for t in tasks:
            if t["valid"]:
                hist[round(t["solve_rate"] * args.solve_samples)] += 1
        m[f"solve_rate_hist/{task_type}"] = hist
    if args.method != "sft":
        m["reward/mean"] = sum(r.reward for r in rows) / len(rows)
    m["entropy/mean"] = (entropy_sum.sum() / entropy_count.sum().clamp(min=1)).item()
    m["truncated/mean"] = sum(r.truncated for r in rows) / len(rows)
    m.update(stats)
    m.update({f"buffer/{name}": len(buffer) for name, buffer in buffers.items()})
    m.update({f"seconds/{k}": v for k, v in times.items()})
    return m


# -----------------------------------------------------------------------------
# Settings: the presets and every flag. Flags left unset take the preset's value; the full config
# is saved with each run. Bad input is refused before anything loads or is written.

PRESETS = {
    # a laptop: tiny batches, short responses, float32
    "cpu": dict(dtype="float32", amp=False, prompts=2, group=2, solve_samples=4, references=3, induction_inputs=4,
                max_new_tokens=192, micro_batch=4, gen_batch=16, lr=1e-5, grad_ckpt=False, mini_batches=1,
                template="auto", seed_tasks=0),
    # one 80 GB GPU, 0.5B-3B, AZR as released (scripts/selfplay/coder3b.sh, azr_ppo_trainer.yaml): 64
    # tasks per (role, task type) with one sample each (rollout.n = 1), 384 sequences in ONE
    # on-policy optimizer step (coder3b.sh's ppo_mini_batch_size=128 is overridden by main_azr_ppo.py
    # to train_batch_size x problem types x 2 roles = 384), n = 8 solve-rate samples, K = 6
    # references, 10 induction inputs, the R1 scaffold, 256 seed tasks. Float32 master weights with bf16 compute: a pure bf16
    # AdamW would round most 1e-6 updates away, which would fake the update sparsity the study
    # measures (3B: 12 GB weights + 12 grads + 25 Adam). Responses up to 1024 tokens, not 8096.
    "gpu": dict(dtype="float32", amp=True, prompts=64, group=1, solve_samples=8, references=6, induction_inputs=10,
                max_new_tokens=1024, micro_batch=8, gen_batch=128, lr=1e-6, grad_ckpt=True, mini_batches=1,
                template="r1", seed_tasks=256),
    # the toy base of toybase.py (0.9M parameters) on a laptop: 64 samples per role and task type,
    # so that each batch holds right answers too, and a learning rate for a small model
    "toy": dict(dtype="float32", amp=False, prompts=8, group=8, solve_samples=4, references=3, induction_inputs=4,
                max_new_tokens=160, micro_batch=64, gen_batch=128, lr=2e-4, grad_ckpt=False, mini_batches=1,
                template="auto", seed_tasks=16),
}
METHODS = ("azr", "rlvr", "sft")  # the study's three post-training methods, from the same base
COUNT = number(int, 1)  # the argparse type of a count of steps, prompts, samples or tokens
PRESET_STEPS = {"toy": 30}  # default --steps (else 20): toy's 30 take about 8 minutes on 2 cores


def parser():
    p = argparse.ArgumentParser(prog="grpo.py", description="AZR self-play with a hand-written GRPO loss.")
    p.add_argument("--method", choices=METHODS, default="azr",
                   help="azr: self-play (proposer and solver); rlvr: the solver alone on --data, same loss; "
                        "sft: cross-entropy on --data's gold answers")
    p.add_argument("--data", default="toy", help="rlvr and sft: toy (fresh toy-world tasks), heldout (the toy "
                   "held-out set: an upper bound only), or a tasks.jsonl / buffer file")
    p.add_argument("--model", default="toy",
                   help="hub id, local folder, or built-in: toy (toybase.py, shipped in bases/), tiny, smollm2-135m")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<time>)")
    p.add_argument("--steps", type=COUNT, default=None, help="training steps in all (default: the preset's, 20 or toy's 30)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="defaults for a laptop CPU, one GPU, or the toy base (default: toy for --model toy, else gpu if CUDA is available)")
    p.add_argument("--task-types", default=",".join(TASK_TYPES), help="comma-separated subset of " + ", ".join(TASK_TYPES))
    p.add_argument("--prompts", type=COUNT, help="prompts per (role, task type) per step")
    p.add_argument("--group", type=COUNT, help="samples per prompt (G); prompts x group = batch per (role, task type)")
    p.add_argument("--solve-samples", type=COUNT, help="solver samples per valid proposal for its solve rate (AZR n = 8)")
    p.add_argument("--references", type=COUNT, help="reference triplets shown to the proposer (AZR K = 6)")
    p.add_argument("--induction-inputs", type=number(int, 2), help="inputs the induction proposer must give, all running (AZR: 10)")
    p.add_argument("--seed-tasks", type=number(int, 0), help="before training, the base proposes until this many valid triplets "
                   "and induction tasks fill the buffers (AZR: 256)")
    p.add_argument("--template", choices=TEMPLATES, default=None,
                   help="prompt scaffold: r1 (AZR's, chat template blanked, <think> prefilled), chat (the tokenizer's "
                        "template), auto (chat if the tokenizer has a template, else r1)")
    p.add_argument("--max-new-tokens", type=COUNT, help="longest response")
    p.add_argument("--format", choices=FORMAT_RULES, default="released",
                   help="the response format rule: released (AZR's: <think>..</think><answer>..</answer> at the "
                        "start, anything after, the last <answer> read; solve rates read with no format check) "
                        "or strict (exactly one of each tag and nothing after </answer>)")
    p.add_argument("--temperature", type=number(float, 0, above=True), default=1.0, help="sampling temperature; log-probs use the same")
    p.add_argument("--advantage", choices=sorted(ADVANTAGE_MODES), default="trr++",
                   help="trr++: baseline per (role, task type), whitened over tokens (AZR as released); trr++-seq: "
                        "the same over sequences; grpo: per prompt; drgrpo: per prompt, no std")
    p.add_argument("--loss-agg", choices=["token-mean", "seq-mean-token-mean", "seq-sum-norm"], default="token-mean",
                   help="token-mean (DAPO, verl), sequence mean of token means (GRPO), sum / max-new-tokens (Dr. GRPO)")
    p.add_argument("--loss-weight", choices=["tokens", "blocks"], default="tokens",
                   help="tokens: one token mean over the mini-batch, every response token weighs the same; blocks: "
                        "AZR as released, each (role, task type) block a token mean of its own, the blocks weighing "
                        "the same whatever their lengths (with --loss-agg token-mean)")
    p.add_argument("--clip-low", type=number(float, 0, 1, below=True), default=0.2, help="ratio clip below 1")
    p.add_argument("--clip-high", type=number(float, 0), default=0.2, help="ratio clip above 1 (DAPO: 0.28)")
    p.add_argument("--kl-coef", type=number(float, 0), default=0.0, help="k3 KL to the frozen initial model (AZR: 0)")
    p.add_argument("--entropy-coef", type=number(float, 0), default=0.001, help="entropy bonus: loss - coef x token-mean entropy (AZR: 0.001)")
    p.add_argument("--proposer-reward", choices=sorted(PROPOSER_REWARDS), default="learnability",
                   help="learnability (AZR), peaked at solve rate 0.5 (the study), or sharpening")
    p.add_argument("--reward-levels", choices=REWARD_LEVELS, default="released",
                   help="proposer penalties: released (invalid -1, solve rate 0 or 1 -0.5) or paper (invalid -0.5, 0 or 1 -> 0)")
    p.add_argument("--duplicate-penalty", action="store_true",
                   help="a proposal repeating a buffer task or an earlier one of its batch is invalid (AZR: off)")
    p.add_argument("--skip-zero-var", action="store_true",
                   help="leave zero-variance groups out of the loss (AZR keeps them: they add tokens and the entropy bonus)")
    p.add_argument("--freeze-proposer", action="store_true", help="the proposer samples but gets no gradient")
    p.add_argument("--lr", type=number(float, 0, above=True), help="AdamW learning rate")
    p.add_argument("--weight-decay", type=number(float, 0), default=0.01, help="AdamW weight decay (AZR: 0.01, verl's default)")
    p.add_argument("--mini-batches", type=COUNT, help="optimizer steps per batch (AZR: 1, all 384 sequences at once)")
    p.add_argument("--micro-batch", type=COUNT, help="sequences per forward/backward (gradient accumulation)")
    p.add_argument("--gen-batch", type=COUNT, help="sequences decoded at once")
    p.add_argument("--sampler", choices=ENGINES, default="loop",
                   help="loop: sampling.py's decoding loop, each decode step written out for Llama and Qwen2 models; "
                        "eager: the same loop through the model's own forward (the reference); hf: Hugging Face "
                        "generate (slower)")
    p.add_argument("--share-prompts", action=argparse.BooleanOptionalAction, default=True,
                   help="forward a prompt once for the samples that share it in the update (same loss and gradient), "
                        "where --group > 1 and gradient checkpointing is off")
    p.add_argument("--two-pass", action="store_true",
                   help="a separate no-grad pass for the old log-probs even when on-policy (the same loss; for comparison)")
    p.add_argument("--chunk-size", type=COUNT, default=128, help="positions per chunk of the log-prob/entropy pass")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None, help="gradient checkpointing")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="dtype of the weights")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for each forward (weights and the optimizer step stay in --dtype)")
    p.add_argument("--save-every", type=COUNT, default=10, help="checkpoint every this many steps (and at the end)")
    p.add_argument("--seed", type=int, default=0, help="seeds sampling and reference draws, step by step")
    p.add_argument("--report-to", choices=sorted(TRACKERS), default="none",
                   help="also show each step's metrics in TensorBoard (local event files in the run folder) or W&B "
                        "(hosted; WANDB_MODE=offline to sync later); metrics.jsonl is written either way")
    return p


def get_args(argv=None):
    p = parser()
    args = p.parse_args(argv)
    args.preset = args.preset or ("toy" if args.model in TOY_BASES else "gpu" if torch.cuda.is_available() else "cpu")
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.task_types = [t.strip() for t in args.task_types.split(",") if t.strip()]
    if args.method != "azr" and args.task_types == list(TASK_TYPES):
        args.task_types = list(TRIPLET_TYPES)  # a fixed dataset of triplets has no induction tasks
    check_args(p, args)
    return args


def check_args(p, args):
    """Refuse bad settings with the usage and one error line, exit status 2 (argparse's p.error),
    before anything is loaded or written. Single values are checked by their argparse types."""
    bad = [t for t in args.task_types if t not in TASK_TYPES]
    if bad or not args.task_types:
        p.error(f"--task-types: unknown {bad or 'empty list'}; choose from {', '.join(TASK_TYPES)}")
    if args.duplicate_penalty and distributed.launched():
        p.error("--duplicate-penalty checks a proposal against the earlier ones of the whole batch, other ranks' "
                "under torchrun: run it in one process")
    if args.loss_weight == "blocks" and args.loss_agg != "token-mean":
        p.error(f"--loss-weight blocks takes a token mean within each block: use it with --loss-agg token-mean, "
                f"not {args.loss_agg}")
    if args.group == 1 and args.advantage in ("grpo", "drgrpo"):
        p.error(f"--advantage {args.advantage} needs --group of at least 2 (a group of one has no baseline); use trr++")
    if args.resume:
        if not args.out or not os.path.isfile(os.path.join(args.out, "config.json")):
            p.error(f"--resume: no run folder with a config.json at --out {args.out}; start a run without --resume")
    elif args.out and last_checkpoint(args.out):
        p.error(f"--out {args.out} already holds a run: pass --resume to continue it, or another --out")
    problem = model_name_problem(args.model) or tracker_problem(args.report_to)
    if problem:
        p.error(problem if problem.startswith("--") else f"--model {problem}")
    if args.method != "azr":
        if "induction" in args.task_types:
            p.error(f"--method {args.method} trains on triplets: --task-types deduction and/or abduction")
        problem = data_problem(args.data)
        if problem:
            p.error(problem)


# -----------------------------------------------------------------------------
# The run: load or resume, seed the buffers, then one training_step per step

def load_buffers(checkpoint, buffers):
    """The buffers saved with a checkpoint. A run saved before the triplet buffer was split in two
    (one buffer_triplet.jsonl) starts both triplet buffers from it."""
    def path(name):
        return os.path.join(checkpoint, f"buffer_{name}.jsonl")
    return {name: load_buffer(path(name) if os.path.exists(path(name)) else path("triplet")) for name in buffers}


def train(args):
    """The run: load (or resume), seed the buffers, then training_step once per step, each step's
    metrics and proposals appended to the run folder, a checkpoint every --save-every steps.
    Under torchrun (distributed.py) every rank runs it on its shard of the model; rank 0 writes."""
    distributed.start()  # under torchrun: join the other ranks (alone: nothing)
    if args.resume:
        steps, out = args.steps, args.out
        with open(os.path.join(args.out, "config.json")) as f:  # a flag newer than the run takes its default
            args = argparse.Namespace(**{**vars(parser().parse_args([])), **json.load(f)})
        args.resume = True  # the saved config was written by a fresh run
        args.steps = steps or args.steps  # a resumed run may be given more steps; nothing else changes
        args.out = out  # the folder resumed is the one given, even a moved or copied run
    else:
        args.steps = args.steps or PRESET_STEPS.get(args.preset, 20)
        args.out = distributed.from_rank0(  # rank 0's clock names the run for every rank
            args.out or os.path.join("runs", f"{os.path.basename(args.model.rstrip('/'))}-{time.strftime('%Y%m%d-%H%M%S')}"))
    checkpoint = last_checkpoint(args.out) if args.resume else None
    try:  # before anything is written; a hub id that cannot be reached ends here, as a bad flag would
        model, tokenizer = load_model(checkpoint or args.model, dtype=args.dtype)
    except ValueError as e:
        parser().error(str(e))
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    ref_model = None
    if args.kl_coef > 0:
        # frozen, so held in the dtype it computes in: under --amp bf16, half the memory of float32
        ref_model = load_model(args.model, dtype="bfloat16" if args.amp else args.dtype)[0].eval().requires_grad_(False)
    distributed.shard(model, bf16=args.amp)  # under torchrun: FSDP2 shards, before the optimizer holds them
    if not args.resume and distributed.is_main():
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "config.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
    optimizer = adamw(model, args.lr, args.weight_decay)
    buffers = new_buffers()
    start = 0
    if checkpoint:
        state = torch.load(os.path.join(checkpoint, "trainer_state.pt"), weights_only=True)
        distributed.load_optimizer(model, optimizer, state["optimizer"])  # alone: optimizer.load_state_dict
        start = state["step"]
        buffers = load_buffers(checkpoint, buffers)
    elif args.seed_tasks and args.method == "azr":
        with distributed.full_weights(model):
            records = seed_buffers(model, tokenizer, buffers, args)
        if distributed.is_main():
            with open(os.path.join(args.out, "seed_tasks.jsonl"), "w") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            for name, buffer in buffers.items():
                save_buffer(os.path.join(args.out, f"seed_buffer_{name}.jsonl"), buffer)
    main = distributed.is_main()  # rank 0 writes the run folder and shows progress (alone: True)
    for name in ("metrics.jsonl", "tasks.jsonl") if main else ():
        keep_lines_until(os.path.join(args.out, name), start)
    tasks = load_data(args.data) if args.method != "azr" else None
    log, close_tracker = open_tracker(args.report_to if main else "none", args.out, vars(args))
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=f"{args.method} {args.out}",
               disable=not main)
    for step in bar:
        metrics, records = training_step(step + 1, model, tokenizer, optimizer, buffers, tasks, args, ref_model)
        if main:
            with open(os.path.join(args.out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(metrics) + "\n")
            log(metrics)
            with open(os.path.join(args.out, "tasks.jsonl"), "a") as f:
                f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:  # under torchrun every rank gathers
            save_checkpoint(args.out, step + 1, model, tokenizer, optimizer, buffers)
        bar.set_postfix(reward=f"{metrics.get('reward/mean', float('nan')):.2f}", entropy=f"{metrics['entropy/mean']:.2f}",
                        valid=f"{sum(t['valid'] for t in records)}/{len(records)}")
    close_tracker()
    close_pool()
    distributed.stop()
    return args.out


if __name__ == "__main__":
    train(get_args())
