//! Nothing to build: this crate holds the runtime end-to-end tests,
//! containerd's CRI plugin (`tests/containerd.rs`) and Podman
//! (`tests/podman.rs`), kept apart so that the CRI test's gRPC client stays
//! out of the plugins' dependency tree.
