//! supervisord's XML-RPC interface at `/RPC2`, driven by Python's
//! `xmlrpc.client` (the library supervisorctl and most dashboards use): the
//! methods supervisorctl does not call, every fault an unusable call gets,
//! `system.multicall`, HTTP basic auth on the socket, and
//! `[inet_http_server]` (XML-RPC only over TCP, never the JSON API).

use std::process::Command;
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{wait_until, Daemon};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

/// Calls methods with `xmlrpc.client` over the unix socket (or an http:// URL):
/// argv = target, JSON `[[method, params...], ...]`; prints one JSON result per
/// call: the value, `{"fault": code, "text": string}` or `{"http": status}`.
const CLIENT: &str = r#"
import http.client, json, socket, sys, xmlrpc.client

class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.unix_path)
        self.sock = s

class Transport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.unix_path = path
    def make_connection(self, host):
        _, self._extra_headers, _ = self.get_host_info(host)
        return Conn(self.unix_path)

target, auth, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
prefix = auth + "@" if auth else ""
if target.startswith("http://"):
    proxy = xmlrpc.client.ServerProxy("http://" + prefix + target[7:])
else:
    proxy = xmlrpc.client.ServerProxy("http://" + prefix + "localhost", transport=Transport(target))
out = []
for method, *params in calls:
    f = proxy
    for part in method.split("."):
        f = getattr(f, part)
    try:
        out.append(f(*params))
    except xmlrpc.client.Fault as e:
        out.append({"fault": e.faultCode, "text": e.faultString})
    except xmlrpc.client.ProtocolError as e:
        out.append({"http": e.errcode})
print(json.dumps(out, default=str))
"#;

fn call_as(target: &str, auth: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("python3")
        .args(["-c", CLIENT, target, auth, &calls.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client output is JSON");
    v.as_array().cloned().unwrap_or_default()
}

fn call(d: &Daemon, calls: Value) -> Vec<Value> {
    call_as(&d.socket().to_string_lossy(), "", calls)
}

fn fault(code: i64) -> impl Fn(&Value) -> bool {
    move |v| v["fault"] == json!(code)
}

#[track_caller]
fn assert_fault(v: &Value, code: i64, text_starts: &str) {
    assert!(fault(code)(v), "expected fault {code}, got {v}");
    let text = v["text"].as_str().unwrap_or_default();
    assert!(text.starts_with(text_starts), "fault text {text:?}");
}

const CONFIG: &str = r#"
[programs.web]
command = ["{testprog}", "print-lines", "3", "--prefix", "web-", "stderr-lines", "2", "sleep", "forever"]
startsecs = 0

[programs.worker]
command = ["{testprog}", "sleep", "forever"]
numprocs = 2
startsecs = 0
autostart = false

[programs.idle]
command = ["{testprog}", "sleep", "forever"]
startsecs = 0
autostart = false

[programs.missing]
command = ["/no/such/program"]
autostart = false
"#;

#[test]
fn state_info_and_faults_over_xmlrpc_client() {
    let d = Daemon::start(CONFIG);
    d.wait_state("web", State::Running, T);
    wait_until("web's output in its tail buffer", T, || {
        let r = call(
            &d,
            json!([["supervisor.readProcessStdoutLog", "web", -100, 0]]),
        );
        r[0].as_str()
            .filter(|s| s.contains("web-line 3"))
            .map(|_| ())
    });
    let r = call(
        &d,
        json!([
            ["supervisor.getAPIVersion"],
            ["supervisor.getState"],
            ["supervisor.getPID"],
            ["supervisor.getIdentification"],
            ["supervisor.getProcessInfo", "web"],
            ["supervisor.getProcessInfo", "nosuch"],
            ["supervisor.getProcessInfo", "worker:1"],
            ["supervisor.startProcess", "web"],
            ["supervisor.stopProcess", "idle"],
            ["supervisor.startProcess", "missing"],
            ["supervisor.signalProcess", "web", "NOPE"],
            ["supervisor.readProcessStderrLog", "web", -100, 0],
            ["supervisor.readProcessStdoutLog", "web", -1, 5],
            ["supervisor.tailProcessStdoutLog", "web", 0, 5],
            ["supervisor.sendProcessStdin", "web", "hello\n"],
            ["supervisor.sendProcessStdin", "idle", "hello\n"],
            ["supervisor.sendRemoteCommEvent", "type", "data"],
            ["supervisor.readLog", 0, 0],
            ["supervisor.clearLog"],
            ["supervisor.nope"],
            ["nope.nope"],
            ["supervisor.getPID", 1],
        ]),
    );
    assert_eq!(r[0], json!("3.0"));
    assert_eq!(r[1], json!({"statecode": 1, "statename": "RUNNING"}));
    assert_eq!(r[2], json!(d.daemon_pid()));
    assert_eq!(r[3], json!("supervisor"));
    let web = &r[4];
    assert_eq!(web["name"], "web");
    assert_eq!(web["group"], "web");
    assert_eq!(web["state"], 20);
    assert_eq!(web["statename"], "RUNNING");
    let pid = web["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{web}");
    let desc = web["description"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&format!("pid {pid}, uptime 0:00:")),
        "{desc}"
    );
    for key in [
        "start",
        "stop",
        "now",
        "exitstatus",
        "spawnerr",
        "logfile",
        "stdout_logfile",
        "stderr_logfile",
    ] {
        assert!(web.get(key).is_some(), "getProcessInfo has {key}: {web}");
    }
    assert_fault(&r[5], 10, "BAD_NAME: nosuch");
    assert_eq!(r[6]["name"], "1");
    assert_eq!(r[6]["group"], "worker");
    assert_eq!(r[6]["statename"], "STOPPED");
    assert_eq!(r[6]["description"], "Not started");
    assert_fault(&r[7], 60, "ALREADY_STARTED: web");
    assert_fault(&r[8], 70, "NOT_RUNNING: idle");
    assert_fault(&r[9], 20, "NO_FILE: can't find command '/no/such/program'");
    assert_fault(&r[10], 11, "BAD_SIGNAL: NOPE");
    assert!(
        r[11].as_str().is_some_and(|s| s.contains("line 2")),
        "{}",
        r[11]
    );
    assert_fault(&r[12], 3, "BAD_ARGUMENTS");
    assert_eq!(r[13][2], json!(true), "overflow: {}", r[13]);
    assert_eq!(r[13][0], json!("ne 3\n"));
    assert_fault(&r[14], 20, "NO_FILE");
    assert_fault(&r[15], 70, "NOT_RUNNING");
    assert_fault(&r[16], 30, "FAILED");
    // Without a log file, the daemon's log is the tail it keeps in memory.
    let main_log = r[17].as_str().unwrap_or_default();
    assert!(main_log.contains("control API listening"), "{main_log}");
    assert_eq!(r[18], json!(true));
    assert_fault(&r[19], 1, "UNKNOWN_METHOD");
    assert_fault(&r[20], 1, "UNKNOWN_METHOD");
    assert_fault(&r[21], 2, "INCORRECT_PARAMETERS");
    // supervisorctl's `tail -f` reads /logtail: the end so far, then what comes.
    let mut follow = d.stream("/logtail/web");
    follow.read_until_contains("web-line 3", T);
    let mut stderr = d.stream("/logtail/web/stderr");
    stderr.read_until_contains("line 2", T);
    assert_eq!(d.request("GET", "/logtail/nosuch", "").status, 404);
    let r = call(&d, json!([["supervisor.readLog", 0, 0]]));
    let main_log = r[0].as_str().unwrap_or_default();
    assert!(
        !main_log.contains("control API listening"),
        "cleared: {main_log}"
    );
}

#[test]
fn clearing_process_logs_empties_their_tail_buffers() {
    let d = Daemon::start(CONFIG);
    wait_until("web's output in its tail buffers", T, || {
        let r = call(
            &d,
            json!([
                ["supervisor.readProcessStdoutLog", "web", 0, 0],
                ["supervisor.readProcessStderrLog", "web", 0, 0],
            ]),
        );
        let has = |v: &Value, text| v.as_str().is_some_and(|s| s.contains(text));
        (has(&r[0], "web-line 3") && has(&r[1], "line 2")).then_some(())
    });
    let r = call(
        &d,
        json!([
            ["supervisor.clearProcessLogs", "web"],
            ["supervisor.readProcessStdoutLog", "web", 0, 0],
            ["supervisor.readProcessStderrLog", "web", -100, 0],
            ["supervisor.tailProcessStdoutLog", "web", 0, 100],
            ["supervisor.clearProcessLogs", "nosuch"],
        ]),
    );
    assert_eq!(r[0], json!(true));
    assert_eq!(r[1], json!(""), "nothing old in stdout");
    assert_eq!(r[2], json!(""), "nothing old in stderr");
    assert_eq!(r[3], json!(["", 0, false]), "offsets start again at 0");
    assert_fault(&r[4], 10, "BAD_NAME: nosuch");
    let r = call(&d, json!([["supervisor.clearAllProcessLogs"]]));
    let results = r[0].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 5, "one result per process: {}", r[0]);
    assert!(results.iter().all(|x| x["status"] == json!(80)), "{}", r[0]);
}

#[test]
fn control_methods_group_results_and_multicall() {
    let mut d = Daemon::start(CONFIG);
    d.wait_state("web", State::Running, T);
    let r = call(
        &d,
        json!([
            ["supervisor.startProcessGroup", "worker"],
            ["supervisor.startProcess", "idle", true],
            ["supervisor.getProcessInfo", "idle"],
            ["supervisor.signalProcessGroup", "worker", "USR2"],
            ["supervisor.stopProcess", "worker:*"],
            ["supervisor.stopProcessGroup", "nosuch"],
            ["supervisor.getAllConfigInfo"],
            ["system.listMethods"],
            ["system.methodSignature", "supervisor.getPID"],
            ["system.methodHelp", "supervisor.nope"],
            ["system.multicall", [
                {"methodName": "supervisor.getAPIVersion", "params": []},
                {"methodName": "supervisor.getProcessInfo", "params": ["nosuch"]},
                {"methodName": "system.multicall", "params": [[]]},
                {"params": []},
            ]],
        ]),
    );
    let ok =
        |name: &str| json!({"name": name, "group": "worker", "status": 80, "description": "OK"});
    assert_eq!(r[0], json!([ok("0"), ok("1")]));
    assert_eq!(r[1], json!(true));
    assert_eq!(r[2]["statename"], "RUNNING");
    // USR2 kills testprog (no handler): signalled is what is reported.
    assert_eq!(r[3], json!([ok("0"), ok("1")]));
    assert!(r[4].as_array().is_some_and(|a| a.len() <= 2), "{}", r[4]);
    assert_fault(&r[5], 10, "BAD_NAME: nosuch");
    let configs = r[6].as_array().cloned().unwrap_or_default();
    let idle = configs
        .iter()
        .find(|c| c["name"] == "idle")
        .cloned()
        .unwrap_or_default();
    assert_eq!(idle["autostart"], json!(false));
    assert_eq!(idle["inuse"], json!(true));
    assert_eq!(idle["group_prio"], json!(999));
    let methods = r[7].as_array().cloned().unwrap_or_default();
    for m in [
        "supervisor.getAllProcessInfo",
        "supervisor.tailProcessStdoutLog",
        "system.multicall",
    ] {
        assert!(methods.contains(&json!(m)), "listMethods has {m}");
    }
    assert_eq!(r[8], json!(["int"]));
    assert_fault(&r[9], 4, "SIGNATURE_UNSUPPORTED");
    let mc = r[10].as_array().cloned().unwrap_or_default();
    assert_eq!(mc[0], json!(["3.0"]));
    assert_eq!(mc[1]["faultCode"], json!(10));
    assert_eq!(mc[2]["faultCode"], json!(2));
    assert_eq!(mc[3]["faultCode"], json!(2));
    let r = call(
        &d,
        json!([["supervisor.stopAllProcesses"], ["supervisor.shutdown"]]),
    );
    let stopped: Vec<&str> = r[0]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(stopped, ["idle", "web"]);
    assert_eq!(r[1], json!(true));
    assert!(d.wait_exit(T).success());
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn basic_auth_on_the_socket_and_xmlrpc_only_over_tcp() {
    let port = free_port();
    let d = Daemon::start(&format!(
        r#"
[supervisor]
socket_username = "user"
socket_password = "123"
inet_http_server = {{ port = "127.0.0.1:{port}", username = "admin", password = "{{SHA}}40bd001563085fc35165329ea1ff5c5ecbdbbeef" }}

[programs.web]
command = ["{{testprog}}", "sleep", "forever"]
startsecs = 0
"#
    ));
    d.wait_state("web", State::Running, T);
    let sock = d.socket().to_string_lossy().to_string();
    let one = json!([["supervisor.getAPIVersion"]]);
    assert_eq!(call_as(&sock, "", one.clone())[0], json!({"http": 401}));
    assert_eq!(
        call_as(&sock, "user:nope", one.clone())[0],
        json!({"http": 401})
    );
    assert_eq!(call_as(&sock, "user:123", one.clone())[0], json!("3.0"));
    // The JSON API is not behind basic auth (the peer-credential check guards it).
    assert_eq!(d.get("/v1/programs").0, 200);
    let tcp = format!("http://127.0.0.1:{port}");
    assert_eq!(call_as(&tcp, "", one.clone())[0], json!({"http": 401}));
    assert_eq!(call_as(&tcp, "admin:123", one.clone())[0], json!("3.0"));
    let r = call_as(
        &tcp,
        "admin:123",
        json!([["supervisor.getProcessInfo", "web"]]),
    );
    assert_eq!(r[0]["statename"], "RUNNING");
    // Only XML-RPC over TCP.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    use std::io::{Read, Write};
    s.write_all(b"GET /v1/programs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

#[test]
fn inet_http_server_without_credentials_is_refused_unless_loopback() {
    let mut d = Daemon::builder()
        .config(
            "[supervisor]\ninet_http_server = { port = \"0.0.0.0:9\" }\n\n[programs.a]\ncommand = [\"{testprog}\", \"sleep\", \"forever\"]\n",
        )
        .spawn();
    let status = d.wait_exit(T);
    assert_eq!(status.code(), Some(2));
    assert!(
        d.stderr().contains("set username and password"),
        "stderr: {}",
        d.stderr()
    );
}

#[test]
fn reread_add_and_remove_groups_with_their_faults() {
    let d = Daemon::start(CONFIG);
    d.wait_state("web", State::Running, T);
    let r = call(
        &d,
        json!([
            ["supervisor.reloadConfig"],
            ["supervisor.addProcessGroup", "web"],
            ["supervisor.addProcessGroup", "nosuch"],
            ["supervisor.removeProcessGroup", "web"],
            ["supervisor.removeProcessGroup", "idle"],
            ["supervisor.removeProcessGroup", "nosuch"],
        ]),
    );
    assert_eq!(r[0], json!([[[], [], []]]));
    assert_fault(&r[1], 90, "ALREADY_ADDED: web");
    assert_fault(&r[2], 10, "BAD_NAME: nosuch");
    assert_fault(&r[3], 91, "STILL_RUNNING: web");
    // Still in the config file: nsvisor removes groups that are gone from it.
    assert_fault(&r[4], 30, "FAILED: idle");
    assert_fault(&r[5], 10, "BAD_NAME: nosuch");
    // A new program, idle gone, and web changed: reread, then apply.
    let new_config = CONFIG
        .replace("[programs.idle]", "[programs.fresh]")
        .replace("\"web-\"", "\"web2-\"");
    d.write_config(&new_config);
    let r = call(&d, json!([["supervisor.reloadConfig"]]));
    assert_eq!(r[0], json!([[["fresh"], ["web"], ["idle"]]]));
    let r = call(
        &d,
        json!([
            ["supervisor.stopProcessGroup", "web"],
            ["supervisor.removeProcessGroup", "idle"],
            ["supervisor.removeProcessGroup", "web"],
            ["supervisor.addProcessGroup", "web"],
            ["supervisor.addProcessGroup", "fresh"],
        ]),
    );
    assert_eq!(r[1..], [json!(true), json!(true), json!(true), json!(true)]);
    let names = |d: &Daemon| -> Vec<String> {
        let r = call(d, json!([["supervisor.getAllProcessInfo"]]));
        r[0].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["group"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until("idle to be gone", T, || {
        (!names(&d).contains(&"idle".to_string())).then_some(())
    });
    d.wait_state("web", State::Running, T);
    // A config that does not load is CANT_REREAD with its errors.
    d.write_config("[programs.x]\ncommand = 5\n");
    let r = call(&d, json!([["supervisor.reloadConfig"]]));
    assert_fault(&r[0], 92, "CANT_REREAD");
}
