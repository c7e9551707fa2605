"""Pieces of the cluster harness and local node that need no cluster: variable expansion, service-address
matching, the polling helper, and the harness's refusal to wipe a directory it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.harness import ClusterError, LocalCluster
from localcluster.pod_env import SERVICE_ADDRESS, empty_dir_mounts, expand, remap_mounts
from localcluster.wait import WaitTimeout, wait_for


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("--target=$(HOST):9000", "--target=llama:9000"),
        ("$(UNDEFINED) stays", "$(UNDEFINED) stays"),
        ("$$(HOST) is escaped", "$(HOST) is escaped"),
        ("cost $$5", "cost $5"),
        ("no references", "no references"),
    ],
)
def test_kubernetes_variable_expansion(value: str, expected: str) -> None:
    assert expand(value, {"HOST": "llama"}) == expected


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("llama.team-a.svc.cluster.local:9000", ("llama", "team-a", "9000")),
        ("--target=llama.team-a.svc:9000", ("llama", "team-a", "9000")),
        ("http://llama.team-a.svc.cluster.local:8000/generate", ("llama", "team-a", "8000")),
        ("llama:9000", None),
        ("llama.team-a:9000", None),
    ],
)
def test_service_address_pattern(text: str, found: tuple[str, str, str] | None) -> None:
    match = SERVICE_ADDRESS.search(text)
    assert (None if match is None else (match["svc"], match["ns"], match["port"])) == found


def test_wait_for_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "done"])

    assert wait_for(lambda: next(answers), timeout=5, interval=0.01) == "done"


def test_wait_for_times_out_with_the_description_and_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the pod Ready \(last value: \[\]\)"):
        wait_for(lambda: [], timeout=0.05, interval=0.01, description="the pod Ready")


def test_wait_for_propagates_predicate_errors() -> None:
    def broken() -> bool:
        raise KeyError("status")

    with pytest.raises(KeyError):
        wait_for(broken, timeout=5)


def test_harness_refuses_to_wipe_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(ClusterError, match="not made by this harness"):
        LocalCluster(tmp_path, bin_dir=tmp_path).start()

    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_empty_dirs_become_directories_of_the_pod(tmp_path: Path) -> None:
    pod = {"spec": {"volumes": [{"name": "work", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}]}}
    container = {
        "volumeMounts": [{"name": "work", "mountPath": "/var/tmp/work/"}, {"name": "conf", "mountPath": "/etc/c"}]
    }

    mounts = empty_dir_mounts(pod, container, tmp_path)

    assert mounts == {"/var/tmp/work": tmp_path / "work"}
    assert (tmp_path / "work").is_dir()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/var/tmp/work", "{d}"),
        ("/var/tmp/work/a/b", "{d}/a/b"),
        ("--work-dir=/var/tmp/work", "--work-dir={d}"),
        ("a:/var/tmp/work/x,/var/tmp/work", "a:{d}/x,{d}"),
        ("/var/tmp/workers", "/var/tmp/workers"),
        ("/srv/var/tmp/work", "/srv/var/tmp/work"),
    ],
)
def test_paths_under_an_empty_dir_point_at_the_pod_directory(value: str, expected: str, tmp_path: Path) -> None:
    directory = tmp_path / "work"

    assert remap_mounts(value, {"/var/tmp/work": directory}) == expected.format(d=directory)
