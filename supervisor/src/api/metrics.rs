//! `GET /metrics`: the programs and the daemon in Prometheus (OpenMetrics) text.
//!
//! Built fresh for every scrape from a program snapshot and the daemon
//! counters (no state is kept here, so nothing can drift from the
//! supervisor's). The metric names are documented in `docs/api.md`.

use nsvisor_proto::{ApiError, ErrorKind, ProgramInfo, State};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::supervisor::handle::DaemonStats;

/// Content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

const STATES: [State; 7] = [
    State::Stopped,
    State::Starting,
    State::Running,
    State::Backoff,
    State::Stopping,
    State::Exited,
    State::Fatal,
];

/// What the control API itself is doing.
#[derive(Debug, Clone, Default)]
pub struct ApiStats {
    /// Client connections open now.
    pub connections: usize,
    /// Clients following `/v1/events` now.
    pub event_followers: usize,
}

/// The metrics text for these programs and counters.
pub fn render(
    programs: &[ProgramInfo],
    stats: &DaemonStats,
    api: &ApiStats,
) -> Result<String, ApiError> {
    let mut registry = Registry::with_prefix("nsvisor");

    let state = Family::<Labels, Gauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    let started = Family::<Labels, Gauge>::default();
    let exit = Family::<Labels, Gauge>::default();
    let ready = Family::<Labels, Gauge>::default();
    let check_runs = Family::<Labels, Counter>::default();
    let check_failures = Family::<Labels, Counter>::default();
    let check_passing = Family::<Labels, Gauge>::default();
    let check_last = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let net_bytes = Family::<Labels, Counter>::default();
    let net_packets = Family::<Labels, Counter>::default();
    let port_active = Family::<Labels, Gauge>::default();
    let port_total = Family::<Labels, Counter>::default();
    let port_held = Family::<Labels, Counter>::default();
    for p in programs {
        if let Some(net) = &p.net {
            let labels = |extra: (&str, String)| {
                vec![
                    ("name".to_string(), p.name.clone()),
                    ("group".to_string(), p.group.clone()),
                    (extra.0.to_string(), extra.1),
                ]
            };
            if let Some(t) = net.traffic {
                for (direction, bytes, packets) in [
                    ("in", t.bytes_in, t.packets_in),
                    ("out", t.bytes_out, t.packets_out),
                ] {
                    let l = labels(("direction", direction.to_string()));
                    net_bytes.get_or_create(&l).inc_by(bytes);
                    net_packets.get_or_create(&l).inc_by(packets);
                }
            }
            for port in &net.ports {
                let Some(total) = port.connections_total else {
                    continue;
                };
                let ip: std::net::IpAddr = port
                    .host_ip
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                let at = std::net::SocketAddr::new(ip, port.host_port);
                let l = labels(("port", format!("{at}/{}", port.protocol)));
                port_total.get_or_create(&l).inc_by(total);
                port_held
                    .get_or_create(&l)
                    .inc_by(port.connections_held.unwrap_or(0));
                port_active
                    .get_or_create(&l)
                    .set(i64::try_from(port.connections_active.unwrap_or(0)).unwrap_or(i64::MAX));
            }
        }
        for c in &p.checks {
            let l = vec![
                ("name".to_string(), p.name.clone()),
                ("group".to_string(), p.group.clone()),
                ("check".to_string(), c.check.clone()),
                ("purpose".to_string(), c.purpose.clone()),
            ];
            check_runs.get_or_create(&l).inc_by(c.runs);
            check_failures.get_or_create(&l).inc_by(c.failures);
            check_passing.get_or_create(&l).set(i64::from(c.passing));
            if let Some(ms) = c.last_ms {
                check_last.get_or_create(&l).set(ms as f64 / 1000.0);
            }
        }
        let labels = || {
            vec![
                ("name".to_string(), p.name.clone()),
                ("group".to_string(), p.group.clone()),
            ]
        };
        for s in STATES {
            let mut l = labels();
            l.push(("state".to_string(), s.as_str().to_string()));
            state.get_or_create(&l).set(i64::from(p.state == s));
        }
        restarts
            .get_or_create(&labels())
            .inc_by(u64::from(p.restarts));
        ready.get_or_create(&labels()).set(i64::from(p.ready));
        if let Some(t) = p.started_at {
            started
                .get_or_create(&labels())
                .set(i64::try_from(t).unwrap_or(i64::MAX));
        }
        if let Some(status) = p.exit_status {
            exit.get_or_create(&labels())
                .set(i64::from(status.as_shell_code()));
        }
    }
    registry.register(
        "program_state",
        "1 for the state the program is in, 0 for the others",
        state,
    );
    registry.register(
        "program_ready",
        "1 when the program is RUNNING and passes its readiness checks, else 0",
        ready,
    );
    registry.register(
        "check_runs",
        "runs of a readiness or liveness check",
        check_runs,
    );
    registry.register(
        "check_failures",
        "failed runs of a readiness or liveness check",
        check_failures,
    );
    registry.register(
        "check_passing",
        "1 when the check passes for the program's current process, else 0",
        check_passing,
    );
    registry.register_with_unit(
        "check_last_duration",
        "how long the check's last run took",
        Unit::Seconds,
        check_last,
    );
    registry.register_with_unit(
        "sandbox_traffic",
        "bytes into (direction=in) and out of the program's sandbox, from its veth pair",
        Unit::Bytes,
        net_bytes,
    );
    registry.register(
        "sandbox_packets",
        "packets into (direction=in) and out of the program's sandbox",
        net_packets,
    );
    registry.register(
        "port_connections_active",
        "connections the port proxy forwards now, per mapping",
        port_active,
    );
    registry.register(
        "port_connections",
        "connections the port proxy accepted, per mapping",
        port_total,
    );
    registry.register(
        "port_connections_held",
        "connections the port proxy held until the program could take them (port_hold)",
        port_held,
    );
    registry.register(
        "program_restarts",
        "times the program was started again after its first start",
        restarts,
    );
    registry.register_with_unit(
        "program_start_time",
        "unix time of the program's last start",
        Unit::Seconds,
        started,
    );
    registry.register(
        "program_last_exit_status",
        "how the program's last process ended: its exit code, or 128+N when killed by signal N",
        exit,
    );

    let orphans = Counter::<u64>::default();
    orphans.inc_by(stats.orphans_reaped);
    registry.register(
        "orphans_reaped",
        "exited processes adopted by the daemon that belonged to no program",
        orphans,
    );
    let uptime = Gauge::<i64>::default();
    uptime.set(i64::try_from(stats.uptime_secs).unwrap_or(i64::MAX));
    registry.register_with_unit(
        "uptime",
        "time since the daemon started",
        Unit::Seconds,
        uptime,
    );

    let connections = Gauge::<i64>::default();
    connections.set(i64::try_from(api.connections).unwrap_or(i64::MAX));
    registry.register(
        "api_connections",
        "control socket connections open now",
        connections,
    );
    let followers = Gauge::<i64>::default();
    followers.set(i64::try_from(api.event_followers).unwrap_or(i64::MAX));
    registry.register(
        "api_event_followers",
        "clients following the state-change events now",
        followers,
    );

    let mut text = String::new();
    encode(&mut text, &registry)
        .map_err(|e| ApiError::new(ErrorKind::Failed, format!("cannot encode the metrics: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsvisor_proto::ExitStatus;

    #[test]
    fn renders_programs_and_daemon() {
        let p = ProgramInfo {
            name: "web:0".into(),
            group: "web".into(),
            state: State::Exited,
            pid: None,
            uptime_secs: None,
            started_at: Some(1_700_000_000),
            started_at_ms: None,
            stopped_at: None,
            exit_status: Some(ExitStatus::Signal(9)),
            restarts: 3,
            autostart: true,
            description: String::new(),
            ready: false,
            net: None,
            checks: vec![nsvisor_proto::CheckInfo {
                check: "tcp 127.0.0.1:80".into(),
                purpose: "readiness".into(),
                passing: false,
                runs: 4,
                failures: 3,
                last_ms: Some(1500),
                last: None,
            }],
        };
        let stats = DaemonStats {
            orphans_reaped: 5,
            uptime_secs: 7,
        };
        let api = ApiStats {
            connections: 1,
            event_followers: 2,
        };
        let text = render(&[p], &stats, &api).expect("encodes");
        for line in [
            r#"nsvisor_program_state{name="web:0",group="web",state="EXITED"} 1"#,
            r#"nsvisor_program_state{name="web:0",group="web",state="RUNNING"} 0"#,
            r#"nsvisor_program_restarts_total{name="web:0",group="web"} 3"#,
            r#"nsvisor_program_ready{name="web:0",group="web"} 0"#,
            r#"nsvisor_check_runs_total{name="web:0",group="web",check="tcp 127.0.0.1:80",purpose="readiness"} 4"#,
            r#"nsvisor_check_failures_total{name="web:0",group="web",check="tcp 127.0.0.1:80",purpose="readiness"} 3"#,
            r#"nsvisor_check_passing{name="web:0",group="web",check="tcp 127.0.0.1:80",purpose="readiness"} 0"#,
            r#"nsvisor_check_last_duration_seconds{name="web:0",group="web",check="tcp 127.0.0.1:80",purpose="readiness"} 1.5"#,
            r#"nsvisor_program_start_time_seconds{name="web:0",group="web"} 1700000000"#,
            r#"nsvisor_program_last_exit_status{name="web:0",group="web"} 137"#,
            "nsvisor_orphans_reaped_total 5",
            "nsvisor_uptime_seconds 7",
            "nsvisor_api_connections 1",
            "nsvisor_api_event_followers 2",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
