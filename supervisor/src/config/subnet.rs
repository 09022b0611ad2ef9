//! [`Subnet`]: an IPv4 network address and prefix length, and all the
//! address arithmetic of the daemon (mask, broadcast, host range, overlap).
//!
//! Parsed once, in `config/networks.rs`, from `subnet = "a.b.c.d/p"`; read by the
//! sandbox checks in `config/`, by `net/` (host route overlaps, bridge and
//! sandbox addresses) and by netlink (the broadcast of an address it adds).
//! Invariant: the host bits of the address are zero and the prefix is at most
//! 32, so two equal subnets are equal values. Text that has host bits set is
//! refused by [`Subnet::parse`]; [`Subnet::containing`] normalises instead
//! (for what the kernel reports).

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 subnet: `addr/prefix` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why subnet text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSubnetError {
    /// Not `a.b.c.d/p` with a number `p`.
    #[error("\"{text}\" is not an IPv4 subnet like \"172.20.0.0/24\"")]
    Syntax {
        /// The text as given.
        text: String,
    },
    /// The prefix is longer than allowed.
    #[error("\"{text}\": the prefix /{prefix} is longer than /{max}")]
    PrefixTooLong {
        /// The text as given.
        text: String,
        /// The prefix given.
        prefix: u8,
        /// The longest allowed.
        max: u8,
    },
    /// The address has bits set past the prefix.
    #[error("\"{text}\" has host bits set (did you mean \"{network}\"?)")]
    HostBits {
        /// The text as given.
        text: String,
        /// The subnet that contains the address.
        network: Subnet,
    },
}

impl Subnet {
    /// The subnet of `addr/prefix`, or `None` when `addr` has host bits set
    /// or `prefix` is over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Subnet> {
        let subnet = Subnet::containing(addr, prefix);
        (prefix <= 32 && subnet.addr == addr).then_some(subnet)
    }

    /// The subnet of length `prefix` (at most 32) that contains `addr`: host
    /// bits cleared (`172.20.0.9/24` → `172.20.0.0/24`).
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    /// `a.b.c.d/p` (surrounding whitespace ignored), `p` at most 32, no host bits.
    pub fn parse(text: &str) -> Result<Subnet, ParseSubnetError> {
        Subnet::parse_with_max_prefix(text, 32)
    }

    /// [`Subnet::parse`], with the prefix at most `max`. The syntax is checked
    /// first, then the prefix, then the host bits.
    pub fn parse_with_max_prefix(text: &str, max: u8) -> Result<Subnet, ParseSubnetError> {
        let syntax = || ParseSubnetError::Syntax { text: text.into() };
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        if prefix > max.min(32) {
            return Err(ParseSubnetError::PrefixTooLong {
                text: text.into(),
                prefix,
                max: max.min(32),
            });
        }
        Subnet::new(addr, prefix).ok_or_else(|| ParseSubnetError::HostBits {
            text: text.into(),
            network: Subnet::containing(addr, prefix),
        })
    }

    /// The network address (the first address).
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask (`255.255.255.0` for a /24).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }

    /// The broadcast address (the last address).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` is in this subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two subnets share an address (one then contains the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = mask(self.prefix.min(other.prefix));
        u32::from(self.addr) & shorter == u32::from(other.addr) & shorter
    }

    /// How many usable host addresses there are: all but the network and
    /// broadcast addresses (0 for /31 and /32, whose two or one addresses
    /// the daemon never hands out).
    pub fn host_count(&self) -> u32 {
        let size = u64::from(!mask(self.prefix)) + 1;
        u32::try_from(size.saturating_sub(2)).unwrap_or(u32::MAX)
    }

    /// The `n`th usable host address, from 1 (the address after the network
    /// address) to [`Subnet::host_count`]; `None` outside that.
    pub fn nth_host(&self, n: u32) -> Option<Ipv4Addr> {
        (1..=self.host_count())
            .contains(&n)
            .then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Every usable host address, lowest first.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr);
        (1..=self.host_count()).map(move |n| Ipv4Addr::from(first + n))
    }

    /// The default gateway: the last usable host address (`.254` of a /24);
    /// `None` when there is no usable address.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.nth_host(self.host_count())
    }

    /// `ip/prefix`: an interface address in this subnet, as `ip addr` shows it.
    pub fn host_cidr(&self, ip: Ipv4Addr) -> String {
        format!("{ip}/{}", self.prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Subnet {
    type Err = ParseSubnetError;

    fn from_str(s: &str) -> Result<Subnet, ParseSubnetError> {
        Subnet::parse(s)
    }
}

/// The netmask of a prefix as an integer (0 for /0).
fn mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("an address")
    }

    fn net(s: &str) -> Subnet {
        Subnet::parse(s).expect("a subnet")
    }

    #[test]
    fn parse_gives_network_and_prefix_and_prints_back() {
        let n = net(" 172.20.0.0/24 ");
        assert_eq!((n.network(), n.prefix()), (ip("172.20.0.0"), 24));
        assert_eq!(n.to_string(), "172.20.0.0/24");
        assert_eq!("10.0.0.0/8".parse::<Subnet>(), Ok(net("10.0.0.0/8")));
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = |s: &str| Subnet::parse(s).err().map(|e| e.to_string());
        let syntax = |s: &str| {
            Some(format!(
                "\"{s}\" is not an IPv4 subnet like \"172.20.0.0/24\""
            ))
        };
        for bad in [
            "10.0.0.0",
            "10.0.0/8",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "10.0.0.0/256",
            "/8",
        ] {
            assert_eq!(err(bad), syntax(bad), "{bad}");
        }
        assert_eq!(
            err("10.0.0.0/33"),
            Some("\"10.0.0.0/33\": the prefix /33 is longer than /32".into())
        );
        assert_eq!(
            err("172.20.0.1/24"),
            Some("\"172.20.0.1/24\" has host bits set (did you mean \"172.20.0.0/24\"?)".into())
        );
        assert_eq!(
            Subnet::parse_with_max_prefix("10.0.0.1/31", 30),
            Err(ParseSubnetError::PrefixTooLong {
                text: "10.0.0.1/31".into(),
                prefix: 31,
                max: 30
            })
        );
    }

    #[test]
    fn new_refuses_host_bits_and_containing_clears_them() {
        assert_eq!(Subnet::new(ip("172.20.0.9"), 24), None);
        assert_eq!(Subnet::new(ip("172.20.0.0"), 33), None);
        assert_eq!(
            Subnet::containing(ip("172.20.0.9"), 24),
            net("172.20.0.0/24")
        );
        assert_eq!(Subnet::containing(ip("1.2.3.4"), 0), net("0.0.0.0/0"));
        assert_eq!(Subnet::containing(ip("1.2.3.4"), 40), net("1.2.3.4/32"));
    }

    #[test]
    fn a_slash_24() {
        assert_eq!(net("172.20.0.0/16").broadcast(), ip("172.20.255.255"));
        let n = net("172.20.7.0/24");
        assert_eq!(n.netmask(), ip("255.255.255.0"));
        assert_eq!(n.broadcast(), ip("172.20.7.255"));
        assert_eq!(n.host_count(), 254);
        assert_eq!(n.nth_host(0), None);
        assert_eq!(n.nth_host(1), Some(ip("172.20.7.1")));
        assert_eq!(n.nth_host(254), Some(ip("172.20.7.254")));
        assert_eq!(n.nth_host(255), None);
        assert_eq!(n.gateway(), Some(ip("172.20.7.254")));
        assert_eq!(n.hosts().count(), 254);
        assert!(n.contains(ip("172.20.7.0")) && n.contains(ip("172.20.7.255")));
        assert!(!n.contains(ip("172.20.8.0")) && !n.contains(ip("172.20.6.255")));
        assert_eq!(n.host_cidr(ip("172.20.7.2")), "172.20.7.2/24");
    }

    #[test]
    fn edge_prefixes() {
        let all = net("0.0.0.0/0");
        assert_eq!(all.netmask(), ip("0.0.0.0"));
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        assert!(all.contains(ip("203.0.113.9")));
        assert_eq!(all.host_count(), u32::MAX - 1);
        assert_eq!(all.gateway(), Some(ip("255.255.255.254")));

        let p30 = net("10.0.0.4/30");
        assert_eq!(p30.broadcast(), ip("10.0.0.7"));
        assert_eq!(
            p30.hosts().collect::<Vec<_>>(),
            [ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert_eq!(p30.gateway(), Some(ip("10.0.0.6")));

        let p31 = net("10.0.0.4/31");
        assert_eq!(p31.broadcast(), ip("10.0.0.5"));
        assert_eq!((p31.host_count(), p31.gateway()), (0, None));
        assert!(p31.contains(ip("10.0.0.5")) && !p31.contains(ip("10.0.0.6")));

        let p32 = net("10.0.0.4/32");
        assert_eq!(p32.netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(p32.broadcast(), ip("10.0.0.4"));
        assert_eq!((p32.host_count(), p32.gateway()), (0, None));
        assert_eq!(p32.hosts().count(), 0);
        assert!(p32.contains(ip("10.0.0.4")) && !p32.contains(ip("10.0.0.5")));
    }

    #[test]
    fn overlap_is_decided_by_the_shorter_prefix_both_ways() {
        let pairs = [
            ("172.20.0.0/24", "172.20.0.128/25", true),
            ("172.16.0.0/12", "172.20.0.0/24", true),
            ("172.20.1.0/24", "172.20.0.0/24", false),
            ("0.0.0.0/0", "172.20.0.0/24", true),
            ("172.20.0.5/32", "172.20.0.0/24", true),
            ("172.20.0.5/32", "172.20.0.6/32", false),
            ("10.0.0.0/24", "10.0.0.0/16", true),
            ("10.0.0.0/24", "10.0.1.0/24", false),
        ];
        for (a, b, expected) in pairs {
            assert_eq!(net(a).overlaps(&net(b)), expected, "{a} {b}");
            assert_eq!(net(b).overlaps(&net(a)), expected, "{b} {a}");
        }
    }
}
