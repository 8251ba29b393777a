"""Run the maw-bench CLI and send this process a signal right after a given training step has been logged.

``python tests/signal_at_step.py KILL 4 maw -- train ...`` kills the run with SIGKILL once the arm folder whose path
contains ``maw`` has logged step 4 (before that step's checkpoint is written). A test that polls the log and then
signals races the run: on a fast CPU a tiny model can finish between two polls, so such a test passes on one
machine and fails on the next. Here the signal lands at the same step on every machine, as a real one would.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    name, step, where = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    args = sys.argv[sys.argv.index("--") + 1:]
    from maw_bench.training import trainer

    log_step = trainer.Trainer._log_step

    def log_then_signal(self, at: int, *rest, **kwargs):
        log_step(self, at, *rest, **kwargs)
        if at == step and where in str(self.folder):
            os.kill(os.getpid(), getattr(signal, f"SIG{name}"))

    trainer.Trainer._log_step = log_then_signal
    sys.argv = ["maw-bench", *args]
    from maw_bench.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
