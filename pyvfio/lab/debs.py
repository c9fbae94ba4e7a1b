"""Unpack .deb files with dpkg-deb -x (no maintainer scripts, nothing installed)."""
import pathlib
import subprocess

from .errors import LabError


def unpack(deb, dest, step):
    p = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if p.returncode != 0:
        # A damaged download: drop it so that the next run fetches it again.
        pathlib.Path(deb).unlink(missing_ok=True)
        raise LabError(step, f"dpkg-deb -x {deb.name} failed", p.stderr.strip()[-800:],
                       hint="the damaged .deb was removed from the cache; run again to fetch it anew")
