//! What supervisorctl reads from a `supervisord.conf`: `[supervisorctl]
//! serverurl`, `username`, `password`, `prompt`, and (an nsvisor addition, so a config
//! without `[supervisorctl]` still finds its socket) `[unix_http_server]
//! file`. `%(here)s` is the config file's directory, as in supervisord.
//! Without `-c`, the file is searched where supervisorctl searches; finding
//! none is fine (the default server is used).

use std::path::{Path, PathBuf};

/// The settings read.
#[derive(Debug, Default, PartialEq)]
pub struct ClientConf {
    /// `unix:///path` or `http://host:port`.
    pub serverurl: Option<String>,
    /// `[supervisorctl] username`.
    pub username: Option<String>,
    /// `[supervisorctl] password`.
    pub password: Option<String>,
    /// `[supervisorctl] prompt` (the shell's, before `> `).
    pub prompt: Option<String>,
}

/// supervisorctl's search path (relative to the executable, then the
/// current directory, then /etc).
fn search(argv0: &Path) -> Option<PathBuf> {
    nsvisor_proto::supervisord_conf_paths(argv0)
        .into_iter()
        .find(|p| p.exists())
}

/// Reads the config given with `-c` (an error if unreadable), or the one found.
pub fn read(given: Option<&Path>, argv0: &Path) -> Result<ClientConf, String> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => match search(argv0) {
            Some(p) => p,
            None => return Ok(ClientConf::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("could not read config file {}: {e}", path.display()))?;
    let path = std::path::absolute(&path).unwrap_or(path);
    let here = path
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    Ok(parse(&text, &here))
}

/// The values of the INI text (last one wins), `%(here)s` expanded.
pub fn parse(text: &str, here: &str) -> ClientConf {
    let mut section = String::new();
    let mut c = ClientConf::default();
    let mut socket_file = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with(['#', ';']) || trimmed.is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((key, value)) = trimmed.split_once(['=', ':']) else {
            continue;
        };
        // Inline comments: ` ;` after whitespace, as supervisord reads them.
        let value = value
            .find(" ;")
            .or_else(|| value.find("\t;"))
            .map_or(value, |at| &value[..at])
            .trim()
            .replace("%(here)s", here);
        match (section.as_str(), key.trim()) {
            ("supervisorctl", "serverurl") => c.serverurl = Some(value),
            ("supervisorctl", "username") => c.username = Some(value),
            ("supervisorctl", "password") => c.password = Some(value),
            ("supervisorctl", "prompt") => c.prompt = Some(value),
            ("unix_http_server", "file") => socket_file = Some(value),
            _ => {}
        }
    }
    if c.serverurl.is_none() {
        c.serverurl = socket_file.map(|f| format!("unix://{f}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serverurl_then_socket_file() {
        let c = parse(
            "[unix_http_server]\nfile=%(here)s/s.sock ; the socket\n[supervisorctl]\nserverurl = unix://%(here)s/other.sock\nusername=u\npassword=p\n",
            "/etc",
        );
        assert_eq!(c.serverurl.as_deref(), Some("unix:///etc/other.sock"));
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("u"), Some("p"))
        );
        let c = parse(
            "[unix_http_server]\nfile=/run/s.sock\n[program:x]\ncommand=y\n",
            "/etc",
        );
        assert_eq!(c.serverurl.as_deref(), Some("unix:///run/s.sock"));
        assert_eq!(parse("[program:x]\ncommand=y\n", "/").serverurl, None);
    }
}
