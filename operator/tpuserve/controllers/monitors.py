"""The scrape-config kinds an InferenceServer may create, with their API group/version and plural: the one table
the renderers (templates get `api_version` from here), the child API (kube.child_api) and the server controller
(discovery before creating) share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitorKind:
    kind: str
    group: str
    version: str
    plural: str

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}"


POD_MONITORING = MonitorKind("PodMonitoring", "monitoring.googleapis.com", "v1", "podmonitorings")  # Google Managed
SERVICE_MONITOR = MonitorKind("ServiceMonitor", "monitoring.coreos.com", "v1", "servicemonitors")  # Prometheus Operator
BY_KIND = {monitor.kind: monitor for monitor in (POD_MONITORING, SERVICE_MONITOR)}
