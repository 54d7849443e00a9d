"""
AZR self-play's rollouts: the proposer's tasks, their solve rates and rewards, then the solver.

One step (AZR arXiv 2505.03335, section 3.3, Algorithm 1): for each task type the proposer writes
--prompts x --group tasks (deduction and abduction prompts show --references triplets from their
own buffer; induction prompts show a triplet program and ask for --induction-inputs inputs and a
message); each valid one gets --solve-samples solver samples whose mean is its solve rate, which
sets the proposer's reward; the solver answers tasks of its type's buffer, the newest first, as
AZR's released trainer draws them. The step decodes twice, whatever the number of task types: the
proposals and the solver's answers in one call (proposals_and_answers), then every solve-rate
sample in one (solve_rates). Before the first step, `seed_buffers` fills the buffers. The file
reads top-down, as grpo.py does: the step (self_play), its two decodes, its draws of tasks and
prompts, then the seeding.
The update that follows is grpo.py's; RLVR's and SFT's steps are rlvr.py and sft.py.
"""

from dataclasses import asdict

from tqdm import tqdm

import distributed
from proposer import (add_to_buffer, induction_proposal_prompt, make_tasks, proposal_prompt, proposer_reward,
                      sample_references)
from rollout import positions_by, rollout, seeding_randomness, solver_rollout, step_randomness, timed
from solver import solver_prompt, solver_rewards


def self_play(step, model, tokenizer, buffers, args):
    """One step of rollouts (AZR section 3.3, Algorithm 1): proposals, their solve rates and rewards,
    then the solver on tasks from the buffers. Returns the rows, one record per proposal (the task,
    its proposer reward, the solver's mean response length on it) and timings.

    Every prompt of the step is drawn from the buffers as they stand at its start, and the step's
    valid proposals join them at its end: AZR's released trainer builds all its dataloaders before
    the step's first rollout, so this step's proposals reach the proposers and the solver from the
    next step on (solver_tasks)."""
    rng, seeds = step_randomness(args.seed, step)
    times = {"generate": 0.0, "execute": 0.0}
    plans = {t: (*proposer_prompts(t, buffers, args, rng), solver_tasks(buffers[t], step, args.prompts, rng))
             for t in args.task_types}
    # one decode for the proposals and the solver's answers, one for the solve rates
    rows, tasks = proposals_and_answers(model, tokenizer, plans, buffers, args, next(seeds), step, times)
    proposals = [(row, task) for row, task in zip(rows, tasks) if task is not None]
    valid = [(row.task_type, task) for row, task in proposals if task.valid]
    lengths = {}
    if valid:  # solve rate: the mean of n solver samples at evaluation reward (1/0)
        rates, solver_lengths = solve_rates(model, tokenizer, valid, args, next(seeds), times)
        for (_, task), rate, length in zip(valid, rates, solver_lengths):
            task.solve_rate, lengths[id(task)] = rate, length
    records = []
    for row, task in proposals:
        row.reward = proposer_reward(task, args.proposer_reward, args.reward_levels)
        row.learns = not args.freeze_proposer
        records.append({**asdict(task), "proposer_reward": row.reward, "solver_response_len": lengths.get(id(task))})
    for task_type in args.task_types:
        add_to_buffer(buffers[task_type], [task for t, task in valid if t == task_type])
    return rows, records, times


def proposals_and_answers(model, tokenizer, plans, buffers, args, seed, step, times):
    """The step's first decode: args.group proposals to every proposer prompt and args.group answers
    to every solver task, of every task type, in ONE sample call (the solver's tasks are the
    buffers' as they stood at the step's start, so they need not wait for the proposals; one call
    instead of one per role and type, and the tails of short calls overlap). Then each type's
    proposals are parsed and checked (make_tasks) and the answers rewarded (solver_rewards,
    training). Returns (rows, tasks): the proposer rows of every type, then the solver rows, and
    per row its Task (None for a solver row). Under torchrun each rank takes its share of the prompts."""
    asks, items = [], []  # items: the program an induction prompt shows, the task a solver prompt poses
    for task_type in args.task_types:
        texts, programs, _ = plans[task_type]
        asks += [(text, "proposer", task_type) for text in texts]
        items += programs or [None] * len(texts)
    for task_type in args.task_types:
        asks += [(solver_prompt(task_type, task), "solver", task_type) for task in plans[task_type][2]]
        items += plans[task_type][2]

    def work(lo, hi):  # asks[lo:hi]
        with timed(times, "generate"):
            rows, responses, index = rollout(model, tokenizer, asks[lo:hi], args.group, args, seed=seed, first_prompt=lo)
        tasks = [None] * len(rows)
        with timed(times, "execute"):
            for (role, task_type), ks in positions_by([(r.role, r.task_type) for r in rows]).items():
                said, shown = [responses[k] for k in ks], [items[lo + index[k]] for k in ks]
                if role == "proposer":
                    made = make_tasks(task_type, said, step, buffers[task_type],
                                      programs=shown if task_type == "induction" else None,
                                      num_inputs=args.induction_inputs, dedupe=args.duplicate_penalty, rule=args.format)
                    for k, task in zip(ks, made):
                        tasks[k] = task
                else:
                    for k, reward in zip(ks, solver_rewards(task_type, shown, said, rule=args.format)):
                        rows[k].reward = reward
        return rows, tasks
    return distributed.shared(len(asks), work, times)


def solve_rates(model, tokenizer, tasks, args, seed, times):
    """The step's second decode: each (task type, task)'s solve rate, the mean of args.solve_samples
    solver samples at evaluation reward (1/0), and those samples' mean response length, as two
    lists, every task of every type in ONE sample call (rollout.solver_rollout)."""
    solved, lengths = [0.0] * len(tasks), [0.0] * len(tasks)
    for row in solver_rollout(model, tokenizer, tasks, args, seed, 0, times, n=args.solve_samples, evaluation=True):
        solved[row.prompt_id] += row.reward / args.solve_samples
        lengths[row.prompt_id] += len(row.response_ids) / args.solve_samples
    return solved, lengths


def solver_tasks(buffer, step, n, rng):
    """The solver's n tasks of a step, as AZR's released trainer draws them (pred_data_mix_strategy
    max_new, window 1: trainer/ppo/azr_ray_trainer.py, _create_train_code_pred_dataloader): the
    buffer's new tasks (added at the previous step; at step 1 the seeds), drawn without
    replacement, topped up uniformly from the whole buffer. Where AZR would fail (a buffer smaller
    than the top-up: only with --seed-tasks 0) the top-up draws with replacement."""
    new = [t for t in buffer if step - t.step <= 1]
    chosen = rng.sample(new, min(n, len(new)))
    rest = n - len(chosen)
    return chosen + (rng.sample(buffer, rest) if rest <= len(buffer) else [rng.choice(buffer) for _ in range(rest)])


def proposer_prompts(task_type, buffers, args, rng):
    """The user texts of a step's args.prompts proposer prompts, and for induction the programs
    they show. Deduction and abduction show args.references tasks of their own buffer; induction
    shows a program drawn from the deduction and abduction buffers together, as AZR's code_f
    proposer draws from its input and output datasets merged (get_snippets)."""
    if task_type == "induction":
        programs = [rng.choice(buffers["deduction"] + buffers["abduction"]).program for _ in range(args.prompts)]
        return [induction_proposal_prompt(p, args.induction_inputs) for p in programs], programs
    return [proposal_prompt(task_type, sample_references(buffers[task_type], args.references, rng))
            for _ in range(args.prompts)], None


def propose(model, tokenizer, task_type, texts, programs, buffer, args, seed, step):
    """args.group proposals for each prompt text, as (rows, tasks); programs: induction's, per text.
    Seeding's proposals, one task type at a time. Under torchrun each rank samples and runs its
    share of the texts, and all get every proposal."""
    def write(lo, hi):  # texts[lo:hi]
        rows, responses, index = rollout(model, tokenizer, [(text, "proposer", task_type) for text in texts[lo:hi]],
                                         args.group, args, seed=seed, first_prompt=lo)
        tasks = make_tasks(task_type, responses, step, buffer,
                           programs=[programs[lo + i] for i in index] if programs else None,
                           num_inputs=args.induction_inputs, dedupe=args.duplicate_penalty, rule=args.format)
        return rows, tasks
    return distributed.shared(len(texts), write)


def seed_buffers(model, tokenizer, buffers, args, max_rounds=50):
    """AZR's seeding (azr.seed_dataset and _init_seed_dataset in its released code): before any
    update, the base model proposes, in rounds, until args.seed_tasks distinct valid triplets fill
    one seed set (deduction and abduction prompts both add to it; it then starts both triplet
    buffers), then, with programs drawn from the full seed set, until args.seed_tasks induction
    tasks fill the induction buffer; each phase stops after max_rounds rounds. Returns a record of
    every proposal made (the task, valid or not, its phase and round). Under torchrun each rank
    makes its share of each round's proposals (propose), and every rank's buffers fill alike."""
    seed_set = buffers["deduction"]  # one list for both triplet types while seeding
    pool = {"deduction": seed_set, "abduction": seed_set, "induction": buffers["induction"]}
    phases = [("triplet", [t for t in args.task_types if t != "induction"]),
              ("induction", [t for t in args.task_types if t == "induction"])]
    bar = tqdm(total=sum(args.seed_tasks for _, types in phases if types), desc="seeding the buffers", unit="task",
               disable=not distributed.is_main())
    records = []
    for phase, task_types in phases:
        for round_ in range(max_rounds):
            if not task_types or len(pool[task_types[0]]) >= args.seed_tasks:
                break
            rng, sampling_seeds = seeding_randomness(args.seed, phase, round_, task_types)
            for task_type, sampling_seed in zip(task_types, sampling_seeds):
                texts, programs = proposer_prompts(task_type, pool, args, rng)
                _, tasks = propose(model, tokenizer, task_type, texts, programs, pool[task_type], args, sampling_seed, 0)
                add_to_buffer(pool[task_type], tasks, dedupe=True)
                records += [{**asdict(t), "phase": phase, "round": round_} for t in tasks]
            bar.n = sum(min(len(pool[types[0]]), args.seed_tasks) for _, types in phases if types)
            bar.refresh()
        if task_types and len(pool[task_types[0]]) < args.seed_tasks:
            tqdm.write(f"seeding stopped after {max_rounds} rounds: {len(pool[task_types[0]])} {phase} tasks")
    bar.close()
    buffers["abduction"] = list(seed_set)
    return records
