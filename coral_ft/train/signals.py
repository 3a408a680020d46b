"""Stopping a training run on request: SIGTERM (a cluster's pre-emption) or Ctrl-C finishes the
current step, the loop writes a checkpoint and stops; a second Ctrl-C interrupts at once. With
several processes they agree on the step to stop at (a checkpoint is a collective)."""

from __future__ import annotations

import signal
import threading

import torch

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_CHECK_EVERY = 10  # steps between agreeing on a stop request across processes


class StopRequests:
    """A context manager that turns stop signals into a flag the loop reads between steps."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.requested = False
        self._previous = {}

    def _request(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {s: signal.signal(s, self._request) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def agreed(self, step: int) -> bool:
        """Stop now? Every process answers alike at the same step."""
        return False if self.accelerator.num_processes > 1 and step % STOP_CHECK_EVERY else self.agreed_now()

    def agreed_now(self) -> bool:
        """Stop now? Asked by every process at the same point (after a sample grid), whatever the step."""
        if self.accelerator.num_processes == 1:
            return self.requested
        flag = torch.tensor(float(self.requested), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, "max"))
