"""Declarations of <linux/vfio.h> as cffi sees them.

Structs are partial (`...;`): the C compiler fills in sizes and offsets from the
kernel's own header, so nothing here is a hand-copied layout.  Constants are `...`
for the same reason.  The ioctl macros are listed so that tests can compare the
header's numbers with the ones pyvfio computes in Python (pyvfio.uapi).
"""

INCLUDES = """
#include <linux/vfio.h>
#include <linux/pci_regs.h>
#include <linux/kvm.h>
"""

TYPES = """
struct vfio_group_status { uint32_t argsz; uint32_t flags; ...; };
struct vfio_device_info { uint32_t argsz; uint32_t flags; uint32_t num_regions;
                          uint32_t num_irqs; ...; };
struct vfio_region_info { uint32_t argsz; uint32_t flags; uint32_t index;
                          uint32_t cap_offset; uint64_t size; uint64_t offset; ...; };
struct vfio_irq_info { uint32_t argsz; uint32_t flags; uint32_t index; uint32_t count; ...; };
struct vfio_irq_set { uint32_t argsz; uint32_t flags; uint32_t index; uint32_t start;
                      uint32_t count; ...; };
struct vfio_iommu_type1_info { uint32_t argsz; uint32_t flags; uint64_t iova_pgsizes;
                               uint32_t cap_offset; ...; };
struct vfio_info_cap_header { uint16_t id; uint16_t version; uint32_t next; ...; };
struct vfio_iova_range { uint64_t start; uint64_t end; ...; };
struct vfio_iommu_type1_info_cap_iova_range { struct vfio_info_cap_header header;
                                              uint32_t nr_iovas; uint32_t reserved;
                                              struct vfio_iova_range iova_ranges[]; };
struct vfio_iommu_type1_dma_map { uint32_t argsz; uint32_t flags; uint64_t vaddr; uint64_t iova;
                                  uint64_t size; ...; };
struct vfio_iommu_type1_dma_unmap { uint32_t argsz; uint32_t flags; uint64_t iova; uint64_t size;
                                    ...; };
struct vfio_iommu_spapr_tce_ddw_info { uint64_t pgsizes; uint32_t max_dynamic_windows_supported;
                                       uint32_t levels; ...; };
struct vfio_iommu_spapr_tce_info { uint32_t argsz; uint32_t flags; uint32_t dma32_window_start;
                                   uint32_t dma32_window_size;
                                   struct vfio_iommu_spapr_tce_ddw_info ddw; ...; };
struct vfio_iommu_spapr_register_memory { uint32_t argsz; uint32_t flags; uint64_t vaddr;
                                          uint64_t size; ...; };
struct vfio_iommu_spapr_tce_create { uint32_t argsz; uint32_t flags; uint32_t page_shift;
                                     uint64_t window_size; uint32_t levels; uint64_t start_addr;
                                     ...; };
struct vfio_iommu_spapr_tce_remove { uint32_t argsz; uint32_t flags; uint64_t start_addr; ...; };
"""

# Integer constants; each name is also an attribute of pyvfio.uapi.
CONSTANTS = """
VFIO_API_VERSION VFIO_TYPE VFIO_BASE
VFIO_TYPE1_IOMMU VFIO_TYPE1v2_IOMMU VFIO_SPAPR_TCE_IOMMU VFIO_SPAPR_TCE_v2_IOMMU
VFIO_NOIOMMU_IOMMU
VFIO_GROUP_FLAGS_VIABLE VFIO_GROUP_FLAGS_CONTAINER_SET
VFIO_DEVICE_FLAGS_RESET VFIO_DEVICE_FLAGS_PCI
VFIO_REGION_INFO_FLAG_READ VFIO_REGION_INFO_FLAG_WRITE VFIO_REGION_INFO_FLAG_MMAP
VFIO_REGION_INFO_FLAG_CAPS
VFIO_IRQ_INFO_EVENTFD VFIO_IRQ_INFO_MASKABLE VFIO_IRQ_INFO_AUTOMASKED
VFIO_IRQ_INFO_NORESIZE
VFIO_IRQ_SET_DATA_NONE VFIO_IRQ_SET_DATA_BOOL VFIO_IRQ_SET_DATA_EVENTFD
VFIO_IRQ_SET_ACTION_MASK VFIO_IRQ_SET_ACTION_UNMASK VFIO_IRQ_SET_ACTION_TRIGGER
VFIO_PCI_BAR0_REGION_INDEX VFIO_PCI_BAR5_REGION_INDEX VFIO_PCI_ROM_REGION_INDEX
VFIO_PCI_CONFIG_REGION_INDEX VFIO_PCI_VGA_REGION_INDEX VFIO_PCI_NUM_REGIONS
VFIO_PCI_INTX_IRQ_INDEX VFIO_PCI_MSI_IRQ_INDEX VFIO_PCI_MSIX_IRQ_INDEX
VFIO_PCI_ERR_IRQ_INDEX VFIO_PCI_REQ_IRQ_INDEX VFIO_PCI_NUM_IRQS
VFIO_IOMMU_INFO_PGSIZES VFIO_IOMMU_INFO_CAPS VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
VFIO_DMA_MAP_FLAG_READ VFIO_DMA_MAP_FLAG_WRITE
VFIO_IOMMU_SPAPR_INFO_DDW
""".split()

# Config-space offsets and bits from <linux/pci_regs.h>: the one home of PCI
# constants (host/config.py decodes with them, the model card emulates with them).
PCI_CONSTANTS = """
PCI_VENDOR_ID PCI_DEVICE_ID PCI_COMMAND PCI_STATUS PCI_REVISION_ID PCI_CLASS_PROG
PCI_CLASS_DEVICE PCI_HEADER_TYPE PCI_BASE_ADDRESS_0 PCI_SUBSYSTEM_VENDOR_ID PCI_SUBSYSTEM_ID
PCI_CAPABILITY_LIST PCI_INTERRUPT_LINE PCI_INTERRUPT_PIN
PCI_COMMAND_IO PCI_COMMAND_MEMORY PCI_COMMAND_MASTER PCI_COMMAND_INTX_DISABLE
PCI_STATUS_INTERRUPT PCI_STATUS_CAP_LIST
PCI_HEADER_TYPE_NORMAL PCI_HEADER_TYPE_BRIDGE PCI_HEADER_TYPE_CARDBUS
PCI_CAP_ID_PM PCI_CAP_ID_MSI PCI_CAP_ID_EXP PCI_CAP_ID_MSIX
""".split()

# ioctl request numbers as the header computes them (for the cross-check only).
IOCTLS = """
VFIO_GET_API_VERSION VFIO_CHECK_EXTENSION VFIO_SET_IOMMU
VFIO_GROUP_GET_STATUS VFIO_GROUP_SET_CONTAINER VFIO_GROUP_UNSET_CONTAINER
VFIO_GROUP_GET_DEVICE_FD
VFIO_DEVICE_GET_INFO VFIO_DEVICE_GET_REGION_INFO VFIO_DEVICE_GET_IRQ_INFO
VFIO_DEVICE_SET_IRQS VFIO_DEVICE_RESET
VFIO_IOMMU_GET_INFO VFIO_IOMMU_SPAPR_TCE_GET_INFO VFIO_IOMMU_ENABLE
VFIO_IOMMU_MAP_DMA VFIO_IOMMU_UNMAP_DMA
VFIO_IOMMU_SPAPR_REGISTER_MEMORY VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY
VFIO_IOMMU_SPAPR_TCE_CREATE VFIO_IOMMU_SPAPR_TCE_REMOVE
""".split()

# iommufd (<linux/iommufd.h>, Linux 6.2) and vfio's device cdev ioctls (6.6): declared
# only when the headers the extension is compiled against have them (Debian 12's
# linux-libc-dev is 6.1: it has neither).  uapi.IOMMUFD_UAPI says which it was.
IOMMUFD_INCLUDES = """
#include <linux/iommufd.h>
"""

IOMMUFD_TYPES = """
struct iommu_destroy { uint32_t size; uint32_t id; ...; };
struct iommu_ioas_alloc { uint32_t size; uint32_t flags; uint32_t out_ioas_id; ...; };
struct iommu_iova_range { uint64_t start; uint64_t last; ...; };
struct iommu_ioas_iova_ranges { uint32_t size; uint32_t ioas_id; uint32_t num_iovas;
                                uint64_t allowed_iovas; uint64_t out_iova_alignment; ...; };
struct iommu_ioas_map { uint32_t size; uint32_t flags; uint32_t ioas_id; uint64_t user_va;
                        uint64_t length; uint64_t iova; ...; };
struct iommu_ioas_unmap { uint32_t size; uint32_t ioas_id; uint64_t iova; uint64_t length; ...; };
struct vfio_device_bind_iommufd { uint32_t argsz; uint32_t flags; int32_t iommufd;
                                  uint32_t out_devid; ...; };
struct vfio_device_attach_iommufd_pt { uint32_t argsz; uint32_t flags; uint32_t pt_id; ...; };
"""

IOMMUFD_CONSTANTS = """
IOMMU_IOAS_MAP_FIXED_IOVA IOMMU_IOAS_MAP_WRITEABLE IOMMU_IOAS_MAP_READABLE
""".split()

IOMMUFD_IOCTLS = """
IOMMU_DESTROY IOMMU_IOAS_ALLOC IOMMU_IOAS_IOVA_RANGES IOMMU_IOAS_MAP IOMMU_IOAS_UNMAP
VFIO_DEVICE_BIND_IOMMUFD VFIO_DEVICE_ATTACH_IOMMUFD_PT VFIO_DEVICE_DETACH_IOMMUFD_PT
""".split()

# What a compiler must accept for the iommufd declarations to be compiled in.
IOMMUFD_PROBE = IOMMUFD_INCLUDES + """
#include <linux/vfio.h>
struct vfio_device_bind_iommufd probe_bind;
unsigned long probe_nr = VFIO_DEVICE_BIND_IOMMUFD;
"""


# <linux/kvm.h>: only what is the same on every architecture (the KVM guest builds
# its vCPU state from the reset state, so no x86-only kvm_regs/kvm_sregs here, and
# the ppc64le cross-build compiles the same declarations).
KVM_TYPES = """
struct kvm_userspace_memory_region { uint32_t slot; uint32_t flags; uint64_t guest_phys_addr;
                                     uint64_t memory_size; uint64_t userspace_addr; ...; };
struct kvm_irqfd { uint32_t fd; uint32_t gsi; uint32_t flags; uint32_t resamplefd; ...; };
struct kvm_mp_state { uint32_t mp_state; ...; };
struct kvm_run {
    uint8_t request_interrupt_window; uint8_t immediate_exit; uint32_t exit_reason;
    union {
        struct { uint8_t direction; uint8_t size; uint16_t port; uint32_t count;
                 uint64_t data_offset; } io;
        struct { uint64_t phys_addr; uint8_t data[8]; uint32_t len; uint8_t is_write; } mmio;
        struct { uint64_t hardware_entry_failure_reason; uint32_t cpu; } fail_entry;
        struct { uint32_t suberror; uint32_t ndata; uint64_t data[16]; } internal;
        ...;
    };
    ...;
};
"""

KVM_CONSTANTS = """
KVMIO KVM_API_VERSION
KVM_CAP_IRQCHIP KVM_CAP_IRQFD KVM_CAP_IRQFD_RESAMPLE KVM_CAP_USER_MEMORY KVM_CAP_MP_STATE
KVM_IRQFD_FLAG_DEASSIGN KVM_IRQFD_FLAG_RESAMPLE KVM_MEM_READONLY
KVM_EXIT_UNKNOWN KVM_EXIT_IO KVM_EXIT_HLT KVM_EXIT_MMIO KVM_EXIT_SHUTDOWN
KVM_EXIT_FAIL_ENTRY KVM_EXIT_INTR KVM_EXIT_INTERNAL_ERROR
KVM_EXIT_IO_IN KVM_EXIT_IO_OUT KVM_MP_STATE_RUNNABLE
""".split()

# Their request numbers as the header computes them (for the cross-check only).
KVM_IOCTLS = """
KVM_GET_API_VERSION KVM_CREATE_VM KVM_CHECK_EXTENSION KVM_GET_VCPU_MMAP_SIZE
KVM_CREATE_VCPU KVM_SET_USER_MEMORY_REGION KVM_CREATE_IRQCHIP KVM_IRQFD KVM_RUN
KVM_SET_MP_STATE
""".split()


def includes(iommufd):
    return INCLUDES + (IOMMUFD_INCLUDES if iommufd else "")


def cdef(iommufd):
    names = CONSTANTS + PCI_CONSTANTS + KVM_CONSTANTS + (IOMMUFD_CONSTANTS if iommufd else [])
    consts = "".join(f"#define {name} ...\n" for name in names)
    ioctls = "".join(f"static const unsigned long {name};\n"
                     for name in IOCTLS + KVM_IOCTLS + (IOMMUFD_IOCTLS if iommufd else []))
    return TYPES + KVM_TYPES + (IOMMUFD_TYPES if iommufd else "") + consts + ioctls
