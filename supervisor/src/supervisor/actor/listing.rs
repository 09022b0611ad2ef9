//! What the supervisor tells clients about its programs: each program's own
//! snapshot plus what the supervisor keeps beside it (the last stop time, a
//! sandbox's traffic and port counters), as values or as the JSON the
//! `status` answer carries.

use std::time::Instant;

use nsvisor_proto::ProgramInfo;

use super::Supervisor;
use crate::supervisor::program::Program;

/// Room reserved per program in a JSON listing (a RUNNING program without
/// checks or sandbox takes about 230 bytes), so the buffer is rarely copied.
const JSON_BYTES_PER_PROGRAM: usize = 256;

impl Supervisor {
    /// Every program, in name order.
    pub(super) fn list(&self, now: Instant) -> Vec<ProgramInfo> {
        self.planner
            .programs()
            .map(|p| self.program_info(p, now))
            .collect()
    }

    /// [`Self::list`] as a JSON array, the bytes `serde_json` writes for it.
    ///
    /// Each program's info is written and dropped before the next is made,
    /// on this thread: at 10,000 programs this halves the daemon's CPU for a
    /// `status` against building the whole list and handing it to the API
    /// task, whose thread would free 30,000 strings into this thread's heap.
    pub(super) fn list_json(&self, now: Instant) -> serde_json::Result<Vec<u8>> {
        let mut out =
            Vec::with_capacity(self.planner.programs().len() * JSON_BYTES_PER_PROGRAM + 2);
        out.push(b'[');
        for (i, p) in self.planner.programs().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &self.program_info(p, now))?;
        }
        out.push(b']');
        Ok(out)
    }

    fn program_info(&self, p: &Program, now: Instant) -> ProgramInfo {
        let mut info = p.info(now);
        info.stopped_at = self.stops.get(info.name.as_str()).copied();
        if let Some(net) = &mut info.net {
            crate::net::add_live_figures(&info.name, net, self.net.forwarding());
        }
        info
    }
}
