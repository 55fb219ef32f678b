//! Test helpers shared by both services' integration tests (feature `testing`).
//!
//! - [`MongoTestServer`]: one nx-27017 (a MongoDB wire-protocol server) per test binary on a free
//!   loopback port; every test takes a database of its own. A small shell watchdog stops the
//!   server (by its PID) when the test process exits, so no server outlives the run.
//! - [`ChildService`]: a service binary started for a test, killed by its PID when dropped.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768 and up by default),
/// from which the kernel picks the source port of every outgoing connection. A port from
/// `bind(0)` is in that range, so between the test choosing it and the child process binding
/// it, a connection made meanwhile (the tests run in parallel) could take it as its source port,
/// or another test be handed it too. These are handed out once per test process, in turn.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port on 127.0.0.1, never handed out twice in this process (free when asked; bind
/// it soon).
pub fn free_port() -> u16 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    // Each test process starts at its own place in the range, so that test binaries run one
    // after another (or a leftover of an earlier run) do not step on each other either.
    let next = NEXT.get_or_init(|| {
        let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
        AtomicU64::new(u64::from(std::process::id()) * 97 % span)
    });
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let port = TEST_PORTS.start + u16::try_from(offset).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {TEST_PORTS:?}")
}

/// Waits until something accepts TCP connections on `address`.
pub fn wait_for_port(address: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The nx-27017 server of this test process.
#[derive(Debug)]
pub struct MongoTestServer {
    port: u16,
    databases: AtomicU64,
    log_file: PathBuf,
}

impl MongoTestServer {
    /// The server, started on first use. Panics with the fix when nx-27017 is not installed.
    pub fn shared() -> &'static Self {
        static SERVER: OnceLock<MongoTestServer> = OnceLock::new();
        SERVER.get_or_init(Self::start)
    }

    // The watchdog is deliberately never waited for: it must outlive this process to clean up.
    #[allow(clippy::zombie_processes)]
    fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hello-tests-nx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create a temp dir for nx-27017");
        let log_file = dir.join("nx-27017.log");
        // The watchdog runs nx-27017, then waits while both it and this test process live; when
        // the test process is gone it stops nx-27017 by PID and removes the temp dir.
        let script = r#"
            nx-27017 --db memory --host 127.0.0.1 --port "$1" --log-file "$2/nx-27017.log" --pid-file "$2/nx-27017.pid" >"$2/stdout.log" 2>&1 &
            server=$!
            while kill -0 "$3" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
            kill "$server" 2>/dev/null
            wait "$server" 2>/dev/null
            rm -rf "$2"
        "#;
        Command::new("sh")
            .args(["-c", script, "nx-watchdog"])
            .arg(port.to_string())
            .arg(&dir)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run sh to start nx-27017");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            wait_for_port(address, Duration::from_secs(30)),
            "nx-27017 did not start on {address} within 30 s. Is it installed? \
             `pip install nx-27017==0.8.1` (scripts/test.sh does this). Its output: {}",
            std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default()
        );
        Self {
            port,
            databases: AtomicU64::new(0),
            log_file,
        }
    }

    /// A connection string for this server.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A database name no other test of this process uses.
    pub fn fresh_database(&self) -> String {
        format!(
            "test_{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Where nx-27017 logs, for failure messages.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }
}

/// A service process started for a test; killed (SIGKILL) by its PID when dropped.
#[derive(Debug)]
pub struct ChildService {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
}

impl ChildService {
    /// Starts `binary` with `env` and waits until `address` accepts connections.
    pub fn start(binary: &Path, env: &[(&str, String)], address: SocketAddr) -> Self {
        Self::start_with_stdout(binary, env, address, Stdio::null())
    }

    /// Like [`ChildService::start`], with the process's log (its standard output) written to
    /// `log`.
    pub fn start_logging_to(
        binary: &Path,
        env: &[(&str, String)],
        address: SocketAddr,
        log: &Path,
    ) -> Self {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", log.display()));
        Self::start_with_stdout(binary, env, address, Stdio::from(file))
    }

    fn start_with_stdout(
        binary: &Path,
        env: &[(&str, String)],
        address: SocketAddr,
        stdout: Stdio,
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let service = Self { child, address };
        assert!(
            wait_for_port(address, Duration::from_secs(30)),
            "{} did not listen on {address} within 30 s",
            binary.display()
        );
        service
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM and waits for it to exit; returns whether it exited within `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> bool {
        self.send_sigterm();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks a service binary's command line: `--help` prints its usage, naming `subcommand`, and
/// exits 0; `unknown` stops it at once with exit code 2 and says so (a server would never exit).
pub fn assert_command_line(binary: &str, subcommand: &str, unknown: &str) {
    let help = Command::new(binary)
        .arg("--help")
        .output()
        .expect("run the binary");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{binary} --help failed");
    assert!(
        text.contains("Usage:") && text.contains(subcommand),
        "{text}"
    );
    let refused = Command::new(binary)
        .arg(unknown)
        .output()
        .expect("run the binary");
    assert_eq!(refused.status.code(), Some(2), "{binary} {unknown}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!("unknown argument {unknown:?}")),
        "{binary} {unknown}"
    );
}
