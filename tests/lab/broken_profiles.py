"""Three deliberately broken edu profiles, each the built-in with one program edited,
and the verdict each must get (pyvfio/verdict.py FAULTS): the host tests run them on
a memfd card (tests/test_profile_faults.py), the lab on the real edu
(tests/lab/test_engine_lab.py)."""

from pyvfio.profiles import BUILTIN
from pyvfio.verdict import FAULTS

ACK = 'ack = [{ read = "IRQ_STATUS", mask = 0xffffffff }, { write_cause = "IRQ_ACK" }]'
RAISE = 'raise = [{ write = "IRQ_RAISE", value = 0x00000001 }]'
EDITS = {
    # reads the cause, never writes it back: the line stays up, every trigger "finds" it
    "uncleared": (ACK, 'ack = [{ read = "IRQ_STATUS", mask = 0xffffffff }]'),
    # writes the raise to the acknowledge register: no cause ever appears
    "unraised": (RAISE, 'raise = [{ write = "IRQ_ACK", value = 0x00000001 }]'),
    # reads a bit the raise never sets (and clears what is there): no trigger has a cause
    "spurious": (ACK, 'ack = [{ read = "IRQ_STATUS", mask = 0x00000100 }, { write_cause = "IRQ_ACK" }]'),
}


def write(fault, folder):
    """The broken profile for `fault` (a key of FAULTS) as folder/edu-FAULT.toml."""
    old, new = EDITS[fault]
    text = (BUILTIN / "edu.toml").read_text()
    assert old in text, f"edu.toml no longer has {old!r}: update tests/lab/broken_profiles.py"
    path = folder / f"edu-{fault}.toml"
    path.write_text(text.replace(old, new).replace('name = "edu"', f'name = "edu-{fault}"'))
    return path


def verdict_of(fault):
    return FAULTS[fault]
