/* A log-bucketed latency histogram with fixed memory (HdrHistogram's layout with
 * 7 significant bits: ~1.6% precision from 1 ns to 2^40 ns).  Bucket b >= 1 holds
 * values with their top bit at b+6, split into 64 linear sub-buckets; bucket 0
 * holds 0..127 exactly.  pyvfio/histogram.py decodes indexes the same way. */
#include <stdint.h>

#define PYVFIO_HIST_SUB_BITS 7
#define PYVFIO_HIST_HALF (1u << (PYVFIO_HIST_SUB_BITS - 1))          /* 64 */
#define PYVFIO_HIST_MAX_BITS 40
#define PYVFIO_HIST_LEN ((PYVFIO_HIST_MAX_BITS - PYVFIO_HIST_SUB_BITS + 3) * PYVFIO_HIST_HALF)

struct pyvfio_hist {
    uint64_t count, min, max, sum, overflow;
    uint64_t buckets[PYVFIO_HIST_LEN];
};

/* The bucket of v (capped at 2^40 - 1, counted in *overflow). */
static inline unsigned pyvfio_hist_index(uint64_t *v, uint64_t *overflow)
{
    if (*v >= (1ull << PYVFIO_HIST_MAX_BITS)) {
        (*overflow)++;
        *v = (1ull << PYVFIO_HIST_MAX_BITS) - 1;
    }
    if (*v < (1u << PYVFIO_HIST_SUB_BITS))
        return (unsigned)*v;
    unsigned msb = 63 - __builtin_clzll(*v);
    unsigned b = msb - (PYVFIO_HIST_SUB_BITS - 1);
    return b * PYVFIO_HIST_HALF + (unsigned)(*v >> b);
}

static inline void pyvfio_hist_record(struct pyvfio_hist *h, uint64_t v)
{
    h->buckets[pyvfio_hist_index(&v, &h->overflow)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
}

/* n values at once, as n pyvfio_hist_record: the count, sum, min and max are kept
 * in registers over the run and stored once (the loop bins a chunk of samples at a
 * time; under TCG every store to memory is an emulated access). */
static inline void pyvfio_hist_record_n(struct pyvfio_hist *h, const uint64_t *vals, int n)
{
    uint64_t lo = h->count ? h->min : UINT64_MAX, hi = h->max, sum = h->sum, over = h->overflow;
    for (int k = 0; k < n; k++) {
        uint64_t v = vals[k];
        h->buckets[pyvfio_hist_index(&v, &over)]++;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    if (n > 0) {
        h->min = lo;
        h->max = hi;
        h->sum = sum;
        h->overflow = over;
        h->count += n;
    }
}

/* What h gained since `before` (a copy of its buckets, taken at a batch's start):
 * *at, the first bucket where the gain reaches `want` samples, and *top, the last
 * bucket that gained (-1: none).  In C because histogram.Window reads it after
 * every batch: a Python scan of the 2304 buckets took ~0.3 ms natively, tens of ms
 * in a TCG guest, and counted against the run's throughput. */
static inline void pyvfio_hist_gain(const struct pyvfio_hist *h, const uint64_t *before, uint64_t want,
                                    int *at, int *top)
{
    uint64_t seen = 0;
    *at = *top = -1;
    for (int i = 0; i < (int)PYVFIO_HIST_LEN; i++) {
        uint64_t d = h->buckets[i] - before[i];
        if (d) {
            seen += d;
            *top = i;
            if (*at < 0 && seen >= want)
                *at = i;
        }
    }
}
