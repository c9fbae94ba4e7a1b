"""No import in pyvfio/ runs up a layer.

LAYERS is the one table of pyvfio's layers, bottom first; docs/architecture.md
describes it.  Each unit is a top-level module or package of pyvfio (a package
counts as one unit: its modules import each other freely).  A module may import
its own layer and any layer below it, never one above: the leaves know nothing of
pyvfio; profiles and intx know how to drive a card and its interrupts; host only
reads sysfs/procfs (and writes through host/writes.py); vfio and kvm are objects
over file descriptors that may read host facts (host never opens vfio); sim is
the model host, a host and not a runner, so it imports no engine (the runner that
puts it under one is repro/matrix.py); the engines run a profile on a host (real
or model); lab, report, repro,
doctor and fleet are the commands' pipelines; cli sits on top.  Every import
counts, the ones inside functions too: a deferred import hides a cycle, it does
not remove it.  A new top-level module must be placed in the table (the test
fails on one it does not know).
"""

import ast
import functools
import pathlib

import pyvfio

LAYERS = (
    ("leaves", {"pyvfio", "errors", "verdict", "signals", "results", "fdowner", "eventfd", "uapi",
                "_binding", "histogram", "hostmem", "inputs", "limits", "cardlock", "checkout", "vocabulary",
                "series"}),
    ("protocol", {"backend", "profiles", "intx"}),
    ("host", {"host", "unlazy_fix"}),
    ("fds", {"vfio", "kvm"}),
    ("model", {"sim"}),
    ("engines", {"toy_guest", "engine", "explain"}),
    ("lab", {"lab", "deploy"}),
    ("report", {"report"}),
    ("repro", {"repro"}),
    ("doctor", {"doctor"}),
    ("fleet", {"fleet"}),
    ("cli", {"cli", "__main__", "pytest_plugin"}),
)
RANK = {unit: rank for rank, (_name, units) in enumerate(LAYERS) for unit in units}
ROOT = pathlib.Path(pyvfio.__file__).parent


def _unit(module):
    """"pyvfio.host.pci" -> "host"; "pyvfio" -> "pyvfio"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts), parts[-1] == "__init__"


def _is_module(name):
    return (ROOT / f"{name}.py").exists() or (ROOT / name / "__init__.py").exists()


@functools.cache
def imports():
    """(importing module, imported pyvfio module, line) for every import in pyvfio/,
    those inside functions included."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        module, is_package = _module(path)
        package = module.split(".") if is_package else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out += [(module, a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "pyvfio":
                    continue
                if target == "pyvfio":   # from pyvfio import host: each module named is one
                    out += [(module, f"pyvfio.{a.name}" if _is_module(a.name) else target,
                             node.lineno) for a in node.names]
                else:
                    out.append((module, target, node.lineno))
    return tuple((a, b, n) for a, b, n in out if b.split(".")[0] == "pyvfio")


def upward(edges):
    return [(a, b, n) for a, b, n in edges
            if _unit(a) != _unit(b) and RANK.get(_unit(b), -1) > RANK.get(_unit(a), -1)]


def test_every_unit_has_a_layer():
    units = {_unit(a) for a, _b, _n in imports()} | {_unit(b) for _a, b, _n in imports()}
    units |= {_unit(_module(p)[0]) for p in ROOT.rglob("*.py")}
    assert sorted(units - set(RANK)) == [], "place the new module in LAYERS"
    assert sorted(set(RANK) - units) == [], "a unit in LAYERS that is gone"


def test_no_import_runs_up_a_layer():
    edges = imports()
    up = upward(edges)
    print(f"{len(edges)} imports walked, {len(up)} running up a layer")
    assert [f"{a}:{n} imports {b}" for a, b, n in up] == []


def test_the_walk_sees_deferred_and_relative_imports():
    """The walker itself: a function-level import is an edge, and a relative
    import names the right module (else the test above could pass on nothing)."""
    edges = {(a, b) for a, b, _n in imports()}
    assert ("pyvfio.repro.matrix", "pyvfio.engine") in edges             # inside run_model
    assert ("pyvfio.vfio.intx_probe", "pyvfio.intx") in edges            # from ..intx import
    assert upward([("pyvfio.host.pci", "pyvfio.vfio.group", 1)]) != []   # would be caught
    assert upward([("pyvfio.vfio.group", "pyvfio.host.pci", 1)]) == []
