#!/bin/sh
# pyvfio lab: the guest's init (busybox sh, PID 1 in the initramfs).
# Loads the 9p and vfio modules, mounts the shares, binds the requested cards to
# vfio-pci, runs the host's command chrooted into the shared root, and hands the
# command's status back through the run share (and, on x86, isa-debug-exit).
# Lines starting with "@@pyvfio-lab:" are read by the host (pyvfio/lab/vm.py).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "@@pyvfio-lab: $*"; }

finish() {  # $1: status to report; never returns
    if [ -n "$RUN_MOUNTED" ]; then echo "$1" > /labrun/status; sync; fi
    if [ "$(uname -m)" = x86_64 ]; then
        v=$1; [ "$v" -gt 127 ] && v=127
        # isa-debug-exit at 0xf4: QEMU exits with (v << 1) | 1.
        printf "\\$(printf %03o "$v")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    fi
    poweroff -f
    echo o > /proc/sysrq-trigger
    sleep 10
}

fail() {  # $1: step, $2: message
    say "init-failed $1: $2"
    dmesg | tail -n 25
    finish 125
}

OPTS=trans=virtio,version=9p2000.L,msize=512000

# Phase 1: everything but vfio (its parameters come from the run share).
while read -r m; do
    case $m in vfio*|irqbypass) ;; *) insmod /modules/$m.ko || fail modules "insmod $m failed" ;; esac
done < /modules/order

mount -t 9p -o $OPTS,cache=none labrun /labrun || fail mount "cannot mount the run share"
RUN_MOUNTED=1
. /labrun/lab.env || fail config "cannot read lab.env"

# Phase 2: vfio, with nointxmask set at load time (vfio-pci reads it only then).
# A rebuilt vfio-pci (--vfio) comes in the run share and replaces the shipped one.
ko() { if [ -f /labrun/vfio/$1.ko ]; then echo /labrun/vfio/$1.ko; else echo /modules/$1.ko; fi; }
# --iommufd: iommufd.ko (built for it) before the vfio that takes its exports
if [ -f /labrun/vfio/iommufd.ko ]; then
    insmod /labrun/vfio/iommufd.ko || fail modules "insmod /labrun/vfio/iommufd.ko failed"
fi
while read -r m; do
    case $m in
    vfio_pci) insmod $(ko $m) nointxmask=$LAB_NOINTXMASK || fail modules "insmod $(ko $m) failed" ;;
    vfio*|irqbypass) insmod $(ko $m) || fail modules "insmod $(ko $m) failed" ;;
    esac
done < /modules/order
# KVM (x86_64: kvm_amd on TCG's emulated SVM), after irqbypass (phase 2)
if [ -f /labrun/kvm/order ]; then
    while read -r m; do
        insmod /labrun/kvm/$m.ko || fail kvm "insmod $m failed"
    done < /labrun/kvm/order
fi
if [ -f /labrun/pyvfio_policy.ko ]; then
    insmod /labrun/pyvfio_policy.ko || fail policy "insmod pyvfio_policy failed"
fi

mount -t 9p -o $OPTS,ro,cache=loose labroot /newroot || fail mount "cannot mount the root share"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
# The checkout and the run share go on top, after /tmp and /run: a checkout under
# /tmp (a CI clone) must not be hidden by the guest's tmpfs.  Their mount points
# exist in the read-only root, or are made here inside the tmpfs.
mkdir -p "/newroot$LAB_SRC" "/newroot$LAB_RUN" 2>/dev/null
mount -t 9p -o $OPTS,cache=$LAB_SRC_CACHE labsrc "/newroot$LAB_SRC" || fail mount "cannot mount the checkout at $LAB_SRC"
mount -o bind /labrun "/newroot$LAB_RUN" || fail mount "cannot bind the run share at $LAB_RUN"

# Bind each requested card (vendor:device=name: a qemu: card's name may hold '='),
# first unused match in bus order.
taken=" "
: > /labrun/cards.txt
for want in $LAB_CARDS; do
    id=${want%%=*}; name=${want#*=}; found=
    for d in /sys/bus/pci/devices/*; do
        bdf=${d##*/}
        case "$taken" in *" $bdf "*) continue ;; esac
        v=$(cat $d/vendor); dv=$(cat $d/device)
        if [ "${v#0x}:${dv#0x}" = "$id" ]; then found=$bdf; break; fi
    done
    [ -n "$found" ] || fail bind "no $name card ($id) on the guest's PCI bus"
    d=/sys/bus/pci/devices/$found
    echo vfio-pci > $d/driver_override
    [ -e $d/driver ] && echo $found > $d/driver/unbind
    echo $found > /sys/bus/pci/drivers_probe
    drv=$(readlink $d/driver)
    [ "${drv##*/}" = vfio-pci ] || fail bind "$name at $found did not bind to vfio-pci"
    taken="$taken$found "
    echo "$name $found $(basename $(readlink $d/iommu_group)) $id" >> /labrun/cards.txt
    say "bound $name at $found"
done
# Host cards (driver=BDF): their guest driver, loaded once the vfio cards are bound
# (driver_override keeps it off those); their interfaces stay down until a test
# raises one.
if [ -n "$LAB_HOST_CARDS" ]; then
    while read -r m; do
        insmod /labrun/host-drivers/$m.ko || fail host-cards "insmod $m failed"
    done < /labrun/host-drivers/order
    for want in $LAB_HOST_CARDS; do
        drv=$(readlink /sys/bus/pci/devices/${want#*=}/driver)
        [ "${drv##*/}" = "${want%%=*}" ] || fail host-cards "${want#*=} did not bind to ${want%%=*}"
    done
fi
{
    echo "kver $(uname -r)"
    echo "nointxmask $(cat /sys/module/vfio_pci/parameters/nointxmask)"
    # the vfio-pci-core loaded: a rebuilt one has a srcversion and taint O(E)
    echo "vfio_pci_core_srcversion $(cat /sys/module/vfio_pci_core/srcversion 2>/dev/null)"
    echo "vfio_pci_core_taint $(cat /sys/module/vfio_pci_core/taint 2>/dev/null)"
    echo "dev_iommu $([ -c /dev/iommu ] && echo 1 || echo 0)"
} > /labrun/guest.txt

echo 1 > /proc/sys/kernel/printk  # keep kernel chatter out of the command's output
say "command start"
chroot /newroot /bin/sh "$LAB_RUN/command.sh"
rc=$?
say "command end $rc"
finish $rc
