"""Lint output: text for people, JSON (DESIGN.md's contract), SARIF 2.1.0 for GitHub code
scanning, and GitHub Actions workflow commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pgsafe import _core
from pgsafe.lint.engine import LintResult
from pgsafe.lint.model import RULES, Finding

FORMATS = ("text", "json", "sarif", "github")
META_RULES = {
    "syntax-error": "The file does not parse as PostgreSQL SQL.",
    "invalid-suppression": "A pgsafe suppression comment that cannot be used as written.",
    "unused-suppression": "A suppression that matched no finding: remove it.",
}


def render(result: LintResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(result), indent=2)
    if fmt == "github":
        return "\n".join(_github(f) for f in result.findings)
    return _text(result)


def _text(result: LintResult) -> str:
    lines = []
    for f in result.findings:
        lines.append(f"{f.file}:{f.line}:{f.column}: {f.severity} {f.rule}: {f.message}")
        if f.lock:
            lines.append(f"    lock: {f.lock}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
        if f.destructive:
            lines.append("    destructive: needs approval before it runs in production")
    errors = sum(1 for f in result.findings if f.severity == "error")
    warnings = len(result.findings) - errors
    lines.append(f"{len(result.files)} file(s): {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def _escape_property(text: str) -> str:
    return (
        text.replace("%", "%25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(":", "%3A")
        .replace(",", "%2C")
    )


def _github(f: Finding) -> str:
    level = "error" if f.severity == "error" else "warning"
    message = f"{f.message}. Fix: {f.fix}" if f.fix else f.message
    message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return (
        f"::{level} file={_escape_property(f.file)},line={f.line},col={f.column},"
        f"title={_escape_property(f.rule)}::{message}"
    )


def _location(file: str) -> dict[str, str]:
    """A SARIF artifactLocation: percent-encoded, relative to %SRCROOT% (the working directory,
    which GitHub's upload action takes as the checkout) when the file is inside it."""
    if file == "<stdin>":
        return {"uri": "stdin"}
    path = Path(file).resolve()
    try:
        rel = path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return {"uri": path.as_uri()}
    return {"uri": quote(rel), "uriBaseId": "%SRCROOT%"}


def sarif(result: LintResult) -> dict[str, Any]:
    used = sorted({f.rule for f in result.findings})
    rules = []
    for rule_id in used:
        r = RULES.get(rule_id)
        if r is None:
            rules.append(
                {"id": rule_id, "shortDescription": {"text": META_RULES.get(rule_id, rule_id)}}
            )
            continue
        rules.append(
            {
                "id": r.id,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.why},
                "help": {"text": r.doc()},
                "defaultConfiguration": {"level": r.severity},
                "properties": {"tags": list(r.hazards), "lock": r.lock},
            }
        )
    index = {rule_id: i for i, rule_id in enumerate(used)}
    results = []
    for f in result.findings:
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": "error" if f.severity == "error" else "warning",
                "message": {"text": f"{f.message}. Fix: {f.fix}" if f.fix else f.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": _location(f.file),
                            "region": {
                                "startLine": max(f.line, 1),
                                "startColumn": max(f.column, 1),
                            },
                        }
                    }
                ],
                "properties": {"hazards": f.hazards, "lock": f.lock},
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pgsafe",
                        "version": _core.__version__,
                        "informationUri": "https://github.com/pgsafe/pgsafe",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(os.getcwd()).as_uri() + "/"}},
                "results": results,
            }
        ],
    }
