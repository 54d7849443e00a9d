"""Helpers shared by the tests of every entry point."""

import subprocess

import pytest


def assert_usage_and_one_error(err, prog, message):
    """argparse's refusal of a bad command line on stderr: the usage (a first line "usage: prog ...",
    then indented lines), then exactly one error line "prog: error: ..." that holds message. prog
    may be followed by a sub-command's name ("analyze.py entropy")."""
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith(f"usage: {prog}"), err
    assert all(line.startswith(" ") for line in lines[1:-1]), err
    head, _, _ = lines[-1].partition(": error: ")
    assert len(lines) >= 2 and (head == prog or head.startswith(prog + " ")) and ": error: " in lines[-1], err
    assert message in lines[-1], err


def run_child(cmd, must_succeed=True, **kwargs):
    """subprocess.run(cmd, capture_output=True, text=True, **kwargs). With must_succeed, a child that exits
    non-zero fails the test with a message holding the command and the end of the child's stderr
    (and stdout), so the cause (its traceback, its last line) is in the report and in pytest's junit
    file, not only in a CalledProcessError's attributes."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if must_succeed and done.returncode != 0:
        pytest.fail(child_failure(cmd, done), pytrace=False)
    return done


def child_failure(cmd, done):
    """What a failed child said: its command, exit status and the last 4,000 characters of its
    stdout and stderr."""
    said = "".join(f"\n--- its {name} ends:\n{text[-4000:]}" for name, text in (("stdout", done.stdout), ("stderr", done.stderr))
                   if text.strip())
    return f"{' '.join(map(str, cmd))} exited with status {done.returncode}{said}"
