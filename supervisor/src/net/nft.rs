//! A small synchronous nf_tables client over netlink (`NETLINK_NETFILTER`):
//! exactly the messages nsvisor's NAT table needs, encoded by hand on
//! `netlink-sys` (no C library, no `nft` process).
//!
//! Changes go in one [`Batch`], which the kernel applies as one transaction:
//! all of it or none of it, never a half-written table. A batch is handled
//! while `send` runs (module autoloading included), so its acks and errors
//! are already queued when `send` returns and are read without blocking.
//! A failure names the message that failed (`add rule to chain postrouting`)
//! and the kernel's errno.
//!
//! Like `netlink.rs`, a socket works in the namespace of the thread that
//! opened it; calls block and run on blocking threads.

use std::io;
use std::net::Ipv4Addr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS: u16 = 10;
const MSG_NEWTABLE: u16 = 0;
const MSG_GETTABLE: u16 = 1;
const MSG_DELTABLE: u16 = 2;
const MSG_NEWCHAIN: u16 = 3;
const MSG_NEWRULE: u16 = 6;
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

/// `NFPROTO_IPV4`: the only family nsvisor's table uses.
pub const FAMILY_IPV4: u8 = 2;

/// Netfilter hooks (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Packets arriving, before routing.
    Prerouting = 0,
    /// Packets routed through the host.
    Forward = 2,
    /// Packets made by the host itself.
    Output = 3,
    /// Packets leaving, after routing.
    Postrouting = 4,
}

/// A base chain: attached to a hook, policy accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// Chain name.
    pub name: &'static str,
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// Where it is attached.
    pub hook: Hook,
    /// Its priority (`dstnat` is -100, `srcnat` 100, `filter` 0).
    pub priority: i32,
}

/// Registers (`NFT_REG_*`, the 16-byte ones).
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;

/// The match and action expressions nsvisor's rules are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `ip saddr ADDR/PREFIX` (`ip daddr` when `dest`).
    Address {
        /// Match the destination instead of the source.
        dest: bool,
        /// Network address.
        addr: Ipv4Addr,
        /// Prefix length (32: one address).
        prefix: u8,
    },
    /// `fib daddr type local`: the destination is one of the host's addresses.
    DestIsLocal,
    /// `meta l4proto PROTO th dport PORT`.
    DestPort {
        /// IP protocol number (6 TCP, 17 UDP).
        proto: u8,
        /// Port.
        port: u16,
    },
    /// `oifname NAME`, or `oifname != NAME` when `negate`.
    OutInterface {
        /// Interface name.
        name: String,
        /// Not this interface.
        negate: bool,
    },
    /// `masquerade`.
    Masquerade,
    /// `dnat to ADDR:PORT`.
    Dnat {
        /// New destination address.
        addr: Ipv4Addr,
        /// New destination port.
        port: u16,
    },
    /// `accept`.
    Accept,
}

/// One change in a batch, with what it was for messages.
struct Message {
    kind: u16,
    flags: u16,
    attrs: Vec<u8>,
    what: String,
}

/// Changes applied together as one transaction by [`Nft::commit`].
#[derive(Default)]
pub struct Batch {
    messages: Vec<Message>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// `add table ip NAME` (an existing table is kept as it is).
    pub fn add_table(&mut self, table: &str) {
        let mut a = Attrs::default();
        a.string(1, table);
        a.u32(2, 0);
        self.push(MSG_NEWTABLE, NLM_F_CREATE, a, format!("add table {table}"));
    }

    /// `delete table ip NAME`, with every chain and rule in it.
    pub fn delete_table(&mut self, table: &str) {
        let mut a = Attrs::default();
        a.string(1, table);
        self.push(MSG_DELTABLE, 0, a, format!("delete table {table}"));
    }

    /// `add chain ip TABLE NAME { type KIND hook HOOK priority P; policy accept; }`.
    pub fn add_chain(&mut self, table: &str, chain: &BaseChain) {
        let mut a = Attrs::default();
        a.string(1, table);
        a.string(3, chain.name);
        a.nest(4, |h| {
            h.u32(1, chain.hook as u32);
            h.u32(2, chain.priority as u32);
        });
        a.u32(5, 1); // NF_ACCEPT
        a.string(7, chain.kind);
        let what = format!("add chain {}", chain.name);
        self.push(MSG_NEWCHAIN, NLM_F_CREATE, a, what);
    }

    /// `add rule ip TABLE CHAIN EXPRS...`.
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        let mut a = Attrs::default();
        a.string(1, table);
        a.string(2, chain);
        a.nest(4, |list| {
            for expr in exprs {
                encode_expr(list, expr);
            }
        });
        let what = format!("add rule to chain {chain}");
        self.push(MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, a, what);
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn push(&mut self, msg: u16, flags: u16, attrs: Attrs, what: String) {
        self.messages.push(Message {
            kind: SUBSYS << 8 | msg,
            flags,
            attrs: attrs.0,
            what,
        });
    }
}

/// A failed batch: the message the kernel refused and why.
#[derive(Debug)]
pub struct Refused {
    /// What the message did (`add rule to chain postrouting`), or `apply a batch`.
    pub what: String,
    /// The kernel's errno.
    pub source: io::Error,
}

/// An nf_tables netlink socket bound to the namespace it was opened in.
pub struct Nft {
    socket: Socket,
    seq: u32,
}

impl Nft {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Nft> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Nft { socket, seq: 0 })
    }

    /// Names of the tables of family `ip`.
    pub fn tables(&mut self) -> io::Result<Vec<String>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut buf = Vec::new();
        put_message(
            &mut buf,
            SUBSYS << 8 | MSG_GETTABLE,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            FAMILY_IPV4,
            0,
            &[],
        );
        self.socket.send(&buf, 0)?;
        let mut names = Vec::new();
        let mut rx = Vec::with_capacity(64 * 1024);
        loop {
            rx.clear();
            self.socket.recv(&mut rx, 0)?;
            for (kind, msg_seq, payload) in messages(&rx)? {
                if msg_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(names),
                    NLMSG_ERROR => match error_code(payload) {
                        0 => return Ok(names),
                        errno => return Err(io::Error::from_raw_os_error(errno)),
                    },
                    k if k == SUBSYS << 8 | MSG_NEWTABLE => {
                        // After the 4-byte nfgenmsg: NFTA_TABLE_NAME.
                        if let Some(name) = attr(payload.get(4..).unwrap_or(&[]), 1) {
                            let name = name.split(|b| *b == 0).next().unwrap_or(&[]);
                            names.push(String::from_utf8_lossy(name).into_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Applies `batch` as one transaction.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), Refused> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let first = self.seq.wrapping_add(1);
        let mut whats = Vec::new();
        let mut next = |whats: &mut Vec<String>, what: &str| {
            self.seq = self.seq.wrapping_add(1);
            whats.push(what.to_string());
            self.seq
        };
        let begin = next(&mut whats, "start a transaction");
        // The batch messages carry the subsystem in res_id.
        put_message(&mut buf, BATCH_BEGIN, NLM_F_REQUEST, begin, 0, SUBSYS, &[]);
        for m in &batch.messages {
            let seq = next(&mut whats, &m.what);
            let flags = NLM_F_REQUEST | NLM_F_ACK | m.flags;
            put_message(&mut buf, m.kind, flags, seq, FAMILY_IPV4, 0, &m.attrs);
        }
        let end = next(&mut whats, "end the transaction");
        put_message(&mut buf, BATCH_END, NLM_F_REQUEST, end, 0, SUBSYS, &[]);

        let refused = |what: &str, source| Refused {
            what: what.to_string(),
            source,
        };
        self.socket
            .send(&buf, 0)
            .map_err(|e| refused("apply a batch", e))?;
        // The kernel handled the batch inside `send`: every reply is queued.
        let mut first_error = None;
        let mut rx = Vec::with_capacity(64 * 1024);
        loop {
            rx.clear();
            match self.socket.recv(&mut rx, libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(refused("read the kernel's answer", e)),
            }
            let replies = messages(&rx).map_err(|e| refused("read the kernel's answer", e))?;
            for (kind, seq, payload) in replies {
                let errno = if kind == NLMSG_ERROR {
                    error_code(payload)
                } else {
                    0
                };
                let index = seq.wrapping_sub(first) as usize;
                if errno != 0 && first_error.is_none() {
                    let what = whats.get(index).map_or("apply a batch", String::as_str);
                    first_error = Some(refused(what, io::Error::from_raw_os_error(errno)));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Appends one netlink message with an `nfgenmsg` header.
fn put_message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// Splits a receive buffer into `(type, seq, payload)` messages.
fn messages(rx: &[u8]) -> io::Result<Vec<(u16, u32, &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= rx.len() {
        let word = |i: usize| u32::from_ne_bytes([rx[i], rx[i + 1], rx[i + 2], rx[i + 3]]);
        let len = word(at) as usize;
        if len < 16 || at + len > rx.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated netlink message",
            ));
        }
        let kind = u16::from_ne_bytes([rx[at + 4], rx[at + 5]]);
        out.push((kind, word(at + 8), &rx[at + 16..at + len]));
        at += (len + 3) & !3;
    }
    Ok(out)
}

/// The positive errno of an `NLMSG_ERROR` payload (0: an ack).
fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map_or(libc::EIO, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The value of the first attribute of type `kind` in `attrs`.
fn attr(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let len = u16::from_ne_bytes([attrs[at], attrs[at + 1]]) as usize;
        let t = u16::from_ne_bytes([attrs[at + 2], attrs[at + 3]]) & !NLA_F_NESTED;
        if len < 4 || at + len > attrs.len() {
            return None;
        }
        if t == kind {
            return Some(&attrs[at + 4..at + len]);
        }
        at += (len + 3) & !3;
    }
    None
}

/// Netlink attributes being written.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn bytes(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize((self.0.len() + 3) & !3, 0);
    }

    fn string(&mut self, kind: u16, value: &str) {
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        self.bytes(kind, &v);
    }

    /// Big-endian, as nf_tables wants its integers.
    fn u32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Attrs)) {
        let mut inner = Attrs::default();
        fill(&mut inner);
        self.bytes(kind | NLA_F_NESTED, &inner.0);
    }

    /// `NFTA_*_DATA`: a nested `NFTA_DATA_VALUE`.
    fn data(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind, |d| d.bytes(1, value));
    }
}

/// One `NFTA_LIST_ELEM` holding expression `name` with attributes `fill`.
fn expr(list: &mut Attrs, name: &str, fill: impl FnOnce(&mut Attrs)) {
    list.nest(1, |e| {
        e.string(1, name);
        e.nest(2, fill);
    });
}

fn payload(list: &mut Attrs, base: u32, offset: u32, len: u32) {
    expr(list, "payload", |p| {
        p.u32(1, REG_1);
        p.u32(2, base);
        p.u32(3, offset);
        p.u32(4, len);
    });
}

fn cmp(list: &mut Attrs, eq: bool, value: &[u8]) {
    expr(list, "cmp", |c| {
        c.u32(1, REG_1);
        c.u32(2, if eq { 0 } else { 1 });
        c.data(3, value);
    });
}

fn meta(list: &mut Attrs, key: u32) {
    expr(list, "meta", |m| {
        m.u32(1, REG_1);
        m.u32(2, key);
    });
}

fn immediate(list: &mut Attrs, reg: u32, value: &[u8]) {
    expr(list, "immediate", |i| {
        i.u32(1, reg);
        i.data(2, value);
    });
}

/// Encodes `e` the way `nft` does for the same rule text.
fn encode_expr(list: &mut Attrs, e: &Expr) {
    const NETWORK_HEADER: u32 = 1;
    const TRANSPORT_HEADER: u32 = 2;
    const META_L4PROTO: u32 = 16;
    const META_OIFNAME: u32 = 7;
    match e {
        Expr::Address { dest, addr, prefix } => {
            payload(list, NETWORK_HEADER, if *dest { 16 } else { 12 }, 4);
            if *prefix < 32 {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                expr(list, "bitwise", |b| {
                    b.u32(1, REG_1);
                    b.u32(2, REG_1);
                    b.u32(3, 4);
                    b.data(4, &mask.to_be_bytes());
                    b.data(5, &[0; 4]);
                });
            }
            cmp(list, true, &addr.octets());
        }
        Expr::DestIsLocal => {
            expr(list, "fib", |f| {
                f.u32(1, REG_1);
                f.u32(2, 3); // NFT_FIB_RESULT_ADDRTYPE
                f.u32(3, 1 << 1); // NFTA_FIB_F_DADDR
            });
            // The address type is a host-order u32: RTN_LOCAL.
            cmp(list, true, &2u32.to_ne_bytes());
        }
        Expr::DestPort { proto, port } => {
            meta(list, META_L4PROTO);
            cmp(list, true, &[*proto]);
            payload(list, TRANSPORT_HEADER, 2, 2);
            cmp(list, true, &port.to_be_bytes());
        }
        Expr::OutInterface { name, negate } => {
            meta(list, META_OIFNAME);
            let mut padded = [0u8; 16];
            let len = name.len().min(15);
            padded[..len].copy_from_slice(&name.as_bytes()[..len]);
            cmp(list, !negate, &padded);
        }
        Expr::Masquerade => expr(list, "masq", |_| {}),
        Expr::Dnat { addr, port } => {
            immediate(list, REG_1, &addr.octets());
            immediate(list, REG_2, &port.to_be_bytes());
            expr(list, "nat", |n| {
                n.u32(1, 1); // NFT_NAT_DNAT
                n.u32(2, u32::from(FAMILY_IPV4));
                n.u32(3, REG_1);
                n.u32(5, REG_2);
            });
        }
        Expr::Accept => expr(list, "immediate", |i| {
            i.u32(1, REG_VERDICT);
            i.nest(2, |d| d.nest(2, |v| v.u32(1, 1))); // NF_ACCEPT
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut a = Attrs::default();
        a.string(1, "ab");
        a.nest(4, |n| n.u32(2, 0x0102_0304));
        assert_eq!(
            a.0,
            [
                7, 0, 1, 0, b'a', b'b', 0, 0, // "ab\0" + 1 byte of padding
                12, 0, 4, 0x80, // nested, flag set
                8, 0, 2, 0, 1, 2, 3, 4, // big-endian u32
            ]
        );
        assert_eq!(attr(&a.0, 1), Some(&b"ab\0"[..]));
        assert_eq!(attr(&a.0, 4), Some(&[8, 0, 2, 0, 1, 2, 3, 4][..]));
        assert_eq!(attr(&a.0, 9), None);
    }

    #[test]
    fn a_batch_is_framed_by_begin_and_end_with_the_subsystem() {
        let mut buf = Vec::new();
        put_message(&mut buf, BATCH_BEGIN, NLM_F_REQUEST, 7, 0, SUBSYS, &[]);
        assert_eq!(buf.len(), 20);
        assert_eq!(&buf[16..], &[0, 0, 0, 10]);
        let parsed = messages(&buf).unwrap();
        assert_eq!(parsed, [(BATCH_BEGIN, 7, &[0, 0, 0, 10][..])]);
    }

    #[test]
    fn a_subnet_match_masks_the_address() {
        let mut list = Attrs::default();
        encode_expr(
            &mut list,
            &Expr::Address {
                dest: false,
                addr: Ipv4Addr::new(172, 20, 0, 0),
                prefix: 24,
            },
        );
        let names: Vec<String> = elems(&list.0)
            .iter()
            .map(|e| String::from_utf8_lossy(attr(e, 1).unwrap()).into_owned())
            .collect();
        assert_eq!(names, ["payload\0", "bitwise\0", "cmp\0"]);
        let bitwise = attr(elems(&list.0)[1], 2).unwrap();
        assert_eq!(
            attr(attr(bitwise, 4).unwrap(), 1),
            Some(&[255, 255, 255, 0][..])
        );
    }

    fn elems(list: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 4 <= list.len() {
            let len = u16::from_ne_bytes([list[at], list[at + 1]]) as usize;
            out.push(&list[at + 4..at + len]);
            at += (len + 3) & !3;
        }
        out
    }
}
