"""pgsafe in Jupyter: the runbook notebook executes cleanly in a real kernel (running this
project's interpreter), it is committed without outputs, and interrupting the kernel cancels a
long statement on the server."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyter_client
import nbclient
import nbformat
import pytest

from helpers import wait_for
from pgsafe.server import TemporaryDatabase

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "pgsafe-test"


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec whose kernel is this interpreter (the project's .venv), found through
    JUPYTER_PATH, so no kernel installed elsewhere on the machine is picked up."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pgsafe test kernel",
                "language": "python",
                "interrupt_mode": "signal",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("PGSAFE_NO_PROGRESS", raising=False)
    monkeypatch.delenv("PGSAFE_ENV", raising=False)  # the runbook's preflight uses `local`
    return KERNEL


def test_notebooks_are_committed_without_outputs() -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, f"no notebooks in {NOTEBOOKS}"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            assert cell.outputs == [], f"{path.name} cell {i} has committed outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "widgets" not in nb.metadata, f"{path.name} carries widget state"


def test_runbook_runs_clean(kernel_name: str) -> None:
    path = NOTEBOOKS / "runbook.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=180,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError naming the cell if any cell errors

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # The report objects rendered as HTML: lint, dry-run, preflight, probe, backup,
    # verify-backup, postflight and status reports.
    assert any("pgsafe lint" in h for h in html)
    assert any("<h3>pgsafe preflight</h3>" in h and "PASSED" in h for h in html)
    assert any("pgsafe locks" in h and "OK: nothing blocking" in h for h in html)  # probe
    assert any("pgsafe postflight" in h for h in html)
    assert any("Migration Dry-Run Report" in h for h in html)
    assert any("<h3>pgsafe backup</h3>" in h for h in html)
    assert any("<h3>pgsafe verify-backup</h3>" in h for h in html)
    assert sum("pgsafe status" in h for h in html) >= 3
    # Progress drew itself with plain IPython.display (no ipywidgets) and finished at 100%.
    progress = [h for h in html if h.startswith("<pre>data fingerprint [")]
    assert progress and "100.0%" in progress[-1]
    text = "".join(o.get("text", "") for o in outputs)
    # Preflight found the tables the pending migrations touch; probe and backup use them.
    assert "tables the pending migrations touch: org_members, qc_jobs" in text
    assert "rollback restored the schema and the data exactly" in text


@pytest.fixture
def kernel(kernel_name: str) -> Iterator[tuple[Any, Any]]:
    km = jupyter_client.KernelManager(kernel_name=kernel_name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc: Any, code: str, timeout: float = 30) -> tuple[dict[str, Any], str]:
    """Executes `code` in the kernel; returns the reply content and what it printed."""
    printed: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook, stop_on_error=False)
    return reply["content"], "".join(printed)


def test_interrupting_the_kernel_cancels_the_statement_on_the_server(
    kernel: tuple[Any, Any], pgsafe_db: TemporaryDatabase
) -> None:
    km, kc = kernel
    reply, printed = _run(
        kc,
        "import pgsafe\n"
        f"conn = pgsafe.connect({pgsafe_db.dsn!r}, pgsafe.Settings(), 'notebook')\n"
        "print(conn.backend_pid)\n",
    )
    assert reply["status"] == "ok", reply
    pid = printed.strip()

    def running(admin: Any) -> bool:
        rows = admin.execute("SELECT state, query FROM pg_stat_activity WHERE pid = $1", [pid]).rows
        return bool(rows) and rows[0][0] == "active" and "pg_sleep" in rows[0][1]

    with pgsafe_db.connect() as admin:
        # stop_on_error=False: the kernel must not abort the requests queued after this one.
        msg_id = kc.execute("conn.execute('SELECT pg_sleep(60)')", stop_on_error=False)
        wait_for(lambda: running(admin), timeout=20, what="pg_sleep running in the kernel")

        km.interrupt_kernel()
        interrupted = time.monotonic()
        wait_for(lambda: not running(admin), timeout=2, what="the server to cancel pg_sleep")
        assert time.monotonic() - interrupted < 2

        while True:
            msg = kc.get_shell_msg(timeout=10)
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        assert msg["content"]["status"] == "error"
        assert msg["content"]["ename"] == "KeyboardInterrupt", msg["content"]

    # The connection is still usable afterwards: the cancel ended the statement, not the session.
    reply, printed = _run(kc, "print(conn.execute('SELECT 41 + 1').rows)")
    assert reply["status"] == "ok", reply
    assert "42" in printed
