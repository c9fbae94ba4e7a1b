"""Where vfio-pci will mask the card's INTx, in doctor's words: the rule itself is
host/masking.py's (at the card with PCI 2.3 DisINTx, else at the interrupt
controller, which needs the line exclusively); this keeps the wording and evidence."""

from ..host.masking import CONTROLLER, DEVICE, masked_at, pci_2_3
from .check import OK, WARN, Check

__all__ = ["CONTROLLER", "DEVICE", "decide"]


def decide(support, s, probe=None):
    """(masking, why, the disintx Check).  `support` (host/config.IntxMaskSupport) is
    what config space or the write probe (vfio/disintx_probe.py) says; `probe`
    (vfio/intx_probe.Probe) is what vfio-pci did when pyvfio enabled and masked INTx:
    the kernel's own decision, which wins."""
    observed = probe is not None and probe.masking is not None
    # an unknown card is treated as DisINTx- (vfio-pci's own probe decides at bind)
    where = masked_at(s.nointxmask, pci_2_3(support, probe)) or CONTROLLER
    if observed and not s.nointxmask:
        if where == DEVICE:
            check = Check("disintx", OK, "PCI 2.3 INTx masking (DisINTx) supported: vfio-pci "
                          "masked the card itself", probe.evidence)
        else:
            check = Check("disintx", WARN, "no PCI 2.3 INTx masking: vfio-pci masked at the "
                          "controller (DisINTx-)", probe.evidence)
        return where, f"observed: vfio-pci masked at the {where}", check
    if support.supported:
        check = Check("disintx", OK, f"PCI 2.3 INTx masking (DisINTx) supported: {support.word}",
                      support.how)
    elif support.supported is False:
        check = Check("disintx", WARN, f"no PCI 2.3 INTx masking (DisINTx-): {support.word}: "
                      "vfio-pci masks at the controller", support.how)
    else:
        check = Check("disintx", WARN, "DisINTx support unknown: vfio-pci will probably mask at "
                      "the controller (treat as DisINTx-)", support.how)
    if s.nointxmask:
        why = "vfio-pci is loaded with nointxmask=1"
    elif support.supported:
        why = "DisINTx supported and nointxmask=0"
    elif support.supported is False:
        why = "DisINTx not implemented (write probe)"
    else:
        why = "no evidence of DisINTx support (vfio-pci's probe decides)"
    return where, why, check
