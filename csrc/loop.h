/* The INTx hot loop: the toy guest's handler, compiled.  See loop.c. */
#include <stdint.h>
#include "hist.h"

/* The op kinds of a register program, PYVFIO_OP_<KIND>: build.py compiles their enum
 * in ahead of this file from pyvfio/profiles/ops.py, their one definition. */
enum { PYVFIO_STEP_IOCTL = 0, PYVFIO_STEP_WRITE = 1 };
enum { PYVFIO_DONE = 0, PYVFIO_TIMEOUT = 1, PYVFIO_SIGNAL = 2, PYVFIO_ERROR = 3 };
/* How the loops run a register program (loop.c prog_prepare): through the
 * interpreter, or as one of the common programs, specialised on an mmapped BAR
 * (WRITE, READ, READ_ACK) or by pread/pwrite on the device fd (the P kinds). */
enum {
    PYVFIO_PROG_GENERIC = 0, PYVFIO_PROG_WRITE = 1, PYVFIO_PROG_READ = 2, PYVFIO_PROG_READ_ACK = 3,
    PYVFIO_PROG_PWRITE = 4, PYVFIO_PROG_PREAD = 5, PYVFIO_PROG_PREAD_ACK = 6
};
#define PYVFIO_MAX_OPS 8
#define PYVFIO_MAX_BARS 2
#define PYVFIO_MAX_STEPS 4
/* Triggers in a row with no cause on the card, for one raise, before the loop gives
 * up on it as on a watchdog timeout: a line the ack never clears while it reads no
 * cause (a profile reading the wrong register) re-fires for ever otherwise. */
#define PYVFIO_MAX_SPURIOUS 1000

struct pyvfio_reg_op {
    int kind, bar, width;
    uint32_t offset, rotate, stride;
    uint64_t value;         /* write, rmw: stored; poll, drain: what (reg & mask) must equal */
    uint64_t mask;          /* read: the cause bits; rmw: the bits changed; poll, drain: tested */
    uint64_t invert;        /* read: bits that read 0 when pending: cause = (raw ^ invert) & mask */
    uint32_t count;         /* a timed kind: us; poll: timeout in us; drain: at most this many loads */
    int status_bar, status_width;
    uint32_t status_offset; /* drain: the status register */
};

struct pyvfio_bar {
    int fd;                 /* device fd, for pread/pwrite */
    uint64_t fd_offset;     /* the region's offset in the device fd */
    uint64_t size;
    void *base;             /* mmap base, or NULL for pread/pwrite */
};

/* One step of an INTx sequence, built by pyvfio/intx.py: ioctl(fd, req, buf)
 * (VFIO_DEVICE_SET_IRQS with a ready struct vfio_irq_set) or an 8-byte write of 1
 * to fd (the unmask eventfd).  `what` names it in an error. */
struct pyvfio_step {
    int kind, fd;
    unsigned long req;
    void *buf;
    const char *what;
};

/* --explain: one delivered interrupt's times (CLOCK_MONOTONIC ns): t0 before the raise,
 * t1 the trigger read, ta the ack program done (EOI about to start), t2 EOI done. */
struct pyvfio_stamp {
    uint64_t t0, t1, ta, t2;
};

/* Up to cap stamps per batch (Python reads them and resets n after each batch). */
struct pyvfio_stamps {
    uint64_t cap, n;
    struct pyvfio_stamp *rec;
};

struct pyvfio_loop_cfg {
    int trigger_fd, wakeup_fd;                 /* wakeup_fd -1: none */
    struct pyvfio_step eoi[PYVFIO_MAX_STEPS];  /* the guest's EOI, replayed per interrupt */
    int n_eoi;
    struct pyvfio_bar bars[PYVFIO_MAX_BARS];
    struct pyvfio_reg_op raise_ops[PYVFIO_MAX_OPS], ack_ops[PYVFIO_MAX_OPS];
    int n_raise, n_ack;
    uint64_t loops, interval_ns, deadline_ns, raised_base;
    int watchdog_ms;
    uint64_t last_arrival_ns;  /* external: the previous trigger's time (0: none yet) */
    struct pyvfio_stamps *stamps;  /* --explain: per-interrupt times; NULL: off */
};

struct pyvfio_loop_result {
    uint64_t delivered, spurious, extra_signals, raised;
    uint64_t items;            /* external: what the ack program drained */
    uint64_t last_arrival_ns;  /* external: the last trigger's time */
    uint64_t last_cause;
    int reason, err;
    const char *errop;
};

int pyvfio_intx_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                     struct pyvfio_hist *wakeup, struct pyvfio_hist *service,
                     struct pyvfio_hist *rtt);
/* --source external: no raise; ack_ops is the ack_external program. */
int pyvfio_external_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                         struct pyvfio_hist *arrival, struct pyvfio_hist *service,
                         struct pyvfio_hist *items);
int pyvfio_run_ops(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n,
                   uint64_t seq, uint64_t *cause, uint64_t *items);
int pyvfio_prog_kind(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n);
uint64_t pyvfio_now_ns(void);
