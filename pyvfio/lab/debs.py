"""Unpack .deb files with dpkg-deb -x (no maintainer scripts, nothing installed)."""
import subprocess

from .errors import LabError


def unpack(deb, dest, step):
    p = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        raise LabError(step, f"dpkg-deb -x {deb.name} failed", p.stderr.strip()[-800:],
                       hint="a damaged download: remove the lab cache's apt folder and rerun")
