//! Helpers shared by the daemon's async unit tests (compiled for tests only).

use std::time::Duration;

/// Polls `probe` every few milliseconds until it gives a value; panics naming
/// `what` after `timeout`. The one way unit tests wait for a condition.
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
