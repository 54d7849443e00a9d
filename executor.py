"""
The sandbox: runs the Python programs the model writes, and checks its answers.

Every reward in AZR self-play comes from running code the model wrote (AZR, arXiv 2505.03335,
sections 3.3.3 and 3.3.4): a proposal is valid only if its program runs and is deterministic;
deduction, abduction and induction answers are checked against gold outputs. This file owns all
of that, and imports nothing else of the project: it is the bottom layer.

It is longer than the project's other files on purpose: the static checks, the
literal parsing at the boundary, the forked child's limits and the pool that starts it are one
security argument, and a reader checking what a model-written program can do should find every
part of it in one place.

    python perf.py sandbox       # validate a few programs and check a few answers
    python perf.py executor      # validations per second: worker pool vs. one `python -c` per run

How a program is run. A pool of pre-started worker processes ("zygotes", one per core, at least
two; under torchrun each rank has its own pool, one worker per core of its share) waits for
jobs. For each job the worker forks a child, which
  - starts its own process group (so a timeout kills everything it is part of),
  - lowers its limits: CPU seconds, address space, file size, open files, no core dumps, and
    RLIMIT_NPROC = 0 so it cannot start a process,
  - when the worker runs as root, drops to an unprivileged user id of its own (root ignores
    RLIMIT_NPROC and may write anywhere; a separate uid per worker also means a child cannot
    signal another job's child),
  - works in a fresh, empty folder, with stdin closed, a minimal environment and its printed
    output captured up to a size cap,
  - installs an audit hook that refuses process creation, signals, sockets, ctypes, and file
    writes or deletions outside its folder,
  - execs the program afresh for every input and sends back `repr(f(*args))` as text, and only
    if the result is a plain literal (None, bool, int, float, complex, str, bytes, list, tuple,
    dict, set, frozenset; exact types, nested) whose repr reads back, through parse_literal, as
    the same value: inf, nan and frozenset print as calls, which no literal answer could match,
  - puts a random per-job token in front of its reply: the worker takes a reply only behind the
    token, so bytes the program writes to the result pipe itself cannot pose as the sandbox's.
The worker kills the child's process group at a wall-clock deadline. When the worker itself is
root and `unshare` works, it runs in fresh network, mount and pid namespaces (no network at all, only
a loopback that is down) with private tmpfs mounts over /tmp, /var/tmp and /dev/shm, so nothing
a program writes outlives its job. A worker that dies is replaced; the calling process only ever
reads text back.

What crosses the boundary is text. Inputs go in as Python literal text; outputs come back as repr
text and are read with `ast.literal_eval` after size and nesting caps. The calling process never
evaluates anything the model wrote, so an object with a custom __eq__ or __repr__ can never be
compared as if it were a value, and the gold output never enters the child.

The reply token is defence in depth, not a proof: the program shares the child's process, so one
that searches the process's own memory for the token (frames, the garbage collector) could still
forge a reply. It stops a program that writes the reply format to its descriptors and leaves
before the harness writes, the way a HumanEval candidate could fake a passing check. Callers
whose verdict is a behaviour rather than a returned value (evaluate.py's HumanEval grading) also
pass the program through check_program first.

What this does not guarantee. It is a defence in depth for a training loop, not a jail for
adversaries with kernel exploits: there is no seccomp filter, the child shares the kernel, and a
program may read world-readable files. Audit hooks are a Python-level convenience, not a
boundary; the boundary is the uid, the rlimits and the namespaces. Without root (or where
`unshare` is refused) there are no namespaces: network access is then refused only by the audit
hook, the child keeps the caller's uid, and it may write where that user may (RLIMIT_NPROC = 0
still forbids new processes for a non-root user). `sandbox()` below says which case applies.
"""

import ast
import functools
import gc
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass

# -----------------------------------------------------------------------------
# Settings

CPU_SECONDS = 1               # RLIMIT_CPU of a child
MEMORY_BYTES = 1 << 30        # RLIMIT_AS of a child (1 GiB)
WALL_SECONDS = 2.0            # a child still running after this is killed with its group
MAX_PROGRAM_CHARS = 10_000    # longer programs are rejected before parsing
MAX_LITERAL_CHARS = 10_000    # longer input / answer text is rejected before parsing
MAX_NESTING = 50              # deeper bracket nesting is rejected before parsing
MAX_OUTPUT_CHARS = 400        # repr of an output longer than this: invalid (AZR truncates at 400)
MAX_PRINT_CHARS = 10_000      # what a program prints is kept up to this
MAX_RESULT_BYTES = 1 << 20    # a child that sends back more than this is invalid
BASE_UID = 62_000             # worker i's children run as uid BASE_UID + i when started as root (+ a rank's offset)
HASH_SEEDS = (1, 2)           # slot 0 and slot 1 workers: the determinism check runs on both

# AZR's banned list (its released code, branch paper), reported by name.
AZR_BANNED = ("logging", "random", "multiprocessing", "pebble", "subprocess", "threading",
              "datetime", "time", "hashlib", "hmac", "bcrypt", "os.sys", "os.path", "sys.exit",
              "os.environ", "calendar")
# Of AZR's list, these are banned from proposals for determinism (random, time, datetime, calendar)
# or learnability (hashlib, hmac: outputs no solver can predict), not because they reach outside
# the process: check_program admits them where a caller asks (evaluate.py, for HumanEval
# candidates, graded by tests rather than by a deterministic output). Workers import them before
# forking, like ALLOWED_MODULES, together with _strptime, which datetime.strptime imports lazily.
PURE_BANNED = ("random", "time", "datetime", "calendar", "hashlib", "hmac")
PRELOADED = PURE_BANNED + ("_strptime",)
# A ban list can never be complete (AZR's lets `os` and `socket` through), so beyond it only these
# pure-computation modules may be imported. Workers import them before forking: a child dropped to
# another uid may not be able to read the standard library's folder.
ALLOWED_MODULES = ("math", "cmath", "itertools", "functools", "collections", "string", "re",
                   "heapq", "bisect", "operator", "typing", "dataclasses", "copy", "statistics",
                   "fractions", "decimal", "numbers", "enum", "abc", "array", "json", "textwrap",
                   "unicodedata", "difflib", "struct", "base64", "binascii", "zlib")
# Names a program may not use: ways around the import rules and the static checks.
BANNED_NAMES = {"__import__", "__builtins__", "__loader__", "__spec__", "__build_class__",
                "eval", "exec", "compile", "open", "input", "globals", "locals", "vars",
                "getattr", "setattr", "delattr", "breakpoint", "help", "exit", "quit", "importlib"}
DUNDER = re.compile(r"__\w+__")

# -----------------------------------------------------------------------------
# Static checks and literals: these run in the calling process and never execute model text.


@dataclass
class Verdict:
    ok: bool
    reason: str = ""            # why not ok; empty when ok
    output: str | None = None   # repr of f(input), set by validate() when ok


def check_program(program, function="f", also_allowed=()):
    """Static checks of a proposed program. Returns '' if it passes, else the reason.

    function: the top-level function the program must define. also_allowed: modules of
    PURE_BANNED to admit (both the ban and the allowed-module rule are lifted for them)."""
    if not set(also_allowed) <= set(PURE_BANNED):
        raise ValueError(f"only modules of PURE_BANNED may be allowed, not {also_allowed}")
    if not isinstance(program, str) or not program.strip():
        return "empty program"
    if len(program) > MAX_PROGRAM_CHARS:
        return f"program longer than {MAX_PROGRAM_CHARS} characters"
    if "input(" in program:  # AZR rejects any code calling input(
        return "calls input("
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences: the program's problem, not ours
            warnings.simplefilter("ignore")
            tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return f"does not parse: {type(e).__name__}: {e}"[:200]
    if not any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
        return f"defines no top-level function {function}"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    return "relative import"
                names += [f"{node.module}.{a.name}" for a in node.names]
            for banned in AZR_BANNED:
                if banned in also_allowed:
                    continue
                if any(name == banned or name.startswith(banned + ".") for name in names):
                    return f"imports banned module {banned}"
            for name in names:
                if name.split(".")[0] not in ALLOWED_MODULES + tuple(also_allowed):
                    return f"imports {name}, which is not an allowed module"
        elif isinstance(node, ast.Name) and (node.id in BANNED_NAMES or DUNDER.fullmatch(node.id)):
            return f"uses {node.id}"
        elif isinstance(node, ast.Attribute) and (DUNDER.fullmatch(node.attr) or node.attr in ("exit", "environ")):
            return f"uses attribute {node.attr}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DUNDER.search(node.value):
            return "string names a dunder attribute"  # e.g. '{0.__class__}'.format(x)
    return ""


def _nesting(text):
    """Upper bound on bracket nesting (brackets inside strings count too, which only errs safe)."""
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def parse_literal(text):
    """Read a Python literal from untrusted text, within size and nesting caps. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError("not text")
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(f"longer than {MAX_LITERAL_CHARS} characters")
    if _nesting(text) > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"not a Python literal: {type(e).__name__}") from None


def parse_arguments(text):
    """Argument-list text as written in f(...), e.g. "1, [2, 3]" or "'Hello world'", as a tuple."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no arguments")
    args = parse_literal(f"({text.strip()},)")
    if not isinstance(args, tuple):
        raise ValueError("not an argument list")
    return args


def _canonical(v):
    """A type-tagged form of a literal: equal forms mean equal values of equal types."""
    t = type(v)
    if t in (list, tuple):
        return (t.__name__, tuple(_canonical(x) for x in v))
    if t in (set, frozenset):
        return (t.__name__, frozenset(_canonical(x) for x in v))
    if t is dict:
        return ("dict", frozenset((_canonical(k), _canonical(x)) for k, x in v.items()))
    if t is float and v != v:
        return ("float", "nan")
    return (t.__name__, v)


def same_value(a, b):
    """Strict equality of literals: 1, 1.0 and True differ, as do (1, 2) and [1, 2].

    Python's == would accept 1.0 for 1 and True for 1; an answer of another type is not the
    program's output. Sets and dicts compare without order; nan equals nan."""
    return _canonical(a) == _canonical(b)


def reads_back(text, value):
    """Whether the repr text of a plain literal value parses (parse_literal, as answers are read)
    to an equal value. False for inf and nan (repr 'inf', 'nan'), frozenset ('frozenset({1})')
    and brackets nested past MAX_NESTING: outputs no answer could ever match."""
    try:
        return same_value(parse_literal(text), value)
    except ValueError:
        return False


def check_deduction(gold_output, answer):
    """Deduction: the predicted output equals the gold output (both literal text)."""
    try:
        return Verdict(same_value(parse_literal(gold_output), parse_literal(answer)))
    except ValueError as e:
        return Verdict(False, f"answer {e}")


# -----------------------------------------------------------------------------
# The child: runs in a forked worker process after the limits are set. Nothing here runs in the
# calling process.

PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes)


def _is_plain(v, depth=0):
    t = type(v)
    if depth > MAX_NESTING:
        return False
    if t in PLAIN_TYPES:
        return True
    if t in (list, tuple, set, frozenset):
        return all(_is_plain(x, depth + 1) for x in v)
    if t is dict:
        return all(_is_plain(k, depth + 1) and _is_plain(x, depth + 1) for k, x in v.items())
    return False


class _CappedText:
    """sys.stdout / sys.stderr of a child: keeps the first MAX_PRINT_CHARS, drops the rest."""
    def __init__(self):
        self.parts, self.size = [], 0

    def write(self, s):
        if self.size < MAX_PRINT_CHARS:
            self.parts.append(str(s)[:MAX_PRINT_CHARS - self.size])
            self.size += len(self.parts[-1])
        return len(s)

    def flush(self):
        pass


def _audit_hook(folder):
    blocked = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
               "subprocess.", "os.kill", "os.killpg", "signal.", "socket.", "ctypes.", "mmap.",
               "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
               "os.link", "os.symlink", "os.truncate", "os.utime", "os.chdir", "os.chroot",
               "shutil.", "sys.setrecursionlimit", "resource.setrlimit", "os.putenv", "os.unsetenv")

    def hook(event, args):
        if event.startswith(blocked):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path = args[0]
            if isinstance(path, int) or not os.path.abspath(os.fsdecode(path)).startswith(folder + os.sep):
                raise PermissionError("sandbox: files outside the job folder are not allowed")
        # only imports of modules the worker has not loaded raise this event: os, subprocess or
        # random stay importable at run time, and the blocked events above are what contains them
        if event == "import" and args[0].split(".")[0] not in ALLOWED_MODULES + PRELOADED + ("encodings",):
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
    return hook


def _run_child(program, inputs, folder, uid, result_fd, token):
    """Inside the forked child: limit, isolate, run f on each input, write the token and then
    JSON to result_fd (the worker takes nothing else as a reply)."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # binds only once we are not root
    os.mkdir(folder, 0o700)
    os.chdir(folder)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1 << 16)
    sys.stdin = None  # closed: input() raises
    sys.stdout = sys.stderr = printed = _CappedText()
    os.environ.clear()
    sys.addaudithook(_audit_hook(folder))
    results = []
    try:
        code, problem = compile(program, "<program>", "exec"), None
    except BaseException as e:  # SyntaxError, RecursionError, MemoryError: every input fails alike
        code, problem = None, f"{type(e).__name__}: {e}"[:200]
    for text in inputs:
        if problem:
            results.append([False, problem])
            continue
        try:
            args = ast.literal_eval(f"({text},)")
            scope = {"__name__": "__sandbox__"}
            exec(code, scope)  # afresh: no state between inputs
            value = scope["f"](*args)
            if not _is_plain(value):
                results.append([False, f"output is not a plain literal ({type(value).__name__})"])
                continue
            text = repr(value)
            if len(text) > MAX_OUTPUT_CHARS:
                results.append([False, f"output longer than {MAX_OUTPUT_CHARS} characters"])
            elif not reads_back(text, value):
                results.append([False, f"output {text[:60]} does not read back as the same literal"])
            else:
                results.append([True, text])
        except BaseException as e:  # SystemExit, KeyboardInterrupt, MemoryError, ... all invalid
            results.append([False, f"{type(e).__name__}: {e}"[:200]])
    message = token + json.dumps({"results": results, "printed": "".join(printed.parts)}).encode()
    while message:
        message = message[os.write(result_fd, message):]


# -----------------------------------------------------------------------------
# The worker (zygote): a long-lived process that forks one child per job and never runs model
# code itself. It reads one JSON job per line on stdin and writes one JSON result per line.

def _read_result(fd, deadline):
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, f"timed out after {WALL_SECONDS} s"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), ""
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESULT_BYTES:
            return None, "sent back too much"


def _run_job(job, uid, folder):
    # A fresh secret per job, known to the worker and the child's harness: the program can write
    # to the result pipe, but its bytes lack the token, or come before the harness's and so spoil
    # the reply, unless it digs the token out of its own process (see the module docstring).
    token = os.urandom(16).hex().encode()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns: whatever happens it ends with os._exit
        try:
            os.close(read_fd)
            _run_child(job["program"], job["inputs"], folder, uid, write_fd, token)
        finally:
            os._exit(0)
    os.close(write_fd)
    data, problem = _read_result(read_fd, time.monotonic() + WALL_SECONDS)
    os.close(read_fd)
    try:
        os.killpg(pid, signal.SIGKILL)  # the child's group: anything it started goes too
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    try:
        os.rmdir(folder)  # the usual case: the program wrote nothing
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
    if not problem and os.WIFSIGNALED(status):
        problem = f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    if not problem and data and not data.startswith(token):
        problem = "the reply did not come from the sandbox (the program wrote to its result pipe)"
    if not problem:
        try:
            reply = json.loads(data[len(token):])
            return {"results": reply["results"], "printed": str(reply["printed"])[:MAX_PRINT_CHARS]}
        except (ValueError, KeyError, TypeError):
            problem = "exited without a result"
    return {"error": problem}


def _private_mounts():
    """In a fresh mount namespace: private, empty tmpfs over the world-writable folders."""
    for path in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,mode=1777", "tmpfs", path],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def worker_main(uid, namespaced):
    for name in ALLOWED_MODULES + PRELOADED:
        __import__(name)
    if namespaced:
        _private_mounts()
    scratch = tempfile.mkdtemp(prefix="azr-jobs-")  # children make their job folders in it
    if uid is not None:
        os.chown(scratch, uid, uid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    # Fork is copy-on-write: every page a child writes to is copied (~5 us each on a VM). A
    # garbage collection in the child would write to every object the worker holds, so the
    # worker's objects are moved out of the collector's reach before any child is forked.
    gc.collect()
    gc.freeze()
    out = sys.stdout.buffer
    for n, line in enumerate(sys.stdin.buffer):
        job = json.loads(line)
        reply = _run_job(job, uid, os.path.join(scratch, str(n)))  # a fresh folder per job
        reply["id"] = job["id"]
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
    shutil.rmtree(scratch, ignore_errors=True)  # end of input: the pool is closing


# -----------------------------------------------------------------------------
# The pool, in the calling process.

@functools.cache
def namespaces_work():
    """Whether workers can run in fresh network, mount and pid namespaces (root, and unshare allowed)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = ["unshare", "--net", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /tmp"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def sandbox():
    """Which of the cases in this file's docstring applies on this machine."""
    if namespaces_work():
        return "root: children drop to their own uid; fresh network, mount and pid namespaces"
    if os.geteuid() == 0:
        return "root: children drop to their own uid; no namespaces (unshare refused)"
    return "not root: children keep the caller's uid; no namespaces"


class Pool:
    """Pre-started workers; run() sends many jobs at once and returns their replies in order.

    A job is (program, inputs, slot): slot 0 or 1 picks the hash seed (HASH_SEEDS) the job runs
    under, None runs it anywhere. A reply is {"results": [[ok, output repr or reason] per input],
    "printed": what it printed, capped} or {"error": reason} when the child as a whole failed
    (timeout, signal, no result)."""

    def __init__(self, workers=None):
        # under torchrun the ranks on one machine share its cores, and each rank's children get uids
        # of their own (LOCAL_RANK, LOCAL_WORLD_SIZE: torchrun's environment)
        ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.size = max(2, workers or (os.cpu_count() or 2) // ranks_here)
        self.first_uid = BASE_UID + int(os.environ.get("LOCAL_RANK", "0")) * self.size
        self.procs = [None] * self.size
        for i in range(self.size):
            self._start(i)

    def _start(self, i):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONHASHSEED": str(HASH_SEEDS[i % 2])}
        uid = self.first_uid + i if os.geteuid() == 0 else None
        namespaced = namespaces_work()
        cmd = [sys.executable, "-s", "-B", os.path.abspath(__file__), "--worker", str(uid), str(int(namespaced))]
        if namespaced:
            # a pid namespace too: when the worker dies, the kernel kills every process it started
            cmd = ["unshare", "--net", "--mount", "--pid", "--fork"] + cmd
        self.procs[i] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env, cwd="/",
                                         start_new_session=True)

    def _kill(self, i):
        proc = self.procs[i]
        if proc.poll() is None:  # never signal a reaped pid: it may belong to someone else by now
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:  # unflushed bytes to a dead worker
                pass

    def run(self, jobs):
        replies = [None] * len(jobs)
        queues = {0: deque(), 1: deque(), None: deque()}  # by slot
        for k, job in enumerate(jobs):
            queues[job[2]].append(k)
        busy = {}  # worker index -> (job index, deadline)
        lost, retried = [], set()
        buffers = {i: b"" for i in range(self.size)}
        sel = selectors.DefaultSelector()
        for i, proc in enumerate(self.procs):
            sel.register(proc.stdout, selectors.EVENT_READ, i)
        try:
            while any(queues.values()) or busy:
                for i in range(self.size):  # hand each idle worker a job of its slot, or any job
                    queue = queues[i % 2] or queues[None]
                    if i in busy or not queue:
                        continue
                    k = queue.popleft()
                    program, inputs, _ = jobs[k]
                    line = json.dumps({"id": k, "program": program, "inputs": list(inputs)})
                    try:
                        self.procs[i].stdin.write(line.encode() + b"\n")
                        self.procs[i].stdin.flush()
                    except (BrokenPipeError, OSError):
                        pass  # noticed below as end of file on its stdout
                    busy[i] = (k, time.monotonic() + WALL_SECONDS * 3 + 5)
                for key, _ in sel.select(timeout=0.5):
                    i = key.data
                    chunk = os.read(key.fileobj.fileno(), 1 << 20)
                    if not chunk:  # the worker died: a fresh one takes its place
                        self._replace(i, sel)
                        buffers[i] = b""
                        lost.append((i, "worker died"))
                        continue
                    buffers[i] += chunk
                    while b"\n" in buffers[i] and i in busy:
                        line, buffers[i] = buffers[i].split(b"\n", 1)
                        reply = json.loads(line)
                        replies[reply.pop("id")] = reply
                        del busy[i]
                now = time.monotonic()
                for i, (k, deadline) in list(busy.items()):
                    if now > deadline:  # a worker that stopped answering is replaced too
                        self._replace(i, sel)
                        buffers[i] = b""
                        lost.append((i, "worker stopped answering"))
                for i, reason in lost:  # its job runs again once; twice, the job is the cause
                    if i in busy:
                        k = busy.pop(i)[0]
                        if k in retried:
                            replies[k] = {"error": reason}
                        else:
                            retried.add(k)
                            queues[jobs[k][2]].appendleft(k)
                lost.clear()
        finally:
            sel.close()
        return replies

    def _replace(self, i, sel):
        sel.unregister(self.procs[i].stdout)
        self._kill(i)
        self._start(i)
        sel.register(self.procs[i].stdout, selectors.EVENT_READ, i)

    def close(self):
        for proc in self.procs:  # end of input lets a worker remove its scratch folder and exit
            try:
                proc.stdin.close()
            except OSError:
                pass
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._kill(i)


_pool = None


def get_pool():
    """The process-wide pool, started on first use."""
    global _pool
    if _pool is None:
        _pool = Pool()
    return _pool


def close_pool():
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


# -----------------------------------------------------------------------------
# The AZR checks (AZR section 3.3.4), batched: one call runs all jobs of a training step at once.

def _outputs(reply):
    """A reply as a list of (ok, text) per input, or a reason for the whole job."""
    return reply["results"] if "results" in reply else reply["error"]


def validate(jobs, pool=None):
    """(program, input text) -> Verdict with output = repr of f(*input) when the proposal is valid.

    Valid: passes check_program, the input is a literal argument list, f runs within the limits
    and returns a plain literal whose repr fits MAX_OUTPUT_CHARS and reads back (parse_literal)
    as the same value, and two runs in two processes with different hash seeds give the same
    value (determinism). Values, not texts, are compared: a set of strings prints in another
    order under another hash seed, yet it is the same output, and same_value is what answers are
    judged by. The output kept is the first run's text.

    The runs go to the pool (`pool` or get_pool()) in one call: jobs (program, [input text], slot),
    slot 0 and slot 1 being the two hash seeds (Pool.run), each reply read with _outputs. An
    invalid verdict's reason: check_program's; "input " and parse_arguments' error; why a run
    failed (the first run's reason first); "not deterministic: two runs gave different outputs"
    when the second run fails where the first ran, or their values differ; "output does not read
    back as a literal: ..." when this process cannot parse an output."""
    verdicts, runs, owners = [None] * len(jobs), [], []
    for j, (program, text) in enumerate(jobs):
        reason = check_program(program)
        if not reason:
            try:
                parse_arguments(text)
            except ValueError as e:
                reason = f"input {e}"
        if reason:
            verdicts[j] = Verdict(False, reason)
            continue
        runs += [(program, [text], 0), (program, [text], 1)]
        owners.append(j)
    replies = (pool or get_pool()).run(runs) if runs else []
    for n, j in enumerate(owners):
        first, second = _outputs(replies[2 * n]), _outputs(replies[2 * n + 1])
        if isinstance(first, str) or isinstance(second, str):
            verdicts[j] = Verdict(False, first if isinstance(first, str) else second)
        elif not first[0][0]:
            verdicts[j] = Verdict(False, first[0][1])
        elif not second[0][0]:
            verdicts[j] = Verdict(False, "not deterministic: two runs gave different outputs")
        else:
            # the child checked that its output reads back; the verdict rests on this process's own reading
            try:
                values = parse_literal(first[0][1]), parse_literal(second[0][1])
            except ValueError as e:
                verdicts[j] = Verdict(False, f"output does not read back as a literal: {e}")
                continue
            if same_value(*values):
                verdicts[j] = Verdict(True, output=first[0][1])
            else:
                verdicts[j] = Verdict(False, "not deterministic: two runs gave different outputs")
    return verdicts


def check_abduction(jobs, pool=None):
    """(program, gold output, answer input text) -> Verdict: f(*answer) equals the gold output."""
    verdicts, runs, owners = [None] * len(jobs), [], []
    for j, (program, _, answer) in enumerate(jobs):
        try:
            parse_arguments(answer)
        except ValueError as e:
            verdicts[j] = Verdict(False, f"answer {e}")
            continue
        runs.append((program, [answer], None))
        owners.append(j)
    replies = (pool or get_pool()).run(runs) if runs else []
    for reply, j in zip(replies, owners):
        result = _outputs(reply)
        if isinstance(result, str) or not result[0][0]:
            verdicts[j] = Verdict(False, result if isinstance(result, str) else result[0][1])
        else:
            verdicts[j] = check_deduction(jobs[j][1], result[0][1])
    return verdicts


def check_induction(jobs, pool=None):
    """(answer program, [(input text, gold output), ...]) -> Verdict: the program maps every hidden
    input to its gold output."""
    verdicts, runs, owners = [None] * len(jobs), [], []
    for j, (program, pairs) in enumerate(jobs):
        reason = check_program(program) or ("" if pairs else "no examples")
        if reason:
            verdicts[j] = Verdict(False, reason)
            continue
        runs.append((program, [i for i, _ in pairs], None))
        owners.append(j)
    replies = (pool or get_pool()).run(runs) if runs else []
    for reply, j in zip(replies, owners):
        result = _outputs(reply)
        if isinstance(result, str):
            verdicts[j] = Verdict(False, result)
            continue
        verdicts[j] = Verdict(True)
        for (ok, text), (_, gold) in zip(result, jobs[j][1]):
            if not ok or not check_deduction(gold, text).ok:
                verdicts[j] = Verdict(False, text if not ok else "wrong output on a hidden input")
                break
    return verdicts


if __name__ == "__main__":  # started by Pool as a worker, not by a person: `python perf.py executor` measures it
    worker_main(None if sys.argv[2] == "None" else int(sys.argv[2]), sys.argv[3] == "1")
