"""Run a command and print its peak resident memory (the largest of its process tree's members) as JSON.

    python peak_rss.py OUT_JSON -- COMMAND ARGS...
Exits with the command's exit code. ru_maxrss of RUSAGE_CHILDREN is the peak RSS of the largest waited-for
descendant, in KiB on Linux.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1 :]
    started = time.monotonic()
    code = subprocess.run(command, check=False).returncode
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(json.dumps({"peak_rss_bytes": usage.ru_maxrss * 1024, "seconds": time.monotonic() - started}))
    sys.exit(code)


if __name__ == "__main__":
    main()
