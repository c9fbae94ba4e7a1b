"""The lab: real /dev/vfio on real Debian kernels inside QEMU (x86_64 and POWER9).

See README.md beside this file for the design and the choice against virtme-ng.
"""
