//! `ipMasq` of bridge and ptp: the backend a config chooses and the undo
//! of the rules an ADD set up.

use crate::error::Context;
use crate::undo::Undo;
use rcni_netfilter::masq;
use rcni_skel::CmdArgs;
use rcni_spec::schema::Key;
use rcni_spec::CniError;

/// The `ipMasq` key of bridge and ptp, for their schemas.
pub const IP_MASQ_KEY: Key = Key {
    name: "ipMasq",
    ty: "bool",
    default: "false",
    meaning: "masquerade the container's traffic leaving its subnet",
};

/// The `ipMasqBackend` key, read by [`backend`].
pub const IP_MASQ_BACKEND_KEY: Key = Key {
    name: "ipMasqBackend",
    ty: "string",
    default: "iptables, or nftables when only nft works",
    meaning: "firewall for ipMasq: iptables or nftables",
};

/// The firewall backend for `ipMasq`: the configured one (which must be
/// installed) or the reference's default.
pub fn backend(configured: Option<&str>) -> Result<rcni_netfilter::Backend, CniError> {
    let backend = rcni_netfilter::Backend::choose(configured, "ipMasqBackend").cni()?;
    backend
        .ensure_available()
        .invalid_context("ipMasqBackend")?;
    Ok(backend)
}

/// The owner of an attachment's rules in `network`.
pub fn owner<'a>(network: &'a str, args: &'a CmdArgs) -> masq::Owner<'a> {
    masq::Owner {
        network,
        ifname: &args.ifname,
        container_id: &args.container_id,
    }
}

/// The undo of [`masq::setup`] (made before the setup, so a setup that
/// fails half-way is undone too).
pub fn undo_rules<'a>(owner: &'a masq::Owner<'a>) -> Undo<impl FnOnce() + 'a> {
    Undo::new(move || {
        let _ = masq::teardown(owner);
    })
}
