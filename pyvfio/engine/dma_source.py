"""--source dma: the interrupt comes from real device work.  Two pages are mapped for
the card (vfio/dma.py, under the card's DMA mask) and random bytes go in the first.
Then, as the profile's [dma] says, either
- copy (edu): the second page holds their complement; raise_dma has the card copy
  the first through its own buffer into the second and interrupt when done; after
  the run the second page must hold the random bytes, byte for byte; or
- descriptor (e1000's transmit ring): the second page holds a descriptor pointing
  at the first; raise_dma has the card fetch it, send the bytes and write its
  status back, which raises the interrupt; after the run the written-back bits
  must be set in the descriptor."""

import os
import sys

from ..intx import bus_master
from ..errors import UsageError
from ..profiles.base import PollTimeout
from ..vfio.dma import DmaBuffer


class DmaSource:
    def __init__(self, host, profile):
        engine = profile.spec.dma
        self.host = host
        self.profile = profile
        self.busy_at_teardown = None  # why dma_idle gave up, if it did
        self.waited = False           # dma_idle ran once: the run's teardown, then close()
        self.size = engine.size
        dma = host.dma()
        self.dma = dma
        span = -(-engine.size // dma.page) * dma.page
        self.buf = DmaBuffer(2 * span)
        self.src = self.dst = None
        self.master_was = None       # COMMAND.MASTER before the run set it
        self.difference = None       # set at close: the first byte that did not arrive
        try:
            self.src = dma.map(self.buf, size=span, below=engine.mask)
            self.dst = dma.map(self.buf, offset=span, size=span, below=engine.mask)
            self.pattern = os.urandom(engine.size)
            self.buf.view[:engine.size] = self.pattern
            self.values = {"dma.src": self.src.iova, "dma.dst": self.dst.iova,
                           "dma.buffer": engine.buffer, "dma.size": engine.size}
            if engine.descriptor:
                for offset, width, value in engine.descriptor:
                    value = self.values.get(value, value)
                    self.buf.view[span + offset:span + offset + width] = value.to_bytes(width, "little")
            else:
                self.buf.view[span:span + engine.size] = bytes(b ^ 0xFF for b in self.pattern)
            self.master_was = bus_master(host, True)   # else the card's DMA goes nowhere
        except BaseException:
            self.close()
            raise
        self.written_back = engine.written_back

    @staticmethod
    def check(host, profile):
        if profile.spec.dma is None:
            raise UsageError(f"profile {profile.name} raises no interrupt by DMA (no [dma] and "
                             "raise_dma)", "use --source raise, or describe the card's DMA engine")
        if host.dma is None:
            raise UsageError(f"--source dma needs a card opened through VFIO, not the {host.name} host",
                             "run it on a real card (or in the lab)")

    def first_difference(self):
        """None when the card did its work: the second page holds the pattern, or the
        descriptor its written-back bits; else the first byte that differs (copy) or
        the status field's offset (descriptor)."""
        if self.written_back is not None:
            offset, width, mask = self.written_back
            at = self.dst.offset + offset
            status = int.from_bytes(self.buf.view[at:at + width], "little")
            return None if status & mask == mask else offset
        got = bytes(self.buf.view[self.dst.offset:self.dst.offset + self.size])
        if got == self.pattern:
            return None
        return next(i for i, (a, b) in enumerate(zip(got, self.pattern)) if a != b)

    @property
    def arrived(self):
        return self.difference is None

    def to_json(self):
        """check: "copy" (arrived: dst holds src's bytes) or "descriptor" (arrived: the
        card wrote the status back into the descriptor at dst)."""
        return {"iommu": self.dma.backend, "check": "descriptor" if self.written_back else "copy",
                "bytes": self.size, "src_iova": self.src.iova, "dst_iova": self.dst.iova,
                "arrived": self.arrived, "first_difference": self.difference}

    def wait_idle(self):
        """The profile's dma_idle (edu: DMA_CMD's busy bit clear), bounded by its poll's
        timeout: a transfer still in flight must not find its pages unmapped.  If it
        does not finish, say so in one line; the caller unmaps anyway.  Once: a second
        wait (close() after the run's teardown step) would print the warning twice."""
        if self.waited or self.master_was is None or not self.profile.spec.programs.get("dma_idle"):
            return
        self.waited = True
        try:
            self.profile.program("dma_idle")()
        except PollTimeout as exc:
            self.busy_at_teardown = str(exc)
            print(f"pyvfio: warning: {self.host.bdf}: a DMA transfer is still running at teardown "
                  f"({exc}): unmapping its pages anyway", file=sys.stderr)

    def close(self):
        """No transfer in flight (wait_idle), the bytes compared, bus mastering as it
        was, the pages unmapped (nothing left mapped)."""
        if self.master_was is not None:  # set up completely: the card may have written
            self.wait_idle()
            self.difference = self.first_difference()
            bus_master(self.host, self.master_was)
            self.master_was = None
        for m in (self.dst, self.src):
            if m is not None and m in self.dma.mappings:
                self.dma.unmap(m)
        self.buf.close()
