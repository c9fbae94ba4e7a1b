"""PyvfioCard: a card in a lab machine, as a labgrid resource.

An exporter publishes it next to the machine's NetworkService (labgrid's exporter
exports a class it does not know as a plain entry with its parameters, so the
exporter needs no pyvfio); a place that matches the group gets both, and the
worker, which registers the class here, reads the card from its target:

    edu0:
      cls: PyvfioCard
      bdf: "0000:00:04.0"     # where the card sits on that machine
      profile: edu            # the pyvfio profile that drives it
      kind: "2.3"             # "2.3" (DisINTx) or "non-2.3": what a scenario asks for
      description: QEMU edu   # for people
"""

import attr
from labgrid.factory import target_factory
from labgrid.resource.common import Resource

from ..vocabulary import CardKind, words

KINDS = words(CardKind)


@target_factory.reg_resource
@attr.s(eq=False, init=False)
class PyvfioCard(Resource):
    bdf = attr.ib(default="", validator=attr.validators.instance_of(str))
    profile = attr.ib(default=None)
    kind = attr.ib(default=None)
    description = attr.ib(default="")

    def __init__(self, *args, **kwargs):
        # labgrid's exporter hands a class it does not know its own name among the
        # parameters, and the client's factory passes the name positionally too
        kwargs.pop("name", None)
        self.__attrs_init__(*args, **kwargs)

    def describe(self):
        return {"name": self.name, "bdf": self.bdf, "profile": self.profile, "kind": self.kind,
                "description": self.description}


def pick(cards, want=None):
    """The card a scenario asks for: `want` matches a card's resource name, profile
    or kind; without `want`, the machine's only card.  None when nothing or more than
    one card fits."""
    fit = [c for c in cards if want is None or want in (c.name, c.profile, c.kind)]
    return fit[0] if len(fit) == 1 else None
