//! s6-style readiness (`ready_fd = N`): the program gets the write end of a
//! pipe as fd N and writes a newline to it when it is ready.
//!
//! The supervisor makes a [`ReadyPipe`] per spawn, gives the child its write
//! end and then [`ReadyPipe::watch`]es the read end on a small task that
//! reports the first newline and ends there, or at the end of the pipe (the
//! program, and whatever inherited the fd, closed it or exited).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use tokio::io::Interest;

/// One spawn's readiness pipe.
#[derive(Debug)]
pub struct ReadyPipe {
    read: OwnedFd,
    /// The end the child gets.
    pub write: OwnedFd,
    /// The number it gets there.
    pub target: i32,
}

impl ReadyPipe {
    /// A new pipe for fd `target` of the child.
    pub fn new(target: i32) -> std::io::Result<ReadyPipe> {
        let (read, write) = crate::sys::log_pipe()?;
        crate::sys::set_status_flag(read.as_fd(), nix::fcntl::OFlag::O_NONBLOCK, true)?;
        Ok(ReadyPipe {
            read,
            write,
            target,
        })
    }

    /// Closes the write end here (the child has its copy) and calls `on_ready`
    /// at the first newline the program writes; never if it writes none.
    pub fn watch(self, on_ready: impl FnOnce() + Send + 'static) {
        let ReadyPipe { read, write, .. } = self;
        drop(write);
        let pipe = match crate::sys::register_async(std::fs::File::from(read), Interest::READABLE) {
            Ok(pipe) => pipe,
            Err(e) => {
                tracing::error!("cannot watch a ready_fd pipe: {e}");
                return;
            }
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok(mut guard) = pipe.readable().await else {
                    return;
                };
                match guard.try_io(|p| {
                    let mut file: &std::fs::File = p.get_ref();
                    file.read(&mut buf)
                }) {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) if buf[..n].contains(&b'\n') => return on_ready(),
                    Ok(Ok(_)) | Err(_) => {}
                }
            }
        });
    }
}
