//! HTTP basic auth, as supervisord checks it for `[unix_http_server]` and
//! `[inet_http_server]` `username`/`password`.
//!
//! The password may be written as `{SHA}` followed by the hex SHA-1 of the
//! password, as supervisord accepts. A request without the right
//! credentials gets 401 with a `WWW-Authenticate` challenge (supervisorctl then
//! says "Server requires authentication").

use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::StatusCode;

use super::super::reply::{self, Reply};
use crate::config::Credentials;
use nsvisor_proto::xmlrpc::base64_decode;

/// Whether the request carries the credentials.
pub fn allowed(headers: &HeaderMap, creds: &Credentials) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest)
        })
        .and_then(|b64| base64_decode(b64.trim()))
    else {
        return false;
    };
    let given = String::from_utf8_lossy(&given);
    let Some((user, password)) = given.split_once(':') else {
        return false;
    };
    user == creds.username && password_matches(&creds.password, password)
}

/// `expected` as configured (plain, or `{SHA}hex`) against what was given.
fn password_matches(expected: &str, given: &str) -> bool {
    match expected.strip_prefix("{SHA}") {
        Some(hex) => hex.eq_ignore_ascii_case(&to_hex(&sha1(given.as_bytes()))),
        None => expected == given,
    }
}

/// The 401 answer.
pub fn challenge() -> Reply {
    let mut res = reply::with_body(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        reply::full("401 Unauthorized: this server requires a username and password\n"),
    );
    res.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"default\""),
    );
    res
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-1 (FIPS 180-4), for `{SHA}` passwords only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(password: &str) -> Credentials {
        Credentials {
            username: "user".into(),
            password: password.into(),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn basic_auth() {
        // "user:123"
        let good = headers("Basic dXNlcjoxMjM=");
        assert!(allowed(&good, &creds("123")));
        assert!(!allowed(&good, &creds("1234")));
        assert!(!allowed(&HeaderMap::new(), &creds("123")));
        assert!(!allowed(&headers("Bearer dXNlcjoxMjM="), &creds("123")));
        assert!(!allowed(&headers("Basic !!!"), &creds("123")));
        assert_eq!(challenge().status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn sha_passwords() {
        assert_eq!(
            to_hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            to_hex(&sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // sha1("123")
        let good = headers("Basic dXNlcjoxMjM=");
        assert!(allowed(
            &good,
            &creds("{SHA}40bd001563085fc35165329ea1ff5c5ecbdbbeef")
        ));
        assert!(!allowed(&good, &creds("{SHA}00")));
    }
}
