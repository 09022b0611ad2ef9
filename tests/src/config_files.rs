//! The config files a test daemon reads: its TOML (with the socket added)
//! or its `supervisord.conf`, placeholders replaced.

use std::path::{Path, PathBuf};

use crate::{testprog, toml_quote};

/// Writes `<dir>/nsvisor.toml` from `body` (placeholders replaced, socket added);
/// returns the socket path.
pub(crate) fn write_config(dir: &Path, body: &str) -> PathBuf {
    let body = body
        .replace("{dir}", &dir.to_string_lossy())
        .replace("{testprog}", &testprog().to_string_lossy());
    let (body, socket) = with_socket(&body, dir);
    let path = dir.join("nsvisor.toml");
    let tmp = dir.join(".nsvisor.toml.tmp");
    std::fs::write(&tmp, body).expect("cannot write the config");
    std::fs::rename(&tmp, &path).expect("cannot replace the config");
    socket
}

/// Writes `<dir>/supervisord.conf` from `body` (placeholders replaced, a
/// `[unix_http_server]` added unless present); returns the socket and the file.
pub(crate) fn write_ini_config(dir: &Path, body: &str) -> (PathBuf, PathBuf) {
    let body = body
        .replace("{dir}", &dir.to_string_lossy())
        .replace("{testprog}", &testprog().to_string_lossy());
    let socket = dir.join("nsvisor.sock");
    let body = if body.contains("[unix_http_server]") {
        body
    } else {
        format!("[unix_http_server]\nfile={}\n\n{body}", socket.display())
    };
    let path = dir.join("supervisord.conf");
    std::fs::write(&path, body).expect("cannot write the config");
    (socket, path)
}

/// Adds `socket = "<dir>/nsvisor.sock"` to `[supervisor]` unless the config
/// names a socket; returns the body and the socket path.
fn with_socket(body: &str, dir: &Path) -> (String, PathBuf) {
    let given = toml::from_str::<toml::Table>(body).ok().and_then(|t| {
        t.get("supervisor")?
            .get("socket")?
            .as_str()
            .map(PathBuf::from)
    });
    if let Some(socket) = given {
        return (body.to_string(), socket);
    }
    let socket = dir.join("nsvisor.sock");
    let line = format!("socket = {}", toml_quote(&socket));
    let has_table = body.lines().any(|l| l.trim() == "[supervisor]");
    let body = if has_table {
        body.lines()
            .flat_map(|l| {
                let extra = (l.trim() == "[supervisor]").then(|| line.clone());
                std::iter::once(l.to_string()).chain(extra)
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        format!("{body}\n\n[supervisor]\n{line}\n")
    };
    (body, socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_is_added_to_existing_supervisor_table() {
        let dir = Path::new("/d");
        let (body, socket) = with_socket("[supervisor]\nminfds = 10\n", dir);
        assert_eq!(socket, Path::new("/d/nsvisor.sock"));
        assert_eq!(
            body,
            "[supervisor]\nsocket = \"/d/nsvisor.sock\"\nminfds = 10"
        );
    }

    #[test]
    fn socket_table_is_appended_when_missing() {
        let (body, _) = with_socket("[programs.a]\ncommand = \"x\"\n", Path::new("/d"));
        assert!(
            body.ends_with("\n[supervisor]\nsocket = \"/d/nsvisor.sock\"\n"),
            "{body}"
        );
    }

    #[test]
    fn given_socket_is_kept() {
        let (_, socket) = with_socket("[supervisor]\nsocket = \"/x.sock\"\n", Path::new("/d"));
        assert_eq!(socket, Path::new("/x.sock"));
    }
}
