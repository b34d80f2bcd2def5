//! Nothing to build: this crate holds the containerd CRI end-to-end test
//! (`tests/containerd.rs`), kept apart so that its gRPC client stays out of
//! the plugins' dependency tree.
