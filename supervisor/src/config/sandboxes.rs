//! Program network keys → [`ProgramNet`]: sandbox grouping, static and
//! allocated addresses, port mappings and host port conflicts.
//!
//! Programs naming the same `sandbox` share one namespace: they must be on
//! the same network, share its address, and every member's ports are mapped
//! (each member's [`SandboxSpec`] is identical). Address allocation is stable
//! for a given config: sandboxes are visited in name order and take the
//! lowest usable address of their network that is neither the gateway nor
//! any static address.

use super::ProgramName;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use super::error::Diag;
use super::networks::{check_host, parse_ipv4, Networks};
use super::program::{Instance, Located};
use super::raw::Loc;
use super::suggest::did_you_mean;
use super::units::{self, Conv};
use super::{NetworkConfig, PortMapping, PortMode, ProgramNet, Protocol, SandboxSpec};

/// One program's request for a sandbox.
struct Member<'a> {
    program: &'a str,
    network: &'a Located,
    address: Option<(Ipv4Addr, Loc)>,
    ports: Vec<(PortMapping, Loc)>,
    explicit: bool,
    loc: Loc,
}

/// Sets `config.net` of every instance, reporting every network problem.
pub(super) fn resolve(
    diag: &mut Diag,
    networks: &Networks,
    instances: &mut BTreeMap<ProgramName, Instance>,
) {
    let mut sandboxes: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for (name, inst) in instances.iter() {
        let keys = &inst.net;
        let Some(network) = &keys.network else {
            continue;
        };
        let Some(net) = networks.valid.get(&network.0) else {
            if !networks.defined.contains(&network.0) {
                let known: Vec<&str> = networks.defined.iter().map(String::as_str).collect();
                let msg = format!(
                    "network: unknown network \"{}\"{}",
                    network.0,
                    did_you_mean(&network.0, &known)
                );
                diag.error(network.1, Some(name), msg);
            }
            continue;
        };
        let address = keys.address.as_ref().and_then(|(a, loc)| {
            let checked = parse_ipv4(a).and_then(|ip| {
                check_host(&net.subnet, ip, &net.name)?;
                if ip == net.gateway {
                    return Err(format!("{ip} is the gateway of network \"{}\"", net.name));
                }
                Ok(ip)
            });
            report(diag, name, "address", *loc, checked).map(|ip| (ip, *loc))
        });
        let mode = match &keys.port_mode {
            None => PortMode::Proxy,
            Some((m, loc)) => {
                report(diag, name, "port_mode", *loc, parse_port_mode(m)).unwrap_or_default()
            }
        };
        let hold = keys.port_hold.map_or(super::DEFAULT_PORT_HOLD, |(d, _)| d);
        let ports = keys
            .ports
            .iter()
            .filter_map(|(p, loc)| {
                let mapping = parse_port(p)
                    .and_then(|m| with_mode(m, mode))
                    .map(|m| PortMapping { hold, ..m });
                report(diag, name, "ports", *loc, mapping).map(|m| (m, *loc))
            })
            .collect();
        let Some((sandbox, sandbox_loc)) = keys.sandbox.clone() else {
            continue;
        };
        if let Err(e) = units::check_name(&sandbox) {
            diag.error(sandbox_loc, Some(name), format!("sandbox: {e}"));
            continue;
        }
        sandboxes.entry(sandbox).or_default().push(Member {
            program: name,
            network,
            address,
            ports,
            explicit: sandbox_loc != inst.loc,
            loc: sandbox_loc,
        });
    }
    let specs = build_specs(diag, networks, &sandboxes);
    let placed: Vec<(String, SandboxSpec)> = sandboxes
        .iter()
        .filter_map(|(sandbox, members)| Some((members, specs.get(sandbox)?)))
        .flat_map(|(members, spec)| {
            members
                .iter()
                .map(|m| (m.program.to_string(), spec.clone()))
        })
        .collect();
    for (program, spec) in placed {
        if let Some(inst) = instances.get_mut(program.as_str()) {
            inst.config.net = Some(Box::new(ProgramNet::Sandbox(spec)));
        }
    }
    for inst in instances.values_mut() {
        if let Some((netns, _)) = &inst.net.netns {
            inst.config.net = Some(Box::new(ProgramNet::Join {
                netns: netns.clone(),
            }));
        }
    }
}

fn report<T>(diag: &mut Diag, program: &str, key: &str, loc: Loc, result: Conv<T>) -> Option<T> {
    result
        .map_err(|e| diag.error(loc, Some(program), format!("{key}: {e}")))
        .ok()
}

/// Checks sandbox membership, addresses and ports; allocates addresses.
fn build_specs(
    diag: &mut Diag,
    networks: &Networks,
    sandboxes: &BTreeMap<String, Vec<Member>>,
) -> BTreeMap<String, SandboxSpec> {
    // Per sandbox: network, and its static address if any.
    let mut placed: BTreeMap<&str, (&NetworkConfig, Option<Ipv4Addr>)> = BTreeMap::new();
    let mut statics: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for (sandbox, members) in sandboxes {
        let first = &members[0];
        let net = &networks.valid[&first.network.0];
        let mut address: Option<(Ipv4Addr, &str)> = None;
        let mut ok = true;
        if members.len() > 1 && members.iter().all(|m| !m.explicit) {
            let names: Vec<&str> = members.iter().map(|m| m.program).collect();
            let msg = format!(
                "sandbox: programs {} all get the sandbox name \"{sandbox}\" by default; set sandbox = \"...\" to share one on purpose, or rename",
                names.join(", ")
            );
            diag.error(members[1].loc, Some(members[1].program), msg);
            ok = false;
        }
        for m in members {
            if m.network.0 != first.network.0 {
                let msg = format!(
                    "network: sandbox \"{sandbox}\" is on network \"{}\" (program \"{}\"); programs sharing a sandbox must use the same network",
                    first.network.0, first.program
                );
                diag.error(m.network.1, Some(m.program), msg);
                ok = false;
            }
            if let Some((ip, loc)) = m.address {
                match address {
                    Some((other, who)) if other != ip => {
                        let msg = format!("address: sandbox \"{sandbox}\" already has address {other} (program \"{who}\"); programs sharing a sandbox share its address");
                        diag.error(loc, Some(m.program), msg);
                        ok = false;
                    }
                    Some(_) => {}
                    None => address = Some((ip, m.program)),
                }
            }
        }
        if let Some((ip, who)) = address {
            if let Some(other) = statics.get(&ip) {
                let loc = members
                    .iter()
                    .find(|m| m.program == who)
                    .and_then(|m| m.address)
                    .map_or(first.loc, |(_, l)| l);
                diag.error(
                    loc,
                    Some(who),
                    format!("address: {ip} is also the address of sandbox \"{other}\""),
                );
                ok = false;
            } else {
                statics.insert(ip, sandbox);
            }
        }
        if ok {
            placed.insert(sandbox, (net, address.map(|(ip, _)| ip)));
        }
    }
    check_ports(diag, sandboxes);

    let mut specs = BTreeMap::new();
    let mut taken: BTreeSet<Ipv4Addr> = statics.keys().copied().collect();
    for (sandbox, (net, address)) in placed {
        let address = match address {
            Some(ip) => ip,
            None => match allocate(net, &taken) {
                Some(ip) => ip,
                None => {
                    let m = &sandboxes[sandbox][0];
                    let msg = format!("network: no free address left in network \"{}\" ({}) for sandbox \"{sandbox}\"", net.name, net.subnet);
                    diag.error(m.network.1, Some(m.program), msg);
                    continue;
                }
            },
        };
        taken.insert(address);
        let ports = sandboxes[sandbox]
            .iter()
            .flat_map(|m| m.ports.iter().map(|(p, _)| p.clone()))
            .collect();
        specs.insert(
            sandbox.to_string(),
            SandboxSpec {
                sandbox: sandbox.to_string(),
                network: net.name.clone(),
                address,
                ports,
            },
        );
    }
    specs
}

/// Lowest usable address of `net` that is not the gateway and not taken.
fn allocate(net: &NetworkConfig, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    net.subnet
        .hosts()
        .find(|ip| *ip != net.gateway && !taken.contains(ip))
}

/// Every host (address, port, protocol) may be mapped once; 0.0.0.0 and
/// `::` overlap every address.
fn check_ports(diag: &mut Diag, sandboxes: &BTreeMap<String, Vec<Member>>) {
    let mut seen: Vec<(&PortMapping, &str)> = Vec::new();
    for members in sandboxes.values() {
        for m in members {
            for (p, loc) in &m.ports {
                let clash = seen.iter().find(|(q, _)| {
                    q.protocol == p.protocol
                        && q.host_port == p.host_port
                        && ips_overlap(q.host_ip, p.host_ip)
                });
                match clash {
                    Some((q, who)) => {
                        let proto = if p.protocol == Protocol::Udp {
                            "udp"
                        } else {
                            "tcp"
                        };
                        let msg = format!(
                            "ports: host port {}/{proto} is already mapped by program \"{who}\" ({})",
                            host_text(p), host_text(q)
                        );
                        diag.error(*loc, Some(m.program), msg);
                    }
                    None => seen.push((p, m.program)),
                }
            }
        }
    }
}

fn host_text(p: &PortMapping) -> String {
    match p.host_ip {
        IpAddr::V6(ip) => format!("[{ip}]:{}", p.host_port),
        IpAddr::V4(ip) => format!("{ip}:{}", p.host_port),
    }
}

/// `"[IP:]HOSTPORT:PORT[/tcp|/udp]"`, or `"PORT"` (same port on the host).
pub(super) fn parse_port(s: &str) -> Conv<PortMapping> {
    let bad = |why: &str| {
        format!("invalid port mapping \"{s}\": {why} (expected \"[IP:]HOSTPORT:PORT[/udp]\")")
    };
    let (spec, protocol) = match s.trim().rsplit_once('/') {
        Some((spec, proto)) => match proto.to_ascii_lowercase().as_str() {
            "tcp" => (spec, Protocol::Tcp),
            "udp" => (spec, Protocol::Udp),
            _ => return Err(bad(&format!("unknown protocol \"{proto}\""))),
        },
        None => (s.trim(), Protocol::Tcp),
    };
    let (host_ip, ports) = if let Some(rest) = spec.strip_prefix('[') {
        let (ip, rest) = rest.split_once("]:").ok_or_else(|| bad("unclosed \"[\""))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| bad(&format!("\"{ip}\" is not an IP address")))?;
        (Some(ip), rest)
    } else {
        match spec.matches(':').count() {
            0 | 1 => (None, spec),
            2 => {
                let (ip, rest) = spec.split_once(':').unwrap_or_default();
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| bad(&format!("\"{ip}\" is not an IP address")))?;
                (Some(ip), rest)
            }
            _ => return Err(bad("too many \":\" (write IPv6 host addresses as [::1])")),
        }
    };
    let port = |p: &str| -> Conv<u16> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(&format!("\"{p}\" is not a port from 1 to 65535"))),
            Ok(n) => Ok(n),
        }
    };
    let (host_port, inner) = match ports.split_once(':') {
        Some((h, p)) => (port(h)?, port(p)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    Ok(PortMapping {
        host_ip: host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        host_port,
        port: inner,
        protocol,
        mode: PortMode::Proxy,
        hold: super::DEFAULT_PORT_HOLD,
    })
}

/// `"proxy"` or `"nat"`.
fn parse_port_mode(s: &str) -> Conv<PortMode> {
    match s {
        "proxy" => Ok(PortMode::Proxy),
        "nat" => Ok(PortMode::Nat),
        _ => Err(format!(
            "\"{s}\" is not a port mode (expected \"proxy\" or \"nat\")"
        )),
    }
}

/// `mapping` forwarded in `mode`; the kernel mapping is IPv4 only.
fn with_mode(mapping: PortMapping, mode: PortMode) -> Conv<PortMapping> {
    if mode == PortMode::Nat && mapping.host_ip.is_ipv6() {
        return Err(format!(
            "{} is an IPv6 address; port_mode = \"nat\" maps IPv4 host addresses only",
            mapping.host_ip
        ));
    }
    Ok(PortMapping { mode, ..mapping })
}

/// Two host addresses that cannot both be bound to the same port.
fn ips_overlap(a: IpAddr, b: IpAddr) -> bool {
    let covers = |x: IpAddr, y: IpAddr| x.is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a == b || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forms() {
        let p = parse_port("8080").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.port, p.protocol),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080, 8080, Protocol::Tcp)
        );
        let p = parse_port("9090:8080").unwrap();
        assert_eq!((p.host_port, p.port), (9090, 8080));
        let p = parse_port("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.port,
                p.protocol
            ),
            ("127.0.0.1", 5353, 53, Protocol::Udp)
        );
        let p = parse_port("[::1]:8443:443/TCP").unwrap();
        assert_eq!(
            (p.host_ip.to_string().as_str(), p.host_port, p.port),
            ("::1", 8443, 443)
        );
        for bad in [
            "0",
            "70000",
            "a:80",
            "1.2.3:80:80",
            "80/sctp",
            "1:2:3:4",
            "[::1:80:80",
            "",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_modes() {
        assert_eq!(parse_port_mode("nat"), Ok(PortMode::Nat));
        assert_eq!(parse_port_mode("proxy"), Ok(PortMode::Proxy));
        assert!(parse_port_mode("kernel").is_err());
        let v6 = parse_port("[::1]:8443:443").unwrap();
        assert!(with_mode(v6.clone(), PortMode::Proxy).is_ok());
        assert_eq!(
            with_mode(v6, PortMode::Nat),
            Err("::1 is an IPv6 address; port_mode = \"nat\" maps IPv4 host addresses only".into())
        );
        let m = with_mode(parse_port("8080:80").unwrap(), PortMode::Nat).unwrap();
        assert_eq!(m.mode, PortMode::Nat);
    }

    #[test]
    fn overlap_rules() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        assert!(ips_overlap(any4, lo));
        assert!(ips_overlap(lo, any4));
        assert!(ips_overlap(any6, lo));
        assert!(!ips_overlap(any4, lo6));
        assert!(!ips_overlap(lo, "127.0.0.2".parse().unwrap()));
    }
}
