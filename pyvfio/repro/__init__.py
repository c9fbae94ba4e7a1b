"""pyvfio repro: scenario files (scenario.py) and their machines (machines.py), run
by one pipeline (pipeline.py) on a card here (cells.py), in lab VMs (lab.py) or on
the model host (model.py, through matrix.py: one model scenario through the
engine), with the model's prediction of real cells (predict.py)."""

import pathlib

SCENARIOS = pathlib.Path(__file__).resolve().parent.with_name("scenarios")    # package data: pyvfio/scenarios


def named_scenario(name):
    """A path, or the name of a scenario shipped in pyvfio/scenarios ("seed")."""
    p = pathlib.Path(name)
    if p.exists() or p.suffix:
        return p
    shipped = SCENARIOS / f"{name}.toml"
    return shipped if shipped.exists() else p
