"""A private apt state in the lab cache: fetch Debian packages for any
architecture without touching the host's apt configuration or dpkg database.

One state per Debian architecture (amd64 for the x86 kernels and the host-side
kbuild, ppc64el for the POWER kernel and guest userspace).  Packages are only
downloaded (`apt-get download` / `install --download-only`), never installed.
"""
import pathlib
import re
import subprocess

from .errors import LabError, LabUnavailable

NO_NETWORK = "no network to Debian's mirror: the first run needs it to fetch packages"

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# Suites per architecture.  ppc64el's bookworm-security index has failed here with
# mirror-sync size errors; its 6.12 kernel comes from bookworm-backports anyway.
SUITES = {
    "amd64": [(MIRROR, "bookworm bookworm-updates bookworm-backports"), (SECURITY, "bookworm-security")],
    "ppc64el": [(MIRROR, "bookworm bookworm-updates bookworm-backports")],
}


class Apt:
    def __init__(self, cache_dir, debarch, archives="archives"):
        self.debarch = debarch
        self.root = pathlib.Path(cache_dir).resolve() / "apt" / debarch
        # A separate archives folder per use keeps "the closure of X" well defined.
        self.archives = self.root / archives

    def _options(self):
        r = self.root
        return [
            "-o", f"Dir::State={r}/state",
            "-o", f"Dir::State::status={r}/state/status",
            "-o", f"Dir::Cache={r}/cache",
            "-o", f"Dir::Cache::archives={self.archives}",
            "-o", f"Dir::Etc::SourceList={r}/sources.list",
            "-o", f"Dir::Etc::SourceParts={r}/sources.list.d",
            "-o", f"Dir::Etc::Preferences={r}/preferences",
            "-o", f"Dir::Etc::PreferencesParts={r}/preferences.d",
            "-o", f"APT::Architecture={self.debarch}",
            "-o", f"APT::Architectures::={self.debarch}",
            "-o", "APT::Get::AllowUnauthenticated=false",
            "-o", "Acquire::Languages=none",
            "-o", "Acquire::Retries=3",
            "-o", "Debug::NoLocking=1",
        ]

    def _layout(self):
        r = self.root
        for d in ("state/lists/partial", "cache", "sources.list.d", "preferences.d"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (self.archives / "partial").mkdir(parents=True, exist_ok=True)
        (r / "state" / "status").touch()
        (r / "preferences").touch()
        lines = [f"deb [signed-by={KEYRING}] {url} {suite} main\n"
                 for url, suites in SUITES[self.debarch] for suite in suites.split()]
        (r / "sources.list").write_text("".join(lines))

    def _run(self, tool, *args, step):
        cmd = [tool, *self._options(), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.archives)
        p.stdout += p.stderr if tool == "apt-get" and args[:1] == ("update",) else ""
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-6:]
            hint = _network_hint(p.stderr)
            raise (LabUnavailable if hint else LabError)(
                step, f"{tool} {' '.join(args[:3])} failed (exit {p.returncode})", "\n".join(tail), hint=hint)
        return p.stdout

    def update(self, force=False):
        """Fetch the package lists once (or again when forced, e.g. after a 404)."""
        self._layout()
        lists = self.root / "state" / "lists"
        if not force and any(lists.glob("*_Packages*")):
            return False
        step = f"apt update ({self.debarch})"
        out = self._run("apt-get", "update", step=step)
        # apt-get update exits 0 when it merely could not reach the mirror.
        if not any(lists.glob("*_Packages*")):
            raise LabUnavailable(step, "no package lists were fetched", out.strip()[-800:], hint=NO_NETWORK)
        return True

    def names(self, regex):
        """Package names matching regex (anchored), sorted by Debian version order."""
        out = self._run("apt-cache", "pkgnames", step=f"apt-cache ({self.debarch})")
        pat = re.compile(regex)
        return sorted((n for n in out.split() if pat.fullmatch(n)), key=_version_key)

    def version(self, name):
        """The version of package `name` in the lists (the newest, if several)."""
        out = self._run("apt-cache", "show", "--no-all-versions", name, step=f"apt-cache ({self.debarch})")
        m = re.search(r"^Version: (\S+)", out, re.M)
        if not m:
            raise LabError(f"apt-cache ({self.debarch})", f"no version of {name} in the lists")
        return m.group(1)

    def versions(self, name):
        """Every version of package `name` in the lists, newest first (apt's own order)."""
        out = self._run("apt-cache", "madison", name, step=f"apt-cache ({self.debarch})")
        found = [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]
        return list(dict.fromkeys(found))

    def download(self, names, step):
        """Download exactly these packages (NAME or NAME=VERSION); returns their .deb paths."""
        self._run("apt-get", "download", *names, step=step)
        return [self._deb(n) for n in names]

    def download_closure(self, names, step):
        """Download names and their whole Depends/PreDepends closure (no recommends)."""
        self._run("apt-get", "install", "--download-only", "--no-install-recommends", "-y",
                  "-q", *names, step=step)
        return sorted(self.archives.glob("*.deb"))

    def _deb(self, name):
        name, _, version = name.partition("=")
        found = sorted(self.archives.glob(f"{name}_{version or '*'}_*.deb"))
        if not found:
            raise LabError("download", f"apt-get download left no .deb for {name}")
        return found[-1]


def _version_key(name):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", name)]


def _network_hint(stderr):
    if re.search(r"Temporary failure resolving|Could not resolve|Failed to fetch|Unable to connect",
                 stderr or ""):
        return NO_NETWORK
    return None
