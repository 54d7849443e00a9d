"""
The toy world's tasks: a typed random program generator, the corpus in the game's exact formats,
and the fixed held-out set.

The study's findings (arXiv 2510.27072) are about how self-play changes a base model: it sharpens
what the base can already do, selecting behaviour the base has but seldom uses. No model that can
be had offline both runs fast on a CPU and can play the game, so the toy world makes one
(toybase.py) from what this file generates, with such a behaviour built in:
  1. a random program generator over short lists of digits and small integers (sorting,
     reversing, comprehensions with filters, slicing, sums, a loop), composed to a chosen depth
     (the difficulty knob), run by executor.py. Every step is one a small model can learn to
     compute whole: the world is kept this small on purpose;
  2. a corpus in exactly the prompt and answer formats of proposer.py and solver.py, for the three
     task types and both roles. The solver answers deduction and abduction in one of two styles:
     CAREFUL (a minority, always right) traces the program one step at a time, each step's whole
     value in turn; HASTY (the rest) says only what the program does and answers at once, and is
     often wrong, with a plausible near miss. So the base learns a skill it seldom uses, as
     pretrained models can reason step by step but often do not, and self-play has something to
     select: `style_of` tells the styles apart, FORCE starts a response in either;
  3. the fixed held-out set (`heldout`) no corpus example is drawn from, and fresh tasks for RLVR.
toyworld.py measures a model on the held-out set; toybase.py trains the base on the corpus.

    python toyworld.py --show            # a few generated tasks of each depth, in both styles
"""

import functools
import random
from dataclasses import dataclass, replace

import executor
import proposer
import solver
from proposer import Task

# -----------------------------------------------------------------------------
# Settings

DEPTHS = (1, 2, 3)             # steps per program: the difficulty knob
MAX_VALUE_CHARS = 20           # longest repr of an output or a traced value in a generated task
DIGITS = (0, 9)                # arguments are digits, or lists of LIST_LENGTHS digits: small values,
LIST_LENGTHS = (2, 4)          # so that each step's whole value is a few tokens a small model can compute
ARG_TYPES = ("list", "list", "list", "int")  # the first argument's type, drawn from these: mostly a list
HELDOUT_SEED, HELDOUT_PER_DEPTH = 12345, 50   # the fixed held-out set: 150 triplets, each played as
                               # deduction and as abduction
INPUTS_PER_PROGRAM = 6         # random inputs drawn per program (induction shows up to 6)
MIN_INPUTS = 4                 # a program needs this many of them valid and new to be kept
INDUCTION_INPUTS = (2, 3, 4, 5, 6)  # the induction proposer is asked for this many inputs in the corpus
MAX_REFERENCES = 3             # proposer prompts in the corpus show 1 to 3 references (grpo's cpu preset: 3)
ABDUCTION_SHARE = 0.5          # of the triplets, each also a solver abduction example
INDUCTION_SHARE = 0.25         # of the programs, each also an induction example of each role
PROPOSER_SHARE = 0.07          # of the triplets, each also a proposer example of each kind (long prompts)
CORPUS_DEPTHS = (1, 1, 1, 2, 2, 2, 3, 3)  # depths of the corpus programs: a few more shallow ones than
                               # the held-out set's uniform mix, as each step is learned from them first
CAREFUL_SHARE = 0.25           # of the solver's deduction and abduction answers, traced step by step: always right
WRONG_SHARE = 0.6              # of the other (hasty) answers, a plausible near miss instead of the answer
                               # (toy-v2, at every depth; toy-v3's grows with depth: toybase.TOY_V3)
ABDUCTION_TRIES = 8            # near-miss inputs tried per wrong hasty abduction answer (some give the output)
RLVR_SEED = 777               # fresh tasks for RLVR: generated apart from the corpus and the held-out set


# -----------------------------------------------------------------------------
# The program generator. A program is a chain of typed steps over variables a, b, c, ...: each
# step reads the previous step's value (so every step matters), sometimes also an argument, and
# the last one is returned. Types: 'int' and 'list' (of ints). No step returns a bool: a yes/no
# output is right half the time by chance, which would hide how much a style of reasoning helps.

# (argument types, result type, template, phrase for the induction message).
# A one-line template is an expression; a list of lines is a statement block that sets {out}.
# {x} is the previous value, {y} a second value of the named type, {k} a small int.
OPS = [
    # list -> list: each step a whole new list, computed from the last one
    (("list",), "list", "sorted({x})", "sorts the list"),
    (("list",), "list", "{x}[::-1]", "reverses the list"),
    (("list",), "list", "[v * 2 for v in {x}]", "doubles each number"),
    (("list",), "list", "[v + {k} for v in {x}]", "adds {k} to each number"),
    (("list",), "list", "[v for v in {x} if v > {k}]", "keeps the numbers above {k}"),
    (("list",), "list", "[v for v in {x} if v % 2 == 0]", "keeps the even numbers"),
    (("list",), "list", "{x}[1:]", "drops the first number"),
    (("list",), "list", "{x} + [{k}]", "appends {k}"),
    (("list",), "list", ["{out} = []", "for v in {x}:", "    if v not in {out}:", "        {out}.append(v)"],
     "drops repeated numbers"),
    (("list", "int"), "list", "[v + {y} for v in {x}]", "adds {y} to each number"),
    # list -> int
    (("list",), "int", "sum({x})", "sums"),
    (("list",), "int", "len({x})", "counts the numbers"),
    (("list",), "int", "max({x})", "takes the largest"),
    (("list",), "int", "min({x})", "takes the smallest"),
    (("list",), "int", "{x}[0]", "takes the first number"),
    (("list",), "int", "{x}[-1]", "takes the last number"),
    # int -> int
    (("int",), "int", "{x} + {k}", "adds {k}"),
    (("int",), "int", "{x} - {k}", "subtracts {k}"),
    (("int",), "int", "{x} * 2", "doubles"),
    (("int",), "int", "{x} // 2", "halves, rounding down"),
    (("int",), "int", "{x} % {k}", "takes the remainder by {k}"),
    (("int", "int"), "int", "{x} + {y}", "adds {y}"),
    # int -> list
    (("int",), "list", "[{x}, {x} + {k}]", "pairs it with itself plus {k}"),
]
STEP_NAMES = "cde"  # the steps' variables: a and b are the arguments, f is the function


def random_value(kind, rng):
    """A random argument of a type, as Python literal text."""
    if kind == "int":
        return str(rng.randint(*DIGITS))
    return repr([rng.randint(*DIGITS) for _ in range(rng.randint(*LIST_LENGTHS))])


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
    arg_types = [rng.choice(ARG_TYPES)]
    variables = [("a", arg_types[0])]   # (name, type) of the arguments and the steps so far
    steps, phrases = [], []             # steps: (name, lines assigning it, expression or None)
    for step in range(depth):
        name, kind = variables[-1]
        (_, *needs), result, template, phrase = rng.choice([op for op in OPS if op[0][0] == kind])
        out = STEP_NAMES[step]
        fill = {"x": name, "out": out, "k": rng.randint(2, 5)}
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
    programs (`len(a) // 2` is 1 for most lists) are easy to guess, and more so the
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
# The solver's two styles. Both are the game's format, `<think> ... </think> <answer> ... </answer>`;
# they differ in the <think>:
#   careful: the trace, 'a = [3, 1, 2]; c = [1, 2, 3]; d = [2, 4, 6]; return 12': the arguments,
#            then each step's whole value. Always right in the corpus.
#   hasty:   only what the program does, 'It sorts the list, then doubles each number, then
#            sums.', then the answer at once. Wrong WRONG_SHARE of the time in the corpus, with a
#            near miss of the same type, so the answer is still a well-formed literal.
# FORCE holds each style's first words. Prefilled after the prompt, they make a model answer in
# that style: the evaluation forces each style to measure what it is worth. They stop before the
# space that starts the next word, because the tokenizer fuses a space with what follows it
# (' [', ' sorts'): a prefix ending in a space would leave a lone space token that the model never
# saw in that place.

STYLES = ("careful", "hasty")
FORCE = {"careful": "<think> a =", "hasty": "<think> It"}


def style_of(response):
    """'careful' or 'hasty', by the words a response begins with (FORCE), or None for neither (a
    model may write anything)."""
    for style, prefix in FORCE.items():
        if response.lstrip().startswith(prefix + " "):
            return style
    return None


def respond(think, answer):
    return f"<think> {think} </think> <answer> {answer} </answer>"


def trace(g):
    """'a = [1, 2]; c = [2, 4]; return 6': the arguments, then the value of each step, the last one
    returned. Restating the arguments first puts each step's input next to it: a small model
    copies a nearby value far sooner than it learns to fetch one from the prompt mid-computation."""
    arguments = [f"{n} = {v!r}" for n, v in zip("ab", executor.parse_arguments(g.task.inputs[0]))]
    steps = [f"{n} = {v}" for n, v in zip(STEP_NAMES[:g.depth - 1], g.traces[0])]
    return "; ".join(arguments + steps + [f"return {g.traces[0][-1]}"])


def think(g, style):
    """The <think> of a solver answer to triplet g in a style: the trace, or what the program does."""
    return trace(g) if style == "careful" else f"It {g.task.message}."


def near_miss(value, rng):
    """A value of the same type as `value` (an int, or a list of ints) that is close to it but never
    equal: an int off by one; a list with one number off by one, with a number dropped, with one
    number too many, or reversed."""
    if isinstance(value, int):
        return value + rng.choice((-1, 1))
    ways = ["extra"] + (["number", "dropped"] if value else []) + (["reversed"] if value != value[::-1] else [])
    way, k = rng.choice(ways), rng.randrange(max(1, len(value)))
    if way == "number":
        return value[:k] + [value[k] + rng.choice((-1, 1))] + value[k + 1:]
    if way == "dropped":
        return value[:k] + value[k + 1:]
    if way == "reversed":
        return value[::-1]
    return value + [rng.randint(*DIGITS)]


def wrong_output(g, rng):
    """A hasty deduction's wrong answer to triplet g, as literal text: a third of the time the value
    one step short of the output (the last step forgotten), where that is of the output's type and
    differs from it; else a near miss of the output."""
    output = executor.parse_literal(g.task.outputs[0])
    before = executor.parse_literal(g.traces[0][-2]) if g.depth > 1 else executor.parse_arguments(g.task.inputs[0])[0]
    if type(before) is type(output) and before != output and rng.random() < 1 / 3:
        return repr(before)
    return repr(near_miss(output, rng))


def near_inputs(g, rng):
    """ABDUCTION_TRIES inputs near triplet g's (one argument a near miss), as argument-list texts:
    the candidates for a hasty abduction's wrong answer."""
    arguments, tries = list(executor.parse_arguments(g.task.inputs[0])), []
    for _ in range(ABDUCTION_TRIES):
        k = rng.randrange(len(arguments))
        tries.append(", ".join(repr(near_miss(v, rng) if j == k else v) for j, v in enumerate(arguments)))
    return tries


def wrong_inputs(pending):
    """For each (triplet, candidate inputs) of `pending`, the first candidate on which the program
    runs and returns another output than the triplet's, or None: a near miss of an input can give
    the same output (sorting undoes a reversal), and only the sandbox can tell. One batched run."""
    replies = executor.get_pool().run([(g.task.program, tries, None) for g, tries in pending])
    return [next((text for text, (ok, out) in zip(tries, reply.get("results", []))
                  if ok and not executor.check_deduction(g.task.outputs[0], out).ok), None)
            for (g, tries), reply in zip(pending, replies)]


# -----------------------------------------------------------------------------
# The corpus: (user text, response) pairs in exactly the formats of solver.py and proposer.py.
# Responses are well-formed (solver.extract_answer reads them).


def block(lang, text):
    return f"```{lang}\n{text}\n```"


def corpus_examples(generated, rng, wrong_share=(WRONG_SHARE,) * len(DEPTHS)):
    """The pretraining examples, (user text, response text, kind), from a list of Generated:
      solver deduction, one per triplet, and solver abduction, for ABDUCTION_SHARE of the
        triplets: careful (CAREFUL_SHARE of them: think = the trace, from the input that an
        abduction answer then gives; the answer right) or hasty (think = what the program does;
        the answer a near miss wrong_share[depth - 1] of the time (by the program's depth):
        wrong_output, or for abduction the first of near_inputs that gives another output, when one
        does);
      solver induction, for INDUCTION_SHARE of the programs with several inputs: think = what each
        step does, answer = the program;
      proposer deduction / abduction, for PROPOSER_SHARE of the triplets each: 1 to MAX_REFERENCES
        references (sometimes the identity seed the buffers start from), think = what each step
        does, answer = the triplet's program and input;
      proposer induction, for INDUCTION_SHARE of the programs with several inputs: the program,
        think = what it does, answer = 2 to 6 of its inputs and the message."""
    singles = triplets(generated)
    pool = [t.task for t in singles] + proposer.seed_triplets()
    examples, pending, at = [], [], []   # pending: (triplet, near inputs) of wrong abduction answers, at examples[at]

    def style():
        return "careful" if rng.random() < CAREFUL_SHARE else "hasty"

    for g in singles:
        task, (output,), (text,) = g.task, g.task.outputs, g.task.inputs
        s = style()
        answer = wrong_output(g, rng) if s == "hasty" and rng.random() < wrong_share[g.depth - 1] else output
        examples.append((solver.solver_prompt("deduction", task), respond(think(g, s), answer), "solver/deduction"))
        if rng.random() < ABDUCTION_SHARE:
            s = style()
            if s == "hasty" and rng.random() < wrong_share[g.depth - 1]:
                pending.append((g, near_inputs(g, rng)))
                at.append(len(examples))
            examples.append((solver.solver_prompt("abduction", task), respond(think(g, s), text), "solver/abduction"))
        for kind in ("deduction", "abduction"):
            if rng.random() < PROPOSER_SHARE:
                references = rng.sample(pool, rng.randint(1, MAX_REFERENCES))
                answer = "\n" + block("python", task.program) + "\n" + block("input", text) + "\n"
                examples.append((proposer.proposal_prompt(kind, references), respond(task.message, answer),
                                 f"proposer/{kind}"))
    for k, (g, _), wrong in zip(at, pending, wrong_inputs(pending) if pending else []):
        if wrong is not None:  # else no near input missed: this hasty answer stays right
            user, _, kind = examples[k]
            examples[k] = (user, respond(think(g, "hasty"), wrong), kind)
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
# The held-out set, and fresh tasks for RLVR


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


@functools.lru_cache(maxsize=2)
def heldout_tasks(count):
    """`count` held-out tasks evenly spread over the set (which is ordered by depth): the study's
    evaluation set (reproduce.py) and its probes; built once per process."""
    tasks = heldout()
    return [tasks[i * len(tasks) // count] for i in range(count)]


def fresh_tasks(programs=1000):
    """Generated triplets for RLVR and SFT (each program with its inputs), none with a program of the
    held-out set: excluding held-out (program, input) pairs alone is not enough, as a held-out
    program on another input can give the held-out output, and so show a held-out abduction
    prompt word for word."""
    held = heldout()
    programs_held = {t.task.program.strip() for t in held}
    generated = generate(programs, random.Random(RLVR_SEED), seen={proposer.task_key(t.task) for t in held})
    return triplets([g for g in generated if g.task.program.strip() not in programs_held])


def show(per_depth=2):
    """Print a few generated tasks of each depth, with a careful and a hasty deduction answer."""
    rng = random.Random(0)
    for depth in DEPTHS:
        for t in [triplets([g])[0] for g in generate(10 * per_depth, rng, depths=(depth,))[:per_depth]]:
            print(f"# depth {depth}\n{t.task.program}\nf({t.task.inputs[0]}) = {t.task.outputs[0]}\n"
                  f"careful: {respond(think(t, 'careful'), t.task.outputs[0])}\n"
                  f"hasty, wrong: {respond(think(t, 'hasty'), wrong_output(t, rng))}\n")
