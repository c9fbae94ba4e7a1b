"""A throwaway sshd on 127.0.0.1 for the fleet's local tests: its own host key,
authorized_keys and a client key made here, no PAM, root login by key only.  It
stands in for no lab machine: it is this host, reached the way labgrid's SSHDriver
reaches any machine (tests/test_fleet_local.py)."""

import os
import shutil
import subprocess
import time

from pyvfio.fleet.local import free_port

SSHD = "/usr/sbin/sshd"


class LocalSshd:
    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        self.key = os.path.join(self.folder, "id_ed25519")
        self.port = None
        self.proc = None

    def start(self):
        assert os.path.exists(SSHD), "sshd is missing: tools/setup --lab installs openssh-server"
        os.makedirs(self.folder, exist_ok=True)
        os.chmod(self.folder, 0o700)
        hostkey = os.path.join(self.folder, "host_ed25519")
        for k in (hostkey, self.key):
            if not os.path.exists(k):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
        auth = os.path.join(self.folder, "authorized_keys")
        shutil.copy(self.key + ".pub", auth)
        os.chmod(auth, 0o600)
        os.makedirs("/run/sshd", exist_ok=True)    # sshd's privilege-separation folder
        self.port = free_port()
        cmd = [SSHD, "-D", "-e", "-f", "/dev/null", "-p", str(self.port),
               "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={hostkey}",
               "-o", f"AuthorizedKeysFile={auth}", "-o", "PasswordAuthentication=no",
               "-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no",
               "-o", "PermitRootLogin=prohibit-password", "-o", "StrictModes=no",
               "-o", f"PidFile={os.path.join(self.folder, 'sshd.pid')}",
               "-o", "Subsystem=sftp internal-sftp"]
        self.log = open(os.path.join(self.folder, "sshd.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = subprocess.run(["ssh", *self.ssh_opts(), "true"], capture_output=True)
            if r.returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the local sshd did not answer")

    def ssh_opts(self):
        return ["-F", "none", "-i", self.key, "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "root@127.0.0.1"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
