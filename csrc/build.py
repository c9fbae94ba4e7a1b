"""cffi builder for pyvfio._ffi (API mode).

Assembles the declaration modules of csrc/ into one extension, pyca/cryptography
style.  The extension carries a stamp (a hash of every file in csrc/) so that
pyvfio refuses to run with a compiled module older than its sources.

Cross-building (the ppc64le lab) calls `emit_c_code` on `ffibuilder` and compiles
the C with the target's compiler.
"""
import os
import pathlib
import shlex
import subprocess
import sys
import sysconfig

import cffi

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import uapi_decls  # noqa: E402
from stamp import OP_TABLE, source_stamp  # noqa: E402


def _op_table():
    """pyvfio/profiles/ops.py, loaded by path: the op kinds' one definition, from
    which the C loop's PYVFIO_OP_* codes are compiled in."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_pyvfio_op_table", HERE.parent / OP_TABLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


OPS = _op_table()

# Concatenated into one translation unit (local #includes dropped), so a
# cross-build needs nothing but the emitted C file.
C_FILES = ["mmio.h", "hist.h", "loop.h", "loop.c"]

LOOP_CDEF = """
#define PYVFIO_HIST_LEN ...
#define PYVFIO_MAX_OPS ...
#define PYVFIO_MAX_BARS ...
#define PYVFIO_MAX_STEPS ...
#define PYVFIO_MAX_SPURIOUS ...
#define PYVFIO_STEP_IOCTL ...
#define PYVFIO_STEP_WRITE ...
#define PYVFIO_DONE ...
#define PYVFIO_TIMEOUT ...
#define PYVFIO_SIGNAL ...
#define PYVFIO_ERROR ...
#define PYVFIO_PROG_GENERIC ...
#define PYVFIO_PROG_WRITE ...
#define PYVFIO_PROG_READ ...
#define PYVFIO_PROG_READ_ACK ...
#define PYVFIO_PROG_PWRITE ...
#define PYVFIO_PROG_PREAD ...
#define PYVFIO_PROG_PREAD_ACK ...
#define PYVFIO_HIST_SUB_BITS ...
struct pyvfio_hist { uint64_t count, min, max, sum, overflow; uint64_t buckets[...]; ...; };
void pyvfio_hist_record(struct pyvfio_hist *h, uint64_t v);
void pyvfio_hist_record_n(struct pyvfio_hist *h, const uint64_t *vals, int n);
void pyvfio_hist_gain(const struct pyvfio_hist *h, const uint64_t *before, uint64_t want, int *at, int *top);
struct pyvfio_reg_op {
    int kind, bar, width;
    uint32_t offset, rotate, stride;
    uint64_t value, mask, invert;
    uint32_t count;
    int status_bar, status_width;
    uint32_t status_offset;
    ...;
};
struct pyvfio_bar { int fd; uint64_t fd_offset; uint64_t size; void *base; ...; };
struct pyvfio_step { int kind, fd; unsigned long req; void *buf; const char *what; ...; };
struct pyvfio_stamp { uint64_t t0, t1, ta, t2; };
struct pyvfio_stamps { uint64_t cap, n; struct pyvfio_stamp *rec; ...; };
struct pyvfio_loop_cfg {
    int trigger_fd, wakeup_fd;
    struct pyvfio_step eoi[...];
    int n_eoi;
    struct pyvfio_bar bars[...];
    struct pyvfio_reg_op raise_ops[...], ack_ops[...];
    int n_raise, n_ack;
    uint64_t loops, interval_ns, deadline_ns, raised_base;
    int watchdog_ms;
    uint64_t last_arrival_ns;
    struct pyvfio_stamps *stamps;
    ...;
};
struct pyvfio_loop_result {
    uint64_t delivered, spurious, extra_signals, raised, last_cause;
    uint64_t items, last_arrival_ns;
    int reason, err;
    const char *errop;
    ...;
};
int pyvfio_intx_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                     struct pyvfio_hist *wakeup, struct pyvfio_hist *service,
                     struct pyvfio_hist *rtt);
int pyvfio_external_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                         struct pyvfio_hist *arrival, struct pyvfio_hist *service,
                         struct pyvfio_hist *items);
int pyvfio_run_ops(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n,
                   uint64_t seq, uint64_t *cause, uint64_t *items);
int pyvfio_prog_kind(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n);
uint64_t pyvfio_now_ns(void);
"""


def _c_source(name):
    return "".join(line for line in (HERE / name).read_text().splitlines(True)
                   if not line.startswith('#include "'))


def headers_have_iommufd():
    """Whether the C compiler that builds the extension ($CC, as distutils picks it;
    the ppc64le cross-build sets CC) finds iommufd and vfio's cdev ioctls in the
    kernel headers: the iommufd declarations are compiled in only then."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    cmd = cc + shlex.split(os.environ.get("CFLAGS", "")) + ["-fsyntax-only", "-x", "c", "-"]
    try:
        return subprocess.run(cmd, input=uapi_decls.IOMMUFD_PROBE, text=True,
                              capture_output=True).returncode == 0
    except OSError:
        return False


def build_ffi(module="pyvfio._ffi"):
    ffi = cffi.FFI()
    stamp = source_stamp(HERE)
    iommufd = headers_have_iommufd()
    if not iommufd:
        # Said at build time, in one line: otherwise only `--iommu iommufd` and doctor
        # would tell, at run time (pip shows it with -v; tools/setup says it too).
        print("csrc/build.py: warning: building without iommufd: the compiler's kernel headers "
              "have no <linux/iommufd.h> (Linux 6.2+ uapi; tools/setup fetches Debian's 6.12 "
              "linux-libc-dev)", file=sys.stderr)
    ffi.cdef(uapi_decls.cdef(iommufd))
    ffi.cdef("""
        const char *pyvfio_ffi_stamp(void);
        #define PYVFIO_UAPI_IOMMUFD ...
        uint64_t pyvfio_mmio_read(const void *base, size_t off, int width);
        void pyvfio_mmio_write(void *base, size_t off, int width, uint64_t v);
    """)
    ffi.cdef(LOOP_CDEF + "".join(f"#define PYVFIO_OP_{k.name.upper()} ...\n" for k in OPS.KINDS))
    extra_src = [OPS.c_enum()]   # before loop.h: run_ops switches on these
    for name in C_FILES:
        extra_src.append(_c_source(name))
    ffi.set_source(
        module,
        uapi_decls.includes(iommufd)
        + f"#define PYVFIO_UAPI_IOMMUFD {int(iommufd)}\n"
        + "\n".join(extra_src)
        + f'\nconst char *pyvfio_ffi_stamp(void) {{ return "{stamp}"; }}\n',
        extra_compile_args=["-O2", "-Wall"],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
