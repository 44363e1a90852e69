"""The progress shown while following a job: tqdm's bar where tqdm is installed (in a
notebook its widget), a plain line otherwise (redrawn in place on a terminal, a new line
every few seconds when the output is a file)."""
from __future__ import annotations

import sys
import time
from typing import Any, Optional


class ProgressBar:
    def __init__(self, job_id: str, out: Any = None):
        self._job_id = job_id
        self._out = out or sys.stderr
        self._bar: Optional[Any] = None
        self._last_line = 0.0
        self._tty = hasattr(self._out, "isatty") and self._out.isatty()
        try:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, desc=job_id, unit="step", file=self._out)
        except ImportError:
            self._bar = None

    @staticmethod
    def describe(status: Any) -> str:
        parts = [status.state]
        if status.queue_position:
            parts.append(f"queue #{status.queue_position}: {status.queue_reason}")
        if status.loss is not None:
            parts.append(f"loss {status.loss:.4f}")
        if status.learning_rate is not None:
            parts.append(f"lr {status.learning_rate:.2e}")
        for name, value in sorted(status.eval_metrics.items())[:2]:
            parts.append(f"{name} {value:.4g}")
        return "  ".join(parts)

    def update(self, status: Any) -> None:
        if self._bar is not None:
            if status.max_steps and self._bar.total != status.max_steps:
                self._bar.total = status.max_steps
            self._bar.n = status.step
            self._bar.set_postfix_str(self.describe(status), refresh=False)
            self._bar.refresh()
            return
        total = f"/{status.max_steps}" if status.max_steps else ""
        line = f"{self._job_id} step {status.step}{total}  {self.describe(status)}"
        now = time.monotonic()
        if self._tty:
            self._out.write("\r" + line[:160].ljust(80))
            self._out.flush()
        elif now - self._last_line >= 5 or status.finished:
            self._out.write(line + "\n")
            self._out.flush()
            self._last_line = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            self._out.write("\n")
