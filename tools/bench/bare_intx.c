/* bare_intx: the reference the C engine is measured against, the leanest loop we
 * can write around the same syscalls as pyvfio's hot loop on QEMU's edu card:
 * raise (write 0x60, by mmap or pwrite), epoll_wait + read on the trigger eventfd,
 * read the status (0x24), acknowledge it (0x64), unmask by SET_IRQS ioctl or by
 * the unmask eventfd.  Nothing else runs per interrupt:
 * - ONE clock read per interrupt, when its EOI is done: the end of one round trip
 *   is the start of the next (round trip i = EOI i done - EOI i-1 done).  The first
 *   round trip starts at a clock read just before the first raise.  So a round trip
 *   here is raise -> EOI done plus the loop's own few instructions between them.
 * - samples kept raw in an array allocated and touched (no page fault in the loop)
 *   before the loop; sorted, summed and written out only after it.
 * Prints "p50_ns avg_ns count loop_ns": loop_ns is the wall time of the measured
 * loop (the clock read before the first raise to the last EOI done), so
 * count / loop_ns is its throughput.
 *
 * usage: bare_intx BDF GROUP LOOPS ioctl|eventfd mmap|rw [swap] [RTT_FILE]
 * (swap: edu on qemu-system-ppc64 is big-endian: byte-swap the raise value;
 * RTT_FILE: every round trip, native uint64 ns, written after the loop, so that the
 * caller can put them through pyvfio's own histogram and compare like with like) */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define DIE(what) do { perror(what); exit(1); } while (0)

static inline uint64_t now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void set_irqs(int dev, uint32_t flags, uint32_t count, int32_t fd)
{
    char buf[sizeof(struct vfio_irq_set) + 4];
    struct vfio_irq_set *s = (void *)buf;
    s->argsz = sizeof(buf);
    s->flags = flags;
    s->index = VFIO_PCI_INTX_IRQ_INDEX;
    s->start = 0;
    s->count = count;
    memcpy(s->data, &fd, 4);
    if (ioctl(dev, VFIO_DEVICE_SET_IRQS, s))
        DIE("VFIO_DEVICE_SET_IRQS");
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bare_intx BDF GROUP LOOPS ioctl|eventfd mmap|rw [swap] [RTT_FILE]\n");
        return 2;
    }
    long loops = atol(argv[3]);
    int use_efd = !strcmp(argv[4], "eventfd"), use_mmap = !strcmp(argv[5], "mmap");
    uint32_t raise = 1;
    int argi = 6;
    if (argc > argi && !strcmp(argv[argi], "swap")) {
        raise = __builtin_bswap32(raise);
        argi++;
    }
    const char *rtt_file = argc > argi ? argv[argi] : NULL;
    if (loops < 1) {
        fprintf(stderr, "bare_intx: LOOPS must be at least 1\n");
        return 2;
    }
    char path[64];
    int container = open("/dev/vfio/vfio", O_RDWR);
    snprintf(path, sizeof(path), "/dev/vfio/%s", argv[2]);
    int group = open(path, O_RDWR);
    if (container < 0 || group < 0)
        DIE("open");
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
        DIE("VFIO_GROUP_SET_CONTAINER");
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) &&
        ioctl(container, VFIO_SET_IOMMU, VFIO_SPAPR_TCE_v2_IOMMU))
        DIE("VFIO_SET_IOMMU");
    int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
    if (dev < 0)
        DIE("VFIO_GROUP_GET_DEVICE_FD");
    struct vfio_region_info ri = {.argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX};
    if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri))
        DIE("VFIO_DEVICE_GET_REGION_INFO");
    volatile uint32_t *bar = NULL;
    if (use_mmap) {
        bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, ri.offset);
        if (bar == MAP_FAILED)
            DIE("mmap");
    }
    int trig = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), unmask = -1;
    set_irqs(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, trig);
    if (use_efd) {
        unmask = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        set_irqs(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 1, unmask);
    }
    char ubuf[sizeof(struct vfio_irq_set)];
    struct vfio_irq_set *us = (void *)ubuf;
    *us = (struct vfio_irq_set){.argsz = sizeof(ubuf), .index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1,
                                .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK};
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = trig}, got;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, trig, &ev))
        DIE("epoll");
    uint64_t *rtt = malloc(loops * 8), one = 1, cnt;
    if (!rtt)
        DIE("malloc");
    memset(rtt, 0xff, loops * 8);  /* touched now: no page fault inside the loop */
    uint64_t start = now(), prev = start;
    for (long i = 0; i < loops; i++) {
        uint32_t st;
        if (bar)
            bar[0x60 / 4] = raise;
        else if (pwrite(dev, &raise, 4, ri.offset + 0x60) != 4)
            DIE("pwrite");
        if (epoll_wait(ep, &got, 1, 1000) != 1) {
            fprintf(stderr, "bare_intx: no interrupt after %ld\n", i);
            return 1;
        }
        if (read(trig, &cnt, 8) != 8)
            DIE("read");
        if (bar) {
            st = bar[0x24 / 4];
            bar[0x64 / 4] = st;
        } else if (pread(dev, &st, 4, ri.offset + 0x24) != 4 || pwrite(dev, &st, 4, ri.offset + 0x64) != 4)
            DIE("pread/pwrite");
        if (use_efd) {
            if (write(unmask, &one, 8) != 8)
                DIE("write");
        } else if (ioctl(dev, VFIO_DEVICE_SET_IRQS, us))
            DIE("unmask");
        uint64_t t = now();
        rtt[i] = t - prev;
        prev = t;
    }
    uint64_t loop_ns = prev - start, sum = 0;
    set_irqs(dev, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, -1);
    if (rtt_file) {
        FILE *f = fopen(rtt_file, "wb");
        if (!f || fwrite(rtt, 8, loops, f) != (size_t)loops || fclose(f))
            DIE(rtt_file);
    }
    for (long i = 0; i < loops; i++)
        sum += rtt[i];
    qsort(rtt, loops, 8, cmp);
    printf("%lu %lu %ld %lu\n", (unsigned long)rtt[loops / 2], (unsigned long)(sum / loops), loops,
           (unsigned long)loop_ns);
    return 0;
}
