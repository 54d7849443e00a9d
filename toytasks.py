"""
The toy world's tasks: a typed random program generator, the corpus in the game's exact formats,
and the fixed held-out set.

The study's findings (arXiv 2510.27072) are about how self-play changes a base model. No model
that can be had offline both runs fast on a CPU and can play the game, so the toy world makes one
(toybase.py) from what this file generates:
  1. a random program generator over a small typed vocabulary of Python (integers, strings, lists
     of integers; arithmetic, comparisons, slicing, comprehensions with filters, string methods,
     simple loops), composed to a chosen depth (the difficulty knob), run by executor.py;
  2. a corpus in exactly the prompt and answer formats of proposer.py and solver.py, for the three
     task types and both roles, mostly of shallow programs; the solver's <think> says what the
     program does, or (less often) gives the value of each step;
  3. the fixed held-out set (`heldout`) no corpus example is drawn from, and fresh tasks for RLVR.
toyworld.py measures a model on the held-out set; toybase.py trains the base on the corpus.

    python toyworld.py --show            # a few generated tasks of each depth
"""

import random
from dataclasses import dataclass, replace

import executor
import proposer
import solver
from proposer import Task

# -----------------------------------------------------------------------------
# Settings

DEPTHS = (1, 2, 3, 4)          # steps per program: the difficulty knob
MAX_VALUE_CHARS = 24           # longest repr of an output or a traced value in a generated task
HELDOUT_SEED, HELDOUT_PER_DEPTH = 12345, 100   # the fixed held-out set: 400 tasks
INPUTS_PER_PROGRAM = 6         # random inputs drawn per program (induction shows up to 6)
MIN_INPUTS = 4                 # a program needs this many of them valid and new to be kept
INDUCTION_INPUTS = (2, 3, 4, 5, 6)  # the induction proposer is asked for this many inputs in the corpus
MAX_REFERENCES = 3             # proposer prompts in the corpus show 1 to 3 references (grpo's cpu preset: 3)
ABDUCTION_SHARE = 0.25         # of the triplets, each also a solver abduction example
INDUCTION_SHARE = 0.25         # of the programs, each also an induction example of each role
PROPOSER_SHARE = 0.07          # of the triplets, each also a proposer example of each kind (long prompts)
CORPUS_DEPTHS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)  # depths of the corpus programs: mostly shallow ones,
                               # from which a small model learns each step; the held-out set is uniform
BOOL_SHARE = 0.2               # of the programs, this share ends in a comparison (a bool)
TRACED_SHARE = 0.3             # of the solver's deduction and abduction answers, worked out step by step
RLVR_SEED = 777               # fresh tasks for RLVR: generated apart from the corpus and the held-out set


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


def fresh_tasks(programs=1000):
    """Generated deduction tasks for RLVR, none in the held-out set (each program with its inputs)."""
    seen = {proposer.task_key(t.task) for t in heldout()}
    return triplets(generate(programs, random.Random(RLVR_SEED), seen=seen))


def show(per_depth=2):
    """Print a few generated tasks of each depth with their step values."""
    rng = random.Random(0)
    for depth in DEPTHS:
        for t in [triplets([g])[0] for g in generate(10 * per_depth, rng, depths=(depth,))[:per_depth]]:
            print(f"# depth {depth}: {t.task.message}\n{t.task.program}\nf({t.task.inputs[0]}) = {t.task.outputs[0]}"
                  f"    think: {trace(t)}\n")
