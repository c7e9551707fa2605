"""`tpuserve bench`: a JetStream-protocol benchmark client (issue 5).

Modules: cli (argparse), config (validated run settings), storage (local / gs:// files), tokenizer,
datasets (JetStream-identical sampling), client (gRPC), runner (load stages), metrics, outputs, report.
"""

PROGRAM = "tpuserve bench"  # how messages on stderr name the command


class BenchError(Exception):
    """Bad input or an unusable environment: the message says what to fix (exit code 2)."""


class RunFailed(Exception):
    """The run could not produce results or ended early (exit code 1)."""
