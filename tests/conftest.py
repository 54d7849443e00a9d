"""Helpers shared by the tests of every entry point."""


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
