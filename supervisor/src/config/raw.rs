//! Serde structs mirroring the TOML file, with spans; deserialisation only.
