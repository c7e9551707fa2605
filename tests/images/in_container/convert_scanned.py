"""MaxText's own Meta -> scanned Orbax converter, with one size added to its table (it has no small Llama).

Run inside the converter image:  python convert_scanned.py NAME ENTRY_JSON -- <llama_or_mistral_ckpt args>
The module's command-line code sits under `if __name__ == "__main__":`; this runs exactly that block, in the
module's own namespace, after adding NAME to MODEL_PARAMS_DICT. Nothing else of MaxText is changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from maxtext.checkpoint_conversion.standalone_scripts import llama_or_mistral_ckpt as converter

MAIN_GUARD = 'if __name__ == "__main__":'


def main() -> None:
    name, entry = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    args = sys.argv[sys.argv.index("--") + 1 :]
    converter.MODEL_PARAMS_DICT[name] = entry
    source = Path(converter.__file__).read_text()
    block = source[source.index(MAIN_GUARD) :]
    sys.argv = [converter.__file__, *args]
    namespace = vars(converter)
    namespace["__name__"] = "__main__"
    exec(compile(block, converter.__file__, "exec"), namespace)


if __name__ == "__main__":
    main()
