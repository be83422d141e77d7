"""Project-wide test settings, and a last check that no test left a process behind."""

import os

import psutil

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run when a test left a child process running (a server, a torchrun worker)."""
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    left = [
        p
        for p in left
        if p.status() != psutil.STATUS_ZOMBIE
        # Python's own helper for multiprocessing, it exits with the interpreter
        and not any("resource_tracker" in part for part in p.cmdline())
    ]
    if left:
        names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in left)
        session.config.get_terminal_reporter().write_line(
            f"processes left behind by the tests: {names}", red=True
        )
        for proc in left:
            proc.kill()
        session.exitstatus = 1
