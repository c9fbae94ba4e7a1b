"""cffi builder for pyvfio._ffi (API mode).

Assembles the declaration modules of csrc/ into one extension, pyca/cryptography
style.  The extension carries a stamp (a hash of every file in csrc/) so that
pyvfio refuses to run with a compiled module older than its sources.

Cross-building (the ppc64le lab) calls `emit_c_code` on `ffibuilder` and compiles
the C with the target's compiler.
"""
import pathlib
import sys

import cffi

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import uapi_decls  # noqa: E402
from stamp import source_stamp  # noqa: E402

C_FILES = ["mmio.h"]


def build_ffi(module="pyvfio._ffi"):
    ffi = cffi.FFI()
    stamp = source_stamp(HERE)
    ffi.cdef(uapi_decls.cdef())
    ffi.cdef("""
        const char *pyvfio_ffi_stamp(void);
        uint64_t pyvfio_mmio_read(const void *base, size_t off, int width);
        void pyvfio_mmio_write(void *base, size_t off, int width, uint64_t v);
    """)
    extra_src = []
    for name in C_FILES:
        extra_src.append((HERE / name).read_text())
    ffi.set_source(
        module,
        uapi_decls.INCLUDES
        + "\n".join(extra_src)
        + f'\nconst char *pyvfio_ffi_stamp(void) {{ return "{stamp}"; }}\n',
        extra_compile_args=["-O2", "-Wall"],
        include_dirs=[str(HERE)],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
