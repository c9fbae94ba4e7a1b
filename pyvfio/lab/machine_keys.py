"""The SSH key of the lab machines: one per cache, made once with ssh-keygen."""
import pathlib
import shutil
import subprocess

from .errors import LabError, LabUnavailable


def ensure(cache_root):
    """(private key path, public key text), generating the pair the first time."""
    folder = pathlib.Path(cache_root) / "machine-key"
    key = folder / "id_ed25519"
    if not (key.exists() and key.with_suffix(".pub").exists()):
        if shutil.which("ssh-keygen") is None:
            raise LabUnavailable("machine key", "ssh-keygen is not installed",
                                 hint="install openssh-client (tools/setup --lab)")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "id_ed25519.tmp"
        for p in (tmp, tmp.with_suffix(".tmp.pub")):
            p.unlink(missing_ok=True)
        p = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pyvfio-lab",
                            "-f", str(tmp)], capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError("machine key", "ssh-keygen failed", p.stderr.strip())
        tmp.with_suffix(".tmp.pub").rename(key.with_suffix(".pub"))
        tmp.rename(key)
    return key, key.with_suffix(".pub").read_text().strip()
