"""The tree this package runs from: the pyvfio checkout, whose csrc/, tools/ and
.cache/ sit beside the package (an installed wheel has none of them; callers check
before use)."""

import pathlib

CHECKOUT = pathlib.Path(__file__).resolve().parent.parent
