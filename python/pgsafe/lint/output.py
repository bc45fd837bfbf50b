"""Lint output: text for people, JSON (DESIGN.md's contract), SARIF 2.1.0 for GitHub code
scanning, GitHub Actions workflow commands (annotations), GitLab Code Quality JSON, and
Markdown for a pull-request comment or a job summary."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pgsafe import _core
from pgsafe.lint.engine import LintResult
from pgsafe.lint.model import RULES, Finding, describe_lock, stronger_lock

FORMATS = ("text", "json", "sarif", "github", "gitlab", "markdown")
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
    if fmt == "gitlab":
        return json.dumps(gitlab(result), indent=2)
    if fmt == "markdown":
        return markdown(result)
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


# -- GitLab Code Quality -------------------------------------------------------------------


def _relative(file: str) -> str:
    """`file` relative to the working directory (the checkout, in CI) when inside it."""
    if file == "<stdin>":
        return "stdin"
    path = Path(file).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def gitlab_severity(f: Finding) -> str:
    """GitLab's scale (info, minor, major, critical, blocker): a file that does not parse
    blocks everything after it; an error that deletes data is critical; other errors major;
    warnings minor; an unused suppression is information."""
    if f.rule == "syntax-error":
        return "blocker"
    if f.rule == "unused-suppression":
        return "info"
    if f.severity == "error":
        return "critical" if f.destructive or "deletes-data" in f.hazards else "major"
    return "minor"


def gitlab(result: LintResult) -> list[dict[str, Any]]:
    """GitLab Code Quality issues (artifacts:reports:codequality). The fingerprint hashes the
    rule, the file and the statement (or the message, for findings about a file), not the
    line: a finding keeps its fingerprint when lines above it move. Equal findings in one file
    are told apart by their order."""
    seen: dict[str, int] = {}
    out = []
    for f in result.findings:
        path = _relative(f.file)
        what = " ".join(f.statement.split()) or f.message
        key = "\0".join((f.rule, path, what))
        n = seen.get(key, 0)
        seen[key] = n + 1
        fingerprint = hashlib.sha256(f"{key}\0{n}".encode()).hexdigest()[:32]
        out.append(
            {
                "type": "issue",
                "description": f"{f.message}. Fix: {f.fix}" if f.fix else f.message,
                "check_name": f.rule,
                "fingerprint": fingerprint,
                "severity": gitlab_severity(f),
                "categories": ["Bug Risk"],
                "location": {"path": path, "lines": {"begin": max(f.line, 1)}},
            }
        )
    return out


# -- Markdown ------------------------------------------------------------------------------

_MAX_ROWS = 50  # files listed in the summary table before it only lists those with findings


def _code(text: str) -> str:
    """Inline code that shows `text` as written (backticks inside included)."""
    text = text.replace("\n", " ")
    ticks = "`"
    while ticks in text:
        ticks += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


_PROSE = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|~"})


def _prose(text: str) -> str:
    """Text inside a list item, shown as written: the characters that format inline escaped
    (line-start syntax such as # or - cannot occur after the item's own prefix)."""
    return text.translate(_PROSE).replace("\n", " ")


def _fence(sql: str) -> list[str]:
    fence = "```"
    while fence in sql:
        fence += "`"
    return [f"{fence}sql", sql.strip("\n"), fence]


def markdown(result: LintResult) -> str:
    """The lint result as a pull-request comment: a verdict, a table of the files linted (each
    one's errors, warnings and strongest lock on an existing table), then per file its
    findings with the lock, the hazards, the safer recipe and the statement."""
    errors = sum(1 for f in result.findings if f.severity == "error")
    warnings = len(result.findings) - errors
    verdict = "failed" if errors else "passed"
    files = list(dict.fromkeys([*result.files, *(f.file for f in result.findings)]))
    out = [
        f"### pgsafe lint {verdict}",
        "",
        f"{len(result.files)} migration file(s): {errors} error(s), {warnings} warning(s)",
        "",
    ]
    by_file: dict[str, list[Finding]] = {name: [] for name in files}
    for f in result.findings:
        by_file[f.file].append(f)
    listed = files if len(files) <= _MAX_ROWS else [n for n in files if by_file[n]]
    if listed:
        out += [
            "| migration | result | errors | warnings | strongest lock |",
            "|---|---|---|---|---|",
        ]
        for name in listed:
            found = by_file[name]
            e = sum(1 for f in found if f.severity == "error")
            lock = None
            for f in found:
                lock = stronger_lock(lock, f.lock)
            mark = "❌ failed" if e else "⚠️ warnings" if found else "✅ passed"
            # In a table a pipe ends the cell even inside code, unless escaped.
            cell = _code(_relative(name)).replace("|", "\\|")
            out.append(
                f"| {cell} | {mark} | {e} | {len(found) - e} | {_code(lock) if lock else ''} |"
            )
        if len(listed) < len(files):
            out.append("")
            out.append(f"{len(files) - len(listed)} more file(s) without findings.")
        out.append("")
    for name in files:
        found = by_file[name]
        if not found:
            continue
        out += [f"#### {_code(_relative(name))}", ""]
        for f in found:
            icon = "❌" if f.severity == "error" else "⚠️"
            out.append(
                f"- {icon} **{f.severity}** {_code(f.rule)} at line {f.line}: {_prose(f.message)}"
            )
            if f.lock:
                blocks = describe_lock(f.lock).removeprefix(f.lock).lstrip(": ")
                out.append(f"  - Lock: {_code(f.lock)}: {_prose(blocks)}")
            if f.hazards:
                out.append(f"  - Hazards: {', '.join(_code(h) for h in f.hazards)}")
            if f.fix:
                out.append(f"  - Fix: {_prose(f.fix)}")
            if f.destructive:
                out.append("  - Destructive: needs approval before it runs in production")
            if f.statement:
                out += ["", "  <details><summary>statement</summary>", ""]
                out += ["  " + line for line in _fence(f.statement)]
                out += ["", "  </details>", ""]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
