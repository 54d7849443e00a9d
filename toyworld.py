"""
The toy world: a base model built on a laptop in minutes, so that self-play can run, and be seen
to learn, on a CPU.

The study's findings are about how self-play changes a base model (SPEC.md section 1). No model
that can be had offline both runs fast on a CPU and can play the game: SmolLM2-135M writes no
valid proposal. So this file makes one:
  1. a random program generator over a small typed vocabulary of Python (integers, strings, lists
     of integers; arithmetic, comparisons, slicing, comprehensions with filters, string methods,
     simple loops), composed to a chosen depth (the difficulty knob), run by executor.py;
  2. a corpus in exactly the prompt and answer formats of proposer.py and solver.py, for the three
     task types and both roles, mostly of shallow programs; the solver's <think> says what the
     program does, or (less often) gives the value of each step;
  3. a byte-level BPE tokenizer trained on the corpus with the `tokenizers` library, and a small
     Llama trained on the corpus from scratch with a plain PyTorch loop, saved as a Hugging Face
     folder with a ChatML template.
It is imperfect at the game because it is small and trained for minutes: it has headroom that
self-play can take up, measured on a fixed held-out set of generated tasks (`evaluate`).

    python toyworld.py --show            # a few generated tasks of each depth
    python toyworld.py --build           # build the base (`--model toy` does it on first use)
    python toyworld.py --eval toy        # headroom figures of any model, next to random guessing
    python toyworld.py --eval runs/RUN/checkpoints/step_000100
    python toyworld.py --rlvr fresh      # solver-only RL (RLVR) on generated tasks, for comparison
"""

import argparse
import json
import math
import os
import random
import re
import string
import time
from dataclasses import dataclass, replace

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import executor
import grpo
import models
import proposer
import solver
from proposer import Task

# -----------------------------------------------------------------------------
# Settings

DEPTHS = (1, 2, 3, 4)          # steps per program: the difficulty knob
MAX_VALUE_CHARS = 24           # longest repr of an output or a traced value in a generated task
HELDOUT_SEED, HELDOUT_PER_DEPTH = 12345, 100   # the fixed held-out set: 400 tasks
GUESSES = 32                   # random inputs per held-out task for the random-guess baselines
EVAL_TEMPERATURE = 0.01        # near-greedy answers for accuracy (models.sample has no greedy mode)
MAX_TOKENS = 1024             # the model's context: the longest prompt here is about 600 tokens
INPUTS_PER_PROGRAM = 6         # random inputs drawn per program (induction shows up to 6)
MIN_INPUTS = 4                 # a program needs this many of them valid and new to be kept
INDUCTION_INPUTS = (2, 3, 4, 5, 6)  # the induction proposer is asked for this many inputs in the corpus
MAX_REFERENCES = 3             # proposer prompts in the corpus show 1 to 3 references (grpo's cpu preset: 3)
ABDUCTION_SHARE = 0.25         # of the triplets, each also a solver abduction example
INDUCTION_SHARE = 0.25         # of the programs, each also an induction example of each role
PROPOSER_SHARE = 0.07          # of the triplets, each also a proposer example of each kind (long prompts)
CORPUS_DEPTHS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)  # depths of the corpus programs: mostly shallow ones,
                               # from which a small model learns each step; the held-out set is uniform
PROMPT_WEIGHT = 0.25           # loss weight of prompt tokens in pretraining (responses: 1)
BOOL_SHARE = 0.2               # of the programs, this share ends in a comparison (a bool)
TRACED_SHARE = 0.3             # of the solver's deduction and abduction answers, worked out step by step


@dataclass
class BuildSettings:
    """Everything that decides what `build` writes; the defaults are the `toy` built-in."""
    seed: int = 0
    programs: int = 5_000       # generated programs, INPUTS_PER_PROGRAM random inputs each
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    vocab: int = 2_000          # BPE merges plus the byte alphabet and the special tokens
    steps: int = 1_700          # optimizer steps
    batch_tokens: int = 4_096   # tokens per optimizer step, padding included
    lr: float = 3e-3
    threads: int = 2


# -----------------------------------------------------------------------------
# The program generator. A program is a chain of typed steps over variables a, b, c, ...: each
# step reads the previous step's value (so every step matters), sometimes also an argument, and
# the last one is returned. Types: 'int', 'str', 'list' (of ints); 'bool' only as a final value.

WORDS = ("hello", "world", "banana", "apple", "level", "python", "kayak", "data", "code", "tree",
         "stone", "river", "abc", "noon", "zebra", "moon", "light", "paper", "salt", "radar")

# (argument types, result type, template, phrase for the induction message).
# A one-line template is an expression; a list of lines is a statement block that sets {out}.
# {x} is the previous value, {y} a second value of the named type, {k}/{i} small ints, {c}/{d} letters.
OPS = [
    # int -> int: arithmetic, a conditional expression
    (("int",), "int", "{x} + {k}", "adds {k}"),
    (("int",), "int", "{x} - {k}", "subtracts {k}"),
    (("int",), "int", "{x} * {k}", "multiplies by {k}"),
    (("int",), "int", "{x} % {k}", "takes the remainder by {k}"),
    (("int",), "int", "max({x}, {k})", "raises to at least {k}"),
    (("int",), "int", "{x} // 2 if {x} % 2 == 0 else {x} + {k}", "halves it if even, else adds {k}"),
    (("int", "int"), "int", "{x} + {y}", "adds {y}"),
    # int -> other types
    (("int",), "str", "str({x})", "writes the number as text"),
    (("int",), "list", "[{x}, {x} + {k}]", "pairs it with itself plus {k}"),
    (("int",), "bool", "{x} > {k}", "checks whether it is above {k}"),
    (("int",), "bool", "{x} % {k} == 0", "checks whether {k} divides it"),
    # str -> str: string methods and slicing, a loop
    (("str",), "str", "{x}.upper()", "uppercases"),
    (("str",), "str", "{x}[::-1]", "reverses the text"),
    (("str",), "str", "{x}[:{k}]", "keeps the first {k} letters"),
    (("str",), "str", "{x} + '{c}'", "appends '{c}'"),
    (("str",), "str", "{x}.replace('{c}', '{d}')", "replaces '{c}' with '{d}'"),
    (("str",), "str", ["{out} = ''", "for ch in {x}:", "    if ch in 'aeiou':", "        {out} += ch.upper()",
                       "    else:", "        {out} += ch"], "uppercases the vowels"),
    (("str", "str"), "str", "{x} + {y}", "appends {y}"),
    # str -> other types
    (("str",), "int", "len({x})", "takes the length"),
    (("str",), "int", "{x}.count('{c}')", "counts '{c}'"),
    (("str",), "int", ["{out} = 0", "for ch in {x}:", "    if ch in 'aeiou':", "        {out} += 1"],
     "counts the vowels"),
    (("str",), "bool", "{x} == {x}[::-1]", "checks whether it is a palindrome"),
    (("str",), "bool", "'{c}' in {x}", "checks for '{c}'"),
    # list -> list: comprehensions with filters, slicing, sorting, a loop
    (("list",), "list", "[v * {k} for v in {x}]", "multiplies each number by {k}"),
    (("list",), "list", "[v for v in {x} if v > {k}]", "keeps the numbers above {k}"),
    (("list",), "list", "[v for v in {x} if v % 2 == 0]", "keeps the even numbers"),
    (("list",), "list", "{x}[::-1]", "reverses the list"),
    (("list",), "list", "sorted({x})", "sorts the list"),
    (("list",), "list", "{x}[:{k}]", "keeps the first {k} numbers"),
    (("list",), "list", "{x} + [{k}]", "appends {k}"),
    (("list",), "list", ["{out} = []", "for v in {x}:", "    if v % 2 == 0:", "        {out}.append(v // 2)",
                         "    else:", "        {out}.append(v + {k})"], "halves the even numbers and adds {k} to the odd"),
    (("list", "int"), "list", "[v + {y} for v in {x}]", "adds {y} to each number"),
    (("list", "list"), "list", "{x} + {y}", "appends the list {y}"),
    # list -> other types
    (("list",), "int", "sum({x})", "sums"),
    (("list",), "int", "len({x})", "counts the numbers"),
    (("list",), "int", "max({x})", "takes the largest"),
    (("list",), "int", "min({x})", "takes the smallest"),
    (("list",), "int", "{x}[{i}]", "takes the item at position {i}"),
    (("list",), "bool", "{k} in {x}", "checks for {k}"),
]
TYPES = ("int", "str", "list")
STEP_NAMES = "cdegh"  # the steps' variables: a and b are the arguments, f is the function


def random_value(kind, rng):
    """A random argument of a type, as Python literal text."""
    if kind == "int":
        return str(rng.randint(-3, 9))
    if kind == "str":
        return repr(rng.choice(WORDS))
    return repr([rng.randint(0, 9) for _ in range(rng.randint(2, 4))])


def random_input(arg_types, rng):
    """An argument list for f, as written inside f(...)."""
    return ", ".join(random_value(kind, rng) for kind in arg_types)


@dataclass
class Program:
    """A generated program, before it is run."""
    text: str             # `def f(...)` as shown to the model
    traced: str           # the same body returning the list of every step's value, for the <think> trace
    arg_types: tuple
    depth: int
    message: str          # one line saying what each step does (the induction message)


def random_program(depth, rng):
    """A program of `depth` chained steps. Step 1 reads argument a; a step that needs a second
    value of some type takes an earlier variable of that type, or adds argument b (once), or a
    constant."""
    arg_types = [rng.choice(TYPES)]
    variables = [("a", arg_types[0])]   # (name, type) of the arguments and the steps so far
    steps, phrases = [], []             # steps: (name, lines assigning it, expression or None)
    for step in range(depth):
        name, kind = variables[-1]
        final = step == depth - 1
        choices = [op for op in OPS if op[0][0] == kind and (final or op[1] != "bool")]
        if final and rng.random() < BOOL_SHARE:  # a comparison last, as often as BOOL_SHARE
            choices = [op for op in choices if op[1] == "bool"]
        (_, *needs), result, template, phrase = rng.choice(choices)
        out = STEP_NAMES[step]
        # j is no longer used by any operation; it is still drawn so that the random stream, and with
        # it the toy-v1 base's corpus and the held-out set, stays as built and measured
        fill = {"x": name, "out": out, "k": rng.randint(2, 5), "j": rng.randint(1, 2),
                "i": rng.choice((0, 1, -1)), "c": rng.choice("aeiost"), "d": rng.choice("xz")}
        for need in needs:
            earlier = [n for n, t in variables[:-1] if t == need]
            if earlier and rng.random() < 0.6:
                fill["y"] = rng.choice(earlier)
            elif len(arg_types) == 1:
                arg_types.append(need)
                variables.append(("b", need))
                fill["y"] = "b"
            else:
                fill["y"] = random_value(need, rng)
        if isinstance(template, str):
            expr = template.format(**fill)
            steps.append((out, [f"{out} = {expr}"], expr))
        else:
            steps.append((out, [line.format(**fill) for line in template], None))
        phrases.append(phrase.format(**fill))
        variables.append((out, result))
    header = f"def f({', '.join('ab'[:len(arg_types)])}):\n"
    lines = [line for _, block, _ in steps[:-1] for line in block]
    last_name, last_block, last_expr = steps[-1]
    shown = lines + ([f"return {last_expr}"] if last_expr else last_block + [f"return {last_name}"])
    traced = lines + last_block + [f"return [{', '.join(n for n, _, _ in steps)}]"]
    indent = lambda ls: "\n".join("    " + line for line in ls)  # noqa: E731
    return Program(header + indent(shown), header + indent(traced), tuple(arg_types), depth, ", then ".join(phrases))


@dataclass
class Generated:
    """A generated task: the triplet, or an induction task with several inputs, and what the
    corpus and the evaluation need to know about it."""
    task: Task            # outputs from the sandbox; message says what each step does
    depth: int
    arg_types: tuple
    traces: list          # per input, the repr of every step's value, in order


def generate(programs, rng, depths=DEPTHS, seen=None):
    """Generate `programs` random programs (each depth drawn from `depths`, which may repeat a
    depth to make it more common) with INPUTS_PER_PROGRAM random
    inputs each, and run them in the sandbox (executor.py). Each program runs as its traced twin,
    one job for all its inputs, so one run gives the output (the last step's value) and every
    step's value for the <think> trace.
    Kept, per program: the inputs that run, whose output and step values print within
    MAX_VALUE_CHARS, and that are new: duplicates are dropped by task (program and input values,
    proposer.task_key), not by program text, else almost only deep programs would survive; `seen`
    holds the task keys taken already (by earlier calls, or the held-out set) and is updated. A
    program is kept when at least MIN_INPUTS inputs are left and no output comes back for more than half of them: near-constant
    programs (`a.count('o')` on random words is mostly 0) are easy to guess, and more so the
    deeper they are.
    Returns a list of Generated, one per program kept; its task holds its inputs, in order."""
    drafts = []
    for _ in range(programs):
        program = random_program(rng.choice(depths), rng)
        drafts.append((program, [random_input(program.arg_types, rng) for _ in range(INPUTS_PER_PROGRAM)]))
    replies = executor.get_pool().run([(p.traced, inputs, None) for p, inputs in drafts])
    seen, out = set() if seen is None else seen, []
    for (program, inputs), reply in zip(drafts, replies):
        kept = Generated(Task("deduction", program.text, [], [], message=program.message), program.depth,
                         program.arg_types, [])
        keys = []
        for text, (ok, result) in zip(inputs, reply.get("results", [])):
            if not ok:
                continue
            steps = [repr(value) for value in executor.parse_literal(result)]
            key = proposer.task_key(replace(kept.task, inputs=[text]))
            if key in seen or key in keys or any(len(s) > MAX_VALUE_CHARS for s in steps):
                continue
            keys.append(key)
            kept.task.inputs.append(text)
            kept.task.outputs.append(steps[-1])
            kept.traces.append(steps)
        outputs = kept.task.outputs
        if len(outputs) >= MIN_INPUTS and 2 * max(map(outputs.count, outputs)) <= len(outputs):
            seen.update(keys)
            out.append(kept)
    return out


def triplets(generated):
    """Each (program, input) of a list of Generated as its own triplet, with its step values."""
    return [Generated(replace(g.task, inputs=[i], outputs=[o]), g.depth, g.arg_types, [t])
            for g in generated for i, o, t in zip(g.task.inputs, g.task.outputs, g.traces)]


# -----------------------------------------------------------------------------
# The corpus: (user text, response) pairs in exactly the formats of solver.py and proposer.py.
# Responses are well-formed (solver.extract_answer reads them); the solver's <think> says what the
# program does, or gives the value of each step (`think`).


def respond(think, answer):
    return f"<think> {think} </think> <answer> {answer} </answer>"


def trace(g):
    """'a = [1, 2]; c = [2, 4]; return 6': the arguments, then the value of each step, the last one
    returned. Restating the arguments first puts each step's input next to it: a small model
    copies a nearby value far sooner than it learns to fetch one from the prompt mid-computation."""
    arguments = [f"{n} = {v!r}" for n, v in zip("ab", executor.parse_arguments(g.task.inputs[0]))]
    steps = [f"{n} = {v}" for n, v in zip(STEP_NAMES[:g.depth - 1], g.traces[0])]
    return "; ".join(arguments + steps + [f"return {g.traces[0][-1]}"])


def think(g, rng):
    """The solver's reasoning in the corpus, in one of two styles: TRACED_SHARE of the time the
    trace (every step's value), else only what the program does ('It adds 3, then sums.'), with
    the answer given straight away. So the base mostly answers without working the values out, as
    pretrained models mostly do, and self-play can change the mix. (At this size, forcing the
    trace was right only a little more often: 15.5 % against 14.2 % of held-out deduction tasks,
    measured on an earlier base of 1,300 steps.)"""
    return trace(g) if rng.random() < TRACED_SHARE else f"It {g.task.message}."


def block(lang, text):
    return f"```{lang}\n{text}\n```"


def corpus_examples(generated, rng):
    """The pretraining examples, (user text, response text, kind), from a list of Generated:
      solver deduction, one per triplet: think = the arguments and step values (trace), answer =
        the output;
      solver abduction, for ABDUCTION_SHARE of the triplets: think = the same trace, from the
        input it then gives;
      solver induction, for a third of the programs with several inputs: think = what each step
        does, answer = the program;
      proposer deduction / abduction, for PROPOSER_SHARE of the triplets each: 1 to MAX_REFERENCES
        references (sometimes the identity seed the buffers start from), think = what each step
        does, answer = the triplet's program and input;
      proposer induction, for a third of the programs with several inputs: the program, think
        = what it does, answer = 2 to 6 of its inputs and the message."""
    singles = triplets(generated)
    pool = [t.task for t in singles] + proposer.seed_triplets()
    examples = []
    for g in singles:
        task, (output,), (text,) = g.task, g.task.outputs, g.task.inputs
        examples.append((solver.solver_prompt("deduction", task), respond(think(g, rng), output), "solver/deduction"))
        if rng.random() < ABDUCTION_SHARE:
            examples.append((solver.solver_prompt("abduction", task),
                             respond(think(g, rng), text), "solver/abduction"))
        for kind in ("deduction", "abduction"):
            if rng.random() < PROPOSER_SHARE:
                references = rng.sample(pool, rng.randint(1, MAX_REFERENCES))
                answer = "\n" + block("python", task.program) + "\n" + block("input", text) + "\n"
                examples.append((proposer.proposal_prompt(kind, references), respond(task.message, answer),
                                 f"proposer/{kind}"))
    for g in generated:
        task = g.task
        if len(task.inputs) < 2:
            continue
        if rng.random() < INDUCTION_SHARE:
            examples.append((solver.solver_prompt("induction", task),
                             respond(task.message, "\n" + block("python", task.program) + "\n"), "solver/induction"))
        if rng.random() < INDUCTION_SHARE:
            n = rng.choice([n for n in INDUCTION_INPUTS if n <= len(task.inputs)])
            answer = "\n" + "\n".join(block("input", i) for i in task.inputs[:n]) + "\n" + block("message", task.message) + "\n"
            examples.append((proposer.induction_proposal_prompt(task.program, n), respond(task.message, answer),
                             "proposer/induction"))
    rng.shuffle(examples)
    return examples


# -----------------------------------------------------------------------------
# The tokenizer: byte-level BPE trained on the corpus. The answer tags are added tokens, so BPE
# cannot fuse a quote with a tag, and digits are split, so numbers are spelled digit by digit.
# The fixed text of every prompt (rules, answer format: thousands of characters, the same in
# every prompt) is learned as whole tokens: the small model then spends its compute on the
# programs, not on re-reading the rules, and a prompt is a few dozen tokens long.

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # pad, turn start, turn end (eos), as Qwen2.5
STRING_LITERAL = re.compile(r"'[^'\n]*'")  # learn no merges inside strings: see train_tokenizer
MIN_PIECE_CHARS = 100  # shorter fixed text ("```input") also occurs in answers: BPE handles it


def _fixed_pieces(template, constants):
    """The literal text between the variable fields of a str.format template, with the constant
    fields filled in: e.g. the deduction prompt's text before {program}, between it and {input},
    and after {input}."""
    pieces, current = [], ""
    for literal, field, _, _ in string.Formatter().parse(template):
        current += literal
        if field is None:
            continue
        if field in constants:
            current += constants[field]
        else:
            pieces.append(current)
            current = ""
    return pieces + [current]


def prompt_pieces():
    """The fixed text of the five prompts of solver.py and proposer.py, longest first."""
    rules = {"format": solver.RESPONSE_FORMAT, "rules": solver.PROGRAM_RULES, "program_rules": solver.PROGRAM_RULES,
             "input_rules": proposer.INPUT_RULES}
    pieces = [p for template in (solver.DEDUCTION_PROMPT, solver.ABDUCTION_PROMPT, solver.INDUCTION_PROMPT,
                                 proposer.INDUCTION_PROPOSAL_PROMPT) for p in _fixed_pieces(template, rules)]
    for goal in proposer.PROPOSAL_GOALS.values():
        pieces += _fixed_pieces(proposer.PROPOSAL_PROMPT, {**rules, "goal": goal})
    return sorted({p for p in pieces if len(p) >= MIN_PIECE_CHARS}, key=lambda p: (-len(p), p))


def train_tokenizer(texts, vocab):
    """A byte-level BPE of `vocab` tokens in all, trained on texts, wrapped for transformers with
    the ChatML template of models.py. Specials: SPECIALS; added (kept on decode): the answer tags
    and the prompt pieces, which are cut out of the training text so that no merge is spent on them."""
    added = list(solver.TAGS) + prompt_pieces()
    tokenizer = Tokenizer(tok_models.BPE())
    # One digit per token, never fused with the space before it: " 12" and "[12" both spell 1, 2
    # with the same digit tokens, so the small model learns each digit once, not twice. A quote is
    # a token of its own, never fused with a space: the quote before the input's 'salt' and the one
    # before its restatement in the <think> are then the same token, which the model must match to
    # copy the word (fused, string inputs were never copied), and 'salt' is not split as 's + alt
    # (the byte-level split's contraction rule).
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\d|'"), "isolated"),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(added), special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def without_pieces(text):
        for piece in added:
            text = text.replace(piece, "\n")
        return STRING_LITERAL.sub("''", text)

    tokenizer.train_from_iterator((without_pieces(t) for t in texts), trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   extra_special_tokens=["<|im_start|>"], chat_template=models.CHATML)


# -----------------------------------------------------------------------------
# The model, and pretraining with a plain PyTorch loop


def new_model(tokenizer, settings):
    """A Llama of a few million parameters (tied embeddings, no biases), random init from settings.seed."""
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=settings.hidden, intermediate_size=settings.hidden * 8 // 3,
                         num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
                         num_key_value_heads=settings.heads, max_position_embeddings=MAX_TOKENS, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config)


def encode(tokenizer, examples):
    """The token ids of each example: the chat-rendered prompt, the response, the eos. The two
    parts are tokenized apart, as `sample` sees them (it generates after the rendered prompt).
    Returns (ids, prompt length) per example."""
    prompts = tokenizer([models.render_chat(tokenizer, u) for u, _, _ in examples], add_special_tokens=False).input_ids
    responses = tokenizer([r for _, r, _ in examples], add_special_tokens=False).input_ids
    return [(p + r + [tokenizer.eos_token_id], len(p)) for p, r in zip(prompts, responses)]


def batches(sequences, batch_tokens, rng):
    """Endless batches of indices of about batch_tokens tokens (padding included): each epoch is
    shuffled, then cut into runs of similar length so that little of a batch is padding."""
    while True:
        order = list(range(len(sequences)))
        rng.shuffle(order)
        epoch = []
        for start in range(0, len(order), 256):
            run = sorted(order[start:start + 256], key=lambda k: len(sequences[k][0]))
            current = []
            for k in run:
                if current and (len(current) + 1) * len(sequences[k][0]) > batch_tokens:
                    epoch.append(current)
                    current = []
                current.append(k)
            epoch.append(current)
        rng.shuffle(epoch)
        yield from epoch


def lm_loss(model, sequences, pad_id):
    """Next-token cross-entropy over every token of the examples ((ids, prompt length) pairs) after
    the first, the prompt's tokens weighted PROMPT_WEIGHT and the response's 1, with the output
    layer run only where there is a target, not on padding.

    The prompt is a target too: it holds programs (in every prompt, and several per proposer
    prompt, with their outputs), so the model learns to write programs from all of them. On an
    earlier corpus, trained on the responses alone, the same budget gave 6 % valid proposals
    instead of about 65 %. Weighted less, the prompts leave more of the small model to the
    answers, a few tokens per example."""
    width = max(len(ids) for ids, _ in sequences)
    ids = torch.full((len(sequences), width), pad_id)
    weight = torch.zeros((len(sequences), width))
    for b, (seq, prompt) in enumerate(sequences):
        ids[b, :len(seq)] = torch.tensor(seq)
        weight[b, :prompt] = PROMPT_WEIGHT
        weight[b, prompt:len(seq)] = 1.0
    hidden = model.model(input_ids=ids, attention_mask=(weight > 0).long()).last_hidden_state
    target = weight[:, 1:] > 0
    logits = model.lm_head(hidden[:, :-1][target])
    losses = torch.nn.functional.cross_entropy(logits, ids[:, 1:][target], reduction="none")
    w = weight[:, 1:][target]
    return (losses * w).sum() / w.sum()


def pretrain(model, sequences, settings, pad_id):
    """AdamW, linear warm-up over the first 5 % of steps, then cosine decay to a tenth."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, settings.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.1 + 0.45 * (
        1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, settings.steps - warmup))))))
    stream = batches(sequences, settings.batch_tokens, random.Random(settings.seed))
    model.train()
    bar = tqdm(range(settings.steps), desc="toy base: pretraining")
    for _ in bar:
        loss = lm_loss(model, [sequences[k] for k in next(stream)], pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return loss.item()


# -----------------------------------------------------------------------------
# The build: corpus, tokenizer, model, saved as a Hugging Face folder (models.BUILTINS['toy'])


def heldout():
    """The fixed held-out set: HELDOUT_PER_DEPTH programs of each depth, from HELDOUT_SEED, each
    with its first input. `build` keeps these tasks (program and input) out of the corpus; the
    programs may be in it with other inputs, as the few short programs must be."""
    rng, tasks = random.Random(HELDOUT_SEED), []
    for depth in DEPTHS:
        programs = generate(max(3 * HELDOUT_PER_DEPTH, 30), rng, depths=(depth,))
        assert len(programs) >= HELDOUT_PER_DEPTH, "too few held-out programs kept: generate more"
        tasks += [triplets([g])[0] for g in programs[:HELDOUT_PER_DEPTH]]
    return tasks


def build(folder, settings=BuildSettings()):
    """Write the toy base to `folder`: a Hugging Face model + tokenizer folder, and toyworld.json
    with the settings, the corpus counts, the build time and every corpus program (to tell a
    novel proposal from a copy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # more threads than cores slows training several times
    try:
        start = time.time()
        rng = random.Random(settings.seed)
        seen, generated = {proposer.task_key(t.task) for t in heldout()}, []  # no held-out task in the corpus
        for done in tqdm(range(0, settings.programs, 1000), desc="toy base: programs"):
            generated += generate(min(1000, settings.programs - done), rng, depths=CORPUS_DEPTHS, seen=seen)
        examples = corpus_examples(generated, rng)
        tokenizer = train_tokenizer([text for u, r, _ in examples for text in (u, r)], settings.vocab)
        sequences = encode(tokenizer, examples)
        model = new_model(tokenizer, settings)
        loss = pretrain(model, sequences, settings, tokenizer.pad_token_id)
        model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        kinds = {}
        for _, _, kind in examples:
            kinds[kind] = kinds.get(kind, 0) + 1
        info = {"settings": vars(settings), "seconds": round(time.time() - start, 1), "threads": settings.threads,
                "parameters": sum(p.numel() for p in model.parameters()), "examples": kinds,
                "corpus_tokens": sum(len(ids) for ids, _ in sequences), "final_loss": loss,
                "programs": sorted({g.task.program for g in generated})}
        with open(os.path.join(folder, "toyworld.json"), "w") as f:
            json.dump(info, f, indent=1)
    finally:
        torch.set_num_threads(threads)


# -----------------------------------------------------------------------------
# Evaluation on the held-out set, each figure next to its random-guess baseline


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
    prompts = [models.render_chat(tokenizer, solver.solver_prompt(task_type, t.task)) for t in tasks]
    out = models.sample(model, tokenizer, prompts, n, max_new_tokens, temperature, seed=0, batch_size=64)
    rewards = solver.solver_rewards(task_type, [tasks[k].task for k in out["prompt_index"].tolist()], out["texts"],
                                    train=False)
    return [sum(rewards[k * n:(k + 1) * n]) / n for k in range(len(tasks))]


def evaluate(model, tokenizer, programs=frozenset(), proposals=128, references=3):
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
        prompts = [models.render_chat(tokenizer, proposer.proposal_prompt(kind, [t.task for t in refs])) for refs in shown]
        out = models.sample(model, tokenizer, prompts, 1, 256, 1.0, seed=1, batch_size=64)
        for task, refs in zip(proposer.make_tasks(kind, out["texts"], 0, []), shown):
            valid += task.valid
            novel += task.valid and task.program not in programs and task.program not in {t.task.program for t in refs}
    figures["proposals valid"] = (valid / proposals, None, proposals)
    figures["proposals valid and novel"] = (novel / proposals, None, proposals)
    return figures


# -----------------------------------------------------------------------------
# RLVR: the solver alone, rewarded on given deduction tasks. The study's baseline against self-play,
# at toy scale; here also the measure of what a verifiable reward can teach this base in minutes.

RLVR_SEED = 777  # fresh tasks for `--rlvr fresh`: generated apart from the corpus and the held-out set


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
        rows, texts, index = grpo.rollout(model, tokenizer, [solver.solver_prompt("deduction", t.task) for t in chosen],
                                          args.group, args, args.seed * 1_000_003 + step, "solver", "deduction", 0)
        rewards = solver.solver_rewards("deduction", [chosen[i].task for i in index], texts, train=True)
        for row, reward in zip(rows, rewards):
            row.reward = reward
        grpo.update(model, optimizer, rows, args)
        right.append(sum(r == 1 for r in rewards) / len(rewards))
        if report and step % every == 0:
            report(step)
    return right


def fresh_tasks(programs=1000):
    """Generated deduction tasks for RLVR, none in the held-out set (each program with its inputs)."""
    seen = {proposer.task_key(t.task) for t in heldout()}
    return triplets(generate(programs, random.Random(RLVR_SEED), seen=seen))


def corpus_programs():
    """The programs of the toy base's corpus (built on first use)."""
    with open(os.path.join(models.builtin_folder("toy"), "toyworld.json")) as f:
        return frozenset(json.load(f)["programs"])


def show(per_depth=2):
    """Print a few generated tasks of each depth with their step values."""
    rng = random.Random(0)
    for depth in DEPTHS:
        for t in [triplets([g])[0] for g in generate(10 * per_depth, rng, depths=(depth,))[:per_depth]]:
            print(f"# depth {depth}: {t.task.message}\n{t.task.program}\nf({t.task.inputs[0]}) = {t.task.outputs[0]}"
                  f"    think: {trace(t)}\n")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="The toy world: generated programs, a corpus, and a small base model.")
    p.add_argument("--show", action="store_true", help="print a few generated tasks of each depth")
    p.add_argument("--build", action="store_true", help="build the toy base into the cache (models.BUILTINS['toy'])")
    p.add_argument("--eval", metavar="MODEL", help="held-out figures of a model: built-in name, folder or hub id")
    p.add_argument("--rlvr", choices=["fresh", "heldout"],
                   help="solver-only RL on deduction tasks (fresh generated ones, or the held-out set itself), "
                        "with held-out deduction accuracy every 10 steps")
    p.add_argument("--model", default="toy", help="--rlvr: the model to train (default: the toy base)")
    p.add_argument("--steps", type=int, default=40, help="--rlvr: steps of 16 tasks x 8 samples")
    p.add_argument("--lr", type=float, default=None, help="--rlvr: learning rate (default: grpo's toy preset, 2e-4)")
    p.add_argument("--out", help="--rlvr: save the trained model to this folder")
    args = p.parse_args()
    if args.show:
        show()
    if args.build:
        print(models.builtin_folder("toy"))
    if args.eval:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        model, tokenizer = models.load_model(args.eval)
        start = time.time()
        figures = evaluate(model, tokenizer, corpus_programs())
        for name, (value, baseline, n) in figures.items():
            guess = f"   random guess {100 * baseline:5.1f} %" if baseline is not None else ""
            print(f"{name:28s} {100 * value:5.1f} %{guess}   (n = {n})")
        print(f"{args.eval}: {time.time() - start:.0f} s")
    if args.rlvr:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        model, tokenizer = models.load_model(args.model)
        settings = grpo.get_args(["--model", args.model, "--preset", "toy", "--prompts", "16"]
                                 + (["--lr", str(args.lr)] if args.lr is not None else []))
        tasks, held = (fresh_tasks() if args.rlvr == "fresh" else heldout()), heldout()

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
