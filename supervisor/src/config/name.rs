//! [`ProgramName`]: the unique name of a program instance (`web`, or `web:0`
//! for a replica).
//!
//! Names are made once, when the config is validated, and then copied into
//! every table, event and effect that mentions the program: a name is a
//! shared, immutable string, so a copy is a reference count, not an
//! allocation. It reads as a `&str` (`Deref`, `Borrow<str>`), so maps keyed
//! by names are looked up with plain strings.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Unique program name (`web`, or `web:0` for replicas).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramName(Arc<str>);

impl ProgramName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's shared string (a clone, not a copy).
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl Deref for ProgramName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ProgramName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ProgramName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgramName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProgramName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ProgramName {
    fn from(name: &str) -> ProgramName {
        ProgramName(Arc::from(name))
    }
}

impl From<String> for ProgramName {
    fn from(name: String) -> ProgramName {
        ProgramName(Arc::from(name))
    }
}

impl From<ProgramName> for String {
    fn from(name: ProgramName) -> String {
        name.0.to_string()
    }
}

impl PartialEq<str> for ProgramName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ProgramName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for ProgramName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<ProgramName> for str {
    fn eq(&self, other: &ProgramName) -> bool {
        self == &*other.0
    }
}

impl PartialEq<ProgramName> for String {
    fn eq(&self, other: &ProgramName) -> bool {
        **self == *other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn copies_share_the_string_and_maps_take_plain_strings() {
        let a = ProgramName::from("web:0");
        let b = a.clone();
        assert!(
            std::ptr::eq(a.as_str(), b.as_str()),
            "a copy is not a new string"
        );
        let map: BTreeMap<ProgramName, u8> = [(a, 1), ("db".into(), 2)].into();
        assert_eq!(map.get("web:0"), Some(&1));
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["db", "web:0"]
        );
        assert_eq!(format!("{b} {b:?}"), "web:0 \"web:0\"");
        assert_eq!(b, "web:0");
    }
}
