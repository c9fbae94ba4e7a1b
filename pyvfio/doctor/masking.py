"""Where vfio-pci will mask the card's INTx: at the card (PCI 2.3 DisINTx) or at the
interrupt controller (DisINTx-, or nointxmask=1), which needs the line exclusively."""

from .check import OK, WARN, Check

DEVICE, CONTROLLER = "device", "controller"


def decide(support, s, probe=None):
    """(masking, why, the disintx Check).  `support` (host/config.IntxMaskSupport) is
    what config space or the write probe (vfio/disintx_probe.py) says; `probe`
    (vfio/intx_probe.Probe) is what vfio-pci did when pyvfio enabled and masked INTx:
    the kernel's own decision, which wins."""
    if probe is not None and probe.masking and not s.nointxmask:
        if probe.masking == DEVICE:
            check = Check("disintx", OK, "PCI 2.3 INTx masking (DisINTx) supported: vfio-pci "
                          "masked the card itself", probe.evidence)
        else:
            check = Check("disintx", WARN, "no PCI 2.3 INTx masking: vfio-pci masked at the "
                          "controller (DisINTx-)", probe.evidence)
        return probe.masking, f"observed: vfio-pci masked at the {probe.masking}", check
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
        return CONTROLLER, "vfio-pci is loaded with nointxmask=1", check
    if support.supported:
        return DEVICE, "DisINTx supported and nointxmask=0", check
    if support.supported is False:
        return CONTROLLER, "DisINTx not implemented (write probe)", check
    return CONTROLLER, "no evidence of DisINTx support (vfio-pci's probe decides)", check
