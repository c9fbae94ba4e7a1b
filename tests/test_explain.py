"""--explain on the host, no VM: the trace text parsed, each round trip split into
segments at the kernel's events, the auto-analysis, the tracefs instance made and
always removed, and the one-line fallback where tracing is impossible."""

import os

import pytest

from pyvfio.explain import Explainer, analysis, events, report_lines, segments, tracefs

TID, IRQ = 4242, 11
CARD = "vfio-intx(0000:00:10.0)"


def _line(ts_us, name, body, comm="python3", pid=TID, cpu=0):
    return (f"{comm:>16}-{pid:<7} [{cpu:03d}] d.h2. {ts_us // 1_000_000:5d}.{ts_us % 1_000_000:06d}: "
            f"{name}: {body}")


def _round_trip(t0_us, handler_us=5, blocked_by=None, other_irq=False, sysexit=False):
    """One interrupt's trace and stamps: raise 2 us, hardirq 1, wakeup 3 (or 3 + a
    blocking task's 40), return 2, handler `handler_us`, unmask 4, reenable 1."""
    t = t0_us
    lines = []
    entry = t + 2
    if other_irq:
        lines.append(_line(t + 1, "irq_handler_entry", "irq=24 name=virtio0", comm="<idle>", pid=0))
    lines.append(_line(entry, "irq_handler_entry", f"irq={IRQ} name={CARD}", comm="<idle>", pid=0))
    lines.append(_line(entry + 1, "sched_waking", f"comm=python3 pid={TID} prio=120 target_cpu=000",
                       comm="<idle>", pid=0))
    lines.append(_line(entry + 1, segments.SIGNALLED, "(__handle_irq_event_percpu+0x4e/0x1b0 <- "
                       "vfio_intx_handler)", comm="<idle>", pid=0))
    lines.append(_line(entry + 1, "irq_handler_exit", f"irq={IRQ} ret=handled", comm="<idle>", pid=0))
    wait = 3 + (40 if blocked_by else 0)
    prev = f"prev_comm={blocked_by[0]} prev_pid={blocked_by[1]}" if blocked_by else "prev_comm=swapper/0 prev_pid=0"
    running = entry + 1 + wait
    lines.append(_line(running, "sched_switch", f"{prev} prev_prio=120 prev_state=R ==> next_comm=python3 "
                       f"next_pid={TID} next_prio=120", comm="x", pid=0))
    t1 = running + 2
    ta = t1 + handler_us
    unmasked = ta + 4
    if sysexit:       # a syscall event prints "NAME -> RET", no colon after its name
        lines.append(f"{'python3':>16}-{TID:<7} [000] ..... {unmasked // 1_000_000:5d}."
                     f"{unmasked % 1_000_000:06d}: sys_ioctl -> 0x0")
    else:
        lines.append(_line(unmasked, segments.UNMASKED, "(vfio_pci_core_ioctl+0x1/0x2 <- vfio_pci_intx_unmask)"))
    t2 = unmasked + 1
    ns = [x * 1000 for x in (t0_us, t1, ta, t2)]
    return lines, tuple(ns)


def _batch(n, **kw):
    lines, stamps = [], []
    for k in range(n):
        ls, st = _round_trip(1_000_000 + 200 * k, **kw)
        lines += ls
        stamps.append(st)
    return "# tracer: nop\n#\n" + "\n".join(lines) + "\n", stamps


def test_parse_keeps_events_and_skips_the_rest():
    text = ("# tracer: nop\n"
            + _line(1_000_002, "irq_handler_entry", f"irq={IRQ} name={CARD}", comm="<idle>", pid=0) + "\n"
            + "CPU:0 [LOST 12 EVENTS]\n"
            + "  kworker/0:1-42      ( 42) [001] .....  1.000005: sched_waking: comm=a pid=7 prio=1\n")
    evs = events.parse(text)
    assert [e.name for e in evs] == ["irq_handler_entry", "sched_waking"]
    assert evs[0].ts == 1_000_002_500 and evs[0].fields["name"] == CARD
    assert evs[1].pid == 42 and evs[1].cpu == 1 and events.num(evs[1].fields, "pid") == 7


def test_each_round_trip_is_split_at_the_kernels_events():
    text, stamps = _batch(1)
    seg, blocking, host_irqs = segments.split(stamps[0], segments.Window(events.parse(text)), TID, IRQ,
                                              segments.SEGMENTS)
    assert sum(seg.values()) == stamps[0][3] - stamps[0][0]      # a partition of the round trip
    assert seg["handler"] == 5000                                # between two engine stamps: exact
    # trace times are whole microseconds (their middle is taken): within 1 us
    for name, us in (("raise", 2), ("hardirq", 1), ("wakeup", 3), ("return", 2), ("unmask", 4),
                     ("reenable", 1)):
        assert abs(seg[name] - us * 1000) <= 1000, (name, seg)
    assert not blocking and not host_irqs


def test_a_longer_ack_lands_in_the_handler_segment():
    b0, b1 = (segments.Breakdown(segments.SEGMENTS) for _ in range(2))
    for b, handler in ((b0, 5), (b1, 55)):
        text, stamps = _batch(50, handler_us=handler)
        b.add(0, stamps, events.parse(text), TID, IRQ)
    added = {s: b1.hists[s].percentile(50) - b0.hists[s].percentile(50) for s in segments.SEGMENTS}
    assert added["handler"] >= 0.9 * 50_000
    assert b1.explained == 50 and b1.unattributed == 0


def test_a_blocking_task_is_named_and_lands_in_wakeup():
    text, stamps = _batch(1, blocked_by=("hog", 777), other_irq=True)
    b = segments.Breakdown(segments.SEGMENTS, threshold_ns=10_000)
    b.add(7, stamps, events.parse(text), TID, IRQ)
    worst, breaches = b.kept()
    a = analysis.analysis(worst, "worst round trip")
    assert a["seq"] == 7 and a["segments_ns"]["wakeup"] >= 40_000
    assert a["blocking"][0]["comm"] == "hog" and a["blocking"][0]["pid"] == 777
    assert a["host_irqs"] == [{"irq": 24, "name": "virtio0", "count": 1}]
    assert "hog:777" in a["text"] and "most of it: wakeup" in a["text"]
    assert round(sum(a["percent"].values())) == 100
    assert len(breaches) == 1


def test_a_preemption_in_the_handler_is_the_schedulers_time():
    text, stamps = _batch(1, handler_us=50)
    t1_us = stamps[0][1] // 1000
    text += "\n".join([
        _line(t1_us + 10, "sched_switch", f"prev_comm=python3 prev_pid={TID} prev_prio=120 prev_state=R+ "
              "==> next_comm=hog next_pid=99 next_prio=0"),
        _line(t1_us + 40, "sched_switch", f"prev_comm=hog prev_pid=99 prev_prio=0 prev_state=S "
              f"==> next_comm=python3 next_pid={TID} next_prio=120", comm="hog", pid=99)]) + "\n"
    seg, blocking, _ = segments.split(stamps[0], segments.Window(events.parse(text)), TID, IRQ,
                                      segments.SEGMENTS)
    assert seg["handler"] == 20_000 and abs(seg["wakeup"] - 33_000) <= 1000
    assert blocking == {("hog", 99): 30_000}
    assert sum(seg.values()) == stamps[0][3] - stamps[0][0]


def test_an_interrupt_without_its_hard_irq_is_unattributed():
    text, stamps = _batch(3)
    kept = "\n".join(ln for ln in text.splitlines() if "irq_handler_entry" not in ln or "1.000402" not in ln)
    b = segments.Breakdown(segments.SEGMENTS)
    b.add(0, stamps, events.parse(kept), TID, IRQ)
    assert (b.explained, b.unattributed) == (2, 1)


def test_no_unmask_kprobe_folds_reenable_into_unmask():
    segs = segments.segments_for(False)
    assert "reenable" not in segs and segs[-1] == "unmask"
    text, stamps = _batch(1)
    text = "\n".join(ln for ln in text.splitlines() if segments.UNMASKED not in ln)
    seg, _, _ = segments.split(stamps[0], segments.Window(events.parse(text)), TID, IRQ, segs)
    assert seg["unmask"] == 5000 and sum(seg.values()) == stamps[0][3] - stamps[0][0]


def test_the_unmask_syscalls_exit_ends_the_unmask():
    text, stamps = _batch(1, sysexit=True)
    assert segments.UNMASKED not in text
    evs = events.parse(text)
    assert [e for e in evs if e.name == "sys_ioctl"][0].body == "-> 0x0"
    seg, _, _ = segments.split(stamps[0], segments.Window(evs), TID, IRQ, segments.SEGMENTS)
    assert abs(seg["unmask"] - 4000) <= 1000 and abs(seg["reenable"] - 1000) <= 1000, seg
    assert sum(seg.values()) == stamps[0][3] - stamps[0][0]


def test_breaches_are_bounded_and_worst_first():
    b = segments.Breakdown(segments.SEGMENTS, threshold_ns=1)
    text, stamps = _batch(60)
    b.add(0, stamps, events.parse(text), TID, IRQ)
    worst, breaches = b.kept()
    assert len(breaches) == segments.MAX_BREACHES
    assert [k[0] for k in breaches] == sorted((k[0] for k in breaches), reverse=True)
    assert worst[0] == breaches[0][0]


def test_find_tracefs_in_mounts():
    assert tracefs.find("tracefs /sys/kernel/tracing tracefs rw 0 0\n") == "/sys/kernel/tracing"
    assert tracefs.find("proc /proc proc rw 0 0\n") is None
    # the KVM guest's breakdown reads the vCPU's TSC offset in debugfs: the same table
    assert tracefs.mounted("debugfs /sys/kernel/debug debugfs rw 0 0\n", "debugfs") == "/sys/kernel/debug"


def test_no_tracefs_is_one_line_and_the_run_goes_on(tmp_path, capsys):
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    ex = Explainer(mounts=str(mounts))
    ex.start(IRQ)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pyvfio: warning: --explain: no tracefs mounted")
    assert ex.active is None and ex.to_json()["missing"].startswith("no tracefs")
    ex.after_batch()
    ex.close()
    assert report_lines(ex.to_json())[0].startswith("explain: no breakdown")


def test_a_fake_tracefs_fails_cleanly_and_the_instance_is_removed(tmp_path, capsys):
    (tmp_path / "instances").mkdir()
    ex = Explainer(root=str(tmp_path))
    ex.start(IRQ)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--explain" in err[0] and "Traceback" not in err[0]
    assert ex.to_json()["missing"]
    assert os.listdir(tmp_path / "instances") == []       # what we made is gone


def test_a_link_in_the_instance_is_not_followed(tmp_path):
    (tmp_path / "instances").mkdir()
    tr = tracefs.Tracer(str(tmp_path), TID, IRQ, pid=1)
    os.mkdir(tr.instance)
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    os.symlink(target, os.path.join(tr.instance, "trace_clock"))
    tr.made = True
    with pytest.raises(OSError):
        tr._w("trace_clock", "mono")
    assert target.read_text() == "keep"


class FakeTracefs:
    """A tracefs-like tree: the files an instance has, made as the kernel would."""

    def __init__(self, root, syscalls=False):
        self.root = root
        self.syscalls = syscalls          # the kernel has syscall events
        (root / "instances").mkdir()
        (root / "kprobe_events").write_text("")

    def populate(self, instance):
        for name in ("tracing_on", "trace_clock", "buffer_size_kb", "trace", "trace_pipe"):
            (instance / name).write_text("")
        for ev in ("irq/irq_handler_entry", "irq/irq_handler_exit", "sched/sched_switch") + \
                (("syscalls/sys_exit_ioctl", "syscalls/sys_exit_write") if self.syscalls else ()):
            (instance / "events" / ev).mkdir(parents=True)
            for f in ("enable", "filter"):
                (instance / "events" / ev / f).write_text("")


def _faked(tmp_path, monkeypatch, syscalls=False):
    fake = FakeTracefs(tmp_path, syscalls)
    made = []
    real_mkdir = os.mkdir

    def mkdir(path, *a):        # the kernel fills an instance when it is made
        real_mkdir(path, *a)
        if os.path.dirname(str(path)) == str(tmp_path / "instances"):
            made.append(path)
            fake.populate(tmp_path / "instances" / os.path.basename(path))
    monkeypatch.setattr(os, "mkdir", mkdir)
    return made


def _feed(ex, inst, text, stamps):
    """One batch through the Explainer: the trace in the fake trace_pipe, the engine's stamps."""
    (inst / "trace_pipe").write_text(text)
    for k, st in enumerate(stamps):
        r = ex.stamps.rec[k]
        r.t0, r.t1, r.ta, r.t2 = st
    ex.stamps.n = len(stamps)
    ex.after_batch()


def test_a_whole_run_over_a_fake_tracefs(tmp_path, monkeypatch):
    made = _faked(tmp_path, monkeypatch)
    ex = Explainer(root=str(tmp_path), threshold_us=10)
    ex.start(IRQ, tid=TID)
    inst = tmp_path / "instances" / f"pyvfio-{os.getpid()}"
    assert ex.active is not None and (inst / "trace_clock").read_text() == "mono"
    assert (inst / "events/sched/sched_switch/filter").read_text() == f"prev_pid == {TID} || next_pid == {TID}"
    _feed(ex, inst, *_batch(5, blocked_by=("hog", 9)))
    assert ex.stamps.n == 0
    out = ex.to_json()
    assert out["missing"] is None and out["explained"] == 5
    assert out["segments"] == list(segments.segments_for(False))   # no kprobes: reenable folded
    assert set(out["latency"]) == set(out["segments"]) and out["worst"]["blocking"][0]["comm"] == "hog"
    assert len(out["breaches"]) == 5
    # teardown: our instance is asked to go (the fake's files keep a real rmdir from it)
    monkeypatch.setattr(os, "rmdir", lambda p: made.remove(p))
    ex.close()
    assert made == []


def test_static_tracepoints_only_where_the_kernel_has_syscall_events(tmp_path, monkeypatch, capsys):
    """The unmask ends at its syscall's exit (a tracepoint): no kprobe is written, the
    handler's return is irq_handler_exit on the card's line, reenable is a segment."""
    _faked(tmp_path, monkeypatch, syscalls=True)
    monkeypatch.delenv(tracefs.SOURCES_ENV, raising=False)
    ex = Explainer(root=str(tmp_path))
    ex.start(IRQ, tid=TID)
    inst = tmp_path / "instances" / f"pyvfio-{os.getpid()}"
    assert (tmp_path / "kprobe_events").read_text() == "" and not ex.tracer.probes
    assert (inst / "events/irq/irq_handler_exit/filter").read_text() == f"irq == {IRQ}"
    for call in ("ioctl", "write"):
        ev = inst / f"events/syscalls/sys_exit_{call}"
        assert (ev / "filter").read_text() == f"common_pid == {TID}" and (ev / "enable").read_text() == "1"
    assert ex.tracer.traced == ["irq:irq_handler_entry", "sched:sched_switch", "irq:irq_handler_exit",
                                "syscalls:sys_exit_ioctl", "syscalls:sys_exit_write"]
    assert ex.breakdown.segments == segments.SEGMENTS and capsys.readouterr().err == ""
    _feed(ex, inst, *_batch(3, sysexit=True))
    out = ex.to_json()
    assert out["explained"] == 3 and out["latency"]["reenable"]["count"] == 3


def test_the_developers_knob_names_the_sources(tmp_path, monkeypatch):
    _faked(tmp_path, monkeypatch, syscalls=True)
    monkeypatch.setenv(tracefs.SOURCES_ENV, "entry,bogus")
    ex = Explainer(root=str(tmp_path))
    ex.start(IRQ, tid=TID)
    inst = tmp_path / "instances" / f"pyvfio-{os.getpid()}"
    assert ex.tracer.traced == ["irq:irq_handler_entry"]
    assert (inst / "events/sched/sched_switch/enable").read_text() == ""
    assert "reenable" not in ex.breakdown.segments


class Stamped(Explainer):
    """An Explainer that stamps without a tracer (the model host has no kernel to
    trace): what the engine wrote, batch by batch."""

    def __init__(self):
        super().__init__()
        self.got, self.closed = [], False

    def start(self, irq, guest="toy", host="vfio", tid=None, source="raise", engine=None):
        self.started = (irq, guest, host)

    @property
    def active(self):
        return self.stamps

    @property
    def batch(self):
        return 16

    def after_batch(self):
        self.got += [(r.t0, r.t1, r.ta, r.t2) for r in (self._rec[i] for i in range(self.stamps.n))]
        self.stamps.n = 0

    def close(self):
        self.closed = True


def test_the_python_engine_stamps_and_the_run_hands_over_each_batch():
    from pyvfio.engine import Run, RunConfig
    from pyvfio.profiles import probe
    from pyvfio.sim import ModelHost

    host = ModelHost("xive", "2.3", "lazy")
    ex = Stamped()
    r = Run(host, probe(host, "rw"), RunConfig(loops=50, engine="python", watchdog_ms=0), explain=ex).execute()
    assert r.counts.delivered == 50 and len(ex.got) == 50 and ex.closed
    assert ex.started[2] == host.name
    assert all(t0 < t1 <= ta <= t2 for t0, t1, ta, t2 in ex.got)
    assert r.verdict == "ok" and r.to_json()["explain"]["missing"]    # no tracer: said so


def test_the_model_host_is_not_traced_and_says_why(capsys):
    from pyvfio.engine import Run, RunConfig
    from pyvfio.profiles import probe
    from pyvfio.sim import ModelHost

    host = ModelHost("xive", "2.3", "lazy")
    r = Run(host, probe(host, "rw"), RunConfig(loops=20, engine="python", watchdog_ms=0),
            explain=Explainer()).execute()
    assert r.verdict == "ok" and "has no kernel to trace" in r.to_json()["explain"]["missing"]
    assert capsys.readouterr().err.count("pyvfio: warning: --explain") == 1


@pytest.mark.parametrize("kw,why", [({"source": "external"}, "--source external"),
                                    ({"guest": "kvm"}, "no tracefs mounted")])
def test_what_is_not_broken_down_says_so(kw, why, capsys):
    ex = Explainer(mounts="/nonexistent")
    ex.start(IRQ, **kw)
    assert why in ex.to_json()["missing"] and ex.active is None
    assert capsys.readouterr().err.count("\n") == 1
