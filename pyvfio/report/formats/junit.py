"""JUnit XML (as Jenkins, GitLab and junitparser read it): one testsuite per
machine, one testcase per cell; the verdict's text in `failure` (a stall, lost
raises), `error` (the cell could not run) or `skipped`; properties for the
machine's facts, the cell's key and its figures."""

import xml.etree.ElementTree as ET


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
    root = ET.Element("testsuites", name=f"pyvfio {results.kind or ''} {results.source}".strip(),
                      **_counts(results.cases))
    for m in results.machines:
        cases = m.cases
        attrs = {"name": m.name, **_counts(cases)}
        if not cases:   # a machine that gave no cells: one errored case says why
            attrs.update(tests="1", errors="1")
        if results.started:
            attrs["timestamp"] = results.started.rstrip("Z")
        suite = ET.SubElement(root, "testsuite", **attrs)
        _props(suite, [(k, v) for k, v in m.facts.items() if k != "cells"] +
               [("pyvfio", results.version)])
        if not cases:
            tc = ET.SubElement(suite, "testcase", classname=f"pyvfio.{m.name}", name="machine")
            ET.SubElement(tc, "error", message=m.error or "no cells").text = m.error
        for c in cases:
            tc = ET.SubElement(suite, "testcase", classname=f"pyvfio.{m.name}", name=c.name)
            _props(tc, [(f"key.{a}", v) for a, v in c.key.items()] +
                   [("verdict", c.verdict), ("expected", c.expected), ("match", c.match)] +
                   [(f"vfio.{a}", v) for a, v in c.vfio.items() if not isinstance(v, (dict, list))] +
                   list(c.figures.items()))
            if c.status == "fail":
                ET.SubElement(tc, "failure", message=c.verdict, type=c.verdict.split()[0]).text = c.why
            elif c.status == "error":
                ET.SubElement(tc, "error", message=c.verdict).text = c.why
            elif c.status == "skip":
                ET.SubElement(tc, "skipped", message=c.why or "skipped")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
