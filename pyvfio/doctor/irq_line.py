"""The card's INTx line: which IRQ it will really get (host/irq_route.py), which
controller serves it, and who else holds it: vfio-pci requests it exclusively when
it masks at the controller, and request_irq() then fails with EBUSY on a shared line."""

from ..host import interrupts, inuse, pci
from ..host.interrupts import controller_of, legacy_chip
from .check import FAIL, OK, WARN, Check
from .masking import CONTROLLER


def route_check(dev, r, why_not):
    """irq_route: the IRQ INTx will really get (RoutedIrq), or why it is not known."""
    if r.known:
        return Check("irq_route", OK, f"INTx will be IRQ {r.irq} ({r.basis})", r.evidence)
    ev = r.evidence + (f"; {why_not}" if why_not else "")
    if r.irq is None:
        return Check("irq_route", WARN, "no IRQ routed to the card yet", ev,
                     f"the IRQ is assigned when a driver enables the device: pyvfio bind "
                     f"{dev.bdf}, then pyvfio doctor {dev.bdf} again")
    ask = (f"pyvfio doctor {dev.bdf} again once the card is idle" if dev.driver == "vfio-pci"
           else f"pyvfio bind {dev.bdf}, then pyvfio doctor {dev.bdf}")
    return Check("irq_route", WARN, f"IRQ {r.irq} is the firmware's line: INTx may get another "
                 "IRQ when the card is enabled", ev,
                 f"{ask} (it enables an idle vfio-pci card a moment to learn the routed IRQ)")


def controller_check(line, lines):
    chip = line.chip if line else legacy_chip(lines)
    _family, cname = controller_of(chip)
    where = (f"/proc/interrupts IRQ {line.irq}: chip {line.chip}" if line
             else f"the line is not in /proc/interrupts; the host's legacy lines use {chip}")
    return chip, Check("card_controller", OK if chip else WARN,
                       f"the card's line is served by {cname}", where)


def exclusive_check(dev, r, line, masking, why, root, probe=None):
    """irq_exclusive: EBUSY predicted, before the user meets it (or seen, when
    pyvfio's probe enabled INTx and vfio-pci's request_irq refused)."""
    irq = r.irq
    if not irq:
        return Check("irq_exclusive", WARN, "no IRQ routed to the card yet: sharing cannot be "
                     "checked", r.evidence, f"pyvfio bind {dev.bdf}, then pyvfio doctor again")
    others = interrupts.other_holders(line, dev.bdf, inuse.own_irq_names(dev, root))
    on_line = [d for d in pci.devices(root) if d.irq == irq and d.bdf != dev.bdf]
    sharers = [d for d in on_line if d.driver not in (None, "vfio-pci")]
    idle = [d.bdf for d in on_line if d.driver is None and d.interrupt_pin]
    # a card on vfio-pci whose INTx is not enabled holds nothing yet: two cards behind
    # one PCI bridge share a group and, swizzled, lines; a run on one shares the line
    mates = [d.bdf for d in on_line if d.driver == "vfio-pci" and d.interrupt_pin]
    pending = [f"{d.bdf} ({d.driver})" for d in sharers]
    holders = ", ".join(others) or "nobody else"
    if not r.known:
        return Check("irq_exclusive", WARN, f"sharing unknown: IRQ {irq} is the firmware's line, "
                     "not necessarily the one INTx will get", f"holders of IRQ {irq} now: {holders}",
                     f"pyvfio bind {dev.bdf}, then pyvfio doctor {dev.bdf}")
    if not others:
        return Check("irq_exclusive", OK, f"IRQ {irq} is not shared" + (
            " (vfio-pci will request it exclusively)" if masking == CONTROLLER else ""),
            f"holders in /proc/interrupts: {', '.join(line.actions) if line else 'none (not requested yet)'}"
            + (f"; on IRQ {irq} too, not holding it now (a handler they request later, e.g. "
               f"when an interface goes up, would share the line): {', '.join(pending)}" if pending else "")
            + (f"; routed to IRQ {irq} too, with no driver now: {', '.join(idle)}" if idle else "")
            + (f"; routed to IRQ {irq} too, on vfio-pci with INTx not enabled (a run on it shares "
               f"the line{': with nointxmask=1 the second request_irq gets EBUSY' if masking == CONTROLLER else ''}"
               f"): {', '.join(mates)}" if mates else ""))
    ev = f"IRQ {irq} holders besides this card: {holders}" + (
        f"; PCI functions on IRQ {irq}: {'; '.join(pending)}" if sharers else "")
    let_go = (f"{', '.join(sorted({d.driver for d in sharers}))} would have to let go" if sharers
              else f"{holders} would have to let go (no PCI function with a driver on IRQ {irq})")
    move = "move the card to a slot whose IRQ is not shared"
    unbind = " && ".join(f"echo {d.bdf} > /sys/bus/pci/drivers/{d.driver}/unbind" for d in sharers)
    if probe is not None and probe.request_error == "EBUSY":
        return Check("irq_exclusive", FAIL, f"EBUSY: vfio-pci's request_irq({irq}) refused the "
                     f"line when pyvfio enabled INTx; {holders} hold(s) it: {let_go}",
                     f"{ev}; {probe.evidence}", f"{unbind} (or {move})" if sharers else move)
    if masking == CONTROLLER:
        return Check("irq_exclusive", FAIL, f"EBUSY predicted: vfio-pci masks this card at the "
                     f"controller ({why}) and requests IRQ {irq} exclusively, but {holders} "
                     f"hold(s) it: {let_go}", ev, f"{unbind} (or {move})" if sharers else move)
    return Check("irq_exclusive", OK, f"IRQ {irq} is shared with {holders}, which DisINTx masking "
                 f"allows; with nointxmask=1 it would give EBUSY ({let_go})", ev)
