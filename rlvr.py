"""
RLVR: reinforcement learning with verifiable rewards on a fixed set of tasks, the solver alone.

The study (arXiv 2510.27072) compares AZR self-play with RLVR started from the same base: the same
rollouts, rewards and clipped loss as self-play (grpo.py), but no proposer, and tasks drawn from a
fixed dataset instead of the model's own proposals. Run it as `python grpo.py --method rlvr`.
Data (`--data`):
  toy          fresh generated toy-world tasks (toytasks.fresh_tasks), none from the held-out set;
  heldout      the toy world's held-out tasks themselves: an upper bound on what the reward can
               teach, never a fair comparison;
  PATH         a run's tasks.jsonl or a saved buffer (its valid tasks), e.g. AZR's own proposals.
Each step draws --prompts tasks per task type at random (from --seed and the step, so a resumed
run draws the same), samples --group answers to each, and rewards them as the solver is rewarded
in self-play (solver.solver_rewards: the format penalties, then 1 or -0.5).
"""

import json
import os

from proposer import Task
from rollout import solver_rollout, step_randomness
from toytasks import Generated, fresh_tasks, heldout

DATA_SOURCES = ("toy", "heldout")  # or a path


def load_data(data):
    """The fixed dataset of `data` as a list of toytasks.Generated (a task, and for toy-world tasks
    the value of each step, which SFT's gold answers trace). A file's records are kept when valid
    and of one input (triplets)."""
    if data == "toy":
        return fresh_tasks()
    if data == "heldout":
        return heldout()
    with open(data, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    tasks = [Task.from_record(r) for r in records]
    return [Generated(t, 0, (), []) for t in tasks if t.valid and len(t.inputs) == 1 and t.outputs]


def data_problem(data):
    """Why `data` cannot be RLVR / SFT data, in one line, or None (checked before anything loads)."""
    if data in DATA_SOURCES:
        return None
    if not os.path.isfile(data):
        return f"--data {data}: no such file; give {' or '.join(DATA_SOURCES)}, or a tasks.jsonl / buffer file"
    return None


def rlvr_rollouts(step, model, tokenizer, tasks, args):
    """One RLVR step: per task type, args.prompts tasks drawn at random, args.group answers to each
    (every type in one sample call), rewarded for training. Returns (rows, records, times) as
    self_play does (no proposals: records is empty)."""
    rng, seeds = step_randomness(args.seed, step)
    times = {"generate": 0.0, "execute": 0.0}
    chosen = [(task_type, t.task) for task_type in args.task_types
              for t in rng.sample(tasks, min(args.prompts, len(tasks)))]
    return solver_rollout(model, tokenizer, chosen, args, seed=next(seeds), first_prompt=0, times=times), [], times
