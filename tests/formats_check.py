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


LAVA_LINE = re.compile(r"lava-test-case [-_.A-Za-z0-9]+ --result (pass|fail|skip)"
                       r"( --measurement -?\d+(\.\d+)? --units \S+)?$")


def check_all(results, tmp_path):
    """Render every format of `results` and validate it; returns what each parser saw."""
    import junitparser
    from kcidb_io.schema import V5_3

    seen = {}
    test = parse_ktap(F.render(results, "ktap"))
    assert test.counts.errors == 0, F.render(results, "ktap")
    cases = results.cases
    assert test.counts.passed == sum(c.status == "pass" for c in cases)
    assert test.counts.failed == sum(c.status in ("fail", "error") for c in cases)
    assert test.counts.skipped == sum(c.status == "skip" for c in cases)
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
    seen["junit"] = suites

    lines = F._module("lava").lines(results)
    assert lines and all(LAVA_LINE.match(line) for line in lines), lines
    seen["lava"] = lines
    return seen
