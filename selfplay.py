"""
AZR self-play's rollouts: the proposer's tasks, their solve rates and rewards, then the solver.

One step (AZR arXiv 2505.03335, section 3.3, Algorithm 1): for each task type the proposer writes
--prompts x --group tasks (deduction and abduction prompts show --references triplets from the
buffer; induction prompts show a buffer program and ask for --induction-inputs inputs and a
message); each valid one gets --solve-samples solver samples whose mean is its solve rate, which
sets the proposer's reward; the solver then answers this step's valid tasks, topped up from the
buffer. Before the first step, `seed_buffers` fills the buffers as AZR's released code does.
The update that follows is grpo.py's; RLVR's and SFT's steps are rlvr.py and sft.py.
"""

import random
import time
from dataclasses import asdict

from tqdm import tqdm

from proposer import (add_to_buffer, induction_proposal_prompt, make_tasks, proposal_prompt, proposer_reward,
                      sample_references, task_key)
from rollout import rollout
from solver import solver_prompt, solver_rewards


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
