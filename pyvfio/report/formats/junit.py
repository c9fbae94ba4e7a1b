"""JUnit XML (as Jenkins, GitLab and junitparser read it): one testsuite per
machine, one testcase per cell; the verdict's text in `failure` (a stall, lost
raises), `error` (the cell could not run) or `skipped`; properties for the
machine's facts, the cell's key and its figures (and `segment.NAME.p50_us` for a
cell run with --explain)."""

import re
import xml.etree.ElementTree as ET

# What XML 1.0 cannot carry at all, even escaped (ElementTree writes it raw, and no
# parser reads the file then): a control character from a guest's output, say.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _props(parent, items):
    items = [(k, v) for k, v in items if v is not None and v != [] and v != ""]
    if items:
        props = ET.SubElement(parent, "properties")
        for k, v in items:
            ET.SubElement(props, "property", name=str(k), value=str(v))


def _counts(cases):
    n = lambda s: sum(1 for c in cases if c.status == s)  # noqa: E731
    return {"tests": str(len(cases)), "failures": str(n("fail")), "errors": str(n("error")),
            "skipped": str(n("skip"))}


def render(results):
    counts = _counts(results.cases)
    for m in results.machines:
        if m.status:
            counts["tests"] = str(int(counts["tests"]) + 1)
            key = "errors" if m.status == "error" else "skipped"
            counts[key] = str(int(counts[key]) + 1)
    root = ET.Element("testsuites", name=f"pyvfio {results.kind or ''} {results.source}".strip(), **counts)
    for m in results.machines:
        cases = m.cases
        attrs = {"name": m.name, **_counts(cases)}
        if m.status:   # a machine that gave no cells: one case of its own
            attrs.update(tests="1", **{"errors" if m.status == "error" else "skipped": "1"})
        if results.started:
            attrs["timestamp"] = results.started.rstrip("Z")
        suite = ET.SubElement(root, "testsuite", **attrs)
        _props(suite, [(k, v) for k, v in m.facts.items() if k != "cells"] +
               [("pyvfio", results.version)])
        if m.status == "error":   # a machine that gave no cells: one case says why
            tc = ET.SubElement(suite, "testcase", classname=f"pyvfio.{m.name}", name="machine")
            ET.SubElement(tc, "error", message=m.error).text = m.error
        elif m.status == "skip":
            tc = ET.SubElement(suite, "testcase", classname=f"pyvfio.{m.name}", name="machine")
            ET.SubElement(tc, "skipped", message="no cells in the result")
        for c in cases:
            tc = ET.SubElement(suite, "testcase", classname=f"pyvfio.{m.name}", name=c.name)
            _props(tc, [(f"key.{a}", v) for a, v in c.key.items()] +
                   [("verdict", c.verdict), ("expected", c.expected), ("match", c.match)] +
                   [(f"vfio.{a}", v) for a, v in c.vfio.items() if not isinstance(v, (dict, list))] +
                   list(c.figures.items()) +
                   [(f"segment.{s}.p50_us", v) for s, v in c.segments.items()])
            if c.status == "fail":
                ET.SubElement(tc, "failure", message=c.verdict, type=c.verdict.split()[0]).text = c.why
            elif c.status == "error":
                ET.SubElement(tc, "error", message=c.verdict).text = c.why
            elif c.status == "skip":
                ET.SubElement(tc, "skipped", message=c.why or "skipped")
    ET.indent(root)
    text = NOT_XML.sub("\ufffd", ET.tostring(root, encoding="unicode"))
    return '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n"
