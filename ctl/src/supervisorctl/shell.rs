//! supervisorctl's shell: `supervisorctl` without an action (or with `-i`)
//! shows the status, then reads commands line by line after the prompt
//! (`supervisor> `, or `[supervisorctl] prompt`), runs each as the command
//! line would, and ends at `quit`, `exit`, `EOF` or the end of input
//! (printing an empty line) or on Ctrl-C at the prompt. The prompt is written
//! to stdout whether or not stdin is a terminal, as Python's `input()` does,
//! so piped commands give the same transcript as supervisorctl's. Its exit
//! status is always 0. There is no line editing or history (`-r`).
//!
//! stdin is read by one thread that hands over whole lines, so waiting for a
//! line can also wait for Ctrl-C.

use std::io::{BufRead, Write};

use tokio::sync::mpsc;

use super::actions::{Ctl, Next};

/// One read from the user.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A line, without its line ending.
    Line(String),
    /// The end of input.
    Eof,
    /// Ctrl-C.
    Interrupted,
}

/// stdin, as lines.
#[derive(Debug)]
pub struct Input {
    lines: mpsc::Receiver<String>,
}

impl Input {
    /// Starts the thread that reads stdin.
    pub fn stdin() -> Input {
        let (tx, lines) = mpsc::channel(1);
        let started = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = started {
            // No reader: the input ends at once.
            eprintln!("supervisorctl: cannot read stdin: {e}");
        }
        Input { lines }
    }

    /// Writes `prompt` (when not empty) and waits for a line or Ctrl-C.
    pub async fn line(&mut self, prompt: &str) -> Read {
        if !prompt.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(prompt.as_bytes());
            let _ = out.flush();
        }
        tokio::select! {
            line = self.lines.recv() => match line {
                Some(line) => Read::Line(line),
                None => Read::Eof,
            },
            _ = tokio::signal::ctrl_c() => Read::Interrupted,
        }
    }
}

/// Runs the shell until its end; its exit status is 0.
pub async fn run(mut ctl: Ctl, prompt: &str) -> u8 {
    let prompt = format!("{prompt}> ");
    let mut line = "status".to_string();
    loop {
        let next = if Ctl::follows(&line) {
            ctl.onecmd(&line).await
        } else {
            tokio::select! {
                next = ctl.onecmd(&line) => next,
                _ = tokio::signal::ctrl_c() => break,
            }
        };
        if next == Next::Quit {
            return 0;
        }
        line = match ctl.read_line(&prompt).await {
            Read::Line(l) => l,
            Read::Eof => "EOF".to_string(),
            Read::Interrupted => break,
        };
    }
    println!();
    0
}
