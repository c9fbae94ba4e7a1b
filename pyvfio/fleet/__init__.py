"""pyvfio fleet: one scenario on many lab machines, through labgrid (pyvfio[fleet]).

labgrid owns places, locks and reservations; pyvfio owns what runs on a machine and
how results are compared.  A lab machine needs only sshd and pyvfio.

    places.py     everything said to labgrid (its client CLI and session): places,
                  reservations, acquire/release, a place's target with SSHDriver
    resources.py  PyvfioCard, the labgrid resource that names a machine's card
    worker.py     one place: reserve, acquire, install or check pyvfio, run, fetch, release
    run.py        fleet run (a worker process per place), status, release
    local.py      a coordinator and exporter on 127.0.0.1 (the lab machines, the tests)

Nothing here is imported by the single-machine commands (see docs/usage.md).
"""
