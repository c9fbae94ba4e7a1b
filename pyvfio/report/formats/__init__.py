"""Results where kernel engineers look: KTAP, JUnit XML, KCIDB v5.3 and LAVA, all
written from one model (model.py) of the checked result files (report/cells.py).

    results = from_path(FILE|DIR) | from_report(report)
    render(results, fmt) -> str          # fmt in FORMATS
    exit_code(results, fmt) -> int       # KTAP: kselftest's 0 pass, 1 fail, 4 skip;
                                         # the others: 0 (the verdicts are in the data)
    emit(results, fmt, out=None)         # stdout ("-" or None) or a file, atomically

docs/formats.md describes each format.
"""

FORMATS = ("ktap", "junit", "kcidb", "lava")   # cheap to import: the CLI's choices


def from_path(path):
    from . import model
    return model.from_path(path)


def from_report(report, source="input"):
    from . import model
    return model.from_report(report, source)


def _module(fmt):
    from . import junit, kcidb, ktap, lava
    return {"ktap": ktap, "junit": junit, "kcidb": kcidb, "lava": lava}[fmt]


def render(results, fmt):
    return _module(fmt).render(results)


def exit_code(results, fmt):
    return _module(fmt).exit_code(results) if fmt == "ktap" else 0


def emit(results, fmt, out=None):
    text = render(results, fmt)
    from ...results import STDOUT, write_atomic
    write_atomic(out or STDOUT, text, f"write the {fmt} results to")
    return exit_code(results, fmt)
