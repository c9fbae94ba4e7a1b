"""Every format of a result read by what reads it in the world: KTAP by the kernel's
own tools/testing/kunit/kunit_parser.py, KCIDB by kcidb-io's v5.3 schema, JUnit by
junitparser, LAVA lines by the shape lava-test-case takes.  Used by tests/test_formats.py
on model and run results, and by the lab's seed end to end (tests/test_repro_lab.py)
on a real lab result: seconds, no boot of its own.

The parser comes out of linux-source-6.12's .deb in the lab cache (the one the lab's
--vfio prefix build uses, 153 MB): measured cold, download and unpack, 23 s; warm,
nothing."""

import importlib.util
import io
import re
import sys

import pytest

from pyvfio.report import formats as F

_parser = None


def kunit_parser():
    """The kernel's KTAP parser module, from the lab's linux-source (fetched into the
    lab cache once); a skip with the reason only when it cannot be had at all."""
    global _parser
    if _parser is None:
        from pyvfio.lab.errors import LabUnavailable
        from pyvfio.lab.kunit_source import parser_dir
        try:
            folder = parser_dir()
        except LabUnavailable as exc:
            pytest.skip(f"the kernel's kunit_parser.py cannot be had: {exc}")
        mods = {}
        for name in ("kunit_printer", "kunit_parser"):   # the parser imports the printer by name
            spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
            mods[name] = importlib.util.module_from_spec(spec)
            sys.modules[name] = mods[name]
            spec.loader.exec_module(mods[name])
        _parser = mods["kunit_parser"]
    return _parser


def parse_ktap(text):
    kp = kunit_parser()
    kp.stdout = sys.modules["kunit_printer"].Printer(io.StringIO())   # its summary, not ours
    return kp.parse_run_tests(text.splitlines())


VERSION, PLAN = re.compile(r"KTAP version 1$"), re.compile(r"1\.\.(\d+)$")
RESULT = re.compile(r"(ok|not ok) (\d+)( [^#]*?)?( # (SKIP|ERROR|TODO|XFAIL|TIMEOUT)?( .*)?)?$")


def ktap_spec_errors(text):
    """What breaks Documentation/dev-tools/ktap.rst's rules, which the kernel's parser
    (lenient by design: any indentation, a plan anywhere) lets pass: the version
    line first, its plan next (a `# Subtest:` header between), two spaces per level
    of nesting, results numbered 1.. at each level and as many as the plan says,
    test names without '#', a parent's result right after its subtests."""
    errors, stack = [], []          # stack: [planned, seen] per open level
    lines = text.splitlines()
    if not lines or lines[0] != "KTAP version 1":
        errors.append("1: not the version line")
    for n, raw in enumerate(lines, 1):
        body = raw.lstrip(" ")
        depth, odd = divmod(len(raw) - len(body), 2)
        level = len(stack) - 1      # where a line of the innermost open level sits
        if odd:
            errors.append(f"{n}: indented by an odd number of spaces")
        if VERSION.match(body):
            if depth != level + 1:
                errors.append(f"{n}: a version line at depth {depth}, expected {level + 1}")
            k = n
            while k < len(lines) and lines[k].strip().startswith("# Subtest:"):
                k += 1
            if k >= len(lines) or not PLAN.match(lines[k].strip()):
                errors.append(f"{n}: the version line is not followed by its plan")
            stack.append([None, 0])
        elif PLAN.match(body):
            if not stack or stack[-1][0] is not None or depth != level:
                errors.append(f"{n}: a plan out of place")
            else:
                stack[-1][0] = int(PLAN.match(body).group(1))
        elif RESULT.match(body):
            m = RESULT.match(body)
            if depth == level - 1 and stack:       # a parent's result closes its subtests
                planned, seen = stack.pop()
                if planned != seen:
                    errors.append(f"{n}: {seen} result(s) for a plan of {planned}")
                level -= 1
            if depth != level or not stack:
                errors.append(f"{n}: a result at depth {depth}, expected {level}")
                continue
            stack[-1][1] += 1
            if int(m.group(2)) != stack[-1][1]:
                errors.append(f"{n}: test number {m.group(2)}, expected {stack[-1][1]}")
        elif body.startswith(("ok ", "not ok ")):
            errors.append(f"{n}: a result line ktap.rst does not allow: {body!r}")
        elif not body.startswith("#"):
            errors.append(f"{n}: not a KTAP line: {body!r}")
        elif depth != level:
            errors.append(f"{n}: a diagnostic line at depth {depth}, expected {level}")
    if len(stack) != 1 or stack[0][0] != stack[0][1]:
        errors.append(f"the end: {stack} (open levels: [planned, seen])")
    return errors


LAVA_LINE = re.compile(r"lava-test-case [-_.A-Za-z0-9]+ --result (pass|fail|skip)"
                       r"( --measurement -?\d+(\.\d+)? --units \S+)?$")


def check_all(results, tmp_path):
    """Render every format of `results` and validate it; returns what each parser saw."""
    import junitparser
    from kcidb_io.schema import V5_3

    seen = {}
    ktap = F.render(results, "ktap")
    assert ktap_spec_errors(ktap) == [], ktap
    test = parse_ktap(ktap)
    assert test.counts.errors == 0, ktap
    # a machine without cells is a test of its own: ERROR (not ok) or SKIP
    statuses = [c.status for c in results.cases] + [m.status for m in results.machines if m.status]
    assert test.counts.passed == statuses.count("pass")
    assert test.counts.failed == statuses.count("fail") + statuses.count("error")
    assert test.counts.skipped == statuses.count("skip")
    seen["ktap"] = test

    doc = F._module("kcidb").document(results)
    V5_3.validate_exactly(doc)   # v5.3 itself, not an older version it would upgrade
    seen["kcidb"] = doc

    path = tmp_path / "junit.xml"
    path.write_text(F.render(results, "junit"))
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == [m.name for m in results.machines]
    assert sum(s.tests for s in suites) == sum(max(1, len(m.cases)) for m in results.machines)
    for suite, m in zip(suites, results.machines):   # the verdicts where a CI reads them
        got = [("skip" if any(r._tag == "skipped" for r in tc.result) else
                "error" if any(r._tag == "error" for r in tc.result) else
                "fail" if tc.result else "pass") for tc in suite]
        assert got == ([c.status for c in m.cases] or [m.status]), (m.name, got)
    seen["junit"] = suites

    lines = F._module("lava").lines(results)
    assert lines and all(LAVA_LINE.match(line) for line in lines), lines
    seen["lava"] = lines
    return seen
