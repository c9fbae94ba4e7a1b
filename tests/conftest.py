"""tests/lab runs inside lab VMs (tests/test_lab_vms.py boots them and runs it
there); on the host it is not collected at all, rather than listed as skipped."""

from pyvfio.lab import guest

collect_ignore = [] if guest.in_lab() else ["lab"]
