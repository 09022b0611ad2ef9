//! Release helpers that need the binaries' clap definitions: `scripts/dist.sh`
//! runs `cargo run -p xtask -- dist-docs DIR` to write the man pages and the
//! shell completions of the release tarball.
//!
//! The definitions are the binaries' own `cli.rs` files, included here by
//! path, so the pages and completions always match what the binaries parse,
//! while `clap_mangen` stays out of the binaries (and of their build).
//!
//! Layout written under DIR (the tarball's, an install prefix's):
//! `share/man/man1/nsvisor.1`, `nsvisorctl.1`, `nsvisorctl-<command>.1`;
//! `share/bash-completion/completions/<bin>`, `share/zsh/site-functions/_<bin>`,
//! `share/fish/vendor_completions.d/<bin>.fish`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

// Only their `Cli` types are used; their fields are read by the binaries.
#[allow(dead_code)]
#[path = "../../supervisor/src/cli.rs"]
mod nsvisor_cli;

#[allow(dead_code)]
#[path = "../../ctl/src/cli.rs"]
mod nsvisorctl_cli;

/// A step that failed: what was being written, and why.
#[derive(Debug)]
struct Failed {
    what: PathBuf,
    source: std::io::Error,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [task, dir] = &args[..] else {
        return usage();
    };
    if task != "dist-docs" {
        return usage();
    }
    let commands = [nsvisor_cli::Cli::command(), nsvisorctl_cli::Cli::command()];
    match commands
        .into_iter()
        .try_for_each(|cmd| write_docs(cmd, Path::new(dir)))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed { what, source }) => {
            eprintln!("xtask: cannot write {}: {source}", what.display());
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo run -p xtask -- dist-docs DIR");
    ExitCode::from(2)
}

/// The man pages (one per binary, one per subcommand) and the bash, zsh and
/// fish completions of one binary.
fn write_docs(mut cmd: clap::Command, dir: &Path) -> Result<(), Failed> {
    let name = cmd.get_name().to_string();
    let man = dir.join("share/man/man1");
    create_dir(&man)?;
    clap_mangen::generate_to(cmd.clone(), &man).map_err(|source| Failed {
        what: man.join(format!("{name}.1")),
        source,
    })?;
    let completions = [
        (
            Shell::Bash,
            "share/bash-completion/completions",
            name.clone(),
        ),
        (Shell::Zsh, "share/zsh/site-functions", format!("_{name}")),
        (
            Shell::Fish,
            "share/fish/vendor_completions.d",
            format!("{name}.fish"),
        ),
    ];
    for (shell, sub, file) in completions {
        let path = dir.join(sub).join(file);
        create_dir(&dir.join(sub))?;
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        std::fs::write(&path, out).map_err(|source| Failed { what: path, source })?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(dir).map_err(|source| Failed {
        what: dir.to_owned(),
        source,
    })
}
