"""Objects over VFIO file descriptors: container, group, device, regions."""

from .container import IOMMU_TYPES, Container
from .device import Device, open_device
from .group import Group
from .region import ACCESS_MODES, Region

__all__ = ["ACCESS_MODES", "IOMMU_TYPES", "Container", "Device", "Group", "Region",
           "open_device"]
