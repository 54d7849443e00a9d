"""
Benchmarks and demos, kept apart from the mechanisms they measure (as nanoGPT keeps bench.py
beside train.py). Each sub-command prints its figures and compares against a baseline in the
same run; run one at a time, on a quiet machine.

    python bench.py executor [--programs 2000]   # sandbox validations/s: worker pool vs a fresh `python -c` per run
    python bench.py sandbox                      # the sandbox at work on a few programs and answers
    python bench.py logprobs                     # peak memory: chunked log-probs + entropy vs full log_softmax
    python bench.py step [grpo.py flags]         # seconds per self-play step (generate / execute / update)
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch

import executor
import grpo
from logprobs import token_logprobs_and_entropy

# -----------------------------------------------------------------------------
# The sandbox


def bench_programs(n):
    """n distinct small programs with inputs, the kind of functions AZR proposes."""
    shapes = [
        "def f(a):\n    return [x * {c} for x in a if x % 2 == {p}]",
        "def f(s):\n    return ''.join(reversed(s))[:{c}] + s.upper()",
        "def f(a):\n    total = 0\n    for i, x in enumerate(a):\n        total += (i + {c}) * x\n    return total",
        "def f(n):\n    import math\n    return [math.comb(n, k) % {c} for k in range(n + 1)]",
        "def f(d):\n    return sorted((v, k) for k, v in d.items() if v > {p})",
    ]
    inputs = ["[1, 2, 3, 4, 5, 6]", "'Hello world'", "[3, 1, 4, 1, 5]", "7", "{'a': 1, 'b': 2, 'c': 0}"]
    return [(shapes[i % 5].format(c=i // 5 + 2, p=i % 2), inputs[i % 5]) for i in range(n)]


BASELINE_RUNNER = ("import ast, sys; scope = {}; exec(sys.argv[1], scope); "
                   "print(repr(scope['f'](*ast.literal_eval('(' + sys.argv[2] + ',)'))))")


def baseline_validate(jobs, workers):
    """The baseline: a fresh `python -c` per run, two runs (two hash seeds) per program, as many
    at a time as the pool has workers."""
    def run(job):
        program, text, seed = job
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": str(seed)}
        return subprocess.run([sys.executable, "-c", BASELINE_RUNNER, program, text], env=env,
                              capture_output=True, text=True, timeout=executor.WALL_SECONDS * 5).stdout
    runs = [(p, t, s) for p, t in jobs for s in executor.HASH_SEEDS]
    with ThreadPoolExecutor(workers) as ex:
        outs = list(ex.map(run, runs))
    return [a == b and a != "" for a, b in zip(outs[::2], outs[1::2])]


def bench_executor(n):
    jobs = bench_programs(n)
    pool = executor.Pool()
    executor.validate(jobs[:10], pool)  # warm up
    t = time.perf_counter()
    verdicts = executor.validate(jobs, pool)
    pool_rate = n / (time.perf_counter() - t)
    pool.close()
    m = max(20, n // 10)  # the baseline is slow: time a tenth of the programs
    t = time.perf_counter()
    base = baseline_validate(jobs[:m], pool.size)
    base_rate = m / (time.perf_counter() - t)
    assert all(v.ok for v in verdicts) and all(base), "benchmark programs must all be valid"
    print(f"sandbox: {executor.sandbox()}")
    print(f"cores: {os.cpu_count()}, pool workers: {pool.size}, programs: {n} (baseline: {m})")
    print(f"pool:     {pool_rate:8.1f} validations/s  (2 runs each, different hash seeds)")
    print(f"baseline: {base_rate:8.1f} validations/s  (fresh `python -c` per run, {pool.size} at a time)")
    print(f"speed-up: {pool_rate / base_rate:8.1f}x")


def sandbox_demo():
    program = "def f(a):\n    return sorted(set(a), reverse=True)[:3]"
    print("program:\n" + program)
    for v, text in zip(executor.validate([(program, "[3, 1, 4, 1, 5, 9, 2, 6]"), (program, "[1, 'x']"),
                                 ("import os\ndef f(a):\n    return os.getcwd()", "1"),
                                 ("def f(a):\n    while True:\n        pass", "1")]),
                       ["f([3, 1, 4, ...])", "f([1, 'x'])", "uses os", "loops forever"]):
        print(f"validate {text:20s} -> ok={v.ok} output={v.output} {v.reason}")
    print("deduction '[9, 6, 5]' ->", executor.check_deduction("[9, 6, 5]", "[9, 6, 5]").ok,
          "| '(9, 6, 5)' ->", executor.check_deduction("[9, 6, 5]", "(9, 6, 5)").ok)
    print("abduction f([5, 6, 9]) ->", executor.check_abduction([(program, "[9, 6, 5]", "[5, 6, 9]")])[0].ok)
    induct = "def f(a):\n    return sorted(a, reverse=True)[:3]"
    print("induction ->", executor.check_induction([(induct, [("[1, 2, 3, 4]", "[4, 3, 2]"), ("[5]", "[5]")])])[0].ok)
    print(f"sandbox: {executor.sandbox()}")
    executor.close_pool()


# -----------------------------------------------------------------------------
# Memory of the log-prob / entropy pass, and seconds per self-play step


def naive_logprobs_and_entropy(hidden, weight, targets, temperature):
    """The usual implementation: full (N, V) float32 logits, log_softmax, gather, and the
    entropy logsumexp(z) - sum softmax(z) z over the whole batch at once."""
    z = (hidden @ weight.T).float() / temperature
    logp = z.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    entropy = z.logsumexp(-1) - (z.softmax(-1) * z).sum(-1)
    return logp, entropy


def logprobs_variant(variant, V, N, H, chunk_size):
    """Run once in a fresh process: forward + backward of one variant on random inputs; prints one
    JSON line with the peak memory above what the inputs already held."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)

    def inputs(N, V):
        hidden = torch.randn(N, H, device=device, dtype=dtype, requires_grad=True)
        # scaled in place: a temporary copy of the weight would already raise the high-water mark
        weight = torch.randn(V, H, device=device, dtype=dtype).mul_(H ** -0.5).requires_grad_()
        targets = torch.randint(0, V, (N,), device=device)
        return hidden, weight, targets

    def step(hidden, weight, targets):
        if variant == "chunked":
            logp, entropy = token_logprobs_and_entropy(hidden, weight, targets, 1.0, chunk_size)
        else:
            logp, entropy = naive_logprobs_and_entropy(hidden, weight, targets, 1.0)
        (logp.sum() + entropy.sum()).backward()

    step(*inputs(8, 64))  # tiny warm-up: one-time library buffers are not counted as the variant's cost
    hidden, weight, targets = inputs(N, V)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    t0 = time.time()
    step(hidden, weight, targets)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"device": device, "dtype": str(dtype), "peak_extra": peak - base, "seconds": time.time() - t0}))


def bench_logprobs(vocab_sizes=(49152, 151936), B=4, T=1024, hidden=896, chunk_size=128):
    """Peak memory of forward + backward of token_logprobs_and_entropy vs the naive full-logits
    computation, at N = B * T response positions (hidden 896 = Qwen2.5-0.5B).

    Each variant runs in its own fresh subprocess so one cannot inherit the other's high-water mark.
    On CUDA (bf16 inputs) the peak is torch.cuda.max_memory_allocated; on CPU (float32 inputs) it is
    the child's peak resident set size (ru_maxrss), which counts every allocation torch makes.
    Both are reported above the memory held after the inputs were allocated. B = 4 by default:
    the naive variant at B = 8, V = 151,936 needs about 28 GB (six 8192 x V float32 tensors)."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    N = B * T
    print(f"N = B*T = {B}*{T} = {N} positions, hidden {hidden}, chunk_size {chunk_size}, forward + backward")
    for V in vocab_sizes:
        peaks = {}
        for variant in ("chunked", "naive"):
            code = f"import bench; bench.logprobs_variant({variant!r}, {V}, {N}, {hidden}, {chunk_size})"
            out = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"V={V:>6} {variant:>7}: failed (exit {out.returncode}) {out.stderr.strip()[-200:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            peaks[variant] = r["peak_extra"]
            print(f"V={V:>6} {variant:>7} [{r['device']} {r['dtype']}]: peak +{r['peak_extra'] / 2**20:9.1f} MiB"
                  f"  ({r['seconds']:.1f} s)")
        if len(peaks) == 2:
            print(f"V={V:>6} naive / chunked = {peaks['naive'] / peaks['chunked']:.1f}x")


def bench_step(args):
    """Seconds per step (generate / execute / update) of two steps of grpo.py with these settings."""
    args.out, args.steps, args.save_every = tempfile.mkdtemp(prefix="azr-bench-"), 2, 10 ** 9
    grpo.train(args)
    print(f"model {args.model}, preset {args.preset}, prompts {args.prompts} x group {args.group}")
    with open(os.path.join(args.out, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            print(f"step {m['step']}: generate {m['seconds/generate']:.1f} s, execute {m['seconds/execute']:.1f} s,"
                  f" update {m['seconds/update']:.1f} s")
    shutil.rmtree(args.out)



if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Benchmarks: the sandbox, the log-prob pass, a self-play step.")
    sub = p.add_subparsers(dest="command", required=True)
    ex_p = sub.add_parser("executor", help="sandbox validations per second against a fresh process per run")
    ex_p.add_argument("--programs", type=int, default=2000, help="programs to validate")
    sub.add_parser("sandbox", help="validate a few programs and check a few answers")
    sub.add_parser("logprobs", help="peak memory of the chunked log-prob/entropy pass vs the naive one")
    sub.add_parser("step", help="seconds per self-play step; takes grpo.py's flags", add_help=False)
    args, rest = p.parse_known_args()
    if args.command != "step" and rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "executor":
        bench_executor(args.programs)
    elif args.command == "sandbox":
        sandbox_demo()
    elif args.command == "logprobs":
        bench_logprobs()
    else:
        bench_step(grpo.get_args(rest))
