"""Everything pyvfio says to labgrid.

Changes of state (create a place, reserve, acquire, release) go through
`labgrid-client`, labgrid's own interface, so a fleet run does exactly what a person
at a terminal would and its errors are labgrid's; reading the coordinator's view
(places, tags, who holds what, the resources a place matches) goes through a
ClientSession.  Who we are is labgrid's rule: LG_USERNAME and LG_HOSTNAME, else the
login name and host name; a place acquired by another user cannot be acquired.
"""

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys

from ..errors import EXIT_REFUSED, PyvfioError, UsageError

CLIENT_TIMEOUT = 60


class PlaceError(PyvfioError):
    """A place that could not be had (another holds it)."""
    exit_code = EXIT_REFUSED


def who():
    """"host/user" as labgrid writes a place's holder."""
    return f"{os.environ.get('LG_HOSTNAME', socket.gethostname())}/{os.environ.get('LG_USERNAME', getpass.getuser())}"


def _client_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "labgrid-client")
    return exe if os.path.exists(exe) else shutil.which("labgrid-client")


def client(coordinator, *args, place=None, timeout=CLIENT_TIMEOUT, check=True):
    """Run labgrid-client against `coordinator`; (returncode, output).  A failure with
    `check` is a PyvfioError carrying labgrid's last line."""
    exe = _client_exe()
    if exe is None:
        raise UsageError("labgrid-client not found", "pip install 'pyvfio[fleet]'")
    cmd = [exe, "-x", coordinator] + (["-p", place] if place else []) + list(args)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PyvfioError(f"labgrid-client {' '.join(args)} took more than {timeout:.0f} s",
                          f"is the coordinator at {coordinator} up?") from None
    out = (r.stdout + r.stderr).strip()
    if check and r.returncode:
        last = out.splitlines()[-1] if out else f"exit {r.returncode}"
        raise PyvfioError(f"labgrid-client {' '.join(args)}: {last}")
    return r.returncode, out


# -- setting places up (the fleet README's commands, for local labs and tests) -----------

def create_place(coordinator, place, match, tags):
    """A place matching `match` ("exporter/group/*/*") with `tags` (dict)."""
    client(coordinator, "create", place=place)
    client(coordinator, "add-match", match, place=place)
    if tags:
        client(coordinator, "set-tags", *[f"{k}={v}" for k, v in tags.items()], place=place)


# -- reservations and locks -------------------------------------------------------------

def reserve(coordinator, place, wait_s):
    """A reservation of `place` by name, allocated within `wait_s` seconds; its token.
    PlaceError (after cancelling it) when the place stayed taken."""
    _, out = client(coordinator, "reserve", "--shell", f"name={place}")
    m = re.search(r"LG_TOKEN=(\S+)", out)
    if not m:
        raise PlaceError(f"{place}: labgrid gave no reservation token ({out.splitlines()[-1] if out else ''})")
    token = m.group(1)
    try:
        client(coordinator, "wait", token, timeout=wait_s)
    except PyvfioError:
        cancel(coordinator, token)
        holder = holder_of(coordinator, place)
        raise PlaceError(f"{place} was not allocated to us within {wait_s:.0f} s"
                         + (f" (acquired by {holder})" if holder else ""),
                         "wait for it, or ask its holder (pyvfio fleet status)") from None
    return token


def cancel(coordinator, token):
    client(coordinator, "cancel-reservation", token, check=False)


def acquire(coordinator, place, token=None):
    """Acquire `place` (through its reservation when we hold one); PlaceError when
    another user holds it."""
    rc, out = client(coordinator, "acquire", place=f"+{token}" if token else place, check=False)
    if rc:
        raise PlaceError(f"{place}: {out.splitlines()[-1] if out else 'acquire failed'}",
                         "pyvfio fleet status shows who holds it")


def release(coordinator, place):
    """Release `place` if we hold it; True when it was released."""
    rc, _ = client(coordinator, "release", place=place, check=False)
    return rc == 0


# -- the coordinator's view ----------------------------------------------------------------

def _session(coordinator):
    from labgrid.remote.client import start_session
    try:
        return start_session(coordinator, extra={})
    except Exception as exc:   # grpc's errors have no common base worth naming
        raise PyvfioError(f"cannot reach the labgrid coordinator at {coordinator}: {exc}",
                          "start it (labgrid-coordinator --listen HOST:PORT) or fix --coordinator") from None


def snapshot(coordinator):
    """{place: {"tags", "acquired", "reservation", "resources": {name: {"cls", "params"}}}}
    and [reservations {"token", "owner", "state", "filters"}] as the coordinator has them."""
    s = _session(coordinator)
    try:
        out = {}
        for name, p in sorted(s.places.items()):
            res = {}
            for exporter, groups in s.resources.items():
                for group, entries in groups.items():
                    for rname, entry in entries.items():
                        if p.hasmatch((exporter, group, entry.cls, rname)):
                            params = {k: v for k, v in entry.params.items() if k != "extra"}
                            res[rname] = {"cls": entry.cls, "params": params, "avail": entry.avail,
                                          "exporter": exporter, "group": group}
            out[name] = {"tags": dict(p.tags), "acquired": p.acquired, "reservation": p.reservation,
                         "resources": res}
        return out, _reservations(s)
    finally:
        s.loop.run_until_complete(s.stop())
        s.loop.run_until_complete(s.close())


def _reservations(s):
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
    resp = s.loop.run_until_complete(s.stub.GetReservations(pb2.GetReservationsRequest()))
    out = []
    for r in (Reservation.from_pb2(x) for x in resp.reservations):
        out.append({"token": r.token, "owner": r.owner, "state": r.state.name,
                    "filters": {k: dict(v) for k, v in r.filters.items()},
                    "allocations": {k: list(v) for k, v in r.allocations.items()}})
    return out


def holder_of(coordinator, place):
    try:
        places, _ = snapshot(coordinator)
    except PyvfioError:
        return None
    return (places.get(place) or {}).get("acquired")


def select(coordinator, names=(), tags=()):
    """The places named, or those whose tags hold every k=v of `tags`; UsageError for
    a name the coordinator does not know or a selection that finds none."""
    places, _ = snapshot(coordinator)
    if names:
        unknown = [n for n in names if n not in places]
        if unknown:
            raise UsageError(f"no place {', '.join(unknown)} on the coordinator at {coordinator}",
                             "pyvfio fleet status lists them")
        return list(dict.fromkeys(names)), places
    want = {}
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep or not k:
            raise UsageError(f"--tag {t}: give KEY=VALUE")
        want[k] = v
    chosen = [n for n, p in places.items() if all(p["tags"].get(k) == v for k, v in want.items())]
    if not chosen:
        raise UsageError(f"no place has the tags {' '.join(tags)}", "pyvfio fleet status lists places and tags")
    return chosen, places


def target(place, keyfile, connect_timeout):
    """labgrid's Target of an acquired place (its remote resources expanded, the
    PyvfioCard class known) with an SSHDriver on its NetworkService, activated:
    (target, ssh driver, [PyvfioCard]).  LG_COORDINATOR names the coordinator."""
    from labgrid import Target
    from labgrid.driver import SSHDriver
    from labgrid.resource import RemotePlace

    from .resources import PyvfioCard

    t = Target(place)
    RemotePlace(t, name=place)
    cards = sorted((r for r in t.resources if isinstance(r, PyvfioCard)), key=lambda r: r.name)
    ssh = SSHDriver(t, "ssh", keyfile=keyfile or "", connection_timeout=float(connect_timeout))
    try:
        t.activate(ssh)
    except Exception as exc:    # labgrid raises a bare Exception on an SSH timeout
        ns = ssh.networkservice
        t.cleanup()
        why = str(exc).split(":")[0]          # labgrid's message carries the whole ssh command
        raise PyvfioError(f"{place}: the machine does not answer on SSH at {ns.username}@{ns.address}:{ns.port} "
                          f"within {connect_timeout:.0f} s ({why})",
                          "is it up? (pyvfio fleet status shows the place's ssh)") from None
    return t, ssh, cards
