//! The container's side of an attachment: its netns and its link, and
//! the undo of a link made there.

use crate::error::Context;
use crate::undo::Undo;
use rcni_net::{Handle, NetNs};
use rcni_skel::CmdArgs;
use rcni_spec::CniError;

/// Opens the container netns; `Ok(None)` when the path is empty or no
/// longer exists (DEL must then succeed), an error for anything else.
pub fn open_netns(path: &str) -> Result<Option<NetNs>, CniError> {
    if path.is_empty() {
        return Ok(None);
    }
    match NetNs::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e).context(format!("failed to open netns {path:?}")),
    }
}

/// Opens the container netns, which ADD and CHECK need.
pub fn require_netns(args: &CmdArgs) -> Result<NetNs, CniError> {
    open_netns(&args.netns)?.ok_or_else(|| fail!("failed to open netns {:?}", args.netns))
}

/// A netlink handle in the container.
pub fn handle_in(ns: &NetNs) -> Result<Handle, CniError> {
    Handle::new_in(ns).context("open netlink in the container")
}

/// Deletes `ifname` inside the netns at `netns` (the container end of a
/// pair takes the host end with it). A netns or link that is already gone
/// is success: DEL must be idempotent.
pub fn delete_link(netns: &str, ifname: &str) -> Result<(), CniError> {
    let Some(ns) = open_netns(netns)? else {
        return Ok(());
    };
    let mut ctr = handle_in(&ns)?;
    let Some(link) = ctr
        .link_by_name(ifname)
        .context("look up the container link")?
    else {
        return Ok(());
    };
    match ctr.delete_link(link.index) {
        Err(e) if !e.is_not_found() => Err(e).context(format!("failed to delete {ifname:?}")),
        _ => Ok(()),
    }
}

/// The undo of a link made in the container as `CNI_IFNAME`.
pub fn undo_link(args: &CmdArgs) -> Undo<impl FnOnce() + '_> {
    Undo::new(move || {
        let _ = delete_link(&args.netns, &args.ifname);
    })
}
