//! A fault-injecting TCP proxy on loopback, between a client and one server: added latency, a
//! stalled (half-open) link, a reset in the middle of a frame, a cut-off node.
//!
//! Each accepted connection gets its own upstream connection. Bytes go through a delay line per
//! direction (a bounded channel of chunks, each due `latency` after it was read), so latency
//! delays every chunk without capping the throughput.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::NatsServer;

/// Connections forwarded at once; more are reset on accept.
const MAX_CONNECTIONS: usize = 64;
/// The largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks held per direction (read, not yet written).
const IN_FLIGHT: usize = 64;
/// How long dialling the upstream may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Flowing,
    Stalled,
    Cut,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    latency_nanos: AtomicU64,
    reset_next: AtomicBool,
    accepted: AtomicU64,
    open: AtomicUsize,
    resets: AtomicU64,
}

/// A TCP proxy on `127.0.0.1:0` that forwards to one loopback upstream and injects faults on
/// demand. Its tasks stop when it is dropped.
///
/// ```no_run
/// # async fn demo() {
/// use nats_actors_suite::{proxy::FaultProxy, server};
/// let server = server();
/// let proxy = FaultProxy::to(&server);
/// let client = async_nats::connect(proxy.url()).await.unwrap();
/// proxy.stall(); // the client's next pings go unanswered
/// proxy.heal();
/// # drop(client); }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, which must be a loopback address. Call it inside a tokio
    /// runtime.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let listener = TcpListener::from_std(listener).expect("inside a tokio runtime");
        let shared = Arc::new(Shared {
            upstream,
            mode: watch::Sender::new(Mode::Flowing),
            latency_nanos: AtomicU64::new(0),
            reset_next: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            resets: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// Starts a proxy to `server`'s client port.
    pub fn to(server: &NatsServer) -> FaultProxy {
        Self::start(SocketAddr::from(([127, 0, 0, 1], server.port())))
    }

    /// `nats://127.0.0.1:<port>` of the proxy.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Delays every chunk forwarded, in both directions, by `latency` (zero: none). Applies to
    /// chunks read from now on.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, SeqCst);
    }

    /// Stops forwarding in both directions and keeps every socket open: no FIN, no RST, no data
    /// (a black-holed link). Connections accepted during the stall stall too.
    pub fn stall(&self) {
        self.shared.mode.send_replace(Mode::Stalled);
    }

    /// Ends a stall or a cut: forwarding resumes (held data first) and new connections go
    /// through.
    pub fn heal(&self) {
        self.shared.mode.send_replace(Mode::Flowing);
    }

    /// Forwards only the first half of the next server-to-client chunk (of any connection), then
    /// resets that client connection (RST, `SO_LINGER` 0). New connections go through as usual.
    pub fn reset_mid_frame(&self) {
        self.shared.reset_next.store(true, SeqCst);
    }

    /// Resets every open connection, and every new one on accept, until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.shared.mode.send_replace(Mode::Cut);
    }

    /// Connections accepted so far (including those reset on accept).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections being forwarded now.
    pub fn open(&self) -> usize {
        self.shared.open.load(SeqCst)
    }

    /// Forwarded connections reset so far, mid-frame or by a cut.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks: aborting it aborts them.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                shared.accepted.fetch_add(1, SeqCst);
                if *shared.mode.borrow() == Mode::Cut || connections.len() >= MAX_CONNECTIONS {
                    reset(client);
                    continue;
                }
                connections.spawn(serve(client, shared.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// A side closed or failed: close the other with a FIN.
    Closed,
    /// A fault: reset the client.
    Reset,
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    // Dialled only once the link flows: a connection accepted during a stall gets no INFO.
    let mut mode = shared.mode.subscribe();
    if !flowing(&mut mode).await {
        return reset(client);
    }
    let dialled = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(shared.upstream)).await;
    let Ok(Ok(mut upstream)) = dialled else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    shared.open.fetch_add(1, SeqCst);
    let end = pump(&mut client, &mut upstream, &shared).await;
    shared.open.fetch_sub(1, SeqCst);
    match end {
        End::Closed => {
            let _ = client.shutdown().await;
        }
        End::Reset => {
            shared.resets.fetch_add(1, SeqCst);
            reset(client);
        }
    }
    // `upstream` closes with a FIN as it drops: the server sees its client leave.
}

/// Forwards both directions until a side closes, a write fails, or a fault ends it.
async fn pump(client: &mut TcpStream, upstream: &mut TcpStream, shared: &Shared) -> End {
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let (up_tx, up_rx) = mpsc::channel(IN_FLIGHT);
    let (down_tx, down_rx) = mpsc::channel(IN_FLIGHT);
    let mut mode = shared.mode.subscribe();
    tokio::select! {
        end = read(client_read, up_tx, shared) => end,
        end = read(upstream_read, down_tx, shared) => end,
        end = write(upstream_write, up_rx, shared, false) => end,
        end = write(client_write, down_rx, shared, true) => end,
        _ = mode.wait_for(|m| *m == Mode::Cut) => End::Reset,
    }
}

/// A chunk read and when it may be written.
type Chunk = (Instant, Vec<u8>);

/// Reads chunks into the delay line while the link flows. Returns only on a cut: at the end of
/// the stream it closes the line (its writer then drains it and ends) and waits.
async fn read(mut from: ReadHalf<'_>, to: mpsc::Sender<Chunk>, shared: &Shared) -> End {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        if !flowing(&mut mode).await {
            return End::Reset;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let due = Instant::now() + Duration::from_nanos(shared.latency_nanos.load(SeqCst));
        if to.send((due, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(to);
    std::future::pending().await
}

/// Writes each chunk when it is due and the link flows; `to_client` takes the mid-frame reset.
async fn write(
    mut to: WriteHalf<'_>,
    mut from: mpsc::Receiver<Chunk>,
    shared: &Shared,
    to_client: bool,
) -> End {
    let mut mode = shared.mode.subscribe();
    while let Some((due, bytes)) = from.recv().await {
        tokio::time::sleep_until(due).await;
        if !flowing(&mut mode).await {
            return End::Reset;
        }
        if to_client && shared.reset_next.swap(false, SeqCst) {
            let _ = to.write_all(&bytes[..bytes.len() / 2]).await;
            return End::Reset;
        }
        if to.write_all(&bytes).await.is_err() {
            return End::Closed;
        }
    }
    End::Closed
}

/// Waits while the link is stalled; whether it flows (false: cut, or the proxy is gone).
async fn flowing(mode: &mut watch::Receiver<Mode>) -> bool {
    matches!(
        mode.wait_for(|m| *m != Mode::Stalled).await.map(|m| *m),
        Ok(Mode::Flowing)
    )
}

/// Closes `stream` with an RST instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}
