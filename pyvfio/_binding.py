"""Loads the compiled extension and refuses a missing or stale one, loudly."""

from .checkout import CHECKOUT
from .errors import PyvfioError

_REBUILD = "run: pip install -e . (in the pyvfio checkout) to rebuild the extension"

try:
    from . import _ffi as _mod
except ImportError as exc:  # pragma: no cover - depends on the build state
    raise ImportError(f"pyvfio's compiled extension pyvfio._ffi is missing ({exc}); {_REBUILD}") from None

ffi = _mod.ffi
lib = _mod.lib


def _source_stamp():
    """The stamp of csrc/ when running from a checkout, else None (installed wheel)."""
    csrc = CHECKOUT / "csrc"
    if not (csrc / "stamp.py").is_file():
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("_pyvfio_csrc_stamp", csrc / "stamp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.source_stamp(csrc)


def built_stamp(module=_mod):
    return module.ffi.string(module.lib.pyvfio_ffi_stamp()).decode()


def check_stamp(built=None, want=None):
    """Refuse an extension built from other sources than the checkout's csrc/."""
    built = built_stamp() if built is None else built
    want = _source_stamp() if want is None else want
    if want is not None and built != want:
        raise PyvfioError(
            f"pyvfio's compiled extension is stale (built from csrc {built}, sources are {want})",
            _REBUILD,
        )


check_stamp()
