"""The few drivers/pci/pci.c helpers vfio-pci's INTx path uses, on the model card."""

from ..uapi import PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_STATUS_INTERRUPT


def pci_intx(card, enable):
    """pci_intx(): clear (enable) or set (disable) COMMAND.INTX_DISABLE."""
    cmd = card.config_read(PCI_COMMAND, 2)
    new = cmd & ~PCI_COMMAND_INTX_DISABLE if enable else cmd | PCI_COMMAND_INTX_DISABLE
    if new != cmd:
        card.config_write(PCI_COMMAND, 2, new)


def pci_check_and_set_intx_mask(card, mask):
    """pci_check_and_set_intx_mask(): read COMMAND|STATUS as one dword; only if
    the pending state (STATUS.INTERRUPT) equals `mask` write DisINTx = mask and
    return True (mask: "it is ours and pending"; unmask: "nothing pending")."""
    dword = card.config_read(PCI_COMMAND, 4)
    cmd, status = dword & 0xFFFF, dword >> 16
    pending = bool(status & PCI_STATUS_INTERRUPT)
    if mask != pending:
        return False
    new = cmd | PCI_COMMAND_INTX_DISABLE if mask else cmd & ~PCI_COMMAND_INTX_DISABLE
    if new != cmd:
        card.config_write(PCI_COMMAND, 2, new)
    return True


def pci_check_and_mask_intx(card):
    return pci_check_and_set_intx_mask(card, True)


def pci_check_and_unmask_intx(card):
    return pci_check_and_set_intx_mask(card, False)


def pci_intx_mask_supported(card):
    """pci_intx_mask_supported(): does DisINTx toggle?  (Restores COMMAND.)"""
    orig = card.config_read(PCI_COMMAND, 2)
    card.config_write(PCI_COMMAND, 2, orig ^ PCI_COMMAND_INTX_DISABLE)
    new = card.config_read(PCI_COMMAND, 2)
    card.config_write(PCI_COMMAND, 2, orig)
    return bool((new ^ orig) & PCI_COMMAND_INTX_DISABLE)
