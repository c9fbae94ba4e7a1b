"""Profile files: the one loader and validator (every mistake one FILE:LINE line),
where profiles come from, and the model host driven through the edu profile file.
The op kinds, through Python, C and KVM: tests/test_ops_table.py; the card check:
tests/lab/test_profiles_lab.py."""

import json
import subprocess
import sys

import pytest

from pyvfio import profiles
from pyvfio.engine import Run, RunConfig
from pyvfio.errors import UsageError
from pyvfio.profiles.base import READ, WRITE_CAUSE, Op
from pyvfio.profiles.format import ProfileInvalid, check_text
from pyvfio.profiles.tomlpos import key_lines
from pyvfio.sim import ModelHost

GOOD = """\
name = "mycard"
description = "a test card"

[match]
ids = ["abcd:0001"]

[bars.regs]
index = 0
kind = "mem"
size = 0x100
widths = [4]

[registers]
STATUS = { offset = 0x10 }
RAISE = { offset = 0x14 }
ACK = { offset = 0x18 }

[programs]
init = []
raise = [{ write = "RAISE", value = 1 }]
ack = [
    { read = "STATUS", mask = 0xff },
    { write_cause = "ACK" },
]
quiesce = [{ read = "STATUS", mask = 0xff }, { write_cause = "ACK" }]
"""


def problems(text):
    return check_text("card.toml", text)[1]


def test_the_good_file_is_valid():
    p, probs = check_text("card.toml", GOOD)
    assert probs == [] and p.name == "mycard" and p.ids == ((0xABCD, 1),)
    assert p.programs["ack"] == (Op(READ, "regs", 0x10, 4, mask=0xFF, reg="STATUS"),
                                 Op(WRITE_CAUSE, "regs", 0x18, 4, reg="ACK"))


# (what to change in GOOD, the line the problem is on, words the problem says)
MISTAKES = {
    "not TOML": (("[match]\n", "[match\n"), 4, "not valid TOML"),
    "unknown top key": (('description = "a test card"\n', 'description = "x"\ncolour = "red"\n'), 3,
                        "unknown key 'colour'"),
    "name not a name": (('name = "mycard"', 'name = "My Card"'), 1, "is not a profile name"),
    "wrong type": (("size = 0x100", 'size = "256"'), 10, "make it a whole number"),
    "bad id": (('ids = ["abcd:0001"]', 'ids = ["abcd-0001"]'), 5, "is not vendor:device"),
    "unknown BAR kind": (('kind = "mem"', 'kind = "memory"'), 9, "unknown BAR kind"),
    "io BAR mmapped": (('kind = "mem"', 'kind = "io"\naccess = ["mmap"]'), 10, "cannot be mmapped"),
    "unknown access": (("widths = [4]", 'widths = [4]\naccess = ["dma"]'), 12, "unknown access method"),
    "8 bytes by pread": (("widths = [4]", "widths = [4, 8]"), 11, "8-byte accesses by pread/pwrite"),
    "BAR index": (("index = 0", "index = 7"), 8, "BAR index 7 is not 0 to 5"),
    "offset outside": (("ACK = { offset = 0x18 }", "ACK = { offset = 0x100 }"), 16, "outside BAR regs"),
    "misaligned": (("ACK = { offset = 0x18 }", "ACK = { offset = 0x19 }"), 16, "not aligned"),
    "width the BAR refuses": (("ACK = { offset = 0x18 }", "ACK = { offset = 0x18, width = 2 }"), 16,
                              "BAR regs allows 4"),
    "register in unknown BAR": (("ACK = { offset = 0x18 }", 'ACK = { offset = 0x18, bar = "io" }'), 16,
                                "unknown BAR 'io'"),
    "unknown register": (('{ write_cause = "ACK" },', '{ write_cause = "ACK2" },'), 23, "unknown register 'ACK2'"),
    "unknown op": (('raise = [{ write = "RAISE", value = 1 }]', 'raise = [{ poke = "RAISE", value = 1 }]'),
                   20, "unknown op 'poke'"),
    "op missing a key": (('raise = [{ write = "RAISE", value = 1 }]', 'raise = [{ write = "RAISE" }]'),
                         20, "write has no value"),
    "op with a foreign key": (('raise = [{ write = "RAISE", value = 1 }]',
                               'raise = [{ write = "RAISE", value = 1, mask = 3 }]'), 20, "write takes no 'mask'"),
    "value too wide": (("value = 1 }]", "value = 0x100000000 }]"), 20, "does not fit 4 byte(s)"),
    "write_cause first": (('    { read = "STATUS", mask = 0xff },\n    { write_cause = "ACK" },\n',
                           '    { write_cause = "ACK" },\n    { read = "STATUS", mask = 0xff },\n'), 22,
                          "write_cause before any read"),
    "ack without cause": (('    { read = "STATUS", mask = 0xff },\n', '    { read = "STATUS" },\n'), 21,
                          "ack reads no cause"),
    "missing program": (("init = []\n", ""), 18, "no init program"),
    "unknown program": (("init = []\n", "init = []\nreset = []\n"), 20, "unknown program 'reset'"),
    "external half": (("init = []\n", "init = []\ninit_external = []\n"), 18, "come as a pair"),
    "rotate outside": (('raise = [{ write = "RAISE", value = 1 }]',
                        'raise = [{ write = "RAISE", value = 1, rotate = 64 }]'), 20, "last rotated register"),
    "unbounded drain": (('raise = [{ write = "RAISE", value = 1 }]',
                         'raise = [{ drain = "STATUS", while = "ACK", mask = 1, max = 0 }]'), 20, "bound the drain"),
    "poll forever": (('raise = [{ write = "RAISE", value = 1 }]',
                      'raise = [{ poll = "STATUS", mask = 1, value = 0, timeout_us = 0 }]'), 20, "poll timeout"),
    "rmw outside its mask": (('raise = [{ write = "RAISE", value = 1 }]',
                              'raise = [{ rmw = "RAISE", mask = 1, value = 2 }]'), 20, "sets bits outside mask"),
    "too long for the C loop": (('raise = [{ write = "RAISE", value = 1 }]',
                                 "raise = [" + '{ write = "RAISE", value = 1 }, ' * 9 + "]"), 20,
                                "the C loop runs at most 8"),
    "no match": (('[match]\nids = ["abcd:0001"]\n', ""), 1, "no match"),
    "byteswap a byte": (('ids = ["abcd:0001"]', 'ids = ["abcd:0001"]\nidentify = { reg = "ID", value = 1, '
                         'byteswap = true }'), 6, "byteswap on 1-byte register"),
    "unknown irq kind": (('description = "a test card"\n', 'description = "a test card"\nirqs = ["intx", "msi-x"]\n'),
                         3, "unknown interrupt kind 'msi-x'"),
    "irq kind twice": (('description = "a test card"\n', 'description = "a test card"\nirqs = ["msi", "msi"]\n'),
                       3, "listed twice"),
    "no irq kind": (('description = "a test card"\n', 'description = "a test card"\nirqs = []\n'),
                    3, "irqs lists no interrupt kind"),
}
DMA = '\n[dma]\nbuffer = 0x40000\nsize = 0x800\nmask = 0x0fffffff\n'
RAISE_DMA = 'raise_dma = [{ write = "RAISE", value = "dma.src" }]\n'
MISTAKES.update({
    "dma without raise_dma": ((GOOD.splitlines()[-1], GOOD.splitlines()[-1] + "\n" + DMA), 18,
                              "raise_dma and [dma] come as a pair"),
    "dma value elsewhere": (('raise = [{ write = "RAISE", value = 1 }]',
                             'raise = [{ write = "RAISE", value = "dma.src" }]'), 20,
                            "dma.* values are known only to raise_dma"),
    "unknown dma value": (("init = []\n", "init = []\n" + RAISE_DMA.replace("dma.src", "dma.from")), 20,
                          "one of dma.src, dma.dst, dma.buffer, dma.size"),
    "dma mask not 2^n-1": (((GOOD.splitlines()[-1], GOOD.splitlines()[-1] + "\n" + RAISE_DMA),
                            ("[programs]", DMA.replace("0x0fffffff", "0x1000ffff") + "[programs]")), 22,
                           "is not 2^n - 1"),
    "dma_idle without raise_dma": ((GOOD.splitlines()[-1], GOOD.splitlines()[-1] + "\n"
                                    'dma_idle = [{ poll = "STATUS", mask = 1, value = 0, timeout_us = 10 }]'),
                                   GOOD.count("\n") + 1, "dma_idle without raise_dma"),
    "dma missing a key": (((GOOD.splitlines()[-1], GOOD.splitlines()[-1] + "\n" + RAISE_DMA),
                           ("[programs]", DMA.replace("size = 0x800\n", "") + "[programs]")), 19,
                          "[dma] has no size"),
})
MISTAKES.update({   # issue 22: validation that says no
    "a float width": (("widths = [4]", "widths = [4.0]"), 11, "access width 4.0 is not 1, 2, 4 or 8"),
    "a BAR size not a power of two": (("size = 0x100", "size = 0xa0"), 10, "BAR size 0xa0 is not a power of two"),
    "a memory BAR under 16 bytes": (("size = 0x100", "size = 8"), 10, "is not a power of two from 16"),
    "an I/O BAR over 256 bytes": (('kind = "mem"\nsize = 0x100', 'kind = "io"\nsize = 0x200'), 10,
                                  "is not a power of two from 4 to 256"),
    "an unknown key in the kind table": (('kind = "mem"', 'kind = { mmap = "mem", dma = "io" }'), 9,
                                         "kind for unknown access method 'dma'"),
    "a negative DMA buffer": (((GOOD.splitlines()[-1], GOOD.splitlines()[-1] + "\n" + RAISE_DMA),
                               ("[programs]", DMA.replace("0x40000", "-1") + "[programs]")), 20,
                              "DMA buffer -0x1"),
})
MISTAKES["byteswap a byte"] = (
    (("widths = [4]", "widths = [1, 4]"), ('ids = ["abcd:0001"]', 'ids = ["abcd:0001"]\nidentify = '
                                          '{ reg = "ID", value = 1, byteswap = true }'),
     ("STATUS = { offset = 0x10 }", "STATUS = { offset = 0x10, width = 4 }\nID = { offset = 0, width = 1 }")),
    6, "byteswap on 1-byte register")


def _apply(edits):
    text = GOOD
    edits = edits if isinstance(edits[0], tuple) else (edits,)
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_is_one_line_with_its_line_number(mistake):
    edits, line, words = MISTAKES[mistake]
    probs = problems(_apply(edits))
    assert probs, f"{mistake}: not caught"
    hit = [p for p in probs if words in p.what or words in p.todo]
    assert hit, f"{mistake}: {[p.text('card.toml') for p in probs]}"
    assert hit[0].line == line, hit[0].text("card.toml")
    text = hit[0].text("card.toml")
    assert text.startswith(f"card.toml:{line}: ") and "\n" not in text and text.count(": ") >= 2


def test_there_are_at_least_15_kinds_of_mistake():
    assert len(MISTAKES) >= 15


def test_profile_check_prints_every_problem_and_exits_1(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(_apply(MISTAKES["bad id"][0]).replace("index = 0", "index = 9"))
    p = subprocess.run([sys.executable, "-m", "pyvfio", "profile", "check", str(f)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    lines = p.stdout.splitlines()
    assert lines == [f"{f}:5: id 'abcd-0001' is not vendor:device: write it as four hex digits, a colon, "
                     'four hex digits: "8086:100e"',
                     f"{f}:8: BAR index 9 is not 0 to 5: PCI has BAR0 to BAR5"]


def test_profile_check_of_a_good_file_and_of_a_missing_one(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    run = lambda *a: subprocess.run([sys.executable, "-m", "pyvfio", "profile", "check", *a],  # noqa: E731
                                    capture_output=True, text=True)
    p = run(str(f))
    assert p.returncode == 0 and "profile mycard is valid" in p.stdout
    p = run(str(tmp_path / "nope.toml"))
    assert p.returncode == 2 and p.stderr.startswith("pyvfio: error: cannot read profile")
    assert "Traceback" not in p.stderr


def test_builtins_are_valid_and_shipped_as_files():
    found = profiles.available()
    assert {"edu", "e1000", "rtl8139", "uart16550", "i8255x"} <= set(found)
    for p in found.values():
        assert p.source == "builtin" and p.path.endswith(".toml") and p.shadows is None
        assert check_text(p.path, open(p.path).read())[1] == []


def test_key_lines_locates_keys_tables_and_array_elements():
    lines = key_lines(GOOD)
    assert lines[("bars", "regs")] == 7 and lines[("bars", "regs", "size")] == 10
    assert lines[("programs", "ack", 1)] == 23 and lines[("programs", "ack", 1, "write_cause")] == 23
    assert lines[("registers", "ACK", "offset")] == 16 and lines[("programs", "quiesce", 1)] == 25


# --- where profiles come from ---------------------------------------------------------

@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    env, xdg = tmp_path / "env", tmp_path / "xdg"
    (xdg / "pyvfio" / "profiles").mkdir(parents=True)
    env.mkdir()
    monkeypatch.setenv("PYVFIO_PROFILE_PATH", f"{tmp_path / 'missing'}:{env}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    return env, xdg / "pyvfio" / "profiles"


def test_a_user_profile_with_a_builtins_name_wins_and_list_says_so(user_dirs):
    env, xdg = user_dirs
    (env / "mine.toml").write_text(GOOD)
    (xdg / "edu.toml").write_text(GOOD.replace('name = "mycard"', 'name = "edu"'))
    found = profiles.available()
    assert found["mycard"].source == "PYVFIO_PROFILE_PATH"
    assert found["edu"].source == "XDG_CONFIG_HOME" and found["edu"].shadows.endswith("builtin/edu.toml")
    p = subprocess.run([sys.executable, "-m", "pyvfio", "profile", "list", "--json", "-"],
                       capture_output=True, text=True)
    rows = {r["name"]: r for r in json.loads(p.stdout)["profiles"]}
    assert p.returncode == 0 and rows["edu"]["shadows"].endswith("builtin/edu.toml")
    assert rows["edu"]["file"] == str(xdg / "edu.toml") and rows["mycard"]["ids"] == ["abcd:0001"]


def test_an_invalid_user_profile_is_named_not_fatal_to_list(user_dirs):
    env, _ = user_dirs
    (env / "broken.toml").write_text(GOOD.replace("index = 0", "index = 9"))
    p = subprocess.run([sys.executable, "-m", "pyvfio", "profile", "list"], capture_output=True, text=True)
    assert p.returncode == 1 and "edu" in p.stdout
    assert f"skipped {env / 'broken.toml'}:8: BAR index 9 is not 0 to 5" in p.stderr
    with pytest.raises(ProfileInvalid, match="broken.toml:8"):
        profiles.available()


def test_probing_tries_the_users_profiles_first_then_the_next_that_accepts(user_dirs):
    env, xdg = user_dirs
    host = ModelHost("ioapic", "2.3", "unlazy")
    mine = GOOD.replace('name = "mycard"', 'name = "myedu"').replace("abcd:0001", "1234:11e8")
    (env / "myedu.toml").write_text(mine)
    assert profiles.probe(host, "rw").name == "myedu"
    # an identification register the card does not have: refused, the built-in edu next
    (env / "myedu.toml").write_text(mine.replace('ids = ["1234:11e8"]', 'ids = ["1234:11e8"]\n'
                                                  'identify = { reg = "STATUS", value = 0x55 }'))
    assert profiles.probe(host, "rw").name == "edu"


def test_profile_by_file_and_by_name(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(GOOD)
    assert profiles.named(str(f)).name == "mycard"
    assert profiles.named("rtl8139").ids == ((0x10EC, 0x8139),)
    with pytest.raises(UsageError, match="unknown profile 'ne2000'"):
        profiles.named("ne2000")


# --- profiles bound to a card: the model host ------------------------------------------

def test_the_model_host_runs_on_the_edu_profile_file():
    host = ModelHost("ioapic", "2.3", "unlazy")
    prof = profiles.probe(host, "rw")
    assert prof.spec.path.endswith("builtin/edu.toml") and prof.swapped is False
    r = Run(host, prof, RunConfig(loops=100, engine="python", watchdog_ms=0)).execute()
    assert r.verdict == "ok" and r.counts.delivered == 100


def test_a_byte_swapped_edu_is_recognised_and_driven():
    """edu on a big-endian QEMU host: the ID and every register read swapped."""
    from pyvfio.sim.host import _ModelRegion

    class Swapped(ModelHost):
        def region(self, index, access="rw"):
            r = super().region(index, access)
            if index != 0:
                return r
            sw = lambda v: int.from_bytes(v.to_bytes(4, "little"), "big")  # noqa: E731
            read, write = r._read, r._write
            return _ModelRegion(self, r.index, r.size, r.flags, lambda o, w: sw(read(o, w)),
                                lambda o, w, v: write(o, w, sw(v)), r._widths, access)

    host = Swapped("ioapic", "2.3", "unlazy")
    prof = profiles.probe(host, "rw")
    assert prof.swapped is True and prof.programs.ops["raise"][0].value == 0x01000000
    r = Run(host, prof, RunConfig(loops=20, engine="python", watchdog_ms=0)).execute()
    assert r.verdict == "ok" and r.counts.delivered == 20 and host.card.status == 0


def test_raise_dma_values_are_bound_to_the_run_and_swapped_like_every_constant():
    text = (GOOD.replace("[programs]", "[dma]\nbuffer = 0x40000\nsize = 0x800\nmask = 0x0fffffff\n\n[programs]")
            + 'raise_dma = [{ write = "RAISE", value = "dma.dst" }, { write = "ACK", value = "dma.size" }]\n')
    spec, probs = check_text("card.toml", text)
    assert probs == [] and spec.dma.buffer == 0x40000 and spec.dma.mask == 0x0FFFFFFF

    class Card(profiles.CardProfile):
        def __init__(self, swapped):
            self.spec, self.swapped = spec, swapped
            self.programs = profiles.Programs(spec.programs, {})

    values = {"dma.src": 0x1000, "dma.dst": 0x2000, "dma.buffer": 0x40000, "dma.size": 0x800}
    unbound = Card(False)
    plain, swapped = unbound.bind_dma(values), Card(True).bind_dma(values)
    assert [op.value for op in plain.programs.ops["raise"]] == [0x2000, 0x800]
    assert [op.value for op in swapped.programs.ops["raise"]] == [0x00200000, 0x00080000]
    assert not any(op.symbol for op in plain.programs.ops["raise"])
    assert unbound.programs.ops["raise"] == spec.programs["raise"]   # a new profile, this one kept


def test_source_dma_needs_a_profile_with_a_dma_engine_and_a_vfio_card():
    host = ModelHost("ioapic", "2.3", "unlazy")
    prof = profiles.probe(host, "rw")        # edu: it has one, but the model host maps nothing
    with pytest.raises(UsageError, match="--source dma needs a card opened through VFIO"):
        Run(host, prof, RunConfig(loops=1, source="dma"))
    prof.spec = profiles.named("rtl8139")
    with pytest.raises(UsageError, match="raises no interrupt by DMA .no \\[dma\\] and raise_dma"):
        Run(host, prof, RunConfig(loops=1, source="dma"))


def test_a_card_that_fails_identification_is_refused():
    class NotEdu(ModelHost):
        def _bar0_read(self, offset, width):
            return 0x12345678

    host = NotEdu("ioapic", "2.3", "unlazy")
    with pytest.raises(UsageError, match=r"ID reads 0x12345678, profile edu expects 0xed under mask 0xff"):
        profiles.probe(host, "rw")


def test_a_bar_of_the_wrong_kind_is_refused():
    host = ModelHost("ioapic", "2.3", "unlazy")
    cfg = host.card.config
    cfg[0x10] |= 1  # BAR0 now says I/O ports
    with pytest.raises(UsageError, match="BAR0 is I/O ports, profile edu expects memory"):
        profiles.probe(host, "rw")


@pytest.mark.parametrize("name", ["edu", "rtl8139", "uart16550"])
def test_no_edit_of_a_builtin_makes_the_checker_crash(name):
    """Each line deleted, or each value replaced by another type: problems (or a
    valid file), never an exception."""
    import re

    text = open(profiles.named(name).path).read()
    lines = text.splitlines(True)
    variants = ["".join(lines[:i] + lines[i + 1:]) for i in range(len(lines))]
    for i, line in enumerate(lines):
        m = re.match(r"(\s*\w+\s*=\s*)(.*)$", line)
        if m:
            for other in ('"x"', "[]", "{}", "true", "-1", "[1, 2]", '{ a = 1 }'):
                variants.append("".join(lines[:i] + [m.group(1) + other + "\n"] + lines[i + 1:]))
    for v in variants:
        spec, probs = check_text("f.toml", v)
        assert all(p.line >= 1 for p in probs)


def test_profile_check_refuses_a_float_width(tmp_path, capsys):
    # issue 22: `widths = [4.0]` was valid (4.0 == 4 in Python)
    from pyvfio.cli import main
    f = tmp_path / "float.toml"
    f.write_text(GOOD.replace("widths = [4]", "widths = [4.0]"))
    assert main(["profile", "check", str(f)]) == 1
    out, err = capsys.readouterr()
    assert f"{f}:11: access width 4.0 is not 1, 2, 4 or 8" in out and "is valid" not in out


def test_key_lines_knows_escapes_multi_line_strings_and_unicode():
    # issue 22: an escaped quote inside a multi-line string ended it early, and the
    # scanner then read string text as keys
    from pyvfio.profiles.tomlpos import key_lines
    text = ('a = """x\\"""y\nz""""\nb = 1\nc = """q"""""\n'
            "d = '''lit\\'''\n\"é.k\" = { \"ü\" = \"\\\"}\" }\ne = [\n  \"\\u00e9\",\n  2,\n]\n")
    import tomllib
    assert tomllib.loads(text)["é.k"] == {"ü": '"}'}
    assert key_lines(text) == {("a",): 1, ("b",): 3, ("c",): 4, ("d",): 5, ("é.k",): 6, ("é.k", "ü"): 6,
                               ("e",): 7, ("e", 0): 8, ("e", 1): 9}
