"""KVM from Python, the way pyvfio does VFIO: constants and request numbers from
pyvfio.uapi (<linux/kvm.h> through the compiled extension), objects over file
descriptors (system.Kvm -> vm.Vm -> vcpu.Vcpu, memory slots, irqfds), one-line
KvmErrors.  guest_program.py builds the real-mode guest, engine/kvm_engine.py runs it for engine/run.py."""
