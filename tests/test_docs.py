"""The docs point at code that exists: every function the reading guide names is defined in the file
its row names, and every file of the README's table is in the repository."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def defined_names(path):
    """Top-level functions, classes and assigned names of a Python file."""
    names = set()
    for node in ast.parse(read(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def guide_rows():
    """(names, files) of each table row of the reading guide whose cells name a .py file: the
    backticked identifiers of the function cell, and the .py files of the file cell."""
    rows = []
    for line in read("docs/reading-guide.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.search(r"\w+\.py", cells[2]):
            continue
        named = re.sub(r"\([^)]*\)", "", cells[1])  # "(mode `trr++`)", "(logs ...)": not function names
        names = [n for n in re.findall(r"`([^`]+)`", named) if re.fullmatch(r"[A-Za-z_]\w*", n)]
        rows.append((names, re.findall(r"(\w+\.py)", cells[2])))
    return rows


def missing(rows):
    return [(name, files) for names, files in rows for name in names if not any(name in defined_names(f) for f in files)]


def test_every_function_the_reading_guide_names_exists():
    rows = guide_rows()
    assert len(rows) > 20  # the tables were found
    assert missing(rows) == []


def test_the_check_reports_a_function_that_is_not_there():
    assert missing([(["policy_loss", "no_such_function"], ["grpo.py"]), (["update"], ["sft.py"])]) == \
        [("no_such_function", ["grpo.py"]), ("update", ["sft.py"])]


def test_every_file_of_the_readme_table_exists():
    table = read("README.md").split("| file | what it is |", 1)[1].split("\n\n", 1)[0]
    files = re.findall(r"^\| `([\w./]+)` \|", table, re.MULTILINE)
    assert len(files) > 20 and [f for f in files if not os.path.exists(os.path.join(ROOT, f))] == []
