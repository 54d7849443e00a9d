"""The project's imports point one way: each top-level file imports only files of lower layers, so
there is no cycle, and no deferred import inside a function hides one. The layer order lives here:
a new file must be placed in it."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# lowest first; a file may import files of strictly lower layers only
LAYERS = [
    ["executor", "findings", "distributed"],  # the sandbox; the findings' verdicts; torchrun's ranks: import nothing of ours
    ["solver"],                             # the roles
    ["proposer"],
    ["chat"],                               # the prompt scaffold
    ["toytasks"],                           # the toy world's tasks and corpus
    ["toybase"],                            # the toy base model's build
    ["models"],                             # the model registry: a name to a model and tokenizer
    ["sampling", "logprobs"],
    ["runs", "rollout"],                    # the run folder; prompts to Rows
    ["selfplay", "rlvr", "sft"],            # each method's rollouts
    ["grpo", "benchmarks"],                 # training; the benchmarks evaluation reads
    ["evaluate"],                           # evaluation: pass@k on benchmarks, then the toy world's figures
    ["toyworld"],
    ["sparsity", "curriculum"],             # analysis
    ["analyze"],
    ["preconditions", "contamination"],     # the study's preconditions; held-out tasks the runs saw
    ["report"],                             # the study's report.md and its runs' plain files
    ["perf", "reproduce", "assignments"],  # benchmarks and demos; the whole study in one command; courses
]


def our_imports(source, ours):
    """The names of our modules that a file imports anywhere in it (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & ours


def violations(sources, layers=LAYERS):
    """["a imports b (layer i -> j)"] for every import of a file at or above its own layer, given
    {module name: source text}."""
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    bad = []
    for name, source in sorted(sources.items()):
        for target in sorted(our_imports(source, set(sources))):
            if rank[target] >= rank[name]:
                bad.append(f"{name} imports {target} (layer {rank[name]} -> {rank[target]})")
    return bad


def project_sources():
    return {p.stem: p.read_text() for p in ROOT.glob("*.py")}


def test_every_file_has_a_layer():
    placed = {name for layer in LAYERS for name in layer}
    assert set(project_sources()) == placed, "place every top-level file in LAYERS (and drop the removed ones)"


def test_imports_point_down():
    assert violations(project_sources()) == []


@pytest.mark.parametrize("planted, where", [
    ("import grpo\n", "models"),                               # a lower layer importing a higher one
    ("def load():\n    import analyze\n", "executor"),         # a deferred import hiding a cycle
    ("from sampling import sample\n", "logprobs"),             # one layer importing its neighbour
])
def test_a_planted_upward_import_is_caught(planted, where):
    sources = project_sources()
    sources[where] = planted + sources[where]
    assert violations(sources), f"{planted!r} in {where}.py went unnoticed"
