"""Scripted reproduction on real kernels: scenario files (scenario.py), the cells
of a matrix run on a card (cells.py), in lab VMs (lab.py), and the model's
prediction of each cell (predict.py).  The model host's own matrix is
pyvfio.sim.matrix."""

import pathlib

SCENARIOS = pathlib.Path(__file__).resolve().parent.parent / "scenarios"


def named_scenario(name):
    """A path, or the name of a scenario shipped in pyvfio/scenarios ("seed")."""
    p = pathlib.Path(name)
    if p.exists() or p.suffix:
        return p
    shipped = SCENARIOS / f"{name}.toml"
    return shipped if shipped.exists() else p
