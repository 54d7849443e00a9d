"""executor.py: verdicts, static checks, literal caps, hostile programs, and the pool."""

import datetime
import hashlib
import os
import socket
import time

import pytest

import perf
import executor
from executor import Pool, check_abduction, check_deduction, check_induction, check_program, validate


@pytest.fixture(scope="module")
def pool():
    p = Pool()
    yield p
    p.close()


def descendants(pool):
    """Processes started under the pool's workers, other than the workers themselves."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    roots = {p.pid for p in pool.procs}
    found, frontier = set(), set(roots)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    # with namespaces each worker is `unshare` plus the Python worker it forked
    workers = {pid for pid in found if parents[pid] in roots and executor.namespaces_work()}
    return found - workers


def run_raw(pool, program, text="0"):
    """Run a program with the static checks skipped: this tests the runtime containment alone."""
    reply = pool.run([(program, [text], None)])[0]
    if "error" in reply:
        return False, reply["error"]
    return tuple(reply["results"][0])


# -----------------------------------------------------------------------------
# Correct verdicts

def test_validate_outputs_equal_an_in_process_run(pool):
    # trusted programs, so the test may exec them here: an independent computation of the output
    cases = [
        ("def f(a):\n    return a / 2", "4"),
        ("def f(a, b):\n    return (a, [b])", "1, 2"),
        ("def f(s):\n    return {c: s.count(c) for c in sorted(set(s))}", "'héllo wörld ✓'"),
        ("def f(a):\n    return {x % 3 for x in a}", "[1, 2, 3, 4]"),
        ("def f(a):\n    return {'k': {'n': [a, None, True]}}", "-0.5"),
        ("import math\ndef f(n):\n    return math.factorial(n)", "30"),
        ("def f(a):\n    return a", "'Hello world'"),
    ]
    verdicts = validate(cases, pool)
    for (program, text), v in zip(cases, verdicts):
        scope = {}
        exec(program, scope)
        assert v.ok, v.reason
        assert v.output == repr(scope["f"](*eval(f"({text},)")))


@pytest.mark.parametrize("gold, answer, expected", [
    ("2.0", "2.0", True), ("2.0", "2", False), ("1", "True", False), ("1", "1.0", False),
    ("(1, 2)", "(1, 2)", True), ("(1, 2)", "[1, 2]", False), ("[1, [2, (3,)]]", "[1, [2, (3,)]]", True),
    ("{'a': {'b': [1, 2]}}", "{'a': {'b': [1, 2]}}", True), ("{'a': {'b': [1, 2]}}", "{'a': {'b': [2, 1]}}", False),
    ("{1, 2, 3}", "{3, 2, 1}", True), ("{1, 2}", "frozenset({1, 2})", False), ("{1, True}", "{1}", True),
    ("'héllo ✓'", "'héllo ✓'", True), ("'héllo ✓'", "'hello ✓'", False), ("'a'", '"a"', True),
    ("None", "None", True), ("None", "'None'", False), ("float('nan')", "nan", False),
    ("[1, 2]", "[1, 2", False), ("'x'", "", False),
])
def test_deduction_verdicts(gold, answer, expected):
    assert check_deduction(gold, answer).ok is expected


def test_abduction_verdicts(pool):
    program = "def f(a, b):\n    return sorted(a)[:b]"
    jobs = [(program, "[1, 2]", "[2, 1, 5], 2"), (program, "[1, 2]", "[1, 2, 0], 2"),
            (program, "[1, 2]", "(2, 1), 2"),    # a tuple input still gives the list output
            (program, "(1, 2)", "[2, 1], 2"),    # the output type must match
            (program, "[1, 2]", "oops"), (program, "[1, 2]", "[1, 'a'], 2"),
            ("def f(s):\n    return s[::-1]", "'✓ab'", "'ba✓'")]
    assert [v.ok for v in check_abduction(jobs, pool)] == [True, False, True, False, False, False, True]


def test_induction_verdicts(pool):
    pairs = [("[3, 1, 2]", "[1, 2, 3]"), ("[]", "[]"), ("[2, 2]", "[2, 2]")]
    jobs = [("def f(a):\n    return sorted(a)", pairs),
            ("def f(a):\n    return list(a)", pairs),                     # right on one example only
            ("def f(a):\n    return tuple(sorted(a))", pairs),            # right values, wrong type
            ("def f(a):\n    return sorted(a)[0]", pairs),                # raises on a hidden input
            ("import os\ndef f(a):\n    return sorted(a)", pairs),        # fails the static checks
            ("def f(a):\n    return sorted(a)", [])]
    assert [v.ok for v in check_induction(jobs, pool)] == [True, False, False, False, False, False]


def test_output_over_the_cap_is_invalid(pool):
    v = validate([("def f(n):\n    return 'x' * n", str(executor.MAX_OUTPUT_CHARS))], pool)[0]
    assert not v.ok and "longer than" in v.reason


def test_empty_batches_return_empty_lists(pool):
    assert validate([], pool) == [] and check_abduction([], pool) == [] and check_induction([], pool) == []


# -----------------------------------------------------------------------------
# Static checks and literal caps

@pytest.mark.parametrize("program, reason", [
    ("", "empty"),
    ("def g(a):\n    return a", "no top-level function f"),
    ("def f(a)\n    return a", "does not parse"),
    ("import random\ndef f(a):\n    return a", "banned module random"),
    ("from os import path\ndef f(a):\n    return a", "banned module os.path"),
    ("import os\ndef f(a):\n    return a", "not an allowed module"),
    ("def f(a):\n    return __import__('os')", "uses __import__"),
    ("import importlib\ndef f(a):\n    return a", "not an allowed module"),
    ("def f(a):\n    return eval(a)", "uses eval"),
    ("def f(a):\n    exec(a)", "uses exec"),
    ("def f(a):\n    return compile(a, 'x', 'eval')", "uses compile"),
    ("def f(a):\n    return open(a).read()", "uses open"),
    ("def f(a):\n    return input()", "input("),
    ("def f(a):\n    return globals()", "uses globals"),
    ("def f(a):\n    return ().__class__.__base__.__subclasses__()", "uses attribute __"),
    ("def f(a):\n    return f.__globals__", "attribute __globals__"),
    ("def f(a):\n    return __builtins__", "uses __builtins__"),
    ("def f(a):\n    return getattr(a, 'x')", "uses getattr"),
    ("def f(a):\n    return '{0.__class__}'.format(a)", "dunder"),
    ("x = 1\n" * 3000 + "def f(a):\n    return a", "longer than"),
])
def test_static_check_rejects_with_reason(program, reason):
    assert reason in check_program(program)


def test_static_check_accepts_ordinary_programs():
    program = ("from collections import Counter\nimport math\n\nclass Box:\n    def __init__(self, v):\n"
               "        self.v = v\n\ndef f(a):\n    return max(Counter(a).values()) + math.floor(Box(1.5).v)")
    assert check_program(program) == ""


def test_static_check_admits_the_pure_banned_modules_only_when_asked():
    program = ("import hashlib\nfrom datetime import datetime\nimport calendar, random, time, hmac\n\n"
               "def solve(s):\n    return hashlib.md5(s.encode()).hexdigest()")
    assert "banned module hashlib" in check_program(program.replace("solve", "f"))
    assert check_program(program, function="solve", also_allowed=executor.PURE_BANNED) == ""
    assert "no top-level function solve" in check_program("def f(a):\n    return a", function="solve")
    for unsafe in ("import os", "import sys", "import subprocess", "import threading", "from os import path"):
        assert check_program(f"{unsafe}\n{program}", function="solve", also_allowed=executor.PURE_BANNED)
    with pytest.raises(ValueError):
        check_program(program, also_allowed=("os",))


def test_the_pure_banned_modules_work_at_run_time(pool):
    # a HumanEval candidate admitted with them must find them importable in the child
    program = ("import hashlib, hmac, calendar, random, time\nfrom datetime import datetime\n\ndef f(s):\n"
               "    d = datetime.strptime(s, '%m-%d-%Y')\n"
               "    return (hashlib.md5(s.encode()).hexdigest(), hashlib.sha256(b'x').hexdigest()[:8],\n"
               "            calendar.isleap(d.year), d.weekday(), random.Random(0).randint(1, 6), time.gmtime(0).tm_year,\n"
               "            hmac.new(b'k', b'm', 'sha256').hexdigest()[:8])")
    ok, text = run_raw(pool, program, "'02-29-2024'")
    assert ok, text
    expected = (hashlib.md5(b"02-29-2024").hexdigest(), hashlib.sha256(b"x").hexdigest()[:8], True,
                datetime.date(2024, 2, 29).weekday())
    assert executor.parse_literal(text)[:4] == expected


@pytest.mark.parametrize("text", ["[" * 100 + "]" * 100, "1" * 20_000, "9" * 5000, "-" * 5000 + "1",
                                  "().__class__", "__import__('os')", "{{1}}", "f(1)", "(1,) * 10**9"])
def test_hostile_literal_text_is_refused_quickly(text):
    t = time.perf_counter()
    with pytest.raises(ValueError):
        executor.parse_literal(text)
    assert time.perf_counter() - t < 1.0


# -----------------------------------------------------------------------------
# Hostile programs: each is rejected statically, and run anyway with the checks skipped it is
# contained: an invalid verdict, the test process unharmed, no process left, nothing written.

HOSTILE = {
    "infinite loop": "def f(a):\n    while True:\n        pass",
    "memory bomb": "def f(a):\n    x = [0] * (10 ** 9)\n    return len(x)",
    "fork bomb": "import os\ndef f(a):\n    while True:\n        os.fork()",
    "os.system": "import os\ndef f(a):\n    return os.system('echo hi > /tmp/azr-escaped')",
    "subprocess": "import subprocess\ndef f(a):\n    return subprocess.run(['true']).returncode",
    "kill parent": "import os\ndef f(a):\n    os.kill(os.getppid(), 9)\n    os.kill(a, 9)\n    return 1",
    "sys.exit": "import sys\ndef f(a):\n    sys.exit(0)",
    "raise BaseException": "def f(a):\n    raise BaseException('bye')",
    "os._exit": "import os\ndef f(a):\n    os._exit(0)",
    "deep recursion": "def f(a):\n    return f(a + 1)",
    "print forever": "def f(a):\n    while True:\n        print('x' * 10 ** 6)",
    "__eq__ always true": "def f(a):\n    class E:\n        def __eq__(self, o):\n            return True\n    return E()",
    "__repr__ forgery": "def f(a):\n    class R(int):\n        def __repr__(self):\n            return '1'\n    return R(5)",
    "unpicklable": "def f(a):\n    return (lambda: a)",
    "signal tampering": ("import signal\ndef f(a):\n    for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGALRM):\n"
                         "        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass"),
    "ctypes": "import ctypes\ndef f(a):\n    return ctypes.CDLL(None).getpid()",
    "subclasses walk": ("def f(a):\n    for c in ().__class__.__base__.__subclasses__():\n"
                        "        if c.__name__ == '_wrap_close':\n"
                        "            return c.__init__.__globals__['system']('echo hi > /tmp/azr-escaped')\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_rejected_statically_or_is_invalid(pool, name):
    program = HOSTILE[name]
    reason = check_program(program)
    verdict = validate([(program, str(os.getpid()))], pool)[0]
    assert not verdict.ok and verdict.reason
    assert reason or name in {"infinite loop", "memory bomb", "raise BaseException", "deep recursion",
                              "print forever", "__eq__ always true", "__repr__ forgery", "unpicklable"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_contained_at_run_time(pool, name):
    ok, reason = run_raw(pool, HOSTILE[name], str(os.getpid()))
    assert not ok and reason
    assert not os.path.exists("/tmp/azr-escaped")
    assert not descendants(pool)
    assert all(p.poll() is None for p in pool.procs)  # no worker was lost


def test_files_outside_the_job_folder_are_untouched(pool, tmp_path):
    os.chmod(tmp_path, 0o777)
    sentinel, target = tmp_path / "sentinel", tmp_path / "written"
    sentinel.write_text("keep")
    os.chmod(sentinel, 0o666)
    program = ("import os\ndef f(a):\n    open(a + '/written', 'w').write('x')\n"
               "    os.remove(a + '/sentinel')\n    return 1")
    ok, reason = run_raw(pool, program, repr(str(tmp_path)))
    assert not ok and sentinel.read_text() == "keep" and not target.exists()
    # inside its own fresh folder a program may write, and the folder starts empty
    program = "import os\ndef f(a):\n    n = len(os.listdir('.'))\n    open('t', 'w').write('x')\n    return n"
    assert run_raw(pool, program) == (True, "0") and run_raw(pool, program) == (True, "0")


def test_environment_is_scrubbed(pool, monkeypatch):
    monkeypatch.setenv("AZR_SECRET", "s3cr3t")
    fresh = Pool(workers=2)  # started with the secret in this process's environment
    try:
        ok, text = run_raw(fresh, "import os\ndef f(a):\n    return sorted(os.environ.items())")
        assert ok and "s3cr3t" not in text
    finally:
        fresh.close()


def test_no_socket_reaches_localhost(pool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    program = ("import socket\ndef f(port):\n    s = socket.create_connection(('127.0.0.1', port), timeout=1)\n"
               "    s.sendall(b'hi')\n    return 1")
    ok, reason = run_raw(pool, program, str(port))
    assert not ok
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()


@pytest.mark.parametrize("program", [
    "def f(a):\n    return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi'})",
    "def f(a):\n    return id(object()) % 100003",
    "def f(a):\n    return hash(a)",
    "def f(a):\n    return str({'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi'})",
], ids=["set order", "id", "hash", "text of a set"])
def test_nondeterminism_is_invalid(pool, program):
    v = validate([(program, "'some text'")], pool)[0]
    assert not v.ok and "not deterministic" in v.reason


WORDS = "{'apple', 'banana', 'cherry', 'date', 'elder', 'fig', 'grape', 'kiwi'}"


@pytest.mark.parametrize("program, expected", [
    (f"def f(a):\n    return {WORDS}", set(eval(WORDS))),
    (f"def f(a):\n    return {{w: len(w) for w in {WORDS}}}", {w: len(w) for w in eval(WORDS)}),
    (f"def f(a):\n    return [{WORDS}, ({WORDS} - {{'fig'}},)]", [eval(WORDS), (eval(WORDS) - {"fig"},)]),
], ids=["set of strings", "dict from a set", "sets nested in a list"])
def test_a_set_of_strings_is_deterministic_in_any_order(pool, program, expected):
    # the two hash seeds print these sets in different orders; the value is the same
    v = validate([(program, "0")], pool)[0]
    assert v.ok, v.reason
    assert executor.same_value(executor.parse_literal(v.output), expected)


@pytest.mark.parametrize("program, text", [
    ('def f(a):\n    return min(a, default=float("inf"))', "[]"),
    ("def f(a):\n    return -float(a)", "'inf'"),
    ("def f(a):\n    return [float('nan')]", "0"),
    ("def f(a):\n    return complex(1, float('inf'))", "0"),
    ("def f(a):\n    return frozenset({1, 2})", "0"),
    ("def f(a):\n    return {1: frozenset()}", "0"),
    ("def f(n):\n    x = []\n    for _ in range(n):\n        x = [x]\n    return x", str(executor.MAX_NESTING)),
    ("def f(n):\n    return '(' * n", str(executor.MAX_NESTING + 1)),
], ids=["inf", "-inf", "nan", "complex inf", "frozenset", "nested frozenset", "nested past the cap",
        "brackets in a string past the cap"])
def test_an_output_that_does_not_read_back_is_invalid(pool, program, text):
    # no answer could ever equal such an output: check_deduction reads answers with parse_literal
    v = validate([(program, text)], pool)[0]
    assert not v.ok and "read back" in v.reason


@pytest.mark.parametrize("program", [
    "def f(a):\n    return set()", "def f(a):\n    return -0.0", "def f(a):\n    return (1+2j, b'\\x00')",
    "def f(a):\n    return {1: {2, 3}, 'k': (None, True)}", "def f(a):\n    return 1e300 * 10 ** -300",
])
def test_outputs_that_read_back_stay_valid(pool, program):
    v = validate([(program, "0")], pool)[0]
    assert v.ok, v.reason
    assert check_deduction(v.output, v.output).ok


# Writes the worker's reply format to every descriptor a child may hold, then leaves before the
# harness can write its own: the HumanEval forgery (a check that "passed" without running).
FORGED = '{"results": [[true, "True"]], "printed": ""}'
FORGERS = {
    "write and leave": ("import os\ndef f(a):\n    for fd in range(3, 40):\n        try:\n"
                        f"            os.write(fd, b'{FORGED}')\n        except OSError:\n            pass\n"
                        "    os._exit(0)"),
    "write and return": ("import os\ndef f(a):\n    for fd in range(3, 40):\n        try:\n"
                         f"            os.write(fd, b'{FORGED}')\n        except OSError:\n            pass\n"
                         "    return True"),
}


@pytest.mark.parametrize("name", sorted(FORGERS))
def test_a_program_cannot_write_the_harness_reply_itself(pool, name):
    ok, text = run_raw(pool, FORGERS[name])  # static checks skipped: the runtime alone must hold
    assert not ok and text != "True"


# -----------------------------------------------------------------------------
# The pool

def test_pool_replaces_a_worker_that_dies(pool):
    victim = pool.procs[0]
    os.killpg(victim.pid, 9)
    victim.wait()
    verdicts = validate([("def f(a):\n    return a + 1", "1")] * 6, pool)
    assert all(v.ok and v.output == "2" for v in verdicts)
    assert all(p.poll() is None for p in pool.procs) and pool.procs[0] is not victim


def test_pool_survives_a_thousand_mixed_jobs(pool):
    good = perf.bench_programs(40)
    quick_hostile = [HOSTILE[k] for k in ("memory bomb", "fork bomb", "kill parent", "sys.exit", "os._exit",
                                          "deep recursion", "__eq__ always true", "unpicklable", "ctypes")]
    slow_hostile = [HOSTILE["infinite loop"], HOSTILE["signal tampering"]]
    distinct = [(p, [t], None) for p, t in good] + [(p, ["0"], None) for p in quick_hostile + slow_hostile]
    alone = [pool.run([job])[0] for job in distinct]
    fast = [k for k in range(len(distinct)) if distinct[k][0] not in slow_hostile]
    order = [fast[n % len(fast)] for n in range(996)] + [len(distinct) - 2, len(distinct) - 1] * 2
    batch = pool.run([distinct[k] for k in order])
    verdict = lambda r: r.get("results", [[False, None]])[0][0]  # noqa: E731
    assert [verdict(r) for r in batch] == [verdict(alone[k]) for k in order]
    assert [r.get("results") for r in batch if verdict(r)] == [alone[k]["results"] for k in order if verdict(alone[k])]
    assert sum(verdict(r) for r in batch) > 500 and not descendants(pool)
