"""
The run folder: what every training run writes, and how it is read back.

A run of grpo.py is a folder a person can open (and analyze.py / evaluate.py read):
  config.json         every setting of the run;
  metrics.jsonl       one JSON line per step (reward, entropy, response length, truncation per
                      (role, task type), valid rates, solve-rate histograms, grad norm, seconds);
  tasks.jsonl         one JSON line per proposal: the task, its verdict and reason, solve rate,
                      proposer reward, step;
  seed_tasks.jsonl, seed_buffer_<type>.jsonl
                      every seeding proposal, and the buffers after seeding;
  tensorboard/, wandb/  with --report-to: the tracker's copy of metrics.jsonl (open_tracker);
  checkpoints/step_N  a Hugging Face folder (`AutoModelForCausalLM.from_pretrained` loads it) with
                      trainer_state.pt (the step; the optimizer too in the newest, so a run
                      resumes) and the task buffers.
Every entry point's command line reads its numbers with `number`, so a bad value is refused by
argparse itself: the usage, then one error line naming the flag, exit status 2, nothing written.
"""

import argparse
import gzip
import importlib.util
import json
import math
import os
import re
import shutil

import torch

import distributed
from proposer import save_buffer


def number(kind, low=None, high=None, above=False, below=False):
    """An argparse type: the text as `kind` (int or float), refused unless low <= value <= high
    (strictly with above / below): `type=number(int, 1)` answers `--steps 0` with "argument --steps:
    must be at least 1, not 0"."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if math.isnan(value):
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low}, not {text}")
        if high is not None and (value >= high if below else value > high):
            raise argparse.ArgumentTypeError(f"must be {'below' if below else 'at most'} {high}, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


# Experiment trackers (grpo.py --report-to): metrics.jsonl stays the record every analysis reads;
# a tracker only shows the same numbers live. Each is an optional import.
TRACKERS = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb"}  # name -> the package it needs


def tracker_problem(kind):
    """Why --report-to `kind` cannot run here, in one line, or None."""
    package = TRACKERS[kind]
    if package and importlib.util.find_spec(package) is None:
        return f"--report-to {kind}: the {package} package is not installed (pip install {package})"
    return None


def open_tracker(kind, out, config):
    """(log, close) for a run's tracker: log(metrics) sends one metrics.jsonl line's numbers at its
    step; lists (the solve-rate histograms) stay in metrics.jsonl only.
      tensorboard  event files in out/tensorboard (`tensorboard --logdir runs`);
      wandb        a W&B run named and identified by the run folder, so --resume continues it;
                   WANDB_MODE=offline writes it under out/wandb for a later `wandb sync`."""
    def scalars(metrics):
        return {k: float(v) for k, v in metrics.items() if k != "step" and isinstance(v, (int, float))}

    if kind == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(os.path.join(out, "tensorboard"))

        def log(metrics):
            for key, value in scalars(metrics).items():
                writer.add_scalar(key, value, metrics["step"])
            writer.flush()
        return log, writer.close
    if kind == "wandb":
        import wandb
        name = os.path.basename(os.path.normpath(out))
        run = wandb.init(project="azr-selfplay", name=name, id=re.sub(r"[^\w-]", "-", name), resume="allow",
                         dir=out, config=config)
        return (lambda metrics: run.log(scalars(metrics), step=metrics["step"])), run.finish
    return (lambda metrics: None), (lambda: None)


def read_jsonl(path):
    """The JSON objects of a JSON-lines file (gzipped if its name ends in .gz), one per non-empty line."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_label(run):
    """A run's name in figures and tables: its path as given (relative to here when inside it), so
    two runs of the same base name in different folders never share a label."""
    path = os.path.normpath(run)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def checkpoints(run):
    """[(step, folder)] of a run's complete checkpoints, in step order."""
    folder = os.path.join(run, "checkpoints")
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"step_\d+", n)) if os.path.isdir(folder) else []
    return [(int(n[5:]), os.path.join(folder, n)) for n in names]


def save_checkpoint(out, step, model, tokenizer, optimizer, buffers):
    """checkpoints/step_N: a Hugging Face folder, the optimizer, and the buffers at step N. Under
    torchrun every rank calls it: the shards are gathered whole, and rank 0 writes the same folder."""
    weights, optimizer_state = distributed.full_state(model, optimizer)  # alone: None, None (the model's own)
    if not distributed.is_main():
        return
    folder = os.path.join(out, "checkpoints", f"step_{step:06d}")
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    torch.save({"step": step, "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state},
               os.path.join(tmp, "trainer_state.pt"))
    for name, buffer in buffers.items():
        save_buffer(os.path.join(tmp, f"buffer_{name}.jsonl"), buffer)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # a checkpoint is complete or absent, never half written
    for older_step, older in checkpoints(out)[:-1]:
        drop_optimizer_state(older, older_step)


def drop_optimizer_state(folder, step):
    """Keep only the step in a checkpoint's trainer_state.pt. Only the newest checkpoint needs the
    optimizer (--resume continues from it); older ones keep what the analyses read, the weights and
    the buffers. AdamW's two moments are twice the float32 weights: at 3B a checkpoint falls from
    37 to 12 GB. The file is rewritten without being read (the step is the folder's), to a new file
    swapped in, so a kill leaves the old file or the new."""
    path = os.path.join(folder, "trainer_state.pt")
    if os.path.isfile(path):
        torch.save({"step": step}, path + ".tmp")
        os.replace(path + ".tmp", path)


def trained_template(model):
    """The prompt scaffold (grpo.py --template: auto, chat or r1) that the run of a checkpoint folder
    (<run>/checkpoints/step_N) trained with, read from the run's config.json; None for anything
    else (a base model, a hub id)."""
    folder = os.path.normpath(model)
    config = os.path.join(os.path.dirname(os.path.dirname(folder)), "config.json")
    if not (os.path.isdir(folder) and os.path.basename(os.path.dirname(folder)) == "checkpoints"
            and os.path.isfile(config)):
        return None
    with open(config) as f:
        return json.load(f).get("template", "auto")


def eval_templates(models, override=None):
    """{model: scaffold} for evaluating, probing or judging models side by side: a model is scored in
    the scaffold it was trained with (trained_template), a base model in the one the runs compared
    with it trained with, `override` (a --template flag) for every model when given. With no run
    among the models a base takes "auto" (chat when its tokenizer has a template, else r1), the
    default of grpo.py's cpu and toy presets. Raises ValueError when the runs disagree and a base
    is among the models: it has no one scaffold to be compared in."""
    if override:
        return {m: override for m in models}
    trained = {m: trained_template(m) for m in models}
    used = sorted({t for t in trained.values() if t})
    bases = [m for m, t in trained.items() if t is None]
    if bases and len(used) > 1:
        raise ValueError(f"the runs among the models trained with different templates ({', '.join(used)}), so the "
                         f"base {bases[0]} has no one template to be compared in: pass --template, or evaluate "
                         "them apart")
    return {m: t or (used[0] if used else "auto") for m, t in trained.items()}


def last_checkpoint(out):
    """The folder of a run's last complete checkpoint, or None."""
    found = checkpoints(out)
    return found[-1][1] if found else None


def keep_lines_until(path, step):
    """Drop the lines logged after `step`, and a last line torn by a kill: a resumed run writes them
    again. The kept lines stay byte for byte as they were."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except json.JSONDecodeError:  # only the last line can be torn: a step is appended whole or not at all
            break
    if kept != lines:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, path)
