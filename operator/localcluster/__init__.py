"""A local Kubernetes cluster from real control-plane binaries (etcd, kube-apiserver, controller-manager,
scheduler) with kwok-simulated node pools and one node whose pods run as local processes.

It knows nothing of tpuserve: a `ClusterConfig` says which node pools to simulate and which images the local node
may run (tpuserve_dev.cluster holds the project's configuration)."""
