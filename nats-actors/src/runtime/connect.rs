//! [`ConnectOptions`]: where and how the runtime connects, from code or the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// The server used when `NATS_URL` is not set.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The default ping interval: a stalled connection is detected within three of these (6 s).
pub(crate) const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(2);

/// How to connect: servers, name, credentials, TLS, retries.
///
/// # Defaults, and how fast a dead connection is noticed
///
/// - **Ping interval: 2 s** ([`ping_interval`](Self::ping_interval); async-nats' own default is
///   60 s). The client sends a PING after 2 s without any data from the server and gives the connection up
///   when a third PING would be outstanding, so a connection that stalls without closing (a
///   half-open link: no FIN, no RST, no data) is detected **within 6 s** (3 x the interval)
///   of the last data received, instead of up to 3 minutes. A busy connection sends no PINGs:
///   any data from the server restarts the count.
/// - A connection that is closed or reset is noticed at once, on the next read.
/// - **Reconnect backoff**: 10 ms before the first attempt, doubling with each (one attempt per
///   server tried) up to [`max_reconnect_delay`](Self::max_reconnect_delay) (default 4 s, reached
///   after 9 attempts); no limit on attempts; back to 10 ms once connected.
/// - **Connection timeout: 5 s** per attempt ([`connection_timeout`](Self::connection_timeout)):
///   a server that accepts the TCP connection but never answers is left after 5 s.
///
/// ```
/// use std::time::Duration;
/// use nats_actors::ConnectOptions;
/// let opts = ConnectOptions::new(["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"])
///     .name("inventory")
///     .user_and_password("svc", "secret")
///     .retry_on_initial_connect(true)
///     .max_reconnect_delay(Duration::from_secs(2));
/// assert_eq!(opts.servers().len(), 2);
/// assert!(!format!("{opts:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    servers: Vec<String>,
    name: Option<String>,
    auth: Auth,
    tls_required: bool,
    root_certificates: Vec<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    retry_on_initial_connect: bool,
    max_reconnect_delay: Duration,
    connection_timeout: Duration,
    ping_interval: Duration,
}

#[derive(Clone)]
enum Auth {
    None,
    Token(String),
    UserPassword(String, String),
    NkeySeed(String),
    CredentialsFile(PathBuf),
}

impl ConnectOptions {
    /// Connect to these servers (`nats://host:port`, several for failover).
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            name: None,
            auth: Auth::None,
            tls_required: false,
            root_certificates: Vec::new(),
            client_certificate: None,
            retry_on_initial_connect: false,
            max_reconnect_delay: Duration::from_secs(4),
            connection_timeout: Duration::from_secs(5),
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }

    /// Reads the environment, as the `nats` CLI does:
    /// `NATS_URL` (comma-separated; default `nats://127.0.0.1:4222`), `NATS_USER` and
    /// `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS` (credentials file), `NATS_NKEY` (seed file),
    /// `NATS_CA`, `NATS_CERT` and `NATS_KEY` (TLS).
    ///
    /// ```
    /// let opts = nats_actors::ConnectOptions::from_env().unwrap();
    /// assert!(!opts.servers().is_empty());
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = var("NATS_URL").unwrap_or_else(|| DEFAULT_URL.to_string());
        let servers: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if servers.is_empty() {
            return Err(Error::Config {
                setting: "NATS_URL",
                reason: "names no server".into(),
            });
        }
        let mut opts = Self::new(servers);
        if let Some(creds) = var("NATS_CREDS") {
            opts = opts.credentials_file(creds);
        } else if let Some(path) = var("NATS_NKEY") {
            let seed =
                std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })?;
            opts = opts.nkey_seed(seed.trim());
        } else if let Some(token) = var("NATS_TOKEN") {
            opts = opts.token(token);
        } else if let Some(user) = var("NATS_USER") {
            opts = opts.user_and_password(user, var("NATS_PASSWORD").unwrap_or_default());
        }
        if let Some(ca) = var("NATS_CA") {
            opts = opts.root_certificate(ca);
        }
        match (var("NATS_CERT"), var("NATS_KEY")) {
            (Some(cert), Some(key)) => opts = opts.client_certificate(cert, key),
            (None, None) => {}
            _ => {
                return Err(Error::Config {
                    setting: "NATS_CERT",
                    reason: "set both NATS_CERT and NATS_KEY, or neither".into(),
                })
            }
        }
        Ok(opts)
    }

    /// The servers to connect to.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// The client name shown by the server's monitoring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Authenticate with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticate with user and password.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticate with an nkey seed (`SU...`).
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NkeySeed(seed.into());
        self
    }

    /// Authenticate with a `.creds` file (JWT and seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Require TLS.
    pub fn require_tls(mut self, required: bool) -> Self {
        self.tls_required = required;
        self
    }

    /// Trust this CA certificate (PEM file); implies TLS.
    pub fn root_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates.push(path.into());
        self.tls_required = true;
        self
    }

    /// Present this client certificate and key (PEM files); implies TLS.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self.tls_required = true;
        self
    }

    /// Keep trying when no server answers at start (default: fail at once).
    pub fn retry_on_initial_connect(mut self, retry: bool) -> Self {
        self.retry_on_initial_connect = retry;
        self
    }

    /// The longest pause between reconnect attempts; attempts back off exponentially from 10 ms.
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// How long one connection attempt may take (default 5 s).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long the connection may go without data from the server before the client sends a
    /// PING (default 2 s). The connection is given up, and a reconnect begins, when a third
    /// PING would be outstanding: a stalled connection is noticed within three intervals. A
    /// longer interval sends fewer PINGs to idle servers and notices a dead link later. Zero is
    /// refused when the runtime starts.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), nats_actors::Error> {
    /// use std::time::Duration;
    /// use nats_actors::{ConnectOptions, Runtime};
    /// // Idle links on a metered network: a stall is noticed within 30 s.
    /// let opts = ConnectOptions::new(["nats://10.0.0.1:4222"]).ping_interval(Duration::from_secs(10));
    /// let runtime = Runtime::builder().connect(opts).start().await?;
    /// # Ok(()) }
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    pub(crate) async fn into_async_nats(self) -> Result<async_nats::ConnectOptions, Error> {
        if self.ping_interval.is_zero() {
            // A zero period would panic in async-nats' connection task.
            return Err(Error::Config {
                setting: "ping_interval",
                reason: "must be more than zero".into(),
            });
        }
        let mut o = async_nats::ConnectOptions::new();
        o = match self.auth {
            Auth::None => o,
            Auth::Token(t) => o.token(t),
            Auth::UserPassword(u, p) => o.user_and_password(u, p),
            Auth::NkeySeed(s) => o.nkey(s),
            Auth::CredentialsFile(path) => {
                let shown = path.display().to_string();
                o.credentials_file(path).await.map_err(|source| Error::Io {
                    path: shown,
                    source,
                })?
            }
        };
        if let Some(name) = self.name {
            o = o.name(name);
        }
        o = o.require_tls(self.tls_required);
        for ca in self.root_certificates {
            o = o.add_root_certificates(ca);
        }
        if let Some((cert, key)) = self.client_certificate {
            o = o.add_client_certificate(cert, key);
        }
        if self.retry_on_initial_connect {
            o = o.retry_on_initial_connect();
        }
        let max = self.max_reconnect_delay;
        o = o
            .reconnect_delay_callback(move |attempts| backoff(attempts, max))
            .connection_timeout(self.connection_timeout)
            // async-nats' 60 s would notice a stalled link only after up to 3 minutes.
            .ping_interval(self.ping_interval)
            // Never reached: each handler's inbox bounds what it holds, and counts its drops.
            .subscription_capacity(crate::handler::inbox::SUBSCRIPTION_CAPACITY);
        Ok(o)
    }
}

/// Exponential backoff from 10 ms, capped at `max`.
pub(crate) fn backoff(attempts: usize, max: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let exp = attempts.min(16) as u32 - 1;
    Duration::from_millis(10u64.saturating_mul(1 << exp)).min(max)
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::UserPassword(..) => "user/password",
            Auth::NkeySeed(_) => "nkey",
            Auth::CredentialsFile(_) => "credentials file",
        };
        f.debug_struct("ConnectOptions")
            .field("servers", &self.servers)
            .field("name", &self.name)
            .field("auth", &auth)
            .field("tls_required", &self.tls_required)
            .field("retry_on_initial_connect", &self.retry_on_initial_connect)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let max = Duration::from_secs(1);
        assert_eq!(backoff(0, max), Duration::ZERO);
        assert_eq!(backoff(1, max), Duration::from_millis(10));
        assert_eq!(backoff(3, max), Duration::from_millis(40));
        assert_eq!(backoff(100, max), max);
    }

    #[tokio::test]
    async fn pings_every_two_seconds_unless_told_otherwise() {
        let o = ConnectOptions::new(["nats://127.0.0.1:4222"]);
        let shown = format!("{:?}", o.clone().into_async_nats().await.unwrap());
        assert!(shown.contains("\"ping_interval\": 2s"), "{shown}");
        let o = o.ping_interval(Duration::from_millis(1500));
        let shown = format!("{:?}", o.clone().into_async_nats().await.unwrap());
        assert!(shown.contains("\"ping_interval\": 1.5s"), "{shown}");
        let zero = o.ping_interval(Duration::ZERO).into_async_nats().await;
        assert!(matches!(
            zero,
            Err(Error::Config {
                setting: "ping_interval",
                ..
            })
        ));
    }
}
