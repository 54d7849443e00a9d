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

import distributed
from chat import render_prompt, resolve_template
from logprobs import sequence_logprobs_and_entropy
from rollout import Row, autocast, micro_batches, mini_batch_split, optimizer_step, step_randomness
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


def sft_update(model, optimizer, rows, args):
    """Cross-entropy on the response tokens of all rows (a token mean), one optimizer step per
    mini-batch. Returns the rows' entropy as (sum, count) per row, and statistics. Under torchrun
    each rank runs its share of the micro-batches (as grpo.update does)."""
    device = next(model.parameters()).device
    entropy_sum = torch.zeros(len(rows))
    entropy_count = torch.tensor([float(len(r.response_ids)) for r in rows])
    parts = mini_batch_split(list(range(len(rows))), args.mini_batches)
    stats = {"loss": 0.0, "grad_norm": 0.0}
    model.train()
    for part in parts:
        sub = [rows[k] for k in part]
        tokens = sum(len(r.response_ids) for r in sub)
        optimizer.zero_grad(set_to_none=True)
        batches = list(micro_batches(sub, args.micro_batch, device))
        for (start, ids, attention, response), counted in distributed.rank_batches(batches):
            with autocast(args, device):
                logp, H = distributed.forward(model, sequence_logprobs_and_entropy, ids, attention, response,
                                              args.temperature, args.chunk_size)
                loss = -logp.sum() / tokens
            (loss * distributed.loss_scale(counted)).backward()  # alone: x 1
            if counted:
                for b, k in enumerate(part[start:start + len(ids)]):
                    entropy_sum[k] = H[b][response[b].bool()].detach().float().sum().cpu()
                stats["loss"] += loss.item() / len(parts)
        stats["grad_norm"] = optimizer_step(model, optimizer)
    entropy_sum = distributed.summed(entropy_sum)  # each row's is one rank's
    stats["loss"] = distributed.summed(torch.tensor(stats["loss"], dtype=torch.float64)).item()
    return (entropy_sum, entropy_count), stats
