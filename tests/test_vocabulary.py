"""One vocabulary across subcommands (docs/vocabulary.md, docs/exit-codes.md): every
subcommand's parser walked; an option name with two meanings fails, and so does a
parser that says something docs/vocabulary.md does not, or an exit table that
docs/exit-codes.md does not show."""

import argparse
import ast
import json
import re

import pytest

from pyvfio import errors
from pyvfio.cli import dispatch, machine_cmd, main
from pyvfio.cli.parser import OldSpelling, Parser, add_choice, add_json, add_nointxmask, add_policy
from pyvfio.vocabulary import Policy
from pyvfio.checkout import CHECKOUT

ROOT = CHECKOUT
VOCABULARY_MD = ROOT / "docs" / "vocabulary.md"
EXIT_CODES_MD = ROOT / "docs" / "exit-codes.md"


def commands(parser, prog):
    """(prog, parser) for a parser and every subcommand's under it."""
    yield prog, parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from commands(sub, f"{prog} {name}")


def all_commands():
    return [*commands(dispatch.full_parser(), "pyvfio"), *commands(machine_cmd._parser(), "pyvfio lab machine")]


def options(parser):
    """The parser's own options (not its subcommands'), old spellings left out."""
    for a in parser._actions:
        if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                                   argparse._SubParsersAction, OldSpelling)):
            yield a


def values(a):
    """What an option takes, as docs/vocabulary.md writes it."""
    if a.nargs == 0:
        return "(flag)"
    words = a.choices or getattr(a.type, "vocabulary", None)
    if words:
        return ", ".join(f"`{w}`" for w in words)
    return a.metavar or a.dest.upper()


def meaning(a):
    """What makes two options with one name the same option: a flag or valued, the
    same values (choices or vocabulary), nargs, type and metavar."""
    return (a.nargs == 0, values(a), a.nargs, getattr(a.type, "__name__", None), a.metavar)


def conflicts(parsers):
    """{option string: {meaning: [prog]}} for the names with more than one meaning."""
    seen = {}
    for prog, parser in parsers:
        for a in options(parser):
            for name in a.option_strings:
                seen.setdefault(name, {}).setdefault(meaning(a), []).append(prog)
    return {name: m for name, m in seen.items() if len(m) > 1}


def test_no_option_name_has_two_meanings():
    found = conflicts(all_commands())
    assert not found, "\n".join(f"{name}: " + "; ".join(f"{progs} take {m[1]}" for m, progs in ms.items())
                                for name, ms in found.items())


def test_the_walk_sees_a_second_meaning():
    # the check itself: --json as a flag in one command and a FILE in another, and
    # --policy with other words, are found
    a, b = Parser(prog="a"), Parser(prog="b")
    add_json(a, "x")
    b.add_argument("--json", action="store_true")
    add_policy(a, help="p")
    b.add_argument("--policy", choices=("default", "lazy", "unlazy"))
    add_nointxmask(a, help="n")
    b.add_argument("--nointxmask", action="store_true")
    found = conflicts([("a", a), ("b", b)])
    assert set(found) == {"--json", "--policy", "--nointxmask"}
    c = Parser(prog="c")
    add_choice(c, "--card", Policy, help="same name, other words")   # not lab's CARD
    assert "--card" in conflicts([*all_commands(), ("c", c)])


def doc_rows(path, heading):
    """The first table under `heading` in a markdown file, as lists of cells."""
    text = path.read_text()
    part = text.split(f"## {heading}\n", 1)[1]
    rows = []
    for line in part.splitlines():
        if line.startswith("## "):
            break
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows[1:]   # past the header


def expected_options():
    """{option cell: (values cell, commands cell)} as the parsers say."""
    rows = {}
    for prog, parser in all_commands():
        for a in options(parser):
            key = ", ".join(f"`{o}`" for o in a.option_strings)
            cmd = prog.removeprefix("pyvfio ")
            v, cmds = rows.get(key, (values(a), []))
            rows[key] = (v, cmds + [cmd] if cmd not in cmds else cmds)
    return {k: (v, ", ".join(cmds)) for k, (v, cmds) in rows.items()}


def test_docs_vocabulary_table_is_the_parsers():
    want = expected_options()
    got = {r[0]: (r[2], r[3]) for r in doc_rows(VOCABULARY_MD, "Options")}
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    stale = sorted(set(got) - set(want))
    assert not missing and not stale, (
        "docs/vocabulary.md's Options table differs from the parsers; rows to write:\n"
        + "\n".join(f"| {k} | MEANING | {v} | {c} |" for k, (v, c) in missing.items())
        + (f"\nrows no parser has: {stale}" if stale else ""))
    assert all(r[1] and r[1] != "MEANING" for r in doc_rows(VOCABULARY_MD, "Options")), "every row says its meaning"


def expected_old_spellings():
    """{(old, new): commands} as the parsers say."""
    rows = {}
    for prog, parser in all_commands():
        cmd = prog.removeprefix("pyvfio ")
        found = [(f"`{o}`", f"`{a.new}`") for a in parser._actions if isinstance(a, OldSpelling)
                 for o in a.option_strings]
        found += [(f"`{o}`", f"`{o} {value}`") for o, (value, _) in getattr(parser, "was_flag", {}).items()]
        found += [(f"`{a.option_strings[0]} {word}`", f"`{a.option_strings[0]} {new}`")
                  for a in options(parser) for word, new in getattr(a.type, "old", {}).items()]
        for row in found:
            rows.setdefault(row, []).append(cmd)
    return {row: ", ".join(cmds) for row, cmds in rows.items()}


def test_docs_old_spellings_are_the_parsers():
    got = {(r[0], r[1]): r[2] for r in doc_rows(VOCABULARY_MD, "Old spellings")}
    want = expected_old_spellings()
    assert got == want, "rows to write:\n" + "\n".join(f"| {o} | {n} | {c} |" for (o, n), c in want.items())


def test_docs_exit_codes_are_the_table():
    want = [(str(e.code), e.name, e.meaning) for e in errors.EXITS]
    assert [tuple(r) for r in doc_rows(EXIT_CODES_MD, "Exit codes")] == want
    assert [tuple(r) for r in doc_rows(ROOT / "README.md", "Exit codes")] == want   # the README's copy
    assert len({e.code for e in errors.EXITS}) == len(errors.EXITS), "one meaning per code"


def _numbers(value):
    """Whether an exit status expression is (or may be) a bare number."""
    if isinstance(value, ast.Constant):
        return type(value.value) is int
    if isinstance(value, ast.IfExp):
        return _numbers(value.body) or _numbers(value.orelse)
    if isinstance(value, ast.BoolOp):
        return any(_numbers(v) for v in value.values)
    return False


def _int_exits(tree):
    """Each `return N`, `sys.exit(N)` or `exit_code = N` (N a number, or `a if c else N`)."""
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Return):
            value = node.value
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "exit":
            value = node.args[0] if node.args else None
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "exit_code" for t in node.targets):
            value = node.value
        if value is not None and _numbers(value):
            yield node.lineno


@pytest.mark.parametrize("path", sorted((ROOT / "pyvfio" / "cli").glob("*.py")), ids=lambda p: p.name)
def test_cli_exits_by_name(path):
    lines = list(_int_exits(ast.parse(path.read_text())))
    assert not lines, f"{path.name}: lines {lines} exit with a number, not a name of pyvfio.errors.EXITS"


def test_the_exit_check_sees_a_number():
    assert list(_int_exits(ast.parse("def f():\n    return 1 if x else 0\n"))) == [2]
    assert list(_int_exits(ast.parse("import sys\nsys.exit(3)\n"))) == [2]
    assert list(_int_exits(ast.parse("def f():\n    return g() or 0\n"))) == [2]
    assert not list(_int_exits(ast.parse("def f():\n    return EXIT_OK\n")))
    assert not list(_int_exits(ast.parse("def f():\n    return g(argv[2:])\n")))


# An exit status a test expects is named too: when the table was renumbered (5 became STALL,
# MACHINE 9), a fleet test still expecting 5 for a dead machine ran only in the lab tier and
# failed CI.  0, 1, 2 and 130 keep their meaning everywhere (and argparse's 2); another
# program's status (kselftest's 4, a shell's `exit 7`, kill -9's 137) is marked `# not ours`.
_STATUS_CALLS = {"main", "fleet", "run", "lab"}


def _status_of(node):
    """Whether an expression is an exit status: `.returncode`, `rc`, `["exit"]`, main(...)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "returncode"
    if isinstance(node, ast.Name):
        return node.id == "rc"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "exit"
    if isinstance(node, ast.Call):
        f = node.func
        return (getattr(f, "id", None) or getattr(f, "attr", None)) in _STATUS_CALLS
    return False


def _numbered_statuses(source):
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(_status_of(s) for s in sides):
            continue
        for s in sides:
            if (isinstance(s, ast.Constant) and type(s.value) is int and s.value not in (0, 1, 2, 130)
                    and "# not ours" not in lines[s.lineno - 1]):
                yield s.lineno


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("test_*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_tests_expect_exits_by_name(path):
    lines = list(_numbered_statuses(path.read_text()))
    assert not lines, (f"{path.relative_to(ROOT)}: lines {lines} expect an exit status by number: "
                       "name it (pyvfio.errors.EXIT[...]) or mark another program's `# not ours`")


def test_the_status_check_sees_a_number():
    assert list(_numbered_statuses("assert p.returncode == 5\n")) == [1]
    assert list(_numbered_statuses("assert fleet(a,\n  b) == 9\n")) == [2]
    assert list(_numbered_statuses("assert doc['exit'] == 4 and x\n")) == [1]
    assert not list(_numbered_statuses("assert p.returncode == EXIT['STALL']\n"))
    assert not list(_numbered_statuses("assert p.returncode == 1 and len(x) == 5\n"))
    assert not list(_numbered_statuses("assert p.returncode == 4  # not ours: kselftest's skip\n"))


def test_bare_json_is_the_old_flag_with_a_notice(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["kind"] == "profiles"
    assert err.splitlines()[0] == ("pyvfio: notice: --json is now --json -; the old spelling goes in the "
                                   "next release")
    assert main(["profile", "list", "--json", "p.json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["tool"] == "pyvfio" and doc["kind"] == "profiles" and "edu" in out and "notice" not in err


def test_bare_json_before_a_bdf_is_not_a_file(tmp_path, monkeypatch):
    # `doctor --json 0000:01:00.0` (the old flag, then the card) must not write a file named after the card
    p = Parser(prog="doctor")
    p.add_argument("bdf", nargs="?")
    add_json(p, "x", was_flag=True)
    args = p.parse_args(["--json", "0000:01:00.0"])
    assert args.json == "-" and args.bdf == "0000:01:00.0"
    assert p.parse_args(["--json", "d.json", "00:04.0"]).json == "d.json"
    assert p.parse_args(["--json", "-", "00:04.0"]).json == "-"


def test_old_spellings_work_with_one_notice(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert main(["repro", "--model", "--ic", "xive", "--card", "non-2.3", "--policy", "lazy", "--unmask", "ioctl",
                 "--nointxmask", "-l", "2", "--json", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "pyvfio: notice: --card is now --card-kind; the old spelling goes in the next release" in err
    assert "pyvfio: notice: --nointxmask is now --nointxmask 1; the old spelling goes in the next release" in err
    cells = json.loads(out.read_text())["cells"]
    assert {(c["key"]["card"], c["key"]["nointxmask"]) for c in cells} == {("non-2.3", 1)}


def test_policy_default_is_kernel_with_a_notice(capsys):
    p = Parser(prog="lab")
    add_policy(p, help="x")
    assert p.parse_args(["--policy", "default"]).policy == "kernel"
    assert capsys.readouterr().err == ("pyvfio: notice: --policy default is now --policy kernel; the old "
                                       "spelling goes in the next release\n")
    with pytest.raises(errors.UsageError, match="invalid choice: 'eager'"):
        p.parse_args(["--policy", "eager"])


def test_one_envelope_for_every_json_output(capsys, tmp_path):
    out = tmp_path / "m.json"
    assert main(["repro", "--model", "--ic", "xive", "--card-kind", "2.3", "-l", "2", "--json", str(out)]) == 0
    capsys.readouterr()
    assert main(["profile", "list", "--json", "-"]) == 0
    docs = [json.loads(out.read_text()), json.loads(capsys.readouterr().out)]
    for d in docs:
        assert list(d)[:3] == ["tool", "version", "kind"] and d["tool"] == "pyvfio"


def test_docs_enums_are_the_module():
    from enum import StrEnum

    from pyvfio import vocabulary
    enums = {f"`{n}`": e for n, e in vars(vocabulary).items()
             if isinstance(e, type) and issubclass(e, StrEnum) and e is not StrEnum}
    rows = {r[0]: r[1] for r in doc_rows(VOCABULARY_MD, "The enums")}
    assert set(rows) == set(enums)
    for name, e in enums.items():
        assert re.findall(r"`([^`]+)`", rows[name])[:len(e)] == [m.value for m in e], name
