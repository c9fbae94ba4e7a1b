"""pyvfio fleet run | status | release.

run: the places named (--place) or matched by tags (--tag k=v), one worker process
each, in parallel (pyvfio.fleet.worker); then DIR/fleet.json, written atomically when
the run starts (state "running") and when it ends:

    {"tool": "pyvfio", "kind": "fleet", "state": "running" | "done" | "interrupted",
     "coordinator", "scenario", "baseline", "user",
     "places": {P: {"tags", "card", "kernel", "exit", "error", "result" (DIR-relative),
                    "user", "steps"}},
     "comparison": {"combined": {cells, matched, mismatched, unjudged, ok},
                    "across": [{cell, label, verdicts {machine: text}}],
                    "baseline": {machine: {"verdict_changes", "cells"} | null}},
     "exit"}

Exit: 5 when a machine failed (or its worker died or ran out of time), else 4 when
a place could not be had, else 1 when a cell anywhere was not as expected, else 0.
Whatever happens (a worker killed, Ctrl-C, SIGTERM), every place still held by us
at the end is released and our reservations cancelled (`release_ours`), which is
also what `fleet release` does after a run that was itself killed.
"""

import os
import signal
import subprocess
import sys
import time

from ..errors import UsageError
from ..lab import progress
from ..report import cells as C
from ..report import machines as M
from ..results import FLEET_FILE, STDOUT, check_outputs, envelope, open_log, write_atomic, write_json
from . import places
from .worker import EXIT_INTERRUPTED, EXIT_MACHINE, EXIT_MISMATCH, EXIT_PLACE, RESULT, STATE

STOP_GRACE_S = 60
MARGIN_S = 300


def coordinator_of(args):
    addr = args.coordinator or os.environ.get("LG_COORDINATOR")
    if not addr:
        raise UsageError("no coordinator named", "give --coordinator HOST:PORT (or set LG_COORDINATOR)")
    return addr


def _scenario(name):
    from ..repro import named_scenario
    from ..repro.scenario import load
    path = str(named_scenario(name))
    load(path)              # a scenario with a mistake is refused before a place is taken
    return os.path.abspath(path)


def run(args):
    addr = coordinator_of(args)
    if not args.place and not args.tag:
        raise UsageError("fleet run needs places", "name them with --place P or select them with --tag KEY=VALUE")
    scenario = _scenario(args.scenario)
    baseline = C.load(args.baseline) if args.baseline else None
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    fleet_file = os.path.join(out, FLEET_FILE)
    check_outputs([("--out", fleet_file)], [("the --baseline", args.baseline), ("the scenario", scenario)])
    chosen, known = places.select(addr, args.place or (), args.tag or ())
    local_scen = os.path.join(out, os.path.basename(scenario))
    if os.path.abspath(local_scen) != scenario:
        with open(scenario) as f:
            write_atomic(local_scen, f.read(), "copy the scenario to", keep=False)
    if not args.remote_pyvfio:
        # one sdist for every worker (each would build the same one at the same time)
        from ..deploy import build_dist
        build_dist()
    doc = envelope("fleet", state="running", coordinator=addr, scenario=os.path.basename(scenario),
                   baseline=os.path.abspath(args.baseline) if args.baseline else None, user=places.who(),
                   places={p: {"tags": known[p]["tags"], "exit": None, "result": None} for p in chosen})
    write_json(fleet_file, doc)
    workers = {}
    timed_out = set()           # the places _wait stopped at the deadline
    deadline = time.monotonic() + args.acquire_wait + args.connect_timeout + args.timeout + MARGIN_S
    try:
        for p in chosen:
            workers[p] = _spawn(p, addr, local_scen, out, args)
        print(f"fleet: {len(chosen)} place(s): {', '.join(chosen)}", file=sys.stderr)
        _wait(workers, deadline, out, timed_out)
    except KeyboardInterrupt:
        _stop(workers)
        doc["state"] = "interrupted"
        raise
    finally:
        _collect(doc, workers, out, timed_out)
        for p, how in release_ours(addr, chosen):
            print(f"fleet: {p}: {how} (left by its worker)", file=sys.stderr)
        if doc["state"] == "running":
            doc["state"] = "done"
        _compare(doc, out, baseline, os.path.basename(args.baseline or "") or None)
        doc["exit"] = exit_code(doc)
        write_json(fleet_file, doc)
    print(summary(doc))
    return doc["exit"]


def _spawn(place, addr, scenario, out, args):
    folder = os.path.join(out, place)
    os.makedirs(folder, exist_ok=True)
    for stale in (STATE, RESULT):
        try:
            os.unlink(os.path.join(folder, stale))
        except FileNotFoundError:
            pass
    cmd = [sys.executable, "-m", "pyvfio.fleet.worker", "--coordinator", addr, "--place", place,
           "--scenario", scenario, "--out", folder, "--timeout", str(args.timeout),
           "--acquire-wait", str(args.acquire_wait), "--connect-timeout", str(args.connect_timeout)]
    for opt in ("card", "remote_pyvfio", "key", "workdir"):
        value = vars(args)[opt]
        if value:
            cmd += [f"--{opt.replace('_', '-')}", str(value)]
    if args.model:
        cmd.append("--model")
    log = open_log(os.path.join(folder, "worker.log"))
    try:
        # its own session: a Ctrl-C at the terminal reaches fleet run, which stops the
        # workers in order (each releases its place) rather than all at once
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        log.close()


def _cells_of(out, p):
    """How many cells place p's worker brought back (0 without a result)."""
    try:
        st = C.load_json(os.path.join(out, p, STATE), "worker state")
        return len(C.cells(C.load(os.path.join(out, p, st["result"])))) if st.get("result") else 0
    except (UsageError, AttributeError, TypeError, KeyError):
        return 0


def _wait(workers, deadline, out, timed_out):
    """Until every worker has exited, or the deadline: then those still running are
    stopped and their places added to `timed_out`."""
    pending = dict(workers)
    # places done out of the total, the cells they brought, and the time left: at the
    # pace so far (the workers run at once), never past the run's own deadline
    tracker = progress.Tracker("fleet", len(workers), unit="place(s)", parallel=len(workers),
                               out=lambda line: print(line, file=sys.stderr))
    cells = 0
    while pending:
        for p, proc in list(pending.items()):
            if proc.poll() is not None:
                print(f"fleet: {p}: worker exited {proc.returncode}", file=sys.stderr)
                del pending[p]
                cells += _cells_of(out, p)
                tracker.advance(1, note=f"{cells} cell(s) so far",
                                bound=max(0.0, deadline - time.monotonic()))
        if pending and time.monotonic() > deadline:
            print(f"fleet: out of time; stopping {', '.join(pending)}", file=sys.stderr)
            _stop(pending)
            timed_out.update(pending)
            return
        time.sleep(0.2)


def _stop(workers):
    """SIGTERM every worker still running (each releases its place), then SIGKILL
    those that did not finish within STOP_GRACE_S."""
    alive = {p: w for p, w in workers.items() if w.poll() is None}
    for w in alive.values():
        try:
            w.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + STOP_GRACE_S
    for w in alive.values():
        try:
            w.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _collect(doc, workers, out, timed_out=frozenset()):
    for p in doc["places"]:
        entry = doc["places"][p]
        state_file = os.path.join(out, p, STATE)
        w = workers.get(p)
        try:
            st = C.load_json(state_file, "worker state")
        except UsageError:
            st = None
        if not isinstance(st, dict):
            st = None
        if st is not None and st.get("exit") is not None:
            entry.update({k: st.get(k) for k in ("tags", "card", "kernel", "exit", "error", "user", "steps",
                                                  "pyvfio")})
            entry["tags"] = st.get("tags") or entry.get("tags")
            entry["result"] = f"{p}/{st['result']}" if st.get("result") else None
        elif w is None:
            entry.update(exit=EXIT_INTERRUPTED, error="not started")
        else:
            rc = w.poll()
            why = ("ran out of time" if p in timed_out else
                   f"worker died (exit {rc})" if rc is not None else "worker still running")
            entry.update(exit=EXIT_MACHINE, error=why)
        if p in timed_out and entry["exit"] in (EXIT_INTERRUPTED, None):
            entry.update(exit=EXIT_MACHINE, error="ran out of time (fleet run --timeout)")


def _machines(doc, out):
    ms = []
    for p, entry in doc["places"].items():
        if entry.get("result"):
            try:
                rep = C.load(os.path.join(out, entry["result"]))
            except UsageError as exc:
                entry.update(exit=EXIT_MACHINE, error=str(exc), result=None)
                continue
            ms += M.split(rep, p)
    return ms


def _compare(doc, out, baseline, bname):
    ms = _machines(doc, out)
    comp = {"combined": M.combined(ms), "across": M.across(ms), "baseline": None}
    if baseline is not None:
        comp["baseline"] = {}
        for m in ms:
            r = M.against(m, baseline, bname or "baseline")
            comp["baseline"][m.name] = None if r is None else {
                "verdict_changes": r["verdict_changes"], "cells": len(r["cells"]),
                "only_here": len(r["only_b"]), "only_baseline": len(r["only_a"])}
    doc["comparison"] = comp


def exit_code(doc):
    codes = [e.get("exit") for e in doc["places"].values()]
    if any(c not in (0, EXIT_MISMATCH, EXIT_PLACE) for c in codes):
        return EXIT_MACHINE if doc.get("state") != "interrupted" else EXIT_INTERRUPTED
    if EXIT_PLACE in codes:
        return EXIT_PLACE
    if EXIT_MISMATCH in codes or not doc["comparison"]["combined"]["ok"]:
        return EXIT_MISMATCH
    return 0


def summary(doc):
    lines = []
    for p, e in doc["places"].items():
        card = e.get("card") or {}
        what = f"{card.get('name')} {card.get('bdf')}" if card else ""
        lines.append(f"{p}: exit {e.get('exit')}" + (f" ({e['kernel']}{', ' + what if what else ''})"
                                                     if e.get("kernel") else "")
                     + (f": {e['error']}" if e.get("error") else ""))
    comp = doc["comparison"]
    c = comp["combined"]
    lines.append(f"together: {c['cells']} cell(s), {c['matched']} as expected, {c['mismatched']} not")
    for d in comp["across"]:
        lines.append(f"  differs across machines: {d['label']}: "
                     + "; ".join(f"{m} {v}" for m, v in d["verdicts"].items()))
    for m, r in (comp.get("baseline") or {}).items():
        if r is None:
            lines.append(f"  {m}: the baseline has no cell of this machine")
        else:
            lines.append(f"  {m} against the baseline: {len(r['verdict_changes'])} verdict change(s) "
                         f"in {r['cells']} cell(s)"
                         + "".join(f"; {v['label']}: {v['a']} -> {v['b']}" for v in r["verdict_changes"]))
    lines.append(f"fleet: exit {doc['exit']}")
    return "\n".join(lines)


# -- status and release ----------------------------------------------------------------------

def release_ours(addr, names=None):
    """Release every place (of `names`, or all) that we hold, and cancel our
    reservations of them: [(place or token, what was done)]."""
    me = places.who()
    done = []
    ps, reservations = places.snapshot(addr)
    for p, info in ps.items():
        if names and p not in names:
            continue
        if info["acquired"] == me and places.release(addr, p):
            done.append((p, "released"))
    user = me.split("/", 1)[1]
    for r in reservations:
        target = (r["filters"].get("main") or {}).get("name")
        if r["owner"] in (me, user) and (not names or target in names or
                                         any(a in names for v in r["allocations"].values() for a in v)):
            places.cancel(addr, r["token"])
            done.append((target or r["token"], f"reservation {r['token']} cancelled"))
    return done


def release(args):
    addr = coordinator_of(args)
    names = args.place or None
    ps, _ = places.snapshot(addr)
    if names:
        unknown = [n for n in names if n not in ps]
        if unknown:
            raise UsageError(f"no place {', '.join(unknown)} on the coordinator at {addr}")
    done = release_ours(addr, names)
    for what, how in done:
        print(f"{what}: {how}")
    me = places.who()
    for p, info in ps.items():
        if (not names or p in names) and info["acquired"] and info["acquired"] != me:
            print(f"{p}: held by {info['acquired']}, not by {me}: left alone")
    if not done:
        print(f"nothing held by {me}")
    return 0


def status(args):
    check_outputs([("--json", args.json)])
    addr = coordinator_of(args)
    ps, reservations = places.snapshot(addr)
    last = {}
    if args.out and os.path.exists(os.path.join(args.out, FLEET_FILE)):
        last = C.load_fleet(os.path.join(args.out, FLEET_FILE))
    rows = []
    for p, info in ps.items():
        cards = [f"{n} {r['params'].get('bdf')} ({r['params'].get('profile')})"
                 for n, r in info["resources"].items() if r["cls"] == "PyvfioCard"]
        ssh = next((r["params"] for r in info["resources"].values() if r["cls"] == "NetworkService"), {})
        le = (last.get("places") or {}).get(p)
        rows.append({"place": p, "tags": info["tags"], "acquired": info["acquired"],
                     "reservation": info["reservation"], "cards": cards,
                     "ssh": f"{ssh.get('username', '')}@{ssh.get('address', '')}:{ssh.get('port', 22)}"
                     if ssh else None,
                     "last": None if le is None else {"exit": le.get("exit"), "error": le.get("error"),
                                                      "result": le.get("result"), "started": last.get("started")}})
    out = sys.stderr if args.json == STDOUT else sys.stdout
    for r in rows:
        tags = " ".join(f"{k}={v}" for k, v in r["tags"].items()) or "-"
        last_s = "-" if r["last"] is None else f"exit {r['last']['exit']}" + (
            f" ({r['last']['error']})" if r["last"]["error"] else "")
        print(f"{r['place']}: {'held by ' + r['acquired'] if r['acquired'] else 'free'}; tags {tags}; "
              f"ssh {r['ssh'] or '-'}; cards {', '.join(r['cards']) or '-'}; last run {last_s}", file=out)
    for r in reservations:
        print(f"reservation {r['token']} by {r['owner']}: {r['state']} {r['filters'].get('main')}", file=out)
    if not rows:
        print(f"no places on the coordinator at {addr}", file=out)
    if args.json:
        out.flush()
        write_json(args.json, envelope("fleet-status", places=rows, reservations=reservations))
    return 0
