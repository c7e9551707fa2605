"""Value sets the chart tests render: the defaults and non-default installs users will run."""

from __future__ import annotations

from typing import Any

from tpuserve import images

# name -> dotted-key overrides (helm --set-json)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {
        "scope": "namespaced",
        "watchNamespaces": ["llm-bench", "llm-prod"],
        "workloads.serviceAccount.gcpServiceAccount": "llama-gcs@my-project.iam.gserviceaccount.com",
    },
    "monitors-and-workload-identity": {
        "serviceAccount.gcpServiceAccount": "tpuserve-operator@my-project.iam.gserviceaccount.com",
        "workloads.serviceAccount.gcpServiceAccount": "llama-gcs@my-project.iam.gserviceaccount.com",
        "workloads.serviceAccount.namespaces": ["team-a"],
        "workloads.monitoring.podMonitoring": True,
        "workloads.monitoring.serviceMonitor": True,
        "metrics.serviceMonitor.enabled": True,
        "metrics.serviceMonitor.labels": {"release": "kube-prometheus-stack"},
        "metrics.podMonitoring.enabled": True,
        "dashboards.namespace": "monitoring",
        "dashboards.annotations": {"grafana_folder": "TPU"},
    },
    "customized": {
        "fullnameOverride": "tpu-op",
        "image.digest": "sha256:" + "ab" * 32,
        "imagePullSecrets": [{"name": "mirror"}],
        "serviceAccount.create": False,
        "serviceAccount.name": "existing-operator-sa",
        "workloads.serviceAccount.create": False,
        "workloads.images.server": "europe-docker.pkg.dev/p/mirror/maxengine-server:v0.2.2",
        "tpuPrices.v5e": 0.84,
        "workloads.jobTTLSecondsAfterFinished": 86400,
        "gcs.project": "my-project",
        "operator.extraArgs": ["--verbose"],
        "operator.extraEnv": [{"name": "TPUSERVE_EXAMPLE", "value": "1"}],
        "metrics.port": 9191,
        "metrics.service.enabled": False,
        "dashboards.enabled": False,
        "nodeSelector": {"cloud.google.com/gke-nodepool": "default-pool"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "ml"},
        "workloads.server.privileged": True,
        "admissionPolicy.enabled": True,
        "admissionPolicy.allowedImages": ["europe-docker.pkg.dev/p/mirror/", images.BENCH_IMAGE],
        "admissionPolicy.allowedServiceAccounts": ["llama-gcs"],
        "admissionPolicy.namespaceSelector": {"matchLabels": {"team": "ml"}},
    },
}
