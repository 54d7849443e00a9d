"""
SFT: supervised fine-tuning on gold answers, the study's third method beside AZR and RLVR.

The study (arXiv 2510.27072) finds SFT updates nearly every parameter where RL updates few. Here
SFT trains on the same fixed data as RLVR (rlvr.load_data), with the same budget counted in
training sequences (--prompts x --group per task type per step), the same prompts and run folder,
and plain next-token cross-entropy on the response tokens only:
    loss = - sum_{response tokens} log pi(y_t | y_<t, prompt) / (number of response tokens)
computed with the same chunked log-prob pass as the RL loss (logprobs.py). The gold answer of a
toy-world task is written in the corpus's careful style (its <think> traces every step's value,
toytasks.trace); a task without step values gets a one-line think. Run it as
`python grpo.py --method sft`.
"""

import torch

from chat import render_prompt, resolve_template
from rollout import Row, step_randomness
from solver import solver_prompt
from toytasks import respond, trace


def gold_response(g, task_type):
    """The gold answer to toy task g (a Generated) as task_type: careful think, then the answer."""
    think = trace(g) if g.traces else "I run f on the input and compare."
    answer = g.task.outputs[0] if task_type == "deduction" else g.task.inputs[0]
    return respond(think, answer)


def sft_rows(step, tokenizer, tasks, args):
    """One SFT step's rows: per task type, args.prompts x args.group tasks drawn at random (as many
    sequences as an RLVR step trains on), each the rendered prompt and its gold answer with eos."""
    rng, _ = step_randomness(args.seed, step)
    template = resolve_template(tokenizer, args.template)
    rows = []
    for task_type in args.task_types:
        for g in rng.sample(tasks, min(args.prompts * args.group, len(tasks))):
            prompt = render_prompt(tokenizer, solver_prompt(task_type, g.task), template)
            response = gold_response(g, task_type)
            if template == "r1":  # the prompt already ends in the prefilled <think>
                response = response[len("<think>"):]
            rows.append(Row(tokenizer(prompt, add_special_tokens=False).input_ids,
                            tokenizer(response, add_special_tokens=False).input_ids + [tokenizer.eos_token_id],
                            "solver", task_type, len(rows), reward=0.0))
    return rows


def sft_loss(logp, mask):
    """The cross-entropy of one pass's gold answers: the mean negative log-likelihood of its response
    tokens (logp, mask: (B, T)), and {"loss": its value}. grpo.update weighs each pass by its share
    of the mini-batch's tokens, so that the step's loss is the token mean over all of them."""
    mask = mask.bool()
    loss = -torch.where(mask, logp, 0.0).sum() / mask.sum().clamp(min=1)
    return loss, {"loss": loss.item()}
