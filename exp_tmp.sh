set -x
cat /proc/interrupts | grep -v " 0 " | head -20
python -m pyvfio list
ls /sys/bus/pci/devices/0000:00:14.0/net/
echo 0x1003 > /sys/class/net/eth0/flags
grep eth0 /proc/interrupts
python -m pyvfio doctor 0000:00:10.0
python -m pyvfio run 0000:00:10.0 -l 100; echo rc=$?
python -m pyvfio info 0000:00:10.0 | head -20
