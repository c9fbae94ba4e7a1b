"""The kernel, and whether its vfio-pci carries the unlazy-disable fix (8b9f128947dd)."""

from .check import OK, WARN, Check


def checks(s, root, fix):
    out = [Check("kernel", OK, f"Linux {s.kernel} ({s.machine})",
                 "os.uname()" if root == "/" else f"{root}/proc/sys/kernel/osrelease")]
    no_vfio = s.vfio_pci_module in ("absent", "no-module-support")
    if fix.rebuilt:
        out.append(Check("vfio_pci_rebuilt", WARN if fix.present is None else OK,
                         "the vfio-pci-core loaded is a rebuilt (out-of-tree) module, not the kernel's "
                         "own", fix.evidence, "its INTx code is what runs: judge the fix by its source"
                         if fix.present is None else None))
    if fix.present:
        out.append(Check("unlazy_fix", OK, ("this kernel's version carries the unlazy fix "
                         "(8b9f128947dd), but it has no vfio-pci to use it") if no_vfio else
                         "vfio-pci carries the unlazy fix (8b9f128947dd): controller-masked INTx "
                         "is disabled unlazily", fix.evidence))
    elif fix.present is False:
        out.append(Check("unlazy_fix", WARN, "vfio-pci lacks the unlazy fix (8b9f128947dd): "
                         "controller-masked INTx (DisINTx- cards, nointxmask=1) is disabled lazily, "
                         "which stalls on XIVE", fix.evidence,
                         "boot a kernel with 8b9f128947dd (v6.18+, Debian 6.12.95+), or set "
                         "IRQ_DISABLE_UNLAZY with the masking-policy module (tools/policy)"))
    else:
        out.append(Check("unlazy_fix", WARN, "cannot tell whether vfio-pci carries the unlazy "
                         "fix (8b9f128947dd)", fix.evidence,
                         "install the kernel's modules under /lib/modules/$(uname -r), or run "
                         "`pyvfio repro` on this host to see the policy in action"))
    return out
