"""
RLVR: reinforcement learning with verifiable rewards on a fixed set of tasks, the solver alone.

The study (arXiv 2510.27072) compares AZR self-play with RLVR started from the same base: the
same rollouts, rewards and clipped loss as grpo.py, but no proposer, and tasks drawn from a fixed
dataset instead of the model's own proposals. At toy scale the dataset is generated deduction
tasks (toytasks.fresh_tasks, none from the held-out set); `--tasks heldout` trains on the held-out
tasks themselves, an upper bound on what the reward can teach this base in minutes.

    python rlvr.py --tasks fresh --steps 40       # held-out deduction accuracy every 10 steps
    python rlvr.py --tasks heldout --out runs/rlvr-heldout
"""

import argparse
import os
import random

import torch
from tqdm import tqdm

import executor
import models
from grpo import get_args as grpo_args, rollout, update
from solver import solver_prompt, solver_rewards
from toytasks import fresh_tasks, heldout
from toyworld import solved


def rlvr(model, tokenizer, tasks, steps, args, report=None, every=10):
    """Deduction RL with verifiable rewards, with self-play's own rollout, rewards and update: each
    step draws args.prompts of `tasks` (Generated) at random, samples args.group answers to each at
    args.temperature, rewards them with solver.solver_rewards (training values) and takes one
    grpo.update. report(step) runs before the first step and after every `every` steps. Returns the
    fraction of each step's samples that were right."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng, right = random.Random(args.seed), []
    if report:
        report(0)
    for step in tqdm(range(1, steps + 1), desc="rlvr"):
        chosen = rng.sample(tasks, min(args.prompts, len(tasks)))
        rows, texts, index = rollout(model, tokenizer, [solver_prompt("deduction", t.task) for t in chosen],
                                     args.group, args, args.seed * 1_000_003 + step, "solver", "deduction", 0)
        rewards = solver_rewards("deduction", [chosen[i].task for i in index], texts, train=True)
        for row, reward in zip(rows, rewards):
            row.reward = reward
        update(model, optimizer, rows, args)
        right.append(sum(r == 1 for r in rewards) / len(rewards))
        if report and step % every == 0:
            report(step)
    return right


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Solver-only RL (RLVR) on toy-world deduction tasks.")
    p.add_argument("--tasks", choices=["fresh", "heldout"], default="fresh",
                   help="fresh generated tasks (none held out), or the held-out set itself")
    p.add_argument("--model", default="toy", help="the model to train (default: the toy base)")
    p.add_argument("--steps", type=int, default=40, help="steps of 16 tasks x 8 samples")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: grpo's toy preset, 2e-4)")
    p.add_argument("--out", help="save the trained model to this folder")
    args = p.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tokenizer = models.load_model(args.model)
    settings = grpo_args(["--model", args.model, "--preset", "toy", "--prompts", "16"]
                         + (["--lr", str(args.lr)] if args.lr is not None else []))
    tasks, held = (fresh_tasks() if args.tasks == "fresh" else heldout()), heldout()

    def report(step):
        greedy = sum(solved(model, tokenizer, "deduction", held)) / len(held)
        sampled = sum(solved(model, tokenizer, "deduction", held, 1.0, 4)) / len(held)
        tqdm.write(f"step {step:4d}: held-out deduction {100 * greedy:5.1f} % near-greedy, "
                   f"{100 * sampled:5.1f} % at temperature 1")

    rlvr(model, tokenizer, tasks, args.steps, settings, report)
    if args.out:
        model.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
    executor.close_pool()
