"""A check is data: name (stable), status ("ok", "warn", "fail", or "n/a" for a check
that does not apply here, its summary saying why), summary (what was found), evidence
(how we know), fix (the command that fixes it, or None)."""

from dataclasses import dataclass, field

from ..results import envelope

OK, WARN, FAIL, NA = "ok", "warn", "fail", "n/a"
RANK = {NA: 0, OK: 0, WARN: 1, FAIL: 2}


@dataclass
class Check:
    name: str
    status: str
    summary: str
    evidence: str = ""
    fix: str | None = None

    def to_json(self):
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "evidence": self.evidence, "fix": self.fix}


@dataclass
class Diagnosis:
    system: object              # pyvfio.host.system.System
    bdf: str | None
    checks: list[Check] = field(default_factory=list)
    # unlazy_fix, controller, platform, without_vfio, device, masking, irq_line, irq_route
    facts: dict = field(default_factory=dict)

    @property
    def status(self):
        worst = max((c.status for c in self.checks), key=RANK.get, default=OK)
        return OK if worst == NA else worst

    @property
    def failures(self):
        return [c for c in self.checks if c.status == FAIL]

    def to_json(self):
        """envelope("doctor") + host (System.to_json), bdf, status, facts, checks [Check]."""
        return envelope("doctor", host=self.system.to_json(), bdf=self.bdf, status=self.status,
                        facts=self.facts, checks=[c.to_json() for c in self.checks])
