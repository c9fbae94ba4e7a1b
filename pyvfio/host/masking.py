"""Where vfio-pci masks a card's INTx: the one rule, for doctor, info, repro and the
probe alike.

vfio-pci masks at the card (DisINTx) when the card is PCI 2.3 (vdev->pci_2_3:
pci_intx_mask_supported(), the kernel's write probe plus its broken_intx_masking
quirks) and it is loaded with nointxmask=0; otherwise it masks at the interrupt
controller (disable_irq_nosync), and then requests the line exclusively
(vfio_intx_enable: IRQF_SHARED only with pci_2_3).
"""

DEVICE, CONTROLLER = "device", "controller"


def masked_at(nointxmask, pci_2_3):
    """DEVICE or CONTROLLER, or None when unknown.  `nointxmask`: vfio-pci's load
    parameter; `pci_2_3`: does the card mask with DisINTx (True, False, None unknown)."""
    if nointxmask:
        return CONTROLLER
    if pci_2_3 is None:
        return None
    return DEVICE if pci_2_3 else CONTROLLER


def pci_2_3(support=None, probe=None):
    """Does vfio-pci treat the card as PCI 2.3: what it did when pyvfio enabled and
    masked INTx (probe: host/intx_probe.Probe; the kernel's own decision wins), else what
    config space or the write probe says (support: host/config.IntxMaskSupport)."""
    if probe is not None and probe.masking is not None:
        return probe.masking == DEVICE
    return support.supported if support is not None else None


def exclusive(where):
    """Does vfio-pci request the INTx line exclusively (None: unknown)?"""
    return None if where is None else where == CONTROLLER
