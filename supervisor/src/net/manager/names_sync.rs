//! The names side of the network task: keeping every sandbox's hosts file
//! (and, for a new sandbox, its files and mount namespace) in line with the
//! programs on its network (`names.rs` does the file and namespace work).

use std::sync::Arc;

use super::{blocking, Task};
use crate::net::names::{self, Entry};
use crate::net::Error;

impl Task {
    /// Brings the names of every sandbox on `network` in line with its
    /// programs: rewrites each hosts file in place, and gives a sandbox that
    /// has none yet its files and mount namespace.
    pub(super) async fn sync_names(&mut self, network: &str) -> Result<(), Error> {
        let entries: Vec<Entry> = self
            .sandboxes
            .values()
            .filter(|s| s.network == network)
            .map(|s| {
                let programs = s.users.iter().filter_map(|p| {
                    let member = self.programs.get(p)?;
                    Some((p.as_str(), member.group.as_str()))
                });
                Entry::new(s.address, &s.name, programs)
            })
            .collect();
        let jobs: Vec<names::Job> = self
            .sandboxes
            .values()
            .filter(|s| s.network == network)
            .map(|s| names::Job {
                sandbox: s.name.clone(),
                dir: names::dir_of(&self.names_dir, &s.netns),
                hosts: names::hosts_file(&s.name, network, &entries),
                new: s.mntns.is_none(),
            })
            .collect();
        let made =
            blocking(move || names::apply(jobs))
                .await
                .map_err(|(sandbox, step, source)| Error::ConfigureSandbox {
                    sandbox,
                    step,
                    source,
                })?;
        for (sandbox, fd) in made {
            if let Some(s) = self.sandboxes.get_mut(&sandbox) {
                s.mntns = Some(Arc::new(fd));
            }
        }
        Ok(())
    }
}
