"""Generators of the chart's copies (CRDs, dashboards) and manifests/install.yaml: `make crds`."""
