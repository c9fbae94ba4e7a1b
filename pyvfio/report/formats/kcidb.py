"""KCIDB v5.3 JSON (KernelCI's results database; `kci-dev submit` sends it).

    checkout   the kernel a machine ran: its release (Debian's upload for the lab)
    build      a machine with one vfio-pci variant: architecture, config_name
               "vfio-pci-VARIANT", misc {controller, vfio: variant, srcversion,
               source, patch, unlazy_fix}
    test       a cell: path "pyvfio.<irq>.<card>.<ic>.<policy>.<unmask>[.AXIS_VALUE]",
               status PASS / FAIL / ERROR / SKIP, the verdict in comment and why in
               log_excerpt; and for each of its figures a DONE test at
               "<path>.<figure>" carrying `number` (latency in s with the metric
               prefix: KCIDB shows 48 µs; throughput in 1/s), and for a cell run
               with --explain one at "<path>.segment.<name>" per segment: its p50

Ids are "pyvfio:" and a hash of the result's content and what they name, so the
same result file gives the same ids however often it is written out, and two runs
(even of the same second, on twin hosts) never share one.
"""

import hashlib
import json
import re

ORIGIN = "pyvfio"
STATUS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
NUMBERS = (("p50_us", "p50", 1e-6, "s"), ("p99_us", "p99", 1e-6, "s"), ("max_us", "max", 1e-6, "s"),
           ("throughput_per_s", "throughput", 1, "1/s"))


def _id(*parts):
    return f"{ORIGIN}:" + hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:24]


def _arch(text):
    return re.sub(r"[^a-z0-9_]+", "_", str(text or "").lower())


def _time(started):
    return started.replace("Z", "+00:00") if started else None


def _component(text):
    """A path component KCIDB takes: [A-Za-z0-9_-]."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(text)) or "na"


def _plain(d):
    return {k: v for k, v in d.items() if v is not None and v != []}


def _module(vfio):
    """The build's vfio-pci: what the lab built (source, patch, srcversion), or what
    /sys/module showed of the one loaded on a card (srcversion, taint)."""
    loaded = vfio.get("loaded") if isinstance(vfio.get("loaded"), dict) else {}
    out = {f"vfio_{k}": v for k, v in vfio.items()
           if k in ("srcversion", "source", "patch", "patch_sha256", "rebuilt")}
    for k in ("module", "srcversion", "taint"):
        if loaded.get(k) and not out.get(f"vfio_{k}"):
            out[f"vfio_{k}"] = loaded[k]
    return out


def document(results):
    """The KCIDB v5.3 document (a dict)."""
    started = _time(results.started)
    checkouts, builds, tests = {}, {}, []
    for m in results.machines:
        kernel = m.facts.get("kernel") or m.facts.get("series") or "unknown"
        co = _id(results.digest, "checkout", kernel, m.facts.get("backend"))
        checkouts.setdefault(co, _plain({
            "id": co, "origin": ORIGIN, "tree_name": "pyvfio-" + (results.backend or "card"),
            "comment": (f"Linux {kernel}" + (" (pyvfio's model host)" if results.backend == "model" else "")),
            "start_time": started, "valid": True,
            "misc": _plain({"kernel_release": kernel, "series": m.facts.get("series"),
                            "backend": results.backend, "pyvfio": results.version})}))
        groups = {}
        for c in m.cases:
            groups.setdefault(c.vfio.get("variant") or "shipped", []).append(c)
        if not m.cases:
            groups["shipped"] = []
        for variant, cases in groups.items():
            vfio = next((c.vfio for c in cases if _module(c.vfio).get("vfio_srcversion")),
                        cases[0].vfio if cases else {})
            b = _id(results.digest, "build", m.name, variant)
            builds[b] = _plain({
                "id": b, "checkout_id": co, "origin": ORIGIN, "architecture": _arch(m.facts.get("arch")) or None,
                "config_name": f"vfio-pci-{variant}", "start_time": started,
                "comment": f"{m.name}, vfio-pci {variant}", "status": "PASS" if not m.error else "ERROR",
                "misc": _plain({"machine": m.name, "controller": m.facts.get("controller"), "ic": m.facts.get("ic"),
                                "unlazy_fix": m.facts.get("unlazy_fix"), "vfio": variant,
                                **_module(vfio)})})
            if not cases:
                tests.append(_plain({"id": _id(results.digest, "test", m.name, "machine"), "build_id": b,
                                     "origin": ORIGIN, "path": "pyvfio", "status": STATUS[m.status],
                                     "comment": ("the machine gave no cells" if m.error
                                                 else "the result holds no cells"),
                                     "log_excerpt": m.error, "start_time": started}))
            for c in cases:
                path = "pyvfio." + c.name
                env = {"comment": m.name, "misc": {"key": c.key}}
                tests.append(_plain({
                    "id": _id(results.digest, "test", m.name, c.name), "build_id": b, "origin": ORIGIN,
                    "path": path, "status": STATUS[c.status], "comment": c.verdict, "log_excerpt": c.why,
                    "start_time": started, "environment": env,
                    "misc": _plain({"expected": c.expected, "match": c.match, **c.figures})}))
                for field, label, scale, unit in NUMBERS:
                    v = c.figures.get(field)
                    if v is None:
                        continue
                    tests.append({
                        "id": _id(results.digest, "test", m.name, c.name, label), "build_id": b,
                        "origin": ORIGIN, "path": f"{path}.{label}", "status": "DONE",
                        "number": {"value": v * scale, "unit": unit, "prefix": "metric"},
                        "environment": env, **({"start_time": started} if started else {})})
                for seg, v in c.segments.items():   # run --explain: each segment's p50
                    tests.append({
                        "id": _id(results.digest, "test", m.name, c.name, "segment", seg), "build_id": b,
                        "origin": ORIGIN, "path": f"{path}.segment.{_component(seg)}", "status": "DONE",
                        "number": {"value": v * 1e-6, "unit": "s", "prefix": "metric"},
                        "environment": env, **({"start_time": started} if started else {})})
    return {"version": {"major": 5, "minor": 3}, "checkouts": list(checkouts.values()),
            "builds": list(builds.values()), "tests": tests}


def render(results):
    return json.dumps(document(results), indent=2) + "\n"
