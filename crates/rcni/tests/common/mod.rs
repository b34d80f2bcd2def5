//! The integration-test harness: the shared test kit (`rcni-testkit`),
//! which runs the built `rcni` binary exactly as a runtime does (env +
//! stdin), as root, inside throwaway network namespaces, with data in temp
//! dirs. Nothing here touches the machine's own interfaces, routes or
//! firewall.

#![allow(dead_code, unused_imports)]

pub use rcni_testkit::*;
