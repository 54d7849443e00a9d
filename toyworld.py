"""
The toy world: build its base, and measure any model on its held-out tasks.

A base model built on a laptop in minutes (toybase.py, from the generated tasks and corpus of
toytasks.py), so that self-play can run, and be seen to learn, on a CPU. This file measures a
model on the fixed held-out set, each figure next to a random guess: deduction accuracy
near-greedy (overall, per depth, on non-bool outputs) and at temperature 1, abduction accuracy
(overall and on the tasks no random input solves), and the share of valid and novel proposals.

    python toyworld.py --show            # a few generated tasks of each depth
    python toyworld.py --build           # build the base (`--model toy` does it on first use)
    python toyworld.py --eval toy        # held-out figures of any model, next to random guessing
    python toyworld.py --eval runs/RUN/checkpoints/step_000030
"""

import argparse
import json
import os
import random
import time

import torch

import executor
import models
from chat import render_chat
from proposer import make_tasks, proposal_prompt
from sampling import sample
from solver import solver_prompt, solver_rewards
from toytasks import DEPTHS, HELDOUT_SEED, heldout, random_input, show

GUESSES = 32                   # random inputs per held-out task for the random-guess baselines
EVAL_TEMPERATURE = 0.01        # near-greedy answers for accuracy (sampling.sample has no greedy mode)


def guess_rates(tasks, rng):
    """Per task, the fraction of GUESSES random inputs of the right types (random_input) for which
    f returns the task's output. As a deduction baseline it is a guesser who knows what f tends
    to return but not the input; as an abduction baseline it is random inputs; 0 marks the hard
    abduction tasks, where no random input hit the output."""
    replies = executor.get_pool().run([(t.task.program, [random_input(t.arg_types, rng) for _ in range(GUESSES)], None)
                                       for t in tasks])
    return [sum(ok and executor.check_deduction(t.task.outputs[0], out).ok for ok, out in reply.get("results", []))
            / GUESSES for t, reply in zip(tasks, replies)]


def solved(model, tokenizer, task_type, tasks, temperature=EVAL_TEMPERATURE, n=1, max_new_tokens=256):
    """Per task (a Generated), the fraction of n answers sampled at `temperature` that are right
    (solver.solver_rewards at evaluation: 1 or 0)."""
    prompts = [render_chat(tokenizer, solver_prompt(task_type, t.task)) for t in tasks]
    out = sample(model, tokenizer, prompts, n, max_new_tokens, temperature, seed=0, batch_size=64)
    rewards = solver_rewards(task_type, [tasks[k].task for k in out["prompt_index"].tolist()], out["texts"],
                             train=False)
    return [sum(rewards[k * n:(k + 1) * n]) / n for k in range(len(tasks))]


def heldout_figures(model, tokenizer, programs=frozenset(), proposals=128, references=3):
    """Figures of a model on the held-out set, as {name: (value, random-guess baseline or None, n)}:
      deduction accuracy at EVAL_TEMPERATURE (near-greedy), overall, per depth and on non-bool
      outputs, and at temperature 1 (the mean of 4 samples per task: what self-play samples);
      abduction accuracy on the hard subset (no random input gives the output) and overall;
      proposals: `proposals` deduction and abduction proposer prompts showing `references`
      held-out triplets, sampled at temperature 1 as in self-play: the fraction valid
      (proposer.make_tasks) and valid and novel (a program neither in `programs`, the corpus,
      nor among the references shown)."""
    tasks = heldout()
    rates = guess_rates(tasks, random.Random(HELDOUT_SEED))
    everything = range(len(tasks))
    right = solved(model, tokenizer, "deduction", tasks)
    subsets = {"deduction": everything, **{f"deduction depth {d}": [k for k in everything if tasks[k].depth == d]
                                           for d in DEPTHS},
               "deduction non-bool": [k for k in everything if tasks[k].task.outputs[0] not in ("True", "False")]}
    figures = {name: (sum(right[k] for k in chosen) / len(chosen), sum(rates[k] for k in chosen) / len(chosen),
                      len(chosen)) for name, chosen in subsets.items()}
    figures["deduction, temperature 1"] = (sum(solved(model, tokenizer, "deduction", tasks, 1.0, 4)) / len(tasks),
                                           sum(rates) / len(tasks), len(tasks))
    right = solved(model, tokenizer, "abduction", tasks)
    hard = [k for k in everything if rates[k] == 0]
    figures["abduction"] = (sum(right) / len(tasks), sum(rates) / len(tasks), len(tasks))
    figures["abduction hard"] = (sum(right[k] for k in hard) / max(1, len(hard)), 0.0, len(hard))
    rng = random.Random(HELDOUT_SEED)
    valid = novel = 0
    for kind in ("deduction", "abduction"):
        shown = [rng.sample(tasks, references) for _ in range(proposals // 2)]
        prompts = [render_chat(tokenizer, proposal_prompt(kind, [t.task for t in refs])) for refs in shown]
        out = sample(model, tokenizer, prompts, 1, 256, 1.0, seed=1, batch_size=64)
        for task, refs in zip(make_tasks(kind, out["texts"], 0, []), shown):
            valid += task.valid
            novel += task.valid and task.program not in programs and task.program not in {t.task.program for t in refs}
    figures["proposals valid"] = (valid / proposals, None, proposals)
    figures["proposals valid and novel"] = (novel / proposals, None, proposals)
    return figures


def corpus_programs():
    """The programs of the toy base's corpus (built on first use)."""
    with open(os.path.join(models.builtin_folder("toy"), "toyworld.json")) as f:
        return frozenset(json.load(f)["programs"])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="The toy world: generated tasks, a small base model, held-out figures.")
    p.add_argument("--show", action="store_true", help="print a few generated tasks of each depth")
    p.add_argument("--build", action="store_true", help="build the toy base into the cache (models.BUILTINS['toy'])")
    p.add_argument("--eval", metavar="MODEL", help="held-out figures of a model: built-in name, folder or hub id")
    args = p.parse_args()
    if args.show:
        show()
    if args.build:
        print(models.builtin_folder("toy"))
    if args.eval:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        model, tokenizer = models.load_model(args.eval)
        start = time.time()
        figures = heldout_figures(model, tokenizer, corpus_programs())
        for name, (value, baseline, n) in figures.items():
            guess = f"   random guess {100 * baseline:5.1f} %" if baseline is not None else ""
            print(f"{name:28s} {100 * value:5.1f} %{guess}   (n = {n})")
        print(f"{args.eval}: {time.time() - start:.0f} s")
    executor.close_pool()
