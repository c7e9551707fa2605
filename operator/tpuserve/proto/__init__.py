"""tpuserve's own JetStream gRPC protocol (jetstream.proto) and the modules grpcio-tools generates from it."""
