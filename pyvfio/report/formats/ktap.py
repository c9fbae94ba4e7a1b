"""KTAP v1 (the kernel's Documentation/dev-tools/ktap.rst): one subtest per
machine, one test per cell inside it, a fail's reason (who is at fault) and the
figures on `# ` diagnostic lines before its result, `# SKIP reason` and `# ERROR
reason` directives, `# Totals:` lines; kselftest's exit codes.

    KTAP version 1
    1..1
    # pyvfio 0.1.0: repro on the lab backend (seed.json)
      KTAP version 1
      # Subtest: ppc64le 6.12 xive
      1..2
      # intx.non-2_3.xive.lazy.ioctl: stall after 1: the kernel's INTx path stalled ...
      not ok 1 intx.non-2_3.xive.lazy.ioctl
      ok 2 intx.non-2_3.xive.unlazy.ioctl # SKIP no verdict: ...
      # Totals: pass:0 fail:1 xfail:0 xpass:0 skip:1 error:0
    not ok 1 ppc64le 6.12 xive
    # Totals: pass:0 fail:1 xfail:0 xpass:0 skip:1 error:0

The plan follows the version line (a subtest's `# Subtest:` header, as KUnit
writes it, between them); one level of nesting is two spaces.  A machine that
gave no cells is a result line of its own: `not ok N NAME # ERROR why` (a boot or
a fleet place that failed), `ok N NAME # SKIP why` (a result with no cells).
"""

import re

INDENT = "  "     # ktap.rst: "One level of indentation is two spaces"
# kselftest's (tools/testing/selftests/kselftest.h): KSFT_PASS, KSFT_FAIL, KSFT_SKIP
EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 4


def _name(text):
    """A test name KTAP can carry: no '#' (it starts a directive), one line."""
    return re.sub(r"[#\s]+", " ", str(text)).strip() or "test"


def _diag(text):
    return "# " + " ".join(str(text).split())


def _figures(case):
    f = case.figures
    parts = []
    lat = [f"{k[:-3]} {f[k]:.1f} us" for k in ("p50_us", "p99_us", "max_us") if f.get(k) is not None]
    if lat:
        parts.append("round trip " + ", ".join(lat))
    if f.get("throughput_per_s") is not None:
        parts.append(f"{f['throughput_per_s']:.0f} interrupts/s")
    if f.get("raised") is not None:
        parts.append(f"delivered {f.get('delivered')}/{f['raised']}")
    return "; ".join(parts)


def _line(text):
    return " ".join(str(text).split())


def totals(cases, machines=()):
    """kselftest's totals line; `machines` without cells count as their own result."""
    n = {s: sum(1 for c in cases if c.status == s) for s in ("pass", "fail", "skip", "error")}
    for m in machines:
        if m.status:
            n[m.status] += 1
    return f"# Totals: pass:{n['pass']} fail:{n['fail']} xfail:0 xpass:0 skip:{n['skip']} error:{n['error']}"


def _case_lines(i, case):
    out = []
    if case.status == "fail":
        out.append(_diag(f"{case.name}: {case.why}"))
    figs = _figures(case)
    if case.status == "pass" and case.verdict != "ok":   # "ok, 1.00 spurious/irq"
        figs = "; ".join(p for p in (case.verdict, figs) if p)
    if figs:
        out.append(_diag(f"{case.name}: {figs}"))
    if case.segments:   # run --explain: where the round trip went
        out.append(_diag(f"{case.name}: segments p50 us: "
                         + ", ".join(f"{k} {v:.1f}" for k, v in case.segments.items())))
    name = _name(case.name)
    if case.status == "skip":
        out.append(f"ok {i} {name} # SKIP {_line(case.why)}")
    elif case.status == "error":
        out.append(f"not ok {i} {name} # ERROR {_line(case.why).removeprefix('error: ')}")
    else:
        out.append(f"{'ok' if case.status == 'pass' else 'not ok'} {i} {name}")
    return out


def _machine_result(m):
    if m.status == "error":
        return "not ok", f" # ERROR {_line(m.error)}"
    if m.status == "skip":
        return "ok", " # SKIP no cells in the result"
    if any(c.status in ("fail", "error") for c in m.cases):
        return "not ok", ""
    if all(c.status == "skip" for c in m.cases):
        return "ok", " # SKIP every cell skipped"
    return "ok", ""


def render(results):
    where = f" on the {results.backend} backend" if results.backend else ""
    out = ["KTAP version 1", f"1..{len(results.machines)}",
           _diag(f"pyvfio {results.version or ''}: {results.kind}{where} ({results.source})")]
    for i, m in enumerate(results.machines, 1):
        name = _name(m.name)
        if m.cases:
            sub = ["KTAP version 1", f"# Subtest: {name}", f"1..{len(m.cases)}"]
            facts = ", ".join(f"{k}={v}" for k, v in m.facts.items() if v not in (None, [], "") and k != "cells")
            if facts:
                sub.append(_diag(facts))
            for j, c in enumerate(m.cases, 1):
                sub += _case_lines(j, c)
            sub.append(totals(m.cases))
            out += [INDENT + line for line in sub]
        res, directive = _machine_result(m)
        out.append(f"{res} {i} {name}{directive}")
    out.append(totals(results.cases, results.machines))
    return "\n".join(out) + "\n"


def exit_code(results):
    """kselftest's: 1 when a cell failed or errored or a machine failed to give any,
    4 when nothing passed and nothing failed (every cell skipped, or none), 0 otherwise."""
    cases = results.cases
    if any(m.status == "error" for m in results.machines) or any(c.status in ("fail", "error") for c in cases):
        return EXIT_FAIL
    if not cases or all(c.status == "skip" for c in cases):
        return EXIT_SKIP
    return EXIT_PASS
