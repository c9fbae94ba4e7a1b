/* The INTx hot loop, run with the GIL released (cffi releases it around calls).
 *
 * Per interrupt: raise on the card (the profile's raise program), wait for the
 * trigger eventfd (epoll, bounded by the watchdog), read the eventfd, run the
 * handler (the profile's ack program: read the cause, acknowledge it), EOI (the
 * steps pyvfio/intx.py built: unmask by ioctl or by the unmask eventfd, or the
 * --rearm-each disable + enable), then keep raise->wakeup and wakeup->EOI-done,
 * binned into fixed-size histograms (with the round trip, their sum) a chunk at a
 * time.  The common raise and ack programs run specialised (prog_prepare).  No
 * Python runs per interrupt.  The loop returns to Python on a watchdog
 * timeout (Python records the stall and may recover), on a signal (Python's
 * wakeup fd is in the epoll set), on an error, or when done.
 *
 * Both loops share their set-up and teardown (loop_start, loop_end), the wait for
 * the trigger (wait_trigger) and the handler (handle: ack program, EOI).
 *
 * pyvfio_external_loop is the same handler for interrupts raised from outside
 * (--source external): no raise, the wait bounded by the watchdog and the
 * deadline, the ack program draining the card (its items counted), the EOI, then
 * inter-arrival (trigger to trigger), service and items per interrupt recorded.
 * A watchdog timeout returns to Python, which asks the card whether anything is
 * pending (a stall) or the line was merely quiet.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "mmio.h"
#include "loop.h"

/* Inlined in the loops: pyvfio_now_ns, exported from a shared object, is called
 * through the PLT even from this file, and under TCG each indirect jump costs a
 * lookup. */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t pyvfio_now_ns(void)
{
    return now_ns();
}

static int fail(struct pyvfio_loop_result *res, const char *op)
{
    res->reason = PYVFIO_ERROR;
    res->err = errno;
    res->errop = op;
    return -1;
}

/* vfio-pci's read/write path moves registers little-endian (ioread + cpu_to_le). */
static int bar_read(const struct pyvfio_bar *b, uint32_t off, int width, uint64_t *out)
{
    if (b->base) {
        *out = pyvfio_mmio_read(b->base, off, width);
        return 0;
    }
    uint64_t v = 0;
    if (pread(b->fd, &v, width, b->fd_offset + off) != width)
        return -1;
    *out = le64toh(v);  /* the low `width` bytes were filled */
    return 0;
}

static int bar_write(const struct pyvfio_bar *b, uint32_t off, int width, uint64_t v)
{
    if (b->base) {
        pyvfio_mmio_write(b->base, off, width, v);
        return 0;
    }
    uint64_t le = htole64(v);
    return pwrite(b->fd, &le, width, b->fd_offset + off) == width ? 0 : -1;
}

static void sleep_us(uint32_t us)
{
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

/* One register program (the op kinds: pyvfio/profiles/ops.py, base.py Op).  Offsets and
 * widths were checked against each region by the Python side.  *cause is the
 * last read's (raw ^ invert) & mask; *items (may be NULL) counts the drains'
 * loads.  -1 with errno set on a failed access or a poll timeout (ETIMEDOUT). */
static int run_ops(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n,
                   uint64_t seq, uint64_t *cause, uint64_t *items)
{
    uint64_t raw = 0, v, st, got = 0;
    *cause = 0;
    for (int i = 0; i < n; i++) {
        const struct pyvfio_reg_op *op = &ops[i];
        const struct pyvfio_bar *b = &cfg->bars[op->bar];
        int rc = 0;
        switch (op->kind) {
        case PYVFIO_OP_WRITE: {
            uint32_t off = op->offset;
            if (op->rotate > 1)  /* no division per interrupt for a fixed register */
                off += op->stride * (uint32_t)(seq % op->rotate);
            rc = bar_write(b, off, op->width, op->value);
            break;
        }
        case PYVFIO_OP_READ:
            rc = bar_read(b, op->offset, op->width, &raw);
            *cause = (raw ^ op->invert) & op->mask;
            break;
        case PYVFIO_OP_WRITE_CAUSE:
            rc = bar_write(b, op->offset, op->width, raw);
            break;
        case PYVFIO_OP_DELAY:
            sleep_us(op->count);
            break;
        case PYVFIO_OP_SPIN: {  /* busy: the CPU stays with the handler */
            uint64_t until = now_ns() + (uint64_t)op->count * 1000;
            while (now_ns() < until)
                ;
            break;
        }
        case PYVFIO_OP_POLL: {
            uint64_t deadline = now_ns() + (uint64_t)op->count * 1000;
            for (;;) {
                if ((rc = bar_read(b, op->offset, op->width, &v)) || (v & op->mask) == op->value)
                    break;
                if (now_ns() > deadline) {
                    errno = ETIMEDOUT;
                    return -1;
                }
            }
            break;
        }
        case PYVFIO_OP_RMW:
            if (!(rc = bar_read(b, op->offset, op->width, &v)))
                rc = bar_write(b, op->offset, op->width, (v & ~op->mask) | op->value);
            break;
        case PYVFIO_OP_DRAIN: {
            const struct pyvfio_bar *sb = &cfg->bars[op->status_bar];
            for (uint32_t k = 0; k < op->count; k++) {
                if ((rc = bar_read(sb, op->status_offset, op->status_width, &st)) ||
                    (st & op->mask) != op->value)
                    break;
                if ((rc = bar_read(b, op->offset, op->width, &v)))
                    break;
                got++;
            }
            break;
        }
        default:
            errno = EINVAL;
            return -1;
        }
        if (rc)
            return -1;
    }
    if (items)
        *items = got;
    return 0;
}

/* The common programs, specialised: WRITE (one write: a raise), READ (one read: a
 * read-to-clear ack) and READ_ACK (a read, then write_cause: a write-1-to-clear ack),
 * each access 32 bits wide, on an mmapped BAR (PYVFIO_PROG_WRITE, _READ, _READ_ACK)
 * or by pread/pwrite on the device fd (PYVFIO_PROG_PWRITE, _PREAD, _PREAD_ACK).
 * prog_prepare derives one from the encoded program when a loop starts: the register
 * addresses (or fd offsets), value, mask and invert are the program's own, the kinds
 * its op codes (profiles/ops.py).  run_prog then makes those accesses straight, with
 * no switch, BAR lookup or width dispatch per op (under TCG each costs an indirect
 * jump: together ~3% of an edu round trip); every other program runs through run_ops. */
struct prog {
    int kind;                      /* PYVFIO_PROG_*; GENERIC: run_ops(ops, n) */
    const struct pyvfio_reg_op *ops;
    int n;
    volatile uint32_t *reg, *ack;  /* mmap: the write's or the read's register; write_cause's */
    int fd;                        /* rw: the device fd, and the same two registers' offsets in it */
    off_t at, ack_at;
    uint32_t value;                /* the write's value (rw: little-endian, as vfio-pci takes it) */
    uint64_t mask, invert;
};

/* Where a 32-bit access of op goes: PYVFIO_PROG_WRITE with *reg on an mmapped BAR,
 * PYVFIO_PROG_PWRITE with *fd and *at by pread/pwrite, GENERIC when op is no plain
 * 32-bit access of a fixed register. */
static int reg32(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *op,
                 volatile uint32_t **reg, int *fd, off_t *at)
{
    const struct pyvfio_bar *b = &cfg->bars[op->bar];
    if (op->width != 4 || op->rotate > 1)
        return PYVFIO_PROG_GENERIC;
    if (b->base) {
        *reg = (volatile uint32_t *)((uint8_t *)b->base + op->offset);
        return PYVFIO_PROG_WRITE;
    }
    *fd = b->fd;
    *at = (off_t)(b->fd_offset + op->offset);
    return PYVFIO_PROG_PWRITE;
}

static void prog_prepare(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n,
                         struct prog *p)
{
    *p = (struct prog){.kind = PYVFIO_PROG_GENERIC, .ops = ops, .n = n};
    int how, kind = PYVFIO_PROG_GENERIC;
    if (n < 1 || n > 2 || !(how = reg32(cfg, &ops[0], &p->reg, &p->fd, &p->at)))
        return;
    if (n == 1 && ops[0].kind == PYVFIO_OP_WRITE) {
        kind = PYVFIO_PROG_WRITE;
        p->value = how == PYVFIO_PROG_WRITE ? (uint32_t)ops[0].value : htole32((uint32_t)ops[0].value);
    } else if (ops[0].kind == PYVFIO_OP_READ) {
        p->mask = ops[0].mask;
        p->invert = ops[0].invert;
        int fd;
        if (n == 1)
            kind = PYVFIO_PROG_READ;
        else if (ops[1].kind == PYVFIO_OP_WRITE_CAUSE &&   /* both by the same access */
                 reg32(cfg, &ops[1], &p->ack, &fd, &p->ack_at) == how &&
                 (how == PYVFIO_PROG_WRITE || fd == p->fd))
            kind = PYVFIO_PROG_READ_ACK;
    }
    if (kind != PYVFIO_PROG_GENERIC)   /* the P kinds follow the mmap ones, in the same order */
        p->kind = how == PYVFIO_PROG_WRITE ? kind : kind + PYVFIO_PROG_PWRITE - PYVFIO_PROG_WRITE;
}

/* run_ops' result for p's program (*items: 0, no drain in a specialised one);
 * -1 with errno set on a failed pread/pwrite, as run_ops. */
static inline int run_prog(const struct pyvfio_loop_cfg *cfg, const struct prog *p, uint64_t seq,
                           uint64_t *cause, uint64_t *items)
{
    uint64_t raw;
    uint32_t le;
    switch (p->kind) {
    case PYVFIO_PROG_WRITE:
        *p->reg = p->value;
        *cause = 0;
        break;
    case PYVFIO_PROG_READ_ACK:
        raw = *p->reg;
        *cause = (raw ^ p->invert) & p->mask;
        *p->ack = (uint32_t)raw;
        break;
    case PYVFIO_PROG_READ:
        raw = *p->reg;
        *cause = (raw ^ p->invert) & p->mask;
        break;
    case PYVFIO_PROG_PWRITE:
        if (pwrite(p->fd, &p->value, 4, p->at) != 4)
            return -1;
        *cause = 0;
        break;
    case PYVFIO_PROG_PREAD_ACK:   /* write_cause writes back the raw bytes read */
        if (pread(p->fd, &le, 4, p->at) != 4 || pwrite(p->fd, &le, 4, p->ack_at) != 4)
            return -1;
        *cause = ((uint64_t)le32toh(le) ^ p->invert) & p->mask;
        break;
    case PYVFIO_PROG_PREAD:
        if (pread(p->fd, &le, 4, p->at) != 4)
            return -1;
        *cause = ((uint64_t)le32toh(le) ^ p->invert) & p->mask;
        break;
    default:
        return run_ops(cfg, p->ops, p->n, seq, cause, items);
    }
    if (items)
        *items = 0;
    return 0;
}

/* A program for Python as the loops run it (specialised when it can be): the host
 * tests drive each op kind through the loop's own code, both paths. */
int pyvfio_run_ops(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n,
                   uint64_t seq, uint64_t *cause, uint64_t *items)
{
    struct prog p;
    prog_prepare(cfg, ops, n, &p);
    return run_prog(cfg, &p, seq, cause, items);
}

/* Which path the loops take for a program: PYVFIO_PROG_*. */
int pyvfio_prog_kind(const struct pyvfio_loop_cfg *cfg, const struct pyvfio_reg_op *ops, int n)
{
    struct prog p;
    prog_prepare(cfg, ops, n, &p);
    return p.kind;
}

/* The EOI: Python's Intx built the steps; the loop replays them as they are. */
static inline int run_steps(const struct pyvfio_step *steps, int n, struct pyvfio_loop_result *res)
{
    static const uint64_t one = 1;
    for (int i = 0; i < n; i++) {
        const struct pyvfio_step *s = &steps[i];
        if (s->kind == PYVFIO_STEP_IOCTL ? ioctl(s->fd, s->req, s->buf) != 0
                                         : write(s->fd, &one, 8) != 8)
            return fail(res, s->what);
    }
    return 0;
}

/* A loop's start, shared by both: reason DONE, and its epoll set: the trigger
 * eventfd, and Python's wakeup fd if any.  -1 (res failed) when it cannot. */
static int loop_start(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res)
{
    struct epoll_event ev = {.events = EPOLLIN};
    res->reason = PYVFIO_DONE;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return fail(res, "epoll_create1");
    ev.data.fd = cfg->trigger_fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, cfg->trigger_fd, &ev) == 0) {
        ev.data.fd = cfg->wakeup_fd;
        if (cfg->wakeup_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, cfg->wakeup_fd, &ev) == 0)
            return ep;
    }
    fail(res, "epoll_ctl");
    close(ep);
    return -1;
}

static int loop_end(int ep, const struct pyvfio_loop_result *res)
{
    close(ep);
    return res->reason == PYVFIO_ERROR ? -1 : 0;
}

/* What one wait for the trigger found. */
enum { TRIGGER_FIRED, TRIGGER_QUIET, TRIGGER_AGAIN, TRIGGER_END };

/* Both loops' wait: epoll (at most timeout_ms), then the trigger eventfd read.
 * FIRED: it fired (signals beyond the first counted as extra); QUIET: the timeout
 * passed; AGAIN: nothing to read after all (wait again); END: a signal (Python's
 * wakeup fd, or EINTR) or an error, res->reason says which. */
static inline int wait_trigger(int ep, const struct pyvfio_loop_cfg *cfg,
                               struct pyvfio_loop_result *res, int timeout_ms)
{
    struct epoll_event got[2];
    uint64_t count;
    int n = epoll_wait(ep, got, 2, timeout_ms);
    if (n == 0)
        return TRIGGER_QUIET;
    if (n < 0) {
        if (errno == EINTR)
            res->reason = PYVFIO_SIGNAL;
        else
            fail(res, "epoll_wait");
        return TRIGGER_END;
    }
    for (int k = 0; k < n; k++)
        if (got[k].data.fd == cfg->wakeup_fd) {
            res->reason = PYVFIO_SIGNAL;
            return TRIGGER_END;
        }
    if (read(cfg->trigger_fd, &count, 8) != 8) {
        if (errno == EAGAIN)
            return TRIGGER_AGAIN;
        fail(res, "read trigger eventfd");
        return TRIGGER_END;
    }
    if (count > 1)
        res->extra_signals += count - 1;
    return TRIGGER_FIRED;
}

/* Both loops' handler: the ack program (`what` names it in an error), then the EOI;
 * *ta (when not NULL: --explain) the time between them. */
static inline int handle(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                         const struct prog *ack, const char *what, uint64_t *cause, uint64_t *items,
                         uint64_t *ta)
{
    if (run_prog(cfg, ack, 0, cause, items))
        return fail(res, what);
    if (ta)
        *ta = now_ns();
    return run_steps(cfg->eoi, cfg->n_eoi, res);
}

/* The round trips' samples, kept raw and binned a chunk at a time (at the chunk's
 * end and the batch's): the histograms' bucket arithmetic then runs outside the
 * timed stretch of all but one interrupt per chunk, as a bare loop bins after it.
 * rtt = wakeup + service exactly (t2 - t0 = (t1 - t0) + (t2 - t1)). */
#define SAMPLES 256
struct samples {
    int n;
    uint64_t wakeup[SAMPLES], service[SAMPLES];
};

static void samples_bin(struct samples *s, struct pyvfio_hist *wakeup, struct pyvfio_hist *service,
                        struct pyvfio_hist *rtt)
{
    pyvfio_hist_record_n(wakeup, s->wakeup, s->n);
    pyvfio_hist_record_n(service, s->service, s->n);
    for (int k = 0; k < s->n; k++)
        s->service[k] += s->wakeup[k];   /* now the round trips */
    pyvfio_hist_record_n(rtt, s->service, s->n);
    s->n = 0;
}

/* Two clock reads per interrupt: t1 when the trigger has been read (the wakeup) and
 * t2 when the EOI is done.  The raise's time t0 is the previous interrupt's t2: the
 * next raise follows it with nothing between but storing two samples, so no third
 * read is needed.  t0 is read afresh for the batch's first raise, after an -i sleep
 * and after a chunk was binned. */
int pyvfio_intx_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                     struct pyvfio_hist *wakeup, struct pyvfio_hist *service,
                     struct pyvfio_hist *rtt)
{
    uint64_t next = 0, t0 = 0;  /* t0 0: read the clock before the raise */
    struct pyvfio_stamps *st = cfg->stamps;
    struct prog raise, ack;
    struct samples samples = {.n = 0};
    int ep;

    if ((ep = loop_start(cfg, res)) < 0)
        return -1;
    prog_prepare(cfg, cfg->raise_ops, cfg->n_raise, &raise);
    prog_prepare(cfg, cfg->ack_ops, cfg->n_ack, &ack);
    for (uint64_t i = 0; i < cfg->loops; i++) {
        uint64_t cause = 0, t1, t2, ta = 0;
        if (cfg->interval_ns) {
            uint64_t now = now_ns();
            if (next > now) {
                struct timespec ts = {next / 1000000000ull, next % 1000000000ull};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            }
            next = (next ? next : now) + cfg->interval_ns;
            t0 = 0;
        }
        if (!t0)
            t0 = now_ns();
        if (cfg->deadline_ns && t0 >= cfg->deadline_ns)
            break;
        if (run_prog(cfg, &raise, cfg->raised_base + res->raised, &cause, NULL)) {
            fail(res, "raise (card register write)");
            break;
        }
        res->raised++;
        for (int spurious = 0;; spurious++) {  /* wait until a trigger finds a cause */
            /* the watchdog, or a storm of triggers without a cause: a timeout */
            int got = spurious < PYVFIO_MAX_SPURIOUS ? wait_trigger(ep, cfg, res, cfg->watchdog_ms)
                                                     : TRIGGER_QUIET;
            if (got == TRIGGER_QUIET)
                res->reason = PYVFIO_TIMEOUT;
            if (got == TRIGGER_QUIET || got == TRIGGER_END)
                goto out;
            if (got == TRIGGER_AGAIN)
                continue;
            t1 = now_ns();
            if (handle(cfg, res, &ack, "ack (card register access)", &cause, NULL, st ? &ta : NULL))
                goto out;
            t2 = now_ns();
            if (cause)
                break;
            res->spurious++;  /* a trigger with nothing pending on the card */
        }
        res->last_cause = cause;
        res->delivered++;
        if (st && st->n < st->cap)  /* --explain; bounded: Python sizes batches to cap */
            st->rec[st->n++] = (struct pyvfio_stamp){t0, t1, ta, t2};
        samples.wakeup[samples.n] = t1 - t0;
        samples.service[samples.n] = t2 - t1;
        t0 = t2;
        if (++samples.n == SAMPLES) {
            samples_bin(&samples, wakeup, service, rtt);
            t0 = 0;
        }
    }
out:
    samples_bin(&samples, wakeup, service, rtt);
    return loop_end(ep, res);
}

int pyvfio_external_loop(const struct pyvfio_loop_cfg *cfg, struct pyvfio_loop_result *res,
                         struct pyvfio_hist *arrival, struct pyvfio_hist *service,
                         struct pyvfio_hist *items)
{
    uint64_t last = cfg->last_arrival_ns;
    int ep;

    res->last_arrival_ns = last;
    if ((ep = loop_start(cfg, res)) < 0)
        return -1;
    struct prog ack;
    prog_prepare(cfg, cfg->ack_ops, cfg->n_ack, &ack);
    while (res->delivered < cfg->loops) {
        uint64_t cause = 0, drained = 0, t1, t2;
        int timeout = cfg->watchdog_ms;
        if (cfg->deadline_ns) {
            uint64_t now = now_ns();
            if (now >= cfg->deadline_ns)
                break;
            uint64_t left_ms = (cfg->deadline_ns - now + 999999) / 1000000;
            if (left_ms < (uint64_t)timeout)
                timeout = (int)left_ms;
        }
        int got = wait_trigger(ep, cfg, res, timeout);
        if (got == TRIGGER_QUIET) {
            if (!cfg->deadline_ns || now_ns() < cfg->deadline_ns)
                res->reason = PYVFIO_TIMEOUT;
            break;
        }
        if (got == TRIGGER_END)
            break;
        if (got == TRIGGER_AGAIN)
            continue;
        t1 = now_ns();
        if (handle(cfg, res, &ack, "ack_external (card register access)", &cause, &drained, NULL))
            break;
        t2 = now_ns();
        res->items += drained;
        if (!cause) {
            res->spurious++;  /* a trigger with nothing pending on the card */
            continue;
        }
        if (last)
            pyvfio_hist_record(arrival, t1 - last);
        res->last_arrival_ns = last = t1;
        pyvfio_hist_record(service, t2 - t1);
        pyvfio_hist_record(items, drained);
        res->last_cause = cause;
        res->delivered++;
    }
    return loop_end(ep, res);
}
