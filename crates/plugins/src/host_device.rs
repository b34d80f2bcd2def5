//! `host-device`: moves an existing host interface into the container as
//! `CNI_IFNAME`. The move goes through a temporary namespace, where the
//! device is renamed out of sight of udev and NetworkManager and its
//! host name is kept in the link alias; DEL takes the same way back and
//! restores the name. Devices bound to a userspace (DPDK) driver are not
//! moved at all.

use crate::container::{handle_in, open_netns};
use crate::container_link::{self as cl, Addressing};
use crate::error::{Context, Teardown};
use crate::ipam::forward_if_any;
use crate::mac::parse_mac;
use crate::undo::Undo;
use rcni_net::{Handle, Link, NetNs};
use rcni_skel::{CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, Interface};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub struct HostDevice;

const SYS_BUS_PCI: &str = "/sys/bus/pci/devices";
const SYS_BUS_AUXILIARY: &str = "/sys/bus/auxiliary/devices";
/// Drivers that hand the device to userspace (DPDK): such a device has no
/// kernel interface to move.
const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

#[derive(Deserialize, Default)]
struct HostDeviceConf {
    #[serde(default)]
    device: String,
    #[serde(default)]
    hwaddr: String,
    #[serde(default)]
    kernelpath: String,
    #[serde(rename = "pciBusID", default)]
    pci_bus_id: String,
}

/// How the device is chosen: exactly one way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Mac([u8; 6]),
    KernelPath(PathBuf),
    Pci(String),
    Auxiliary(String),
}

/// The selector of a config: `runtimeConfig.deviceID` (a PCI or auxiliary
/// bus device) wins; otherwise exactly one of `device`, `hwaddr`,
/// `kernelpath`, `pciBusID`.
fn selector(
    conf: &PluginConf,
    own: &HostDeviceConf,
    sys_bus: [&Path; 2],
) -> Result<Selector, CniError> {
    if let Some(id) = conf
        .runtime("deviceID")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty())
    {
        let [pci, aux] = sys_bus;
        if is_pci_address(id) && pci.join(id).exists() {
            return Ok(Selector::Pci(id.to_string()));
        }
        if is_auxiliary_device_name(id) && aux.join(id).exists() {
            return Ok(Selector::Auxiliary(id.to_string()));
        }
        return Err(invalid!(
            "runtimeConfig.deviceID: {id} not found or unsupported"
        ));
    }
    let set: Vec<&str> = [
        ("device", &own.device),
        ("hwaddr", &own.hwaddr),
        ("kernelpath", &own.kernelpath),
        ("pciBusID", &own.pci_bus_id),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, _)| k)
    .collect();
    match set.as_slice() {
        [] => Err(CniError::invalid_config(
            r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#,
        )),
        ["device"] => Ok(Selector::Name(own.device.clone())),
        ["hwaddr"] => Ok(Selector::Mac(parse_mac(&own.hwaddr, "hwaddr")?)),
        ["kernelpath"] => {
            let path = PathBuf::from(&own.kernelpath);
            // Only plain names below /sys/devices: no `..` climbing out.
            let plain = path
                .components()
                .skip(1)
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !path.is_absolute() || !own.kernelpath.starts_with("/sys/devices/") || !plain {
                return Err(invalid!(
                    "kernelpath: kernel device path {:?} must be absolute and begin with /sys/devices/, without . or ..",
                    own.kernelpath
                ));
            }
            Ok(Selector::KernelPath(path))
        }
        ["pciBusID"] => {
            check_pci_bus_id(&own.pci_bus_id)?;
            Ok(Selector::Pci(own.pci_bus_id.clone()))
        }
        many => Err(invalid!(
            "{}: specify only one way to select the device",
            many.join(", ")
        )),
    }
}

/// A PCI address, `domain:bus:device.function` in hex (`0000:3b:00.1`),
/// so that it names one directory under /sys/bus/pci/devices.
fn is_pci_address(s: &str) -> bool {
    let hex = |part: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let mut parts = s.splitn(3, ':');
    let (Some(domain), Some(bus), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Some((device, function)) = rest.split_once('.') else {
        return false;
    };
    hex(domain, 4..=8)
        && hex(bus, 2..=2)
        && hex(device, 2..=2)
        && function.len() == 1
        && matches!(function.as_bytes()[0], b'0'..=b'7')
}

/// An auxiliary bus device name (`mlx5_core.sf.4`): one plain directory
/// name under /sys/bus/auxiliary/devices.
fn is_auxiliary_device_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_pci_bus_id(id: &str) -> Result<(), CniError> {
    if is_pci_address(id) {
        return Ok(());
    }
    Err(invalid!(
        "pciBusID: {id:?} is not a PCI address (domain:bus:device.function, e.g. 0000:3b:00.1)"
    ))
}

/// Whether a PCI device is bound to a userspace driver.
fn has_userspace_driver(pci_root: &Path, pci: &str) -> bool {
    std::fs::read_link(pci_root.join(pci).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|driver| USERSPACE_DRIVERS.contains(&driver.as_str()))
}

/// The first interface name under a sysfs `net` directory.
fn name_under(dir: &Path, field: &str) -> Result<String, CniError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .invalid_context(format!(
            "{field}: failed to read directory {}",
            dir.display()
        ))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next().ok_or_else(|| {
        invalid!(
            "{field}: failed to find network device in path {}",
            dir.display()
        )
    })
}

/// The `net` directory of a PCI device (virtio devices keep it one level
/// down).
fn pci_net_dir(pci_root: &Path, pci: &str) -> Result<PathBuf, CniError> {
    let dev = pci_root.join(pci);
    let direct = dev.join("net");
    if direct.is_dir() {
        return Ok(direct);
    }
    let virtio = std::fs::read_dir(&dev)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("virtio"))
        })
        .map(|p| p.join("net"))
        .find(|p| p.is_dir());
    virtio.ok_or_else(|| invalid!("pciBusID: no net directory under pci device {pci}"))
}

/// Finds the host link a selector names.
fn find_device(host: &mut Handle, sel: &Selector, sys_bus: [&Path; 2]) -> Result<Link, CniError> {
    let (name, field) = match sel {
        Selector::Name(n) => (n.clone(), "device"),
        Selector::Mac(mac) => {
            let links = host.links().context("list links")?;
            return links
                .into_iter()
                .find(|l| l.mac6() == Some(*mac))
                .ok_or_else(|| {
                    invalid!(
                        "hwaddr: no link with MAC address {}",
                        rcni_net::format_mac(mac)
                    )
                });
        }
        Selector::KernelPath(p) => (name_under(&p.join("net"), "kernelpath")?, "kernelpath"),
        Selector::Pci(pci) => (
            name_under(&pci_net_dir(sys_bus[0], pci)?, "pciBusID")?,
            "pciBusID",
        ),
        Selector::Auxiliary(aux) => (
            name_under(&sys_bus[1].join(aux).join("net"), "runtimeConfig.deviceID")?,
            "runtimeConfig.deviceID",
        ),
    };
    host.link_by_name(&name)
        .context("look up the host device")?
        .ok_or_else(|| invalid!("{field}: failed to find host device {name:?}"))
}

/// Refuses devices that something else on the host depends on.
fn ensure_free(link: &Link) -> Result<(), CniError> {
    if link.name == "lo" {
        return Err(CniError::invalid_config(
            "device: the loopback device cannot be moved",
        ));
    }
    if let Some(master) = link.master {
        return Err(invalid!(
            "device: {:?} is in use: it is a port of link {master}",
            link.name
        ));
    }
    Ok(())
}

/// Moves `dev` from the host into the container as `ifname`, up, with its
/// host name as alias. On failure the device is back in the host under its
/// name, up if it was.
fn move_in(host: &mut Handle, dev: &Link, ctr_ns: &NetNs, ifname: &str) -> Result<Link, CniError> {
    let host_ns = NetNs::current().context("open the host netns")?;
    let temp_ns = NetNs::new_anonymous().context("failed to create tempNS")?;
    let name = dev.name.as_str();
    host.set_netns(dev.index, &temp_ns)
        .context(format!("failed to move {name:?} to tempNS"))?;
    // Whatever name it has by then in tempNS, a device that does not make
    // it into the container goes home as `name`, up if it was.
    let home = Undo::new(|| {
        if let Ok(mut temp) = Handle::new_in(&temp_ns) {
            for now in [ifname, name] {
                if let Ok(Some(l)) = temp.link_by_name(now) {
                    let _ = temp.set_name(l.index, name);
                    let _ = temp.set_alias(l.index, "");
                    let _ = temp.set_netns(l.index, &host_ns);
                }
            }
        }
        if dev.admin_up {
            if let Ok(mut host) = Handle::new() {
                if let Ok(Some(l)) = host.link_by_name(name) {
                    let _ = host.set_up(l.index);
                }
            }
        }
    });
    let mut temp = Handle::new_in(&temp_ns).context("open netlink in tempNS")?;
    let index = temp
        .find_link(name)
        .context(format!("failed to find {name:?} in tempNS"))?
        .index;
    temp.set_name(index, ifname).context(format!(
        "failed to rename host device {name:?} to {ifname:?}"
    ))?;
    temp.set_alias(index, name)
        .context(format!("failed to set alias to {name:?}"))?;
    temp.set_netns(index, ctr_ns).context(format!(
        "failed to move {ifname:?} (host: {name:?}) to container NS"
    ))?;
    let mut ctr = handle_in(ctr_ns)?;
    let link = ctr
        .find_link(ifname)
        .context(format!("failed to find {ifname:?} in container NS"))?;
    if let Err(e) = ctr.set_up(link.index) {
        let _ = ctr.set_netns(link.index, &temp_ns);
        return Err(e).context(format!("failed to set {ifname:?} up"));
    }
    home.keep();
    Ok(link)
}

/// Moves the container's `ifname` back to the host under the name in its
/// alias, left down. A link that is gone is success.
fn move_out(ctr_ns: &NetNs, ifname: &str) -> Result<(), CniError> {
    let mut ctr = handle_in(ctr_ns)?;
    let Some(link) = ctr
        .link_by_name(ifname)
        .context("look up the container device")?
    else {
        return Ok(());
    };
    let host_name = link
        .alias
        .clone()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| fail!("failed to find original ifname for {ifname:?} (alias is not set)"))?;
    let host_ns = NetNs::current().context("open the host netns")?;
    let temp_ns = NetNs::new_anonymous().context("failed to create tempNS")?;
    ctr.set_netns(link.index, &temp_ns)
        .context(format!("failed to move {ifname:?} to tempNS"))?;
    let mut temp = Handle::new_in(&temp_ns).context("open netlink in tempNS")?;
    let index = temp
        .find_link(ifname)
        .context(format!("failed to find {ifname:?} in tempNS"))?
        .index;
    // A device that does not make it home goes back into the container
    // as it was, so that a later DEL can try again.
    let to_container = Undo::new(|| {
        if let Ok(mut temp) = Handle::new_in(&temp_ns) {
            let _ = temp.set_name(index, ifname);
            let _ = temp.set_alias(index, &host_name);
            let _ = temp.set_netns(index, ctr_ns);
        }
    });
    temp.set_name(index, &host_name).context(format!(
        "failed to rename device {ifname:?} to {host_name:?}"
    ))?;
    temp.set_alias(index, "")
        .context(format!("failed to unset alias of {host_name:?}"))?;
    temp.set_netns(index, &host_ns)
        .context(format!("failed to move {host_name:?} to hostNS"))?;
    to_container.keep();
    Ok(())
}

struct Config {
    conf: PluginConf,
    selector: Selector,
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    let own: HostDeviceConf = conf.plugin_fields()?;
    let selector = selector(
        &conf,
        &own,
        [Path::new(SYS_BUS_PCI), Path::new(SYS_BUS_AUXILIARY)],
    )?;
    Ok(Config { conf, selector })
}

fn is_dpdk(sel: &Selector) -> bool {
    matches!(sel, Selector::Pci(pci) if has_userspace_driver(Path::new(SYS_BUS_PCI), pci))
}

/// host-device's keys, as `rcni help host-device` prints them: exactly
/// one selects the device, unless the runtime gives a `deviceID`.
pub const SCHEMA: Schema = Schema {
    about: "moves an existing host interface into the container (one of device, hwaddr, kernelpath, pciBusID selects it)",
    keys: &[
        Key { name: "device", ty: "string", default: "", meaning: "the interface's name on the host" },
        Key { name: "hwaddr", ty: "string", default: "", meaning: "the interface's MAC address" },
        Key { name: "kernelpath", ty: "string", default: "", meaning: "the device's path under /sys/devices/" },
        Key { name: "pciBusID", ty: "string", default: "", meaning: "the device's PCI address (0000:3b:00.1)" },
    ],
    capabilities: &["deviceID"],
    example: r#"{"cniVersion": "1.0.0", "name": "passthrough", "type": "host-device", "device": "enp3s0f1",
  "ipam": {"type": "static", "addresses": [{"address": "10.5.0.2/24"}]}}"#,
    check: |conf| {
        let own: HostDeviceConf = conf.plugin_fields()?;
        if conf.runtime("deviceID").is_some() {
            // A runtime's device is looked up under /sys at ADD.
            return Ok(());
        }
        selector(conf, &own, [Path::new(SYS_BUS_PCI), Path::new(SYS_BUS_AUXILIARY)]).map(drop)
    },
};

impl Plugin for HostDevice {
    fn name(&self) -> &str {
        "host-device"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?;
        let ns = crate::container::require_netns(args)?;
        let addressing = Addressing::from_conf(&cfg.conf, Addressing::None);
        if is_dpdk(&cfg.selector) {
            // Nothing to move: report the name and hand out the address.
            let iface = Interface {
                name: args.ifname.clone(),
                sandbox: args.netns.clone(),
                ..Interface::default()
            };
            return cl::configure(&cfg.conf, args, None, iface, addressing, false);
        }
        let mut host = Handle::new().context("open netlink")?;
        let dev = find_device(
            &mut host,
            &cfg.selector,
            [Path::new(SYS_BUS_PCI), Path::new(SYS_BUS_AUXILIARY)],
        )?;
        ensure_free(&dev)?;
        let moved = move_in(&mut host, &dev, &ns, &args.ifname)?;
        let iface = Interface {
            name: args.ifname.clone(),
            mac: moved.mac_string(),
            sandbox: args.netns.clone(),
            ..Interface::default()
        };
        // Leaving a namespace drops the device's addresses and routes.
        let back = Undo::new(|| {
            let _ = move_out(&ns, &args.ifname);
        });
        let result = cl::configure(&cfg.conf, args, Some(&ns), iface, addressing, false)?;
        back.keep();
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let own: HostDeviceConf = conf.plugin_fields()?;
        if !own.pci_bus_id.is_empty() {
            check_pci_bus_id(&own.pci_bus_id)?;
        }
        let mut teardown = Teardown::new("host-device");
        let dpdk = !own.pci_bus_id.is_empty()
            && has_userspace_driver(Path::new(SYS_BUS_PCI), &own.pci_bus_id);
        if !dpdk {
            teardown.step(open_netns(&args.netns).and_then(|ns| match ns {
                Some(ns) => move_out(&ns, &args.ifname),
                None => Ok(()),
            }));
        }
        // The address is released even when the netns is gone (the
        // reference skips IPAM then and leaks it).
        teardown.step(forward_if_any(Command::Del, &conf, args));
        teardown.finish()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        if is_dpdk(&cfg.selector) {
            return Ok(());
        }
        cl::check("host-device", &cfg.conf, args, None, |_| Ok(()))
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::status(&args.conf()?, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<HostDeviceConf>(), Vec::<String>::new());
    }
    use serde_json::json;

    fn conf(v: serde_json::Value) -> (PluginConf, HostDeviceConf) {
        let conf = PluginConf::from_value(v).unwrap();
        let own = conf.plugin_fields().unwrap();
        (conf, own)
    }

    #[test]
    fn one_selector_is_required_and_device_id_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (pci, aux) = (dir.path().join("pci"), dir.path().join("aux"));
        std::fs::create_dir_all(pci.join("0000:00:05.0/net/ens5")).unwrap();
        std::fs::create_dir_all(aux.join("mlx5_core.sf.4/net/enp1")).unwrap();
        let roots = [pci.as_path(), aux.as_path()];
        let base = json!({"cniVersion": "1.0.0", "name": "n", "type": "host-device"});
        let (c, o) = conf(base.clone());
        assert!(selector(&c, &o, roots)
            .unwrap_err()
            .msg
            .contains("specify either"));
        let mut two = base.clone();
        two["device"] = json!("eth1");
        two["hwaddr"] = json!("02:00:00:00:00:01");
        let (c, o) = conf(two.clone());
        let e = selector(&c, &o, roots).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("device, hwaddr"), "{}", e.msg);
        two["runtimeConfig"] = json!({"deviceID": "0000:00:05.0"});
        let (c, o) = conf(two.clone());
        assert_eq!(
            selector(&c, &o, roots).unwrap(),
            Selector::Pci("0000:00:05.0".into())
        );
        two["runtimeConfig"] = json!({"deviceID": "mlx5_core.sf.4"});
        let (c, o) = conf(two.clone());
        assert_eq!(
            selector(&c, &o, roots).unwrap(),
            Selector::Auxiliary("mlx5_core.sf.4".into())
        );
        two["runtimeConfig"] = json!({"deviceID": "0000:99:00.0"});
        let (c, o) = conf(two);
        assert!(selector(&c, &o, roots)
            .unwrap_err()
            .msg
            .starts_with("runtimeConfig.deviceID"));
        let mut kp = base;
        kp["kernelpath"] = json!("devices/x");
        let (c, o) = conf(kp);
        assert!(selector(&c, &o, roots)
            .unwrap_err()
            .msg
            .starts_with("kernelpath"));
    }

    #[test]
    fn device_addresses_are_validated() {
        for good in ["0000:00:05.0", "0000:3b:00.7", "10000:e1:1f.3"] {
            assert!(is_pci_address(good), "{good}");
        }
        for bad in [
            "../../x",
            "0000:00:05.0/../..",
            "0000:00:05",
            "0000:00:05.8",
            "00:00:05.0",
            "0000:000:05.0",
            "",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
        assert!(is_auxiliary_device_name("mlx5_core.sf.4"));
        for bad in ["..", ".", "a/b", "../mlx5", ""] {
            assert!(!is_auxiliary_device_name(bad), "{bad}");
        }
    }

    #[test]
    fn sysfs_lookups_and_userspace_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let pci = dir.path();
        std::fs::create_dir_all(pci.join("0000:00:05.0/net/ens5")).unwrap();
        std::fs::create_dir_all(pci.join("0000:00:06.0/virtio3/net/eth9")).unwrap();
        std::fs::create_dir_all(pci.join("0000:00:07.0")).unwrap();
        let dir5 = pci_net_dir(pci, "0000:00:05.0").unwrap();
        assert_eq!(name_under(&dir5, "pciBusID").unwrap(), "ens5");
        let dir6 = pci_net_dir(pci, "0000:00:06.0").unwrap();
        assert_eq!(name_under(&dir6, "pciBusID").unwrap(), "eth9");
        assert!(pci_net_dir(pci, "0000:00:07.0")
            .unwrap_err()
            .msg
            .starts_with("pciBusID"));
        std::fs::create_dir_all(dir.path().join("drivers/vfio-pci")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("drivers/vfio-pci"),
            pci.join("0000:00:07.0/driver"),
        )
        .unwrap();
        assert!(has_userspace_driver(pci, "0000:00:07.0"));
        assert!(!has_userspace_driver(pci, "0000:00:05.0"));
    }
}
