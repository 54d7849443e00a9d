"""
The toy world: build its base, and measure any model on its held-out tasks.

A base model built on a laptop (toybase.py, from the generated tasks and corpus of toytasks.py),
so that self-play can run, and be seen to learn, on a CPU. The base holds a skill it seldom uses:
tracing a program step by step (the careful style) instead of answering at once (hasty). This
file measures a model on the fixed held-out set, per task type (deduction, abduction), each
figure next to a random guess where one exists:
  - pass@1 at temperature 1 (the mean over SAMPLES samples per task: what self-play samples),
    overall and per depth, and pass@k from the same samples;
  - near-greedy accuracy (one sample at EVAL_TEMPERATURE);
  - the share of careful responses among the free samples: what self-play can raise;
  - the accuracy of each style forced (its first words prefilled, toytasks.FORCE): what the
    base can do when it reasons, against what it does when it does not;
and the share of valid and of valid and novel proposals.

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
from evaluate import pass_at_k
from findings import mean
import models
from chat import TEMPLATES, completion, render_prompt, resolve_template, teacher_forced
from proposer import make_tasks, proposal_prompt
from runs import eval_templates, number
from sampling import sample
from solver import TRIPLET_TYPES, solver_prompt, solver_rewards
from toytasks import DEPTHS, FORCE, HELDOUT_SEED, STYLES, heldout, random_input, show, style_of

GUESSES = 32                   # random inputs per held-out task for the random-guess baselines
EVAL_TEMPERATURE = 0.01        # near-greedy answers for accuracy (sampling.sample has no greedy mode)
SAMPLES = 16                   # samples per task at temperature 1: pass@1 is their mean, pass@k up to k = SAMPLES
PASS_KS = (1, 2, 4, 8, 16)
FORCED_SAMPLES = 8             # samples per task and forced style, at temperature 1


def guess_rates(tasks, rng):
    """Per task, the fraction of GUESSES random inputs of the right types (random_input) for which
    f returns the task's output. As a deduction baseline it is a guesser who knows what f tends
    to return but not the input; as an abduction baseline it is random inputs."""
    replies = executor.get_pool().run([(t.task.program, [random_input(t.arg_types, rng) for _ in range(GUESSES)], None)
                                       for t in tasks])
    return [sum(ok and executor.check_deduction(t.task.outputs[0], out).ok for ok, out in reply.get("results", []))
            / GUESSES for t, reply in zip(tasks, replies)]


def answers(model, tokenizer, task_type, tasks, temperature=EVAL_TEMPERATURE, n=1, prefix="", max_new_tokens=256,
            template="chat"):
    """Per task (a Generated), n answers sampled at `temperature`, each as (right, style): right by
    solver.solver_rewards at evaluation, style by toytasks.style_of. Prompts are rendered in the
    scaffold `template` (the one the model trained with: runs.eval_templates). `prefix` is
    prefilled: it follows the rendered prompt, so the model continues it, and it is put back in
    front of each response before the response is graded, as the words the model answered with."""
    prompts = []
    for t in tasks:
        prompt, prefilled = teacher_forced(tokenizer, solver_prompt(task_type, t.task), prefix, template)
        prompts.append(prompt + prefilled)
    out = sample(model, tokenizer, prompts, n, max_new_tokens, temperature, seed=0, batch_size=64)
    index, texts = out["prompt_index"].tolist(), [completion(prefilled + text, resolve_template(tokenizer, template))
                                                  for text in out["texts"]]
    rewards = solver_rewards(task_type, [tasks[k].task for k in index], texts, evaluation=True)
    per_task = [[] for _ in tasks]
    for k, text, reward in zip(index, texts, rewards):
        per_task[k].append((reward == 1.0, style_of(text)))
    return per_task


def solved(model, tokenizer, task_type, tasks, temperature=EVAL_TEMPERATURE, n=1, max_new_tokens=256, prefix="",
           template="chat"):
    """Per task (a Generated), the fraction of n answers sampled at `temperature` that are right."""
    return [sum(right for right, _ in a) / n
            for a in answers(model, tokenizer, task_type, tasks, temperature, n, prefix, max_new_tokens, template)]


def heldout_figures(model, tokenizer, programs=frozenset(), n=SAMPLES, forced=FORCED_SAMPLES, proposals=128,
                    references=3, template="chat"):
    """Figures of a model on the held-out set, as {name: (value, random-guess baseline or None, n)}
    (n: the tasks, or the samples, the value is the mean of), for each task type:
      pass@k at temperature 1 for k in PASS_KS up to n, from n samples per task
        (pass_at_k); its baseline is k independent random guesses, 1 - (1 - g)^k with g
        the task's guess rate;
      pass@1 per depth, from the same samples;
      near-greedy accuracy (one sample at EVAL_TEMPERATURE);
      the share of careful responses among the free samples (toytasks.style_of);
      each style forced: the accuracy of `forced` samples per task at temperature 1, the style's
        FORCE words prefilled;
    and the proposals: `proposals` deduction and abduction proposer prompts showing `references`
    held-out triplets, sampled at temperature 1 as in self-play: the fraction valid
    (proposer.make_tasks) and valid and novel (a program neither in `programs`, the corpus, nor
    among the references shown). Every prompt is rendered in the scaffold `template`."""
    tasks = heldout()
    rates = guess_rates(tasks, random.Random(HELDOUT_SEED))
    figures = {}
    for task_type in TRIPLET_TYPES:
        free = answers(model, tokenizer, task_type, tasks, 1.0, n, template=template)
        right = [sum(r for r, _ in a) for a in free]
        for k in [k for k in PASS_KS if k <= n]:
            figures[f"{task_type} pass@{k}"] = (mean(pass_at_k(n, c, k) for c in right),
                                                mean(1 - (1 - g) ** k for g in rates), len(tasks))
        for depth in DEPTHS:
            chosen = [j for j, t in enumerate(tasks) if t.depth == depth]
            figures[f"{task_type} pass@1 depth {depth}"] = (mean(right[j] / n for j in chosen),
                                                            mean(rates[j] for j in chosen), len(chosen))
        figures[f"{task_type} near-greedy"] = (mean(solved(model, tokenizer, task_type, tasks, template=template)),
                                               mean(rates), len(tasks))
        figures[f"{task_type} careful share"] = (mean(s == "careful" for a in free for _, s in a), None, n * len(tasks))
        for style in STYLES:
            figures[f"{task_type} forced {style}"] = (
                mean(solved(model, tokenizer, task_type, tasks, 1.0, forced, prefix=FORCE[style], template=template)),
                mean(rates), len(tasks))
    rng = random.Random(HELDOUT_SEED)
    valid = novel = 0
    for kind in TRIPLET_TYPES:
        shown = [rng.sample(tasks, references) for _ in range(proposals // 2)]
        prompts = [render_prompt(tokenizer, proposal_prompt(kind, [t.task for t in refs]), template) for refs in shown]
        out = sample(model, tokenizer, prompts, 1, 256, 1.0, seed=1, batch_size=64)
        texts = [completion(text, resolve_template(tokenizer, template)) for text in out["texts"]]
        for task, refs in zip(make_tasks(kind, texts, 0, []), shown):
            valid += task.valid
            novel += task.valid and task.program not in programs and task.program not in {t.task.program for t in refs}
    figures["proposals valid"] = (valid / proposals, None, proposals)
    figures["proposals valid and novel"] = (novel / proposals, None, proposals)
    return figures


def corpus_programs():
    """The programs of the toy base's corpus (its toyworld.json, shipped with the base in bases/);
    toy-v3's corpus has the same programs (its build differs from toy-v2's in the answers only)."""
    with open(os.path.join(models.builtin_folder("toy"), "toyworld.json")) as f:
        return frozenset(json.load(f)["programs"])


def print_figures(figures):
    print(f"{'held-out figure':32s} {'model':>7s}   {'random guess':>12s}   n")
    for name, (value, baseline, n) in figures.items():
        guess = f"{100 * baseline:10.1f} %" if baseline is not None else " " * 12
        print(f"{name:32s} {100 * value:5.1f} %   {guess}   {n}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="The toy world: generated tasks, a small base model, held-out figures.")
    p.add_argument("--show", action="store_true", help="print a few generated tasks of each depth")
    p.add_argument("--build", nargs="?", const="toy", choices=models.TOY_BASES,
                   help="build a toy base (default toy) from its seed into the cache (a shipped one in bases/ is used first)")
    p.add_argument("--eval", metavar="MODEL", help="held-out figures of a model: built-in name, folder or hub id")
    p.add_argument("--samples", type=number(int, 1), default=SAMPLES, help="samples per task at temperature 1 (pass@k up to k = this)")
    p.add_argument("--forced", type=number(int, 1), default=FORCED_SAMPLES, help="samples per task and forced style")
    p.add_argument("--template", choices=TEMPLATES, default=None,
                   help="prompt scaffold (default: a checkpoint's run's own, from its config.json; else auto)")
    args = p.parse_args()
    if args.show:
        show()
    if args.build:
        print(models.builtin_folder(args.build, rebuild=True))
    if args.eval:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        model, tokenizer = models.load_model(args.eval)
        start = time.time()
        template = eval_templates([args.eval], args.template)[args.eval]
        print_figures(heldout_figures(model, tokenizer, corpus_programs(), args.samples, args.forced, template=template))
        print(f"{args.eval}: {time.time() - start:.0f} s")
    executor.close_pool()
