"""The result format's one validator (pyvfio/report/cells.py) and its published
JSON Schema (docs/result.schema.json) agree; every reader uses the validator."""

import json
import os

import jsonschema
import pytest

from pyvfio.checkout import CHECKOUT
from pyvfio.cli import main
from pyvfio.report import cells as C

ROOT = CHECKOUT
SCHEMA = ROOT / "docs" / "result.schema.json"
FIXTURES = ROOT / "tests" / "fixtures" / "reports"


def test_the_published_schema_is_the_validators():
    assert json.loads(SCHEMA.read_text()) == C.schema(), \
        "regenerate docs/result.schema.json from pyvfio.report.cells.schema()"
    jsonschema.Draft202012Validator.check_schema(C.schema())


@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.json"
    assert main(["repro", "--model", "--ic", "xive,ioapic", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_pyvfio_s_own_results_fit_the_schema_and_the_validator(model_report):
    validator = jsonschema.Draft202012Validator(C.schema())
    for doc in [model_report] + [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]:
        validator.validate(doc)
        C.check(doc, "doc")


@pytest.mark.parametrize("path,value,field", [
    (("cells", 0), [], "cells[0] is a list, not a table"),
    (("cells", 0, "key"), "xive", "cells[0].key is \"xive\", not a table"),
    (("cells", 0, "counts", "lost"), -1, "cells[0].counts.lost is -1, not a whole number, 0 or more"),
    (("cells", 0, "counts", "lost"), True, "cells[0].counts.lost is true"),
    (("cells", 0, "outcome", "stalls"), "2", "cells[0].outcome.stalls is \"2\""),
    (("cells", 0, "throughput_per_s"), float("nan"), "cells[0].throughput_per_s is NaN"),
    (("cells", 0, "verdict"), None, "cells[0].verdict is null, not a string"),
    (("cells", 0, "key", "ic"), {"a": 1}, "cells[0].key.ic is a table"),
    (("command",), "pyvfio", "command is \"pyvfio\", not a list"),
])
def test_a_wrong_type_anywhere_is_refused_by_both_naming_the_field(model_report, path, value, field):
    doc = json.loads(json.dumps(model_report))
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(Exception) as exc:
        C.check(doc, "r.json")
    assert field in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    if value == value:    # jsonschema's "number" takes NaN, which JSON itself cannot hold
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, C.schema())


def test_every_field_the_validator_knows_is_in_the_schema():
    text = SCHEMA.read_text()
    for spec in (C.CELL, C.RUN, C.REPRO, C.VERDICT, C.HISTOGRAM, C.STALL, C.FLEET, C.FLEET_PLACE,
                 C.EXPLAIN, C.ANALYSIS):
        for field in spec:
            assert f'"{field}"' in text, field


def test_deep_json_and_special_files_are_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    mid = tmp_path / "mid.json"
    cell = {"verdict": "ok", "key": {}, "card": json.loads("[" * 40 + "]" * 40)}
    mid.write_text(json.dumps({"tool": "pyvfio", "kind": "repro", "cells": [cell]}))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for f, needle in ((deep, "nested too deeply"), (mid, "nests deeper than 32"), (fifo, "is a FIFO, not a file"),
                      (tmp_path, "is a folder"), ("/dev/null", "is a character device")):
        assert main(["compare", str(f), str(f)]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_fleet_file_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    (tmp_path / "fleet.json").write_text(json.dumps({"kind": "fleet", "places": {"p1": {"exit": "zero"}}}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "places.p1.exit is \"zero\", not a whole number or null" in err and len(err.splitlines()) == 1, err
