//! `nsvisor` invoked as `supervisord` (`ln -s nsvisor /usr/bin/supervisord`):
//! supervisord's command line, turned into nsvisor's.
//!
//! Every option supervisord 4 accepts is either mapped (`-c`, `-e`, `-l`,
//! `-j`, `-a`) or accepted with a note on stderr saying why it does nothing
//! (`-n`: nsvisor always stays in the foreground; `-u`: it runs as the user
//! that starts it; …). Without `-c`, the config is searched where supervisord
//! searches: `../etc/supervisord.conf` and `../supervisord.conf` next to the
//! executable, `supervisord.conf` and `etc/supervisord.conf` in the current
//! directory, `/etc/supervisord.conf`, `/etc/supervisor/supervisord.conf`.
//! Options are read the way supervisord's getopt reads them: short clusters
//! (`-nc FILE`), `-cFILE`, `--configuration=FILE` and `--configuration FILE`.
//! Called by `main.rs` before clap parses anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Settings given on supervisord's command line that override the config's.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `-l FILE`: the daemon's log file.
    pub logfile: Option<PathBuf>,
    /// `-j FILE`: the pidfile.
    pub pidfile: Option<PathBuf>,
    /// `-a N`: minimum open files.
    pub minfds: Option<u64>,
}

impl Overrides {
    /// Applies the overrides to a loaded config.
    pub fn apply(self, sup: &mut nsvisor::config::SupervisorConfig) {
        if let Some(f) = self.logfile {
            sup.logfile = Some(f);
        }
        if let Some(f) = self.pidfile {
            sup.pidfile = Some(f);
        }
        if let Some(n) = self.minfds {
            sup.minfds = n;
        }
    }
}

/// One option of supervisord's: short letter, long name, whether it takes a value.
struct Opt {
    short: Option<char>,
    long: &'static str,
    value: bool,
}

const OPTS: &[Opt] = &[
    Opt {
        short: Some('c'),
        long: "configuration",
        value: true,
    },
    Opt {
        short: Some('n'),
        long: "nodaemon",
        value: false,
    },
    Opt {
        short: Some('s'),
        long: "silent",
        value: false,
    },
    Opt {
        short: Some('h'),
        long: "help",
        value: false,
    },
    Opt {
        short: Some('?'),
        long: "help",
        value: false,
    },
    Opt {
        short: Some('v'),
        long: "version",
        value: false,
    },
    Opt {
        short: Some('u'),
        long: "user",
        value: true,
    },
    Opt {
        short: Some('m'),
        long: "umask",
        value: true,
    },
    Opt {
        short: Some('d'),
        long: "directory",
        value: true,
    },
    Opt {
        short: Some('l'),
        long: "logfile",
        value: true,
    },
    Opt {
        short: Some('y'),
        long: "logfile_maxbytes",
        value: true,
    },
    Opt {
        short: Some('z'),
        long: "logfile_backups",
        value: true,
    },
    Opt {
        short: Some('e'),
        long: "loglevel",
        value: true,
    },
    Opt {
        short: Some('j'),
        long: "pidfile",
        value: true,
    },
    Opt {
        short: Some('i'),
        long: "identifier",
        value: true,
    },
    Opt {
        short: Some('q'),
        long: "childlogdir",
        value: true,
    },
    Opt {
        short: Some('k'),
        long: "nocleanup",
        value: false,
    },
    Opt {
        short: Some('a'),
        long: "minfds",
        value: true,
    },
    Opt {
        short: None,
        long: "minprocs",
        value: true,
    },
    Opt {
        short: Some('t'),
        long: "strip_ansi",
        value: false,
    },
    Opt {
        short: None,
        long: "profile_options",
        value: true,
    },
];

const HELP: &str = "\
supervisord -- run a set of applications as daemons (this is nsvisor, invoked as supervisord).

Usage: supervisord [options]

Options:
-c/--configuration FILENAME -- configuration file (supervisord.conf or nsvisor TOML)
-n/--nodaemon -- accepted: nsvisor always runs in the foreground
-s/--silent -- accepted: nsvisor always logs to stderr
-h/--help -- print this usage message and exit
-v/--version -- print nsvisor's version and exit
-u/--user USER -- ignored: nsvisor runs as the user that starts it (set user= per program)
-m/--umask UMASK -- ignored: set umask= in [supervisord] or per program
-d/--directory DIRECTORY -- ignored: nsvisor does not daemonize
-l/--logfile FILENAME -- the daemon's log file ([supervisord] logfile)
-y/--logfile_maxbytes BYTES, -z/--logfile_backups NUM -- ignored: send SIGUSR2 to reopen the log
-e/--loglevel LEVEL -- log level (critical, error, warn, info, debug, trace, blather)
-j/--pidfile FILENAME -- pidfile
-i/--identifier STR -- ignored: XML-RPC always answers \"supervisor\"
-q/--childlogdir DIRECTORY -- ignored: set it in the config file
-k/--nocleanup -- ignored: nsvisor removes no child logs at start
-a/--minfds NUM -- minimum number of open files
--minprocs NUM -- ignored
-t/--strip_ansi -- ignored
--profile_options OPTIONS -- ignored
";

/// Whether the program was invoked under the name `supervisord`.
pub fn invoked_as_supervisord(argv0: &Path) -> bool {
    argv0.file_name().is_some_and(|n| n == "supervisord")
}

/// The arguments for nsvisor's parser and the overrides, or the exit code when
/// supervisord's command line says to exit (help, version, usage error).
pub fn translate(args: Vec<OsString>) -> Result<(Vec<OsString>, Overrides), ExitCode> {
    let argv0 = args
        .first()
        .cloned()
        .unwrap_or_else(|| "supervisord".into());
    let mut out: Vec<OsString> = vec!["nsvisor".into()];
    let mut ov = Overrides::default();
    let mut config = None;
    let mut rest = args
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let mut given: Vec<(&'static str, Option<String>)> = Vec::new();
    while let Some(arg) = rest.next() {
        let parsed = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(opt) = OPTS.iter().find(|o| o.long == name) else {
                return Err(usage(&format!("option --{name} not recognized")));
            };
            let value = match (opt.value, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    rest.next()
                        .ok_or_else(|| usage(&format!("option --{name} requires argument")))?,
                ),
                (false, Some(_)) => {
                    return Err(usage(&format!("option --{name} must not have an argument")))
                }
                (false, None) => None,
            };
            vec![(opt.long, value)]
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
            let mut found = Vec::new();
            for (i, c) in cluster.char_indices() {
                let Some(opt) = OPTS.iter().find(|o| o.short == Some(c)) else {
                    return Err(usage(&format!("option -{c} not recognized")));
                };
                if opt.value {
                    let inline = &cluster[i + c.len_utf8()..];
                    let value = if inline.is_empty() {
                        rest.next()
                            .ok_or_else(|| usage(&format!("option -{c} requires argument")))?
                    } else {
                        inline.to_string()
                    };
                    found.push((opt.long, Some(value)));
                    break;
                }
                found.push((opt.long, None));
            }
            found
        } else {
            return Err(usage(&format!(
                "positional arguments are not supported: {arg}"
            )));
        };
        given.extend(parsed);
    }
    for (name, value) in given {
        let v = value.unwrap_or_default();
        match name {
            "help" => {
                print!("{HELP}");
                return Err(ExitCode::SUCCESS);
            }
            "version" => {
                println!("{}", env!("CARGO_PKG_VERSION"));
                return Err(ExitCode::SUCCESS);
            }
            "configuration" => config = Some(PathBuf::from(v)),
            "loglevel" => {
                let level = match v.to_ascii_lowercase().as_str() {
                    "critical" => "error".to_string(),
                    "warning" => "warn".to_string(),
                    "blather" => "trace".to_string(),
                    other => other.to_string(),
                };
                out.extend(["--log-level".into(), level.into()]);
            }
            "logfile" => ov.logfile = Some(PathBuf::from(v)),
            "pidfile" => ov.pidfile = Some(PathBuf::from(v)),
            "minfds" => match v.parse() {
                Ok(n) => ov.minfds = Some(n),
                Err(_) => return Err(usage(&format!("invalid value for minfds: {v:?}"))),
            },
            "nodaemon" => {}
            other => eprintln!(
                "supervisord (nsvisor): --{other}: {}",
                ignored_because(other)
            ),
        }
    }
    let config = match config {
        Some(c) => c,
        None => search(Path::new(&argv0))?,
    };
    out.extend(["-c".into(), config.into_os_string()]);
    Ok((out, ov))
}

fn ignored_because(name: &str) -> &'static str {
    match name {
        "silent" => "accepted; nsvisor always logs to stderr",
        "user" => "ignored: nsvisor runs as the user that starts it (set user= per program)",
        "umask" => "ignored: set umask= in [supervisord] or per program",
        "directory" => "ignored: nsvisor does not daemonize",
        "logfile_maxbytes" | "logfile_backups" => {
            "ignored: nsvisor does not rotate its own log (SIGUSR2 reopens it)"
        }
        "identifier" => "ignored: XML-RPC always answers \"supervisor\"",
        "childlogdir" => "ignored: set childlogdir in the config file",
        "nocleanup" => "ignored: nsvisor removes no child logs at start",
        _ => "ignored",
    }
}

/// supervisord's config search; a usage error when none exists.
fn search(argv0: &Path) -> Result<PathBuf, ExitCode> {
    let paths = nsvisor_proto::supervisord_conf_paths(argv0);
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        None => {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            Err(usage(&format!(
                "No config file found at default paths ({}); use the -c option to specify a config file at a different path",
                list.join(", ")
            )))
        }
    }
}

/// supervisord's usage error: a message, a hint, exit 2.
fn usage(msg: &str) -> ExitCode {
    eprintln!("Error: {msg}");
    eprintln!("For help, use supervisord -h");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("/usr/bin/supervisord")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn ok(list: &[&str]) -> (Vec<String>, Overrides) {
        let (out, ov) = translate(args(list)).expect("translated");
        (
            out.into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            ov,
        )
    }

    #[test]
    fn options_map_onto_nsvisors() {
        let (out, ov) = ok(&[
            "-n", "-c", "/x.conf", "-e", "warning", "-l", "/l.log", "-j", "/p.pid", "-a", "4096",
        ]);
        assert_eq!(out, ["nsvisor", "--log-level", "warn", "-c", "/x.conf"]);
        assert_eq!(ov.logfile.as_deref(), Some(Path::new("/l.log")));
        assert_eq!(ov.pidfile.as_deref(), Some(Path::new("/p.pid")));
        assert_eq!(ov.minfds, Some(4096));
        let (out, _) = ok(&["-nc/y.conf", "--user=nobody", "--loglevel", "blather", "-k"]);
        assert_eq!(out, ["nsvisor", "--log-level", "trace", "-c", "/y.conf"]);
        let (out, _) = ok(&["--configuration=/z.conf", "-s", "-t", "--minprocs", "10"]);
        assert_eq!(out, ["nsvisor", "-c", "/z.conf"]);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for bad in [
            &["-x"][..],
            &["--nope"],
            &["-c"],
            &["--nodaemon=1"],
            &["stray"],
            &["-a", "many"],
        ] {
            assert_eq!(
                translate(args(bad)).err(),
                Some(ExitCode::from(2)),
                "{bad:?}"
            );
        }
        assert_eq!(translate(args(&["-h"])).err(), Some(ExitCode::SUCCESS));
    }

    #[test]
    fn names() {
        assert!(invoked_as_supervisord(Path::new("/usr/bin/supervisord")));
        assert!(invoked_as_supervisord(Path::new("supervisord")));
        assert!(!invoked_as_supervisord(Path::new("/usr/bin/nsvisor")));
    }
}
