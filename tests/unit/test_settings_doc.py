"""docs/operator.md's Settings table lists every operator setting, and only those (the table is written by hand)."""

from __future__ import annotations

import re

from tpuserve.settings import OperatorSettings
from tpuserve_dev import REPO


def test_the_settings_table_lists_every_setting_and_only_those() -> None:
    page = (REPO / "docs" / "operator.md").read_text()
    table = page.split("## Settings (environment", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(TPUSERVE_[A-Z0-9_]+)` \|", table, re.M))
    assert documented == {f"TPUSERVE_{name.upper()}" for name in OperatorSettings.model_fields}
