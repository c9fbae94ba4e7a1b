"""The declared seams hold: each implementation has every member its interface
lists (backend.IntxHost and backend.Region, engine.run.Engine), optional
capabilities are attributes that may be None, nothing in pyvfio/ probes for an
interface's member with getattr/hasattr or sets one with setattr, and engines and
profiles hand back values (a frozen Batch, a new profile) instead of rewriting
what they were handed."""

import ast
import dataclasses
import inspect
import pathlib

import pytest

import pyvfio
from pyvfio import profiles
from pyvfio.backend import IntxHost, Region
from pyvfio.engine.batch import Batch
from pyvfio.engine.c_engine import CLoop
from pyvfio.engine.kvm_engine import KvmLoop
from pyvfio.engine.python_engine import PythonLoop
from pyvfio.engine.run import Engine
from pyvfio.sim.host import ModelHost
from pyvfio.verdict import JudgedRun
from pyvfio.vfio import Device
from pyvfio.vfio.region import Region as VfioRegion

OPTIONAL = ("encode_irq_set", "line_holders", "guest_eoi", "dma")


def members(protocol):
    """What a Protocol lists: its annotated attributes and its methods."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return names


def test_the_host_interface_lists_what_the_engine_and_intx_use():
    assert members(IntxHost) >= {"name", "bdf", "fd", "irq_info", "set_irqs", "region",
                                 "host_state", *OPTIONAL}


def test_the_model_host_has_every_member_and_none_of_the_real_only_capabilities():
    host = ModelHost("ioapic", "2.3", "unlazy")
    for name in members(IntxHost):
        assert hasattr(host, name), name
    assert (host.fd, host.encode_irq_set, host.line_holders, host.dma) == (None,) * 4
    assert host.guest_eoi is None
    assert ModelHost("ioapic", "2.3", "unlazy", resampler=True).guest_eoi is not None


def test_a_vfio_device_has_every_member():
    init = inspect.signature(Device.__init__).parameters
    for name in members(IntxHost):
        assert hasattr(Device, name) or name in init, name
    assert Device.guest_eoi is None and callable(Device.encode_irq_set)


def test_both_regions_have_every_member():
    host = ModelHost("ioapic", "2.3", "unlazy")
    for region in (host.region(0), host.region(7)):
        for name in members(Region):
            assert hasattr(region, name), name
    init = inspect.signature(VfioRegion.__init__).parameters
    for name in members(Region):
        assert hasattr(VfioRegion, name) or name in init, name


@pytest.mark.parametrize("engine", [PythonLoop, CLoop, KvmLoop])
def test_every_engine_has_every_member_of_the_protocol(engine):
    for name in members(Engine):
        assert callable(getattr(engine, name, None)), f"{engine.__name__}.{name}"


def test_a_batch_is_a_value():
    b = Batch(delivered=3, last_arrival_ns=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.delivered = 4


def test_profile_programs_are_a_read_only_mapping_and_bind_dma_makes_a_new_profile():
    host = ModelHost("ioapic", "2.3", "unlazy")
    prof = profiles.probe(host, "rw")
    assert "ack" in prof.programs and "ack_external" not in prof.programs
    assert prof.programs["ack"] is prof.program("ack")          # compiled once
    with pytest.raises(TypeError):
        prof.programs.ops["raise"] = ()
    other = prof.with_ops({"raise": prof.programs.ops["quiesce"]})
    assert other.programs.ops["raise"] == prof.programs.ops["quiesce"]
    assert prof.programs.ops["raise"] != prof.programs.ops["quiesce"]   # unchanged
    assert other.bars is prof.bars                                     # the same card


def _interface_names():
    return set().union(*(members(p) for p in (IntxHost, Region, Engine, JudgedRun))) - {"name"}


def probes_in(text, where="<text>"):
    """getattr/hasattr calls whose name is an interface member, and every setattr
    call: ["where:line: source"]."""
    names = _interface_names()
    out = []
    for node in ast.walk(ast.parse(text, where)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        fn, args = node.func.id, node.args
        probe = (fn in ("getattr", "hasattr") and len(args) >= 2
                 and isinstance(args[1], ast.Constant) and args[1].value in names)
        # argparse's Action protocol stores on its namespace: setattr(namespace, dest, ...)
        stores = fn == "setattr" and args and isinstance(args[0], ast.Name) and args[0].id == "namespace"
        if probe or fn == "setattr" and not stores:
            out.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_nothing_in_pyvfio_probes_an_interface():
    root = pathlib.Path(pyvfio.__file__).parent
    found = [hit for path in sorted(root.rglob("*.py"))
             for hit in probes_in(path.read_text(), str(path.relative_to(root.parent)))]
    assert found == []


def test_the_probe_finder_finds_probes_and_leaves_lookups():
    code = ('a = getattr(host, "line_holders", None)\n'
            'b = hasattr(region, "accessor")\n'
            'setattr(profile, "raise_ops", ())\n'
            'c = getattr(uapi, cap)\n'
            'd = getattr(lib, "PYVFIO_OP_READ")\n'
            'setattr(namespace, self.dest, values)\n')
    assert [hit.split(":")[1] for hit in probes_in(code)] == ["1", "2", "3"]
