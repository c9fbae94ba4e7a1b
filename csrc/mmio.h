/* Width-exact register accessors for mmapped BARs.  A Python slice of an mmap may
 * be copied with any width; devices such as QEMU's edu accept only 32-bit accesses,
 * so every MMIO load and store goes through one volatile access of the named width. */
#include <stdint.h>
#include <stddef.h>

static inline uint64_t pyvfio_mmio_read(const volatile void *base, size_t off, int width)
{
    const volatile uint8_t *p = (const volatile uint8_t *)base + off;
    switch (width) {
    case 1: return *(const volatile uint8_t *)p;
    case 2: return *(const volatile uint16_t *)p;
    case 4: return *(const volatile uint32_t *)p;
    case 8: return *(const volatile uint64_t *)p;
    }
    return 0;
}

static inline void pyvfio_mmio_write(volatile void *base, size_t off, int width, uint64_t v)
{
    volatile uint8_t *p = (volatile uint8_t *)base + off;
    switch (width) {
    case 1: *(volatile uint8_t *)p = (uint8_t)v; break;
    case 2: *(volatile uint16_t *)p = (uint16_t)v; break;
    case 4: *(volatile uint32_t *)p = (uint32_t)v; break;
    case 8: *(volatile uint64_t *)p = v; break;
    }
}
