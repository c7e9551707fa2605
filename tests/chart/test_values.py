"""values.yaml is the chart's documentation and every value in it is used.

"Used" is checked by effect, not by grep: each leaf value is changed (one at a time) and the rendered chart must
change. Values that only matter together with others (an interval behind `enabled`) are tried on a base where
everything is switched on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tpuserve_dev.chart.tools import CHART, render

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# Bases the mutations are rendered on; a value is used if changing it changes the output on at least one.
ALL_ON = {
    "metrics.serviceMonitor.enabled": True,
    "metrics.podMonitoring.enabled": True,
    "workloads.monitoring.podMonitoring": True,
    "workloads.monitoring.serviceMonitor": True,
    "admissionPolicy.enabled": True,
}
BASES: dict[str, dict[str, Any]] = {
    "default": {},
    "all-on": ALL_ON,
    "all-on-namespaced": {**ALL_ON, "scope": "namespaced"},
    # serviceAccount.create=false needs a name.
    "named-service-account": {"serviceAccount.name": "existing"},
}

# Changed values for leaves whose generic change (flip, +1, append "x", one example entry) is not a valid value.
MUTATIONS: dict[str, Any] = {
    "scope": "namespaced",
    "watchNamespaces": ["llm-bench"],
    "image.digest": "sha256:" + "0" * 64,
    "image.pullPolicy": "Always",
    "imagePullSecrets": [{"name": "mirror"}],
    "serviceAccount.gcpServiceAccount": "op@p.iam.gserviceaccount.com",
    "workloads.serviceAccount.namespaces": ["team-a"],
    "workloads.serviceAccount.gcpServiceAccount": "wl@p.iam.gserviceaccount.com",
    "workloads.imagePullPolicy": "Always",
    "workloads.benchmark.tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "workloads.jobTTLSecondsAfterFinished": 3600,
    "gcs.project": "my-project",
    "admissionPolicy.allowedImages": ["europe-docker.pkg.dev/my-project/mirror/"],
    "admissionPolicy.allowedServiceAccounts": ["llama-gcs"],
    "admissionPolicy.namespaceSelector": {"matchLabels": {"team": "ml"}},
    "admissionPolicy.validationActions": ["Warn", "Audit"],
    "operator.logFormat": "json",
    "operator.extraArgs": ["--verbose"],
    "operator.extraEnv": [{"name": "TPUSERVE_EXAMPLE", "value": "1"}],
    "metrics.serviceMonitor.interval": "15s",
    "metrics.podMonitoring.interval": "15s",
    "dashboards.namespace": "monitoring",
    "resources.requests.cpu": "200m",
    "resources.requests.memory": "300Mi",
    "resources.limits.memory": "1Gi",
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {}},
    "priorityClassName": "system-cluster-critical",
}


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted paths of every leaf: scalars, lists, and empty maps (non-empty maps are walked into)."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, node


def mutate(path: str, value: Any) -> Any:
    if path in MUTATIONS:
        return MUTATIONS[path]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2
    if isinstance(value, str):
        return value + "x" if value else "x"
    if isinstance(value, dict):
        return {"example.com/key": "value"}
    raise AssertionError(f"no mutation for {path}={value!r}: add one to MUTATIONS")


LEAVES = list(leaves(VALUES))


def test_values_tree_has_leaves() -> None:
    assert len(LEAVES) > 40


@pytest.mark.parametrize(("path", "value"), LEAVES, ids=[p for p, _ in LEAVES])
def test_every_value_changes_the_rendered_chart(path: str, value: Any) -> None:
    changed = mutate(path, value)
    errors = []
    for name, base in BASES.items():
        before = render(base)
        after = render({**base, path: changed}, check=False)
        if after.returncode != 0:
            errors.append(f"{name}: {after.stderr.strip()}")
            continue
        if after.stdout != before.stdout:
            return
    pytest.fail(f"changing {path} from {value!r} to {changed!r} changed nothing in the rendered chart {errors}")


def test_every_value_is_documented_with_an_example() -> None:
    """Each key in values.yaml is preceded by a comment block with a description and an `Example:` line."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w]*):", line)
        if not m or line.lstrip().startswith("#"):
            continue
        block: list[str] = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            block.append(lines[j])
            j -= 1
        value_part = line.split(":", 1)[1].strip()
        is_section = value_part == ""
        if not block:
            missing.append(f"line {i + 1}: {m.group(2)} has no comment")
        elif not is_section and not any("Example:" in b for b in block):
            missing.append(f"line {i + 1}: {m.group(2)} has no Example")
    # Entries inside a documented map (resources.requests.cpu, dashboards.labels.grafana_dashboard) are part of
    # their parent's example.
    allowed = {"requests", "limits", "cpu", "memory", "grafana_dashboard", "v4", "v5e", "v5p", "v6e"}
    missing = [m for m in missing if m.split(": ")[1].split(" ")[0] not in allowed]
    assert not missing, "\n".join(missing)


def test_schema_covers_exactly_the_values() -> None:
    """values.schema.json names every key of values.yaml and nothing else (besides Helm's `global`)."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())

    def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
        paths: set[str] = set()
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            if "$ref" not in sub:
                paths |= schema_paths(sub, path)
        return paths

    def value_paths(node: Any, prefix: str = "") -> set[str]:
        paths: set[str] = set()
        if isinstance(node, dict):
            for key, sub in node.items():
                path = f"{prefix}.{key}" if prefix else key
                paths.add(path)
                paths |= value_paths(sub, path)
        return paths

    in_schema = schema_paths(schema) - {"global"}
    # Free-form maps (resources.requests.*, labels) are validated by additionalProperties, not named.
    in_values = {
        p for p in value_paths(VALUES) if not re.match(r"^(resources\.(requests|limits)\.|dashboards\.labels\.)", p)
    }
    assert in_values == in_schema


# Values an example needs beside it to make sense (the schema and templates reject it alone, on purpose).
EXAMPLE_COMPANIONS: dict[str, dict[str, Any]] = {
    "watchNamespaces": {"scope": "namespaced"},
    "serviceAccount.create": {"serviceAccount.name": "existing"},
}


def documented_examples() -> list[tuple[str, Any]]:
    """(dotted key, value) of every `# Example: key: value` line in values.yaml, keyed by the line it documents."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    examples: list[tuple[str, Any]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing sections
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# Example:"):
            pending.append(stripped.removeprefix("# Example:").strip())
            continue
        m = re.match(r"^(\s*)([A-Za-z_]\w*):", line)
        if not m or stripped.startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m.group(2)])
        for example in pending:
            parsed = yaml.safe_load(example)
            assert isinstance(parsed, dict), f"{path}: bad example {example!r}"
            assert list(parsed) == [m.group(2)], f"{path}: bad example {example!r}"
            examples.append((path, parsed[m.group(2)]))
        pending = []
        stack.append((indent, m.group(2)))
    return examples


EXAMPLES = documented_examples()


def test_examples_found() -> None:
    assert len(EXAMPLES) >= len(LEAVES) - 5


@pytest.mark.parametrize(("path", "value"), EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_every_documented_example_is_a_valid_value(path: str, value: Any) -> None:
    """Copying an example from values.yaml gives a chart that renders (schema and templates accept it)."""
    result = render({**EXAMPLE_COMPANIONS.get(path, {}), path: value}, check=False)
    assert result.returncode == 0, f"{path}={value!r}: {result.stderr}"
