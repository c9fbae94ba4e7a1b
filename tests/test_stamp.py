"""The compiled extension was built from this checkout's csrc/.  Kept apart from
every module that imports pyvfio._binding: a stale build makes that import refuse
(by design), and this test must still run and say so by name."""

import sys

from pyvfio.checkout import CHECKOUT

CSRC = CHECKOUT / "csrc"


def test_extension_was_built_from_these_sources():
    from pyvfio import _ffi  # the module itself: no stamp check on import

    sys.path.insert(0, str(CSRC))
    try:
        from stamp import source_stamp
    finally:
        sys.path.remove(str(CSRC))
    built = _ffi.ffi.string(_ffi.lib.pyvfio_ffi_stamp()).decode()
    assert built == source_stamp(CSRC), "the extension is stale: run tools/setup (pip install -e .)"
