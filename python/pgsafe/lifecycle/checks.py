"""One check of preflight or postflight: its name, status, a line saying what it found, the
evidence behind it and how long it took. Both reports list these; each writes them in its own
JSON (DESIGN.md): preflight's names the line `summary` and has no timing, postflight's names it
`message` and adds `seconds`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
PASS: Status = "pass"
WARN: Status = "warn"
FAIL: Status = "fail"
SKIP: Status = "skip"

Flavour = Literal["preflight", "postflight"]


@dataclass
class Check:
    name: str
    status: Status
    message: str
    # Preflight's are lines of text (a differing object, a blocking transaction, ...);
    # postflight's are rows, one dict per object found.
    evidence: list[Any] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def outcome(cls, name: str, failure: str | None, success: str, evidence: list[Any]) -> Check:
        """Failed with the message `failure` when there is one, else passed with `success`."""
        return cls(name, FAIL if failure else PASS, failure or success, evidence)

    def to_dict(self, flavour: Flavour = "postflight") -> dict[str, Any]:
        if flavour == "preflight":
            return {
                "name": self.name,
                "status": self.status,
                "summary": self.message,
                "evidence": self.evidence,
            }
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 6),
        }
