"""A step-by-step record of what the model host does.

Each event names the layer and the function it mirrors ("xive", "xive_irq_eoi:
irq disabled, source EOI skipped").  Models hold `trace = None` when tracing is off
and test it before formatting anything, so an untraced run pays one attribute test
per step.
"""


class Trace:
    __slots__ = ("events", "limit")

    def __init__(self, limit=100_000):
        self.events = []            # (seq, layer, text)
        self.limit = limit

    def __call__(self, layer, text):
        if len(self.events) < self.limit:
            self.events.append((len(self.events) + 1, layer, text))

    def mark(self, text):
        """A user-level step (the guest's action), shown as a heading."""
        self("user", text)

    def lines(self):
        for seq, layer, text in self.events:
            if layer == "user":
                yield f"{seq:4d}  -- {text}"
            else:
                yield f"{seq:4d}  {layer:<8} {text}"

    def format(self):
        return "\n".join(self.lines())

    def find(self, needle, layer=None):
        """Events whose text contains `needle` (tests use this)."""
        return [e for e in self.events if needle in e[2] and (layer is None or e[1] == layer)]

    def as_json(self):
        return [{"seq": s, "layer": layer, "text": t} for s, layer, t in self.events]
