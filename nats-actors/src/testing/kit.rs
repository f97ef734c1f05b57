//! [`TestRuntime`]: a throwaway server and a runtime with your actors on it, with what a test
//! needs: the client to publish and request, a wait for "handled", captures of what is
//! published on a subject, and the stats.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::{NatsServer, TestingError};
use crate::{Client, ConnectOptions, HandlerStats, Runtime, RuntimeBuilder, ShutdownReport, Stats};

/// How long [`TestRuntime::handled`] and [`Capture::next`] wait.
const WITHIN: Duration = Duration::from_secs(10);

/// A real `nats-server` (JetStream on, a free loopback port) and a runtime on it, stopped and
/// killed when dropped (or with [`stop`](Self::stop), which drains first).
///
/// ```no_run
/// use nats_actors::prelude::*;
/// use nats_actors::testing::TestRuntime;
///
/// #[derive(Actor)]
/// struct Greeter;
///
/// #[handlers]
/// impl Greeter {
///     #[request("greet.{name}")]
///     async fn greet(&self, name: Param<String>, ctx: &Context) -> Result<String, HandlerError> {
///         ctx.publish("greeted", &*name).await?;
///         Ok(format!("hello, {}", *name))
///     }
/// }
///
/// #[tokio::test]
/// async fn greets_and_tells() -> Result<(), Box<dyn std::error::Error>> {
///     let kit = TestRuntime::start(Runtime::builder().actor(Greeter)).await?;
///     let mut greeted = kit.capture("greeted").await?;
///     let reply: String = kit.client().request("greet.ada", &()).await?;
///     assert_eq!(reply, "hello, ada");
///     assert_eq!(greeted.next::<String>().await?, "ada");
///     assert_eq!(kit.handled("Greeter::greet", 1).await?.handled, 1);
///     kit.stop().await;
///     Ok(())
/// }
/// ```
pub struct TestRuntime {
    // Dropped before the server it runs on.
    runtime: Option<Runtime>,
    server: NatsServer,
}

impl std::fmt::Debug for TestRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRuntime")
            .field("server", &self.server.url())
            .finish_non_exhaustive()
    }
}

impl TestRuntime {
    /// Starts a server, then `builder` connected to it (any connection it names is replaced).
    pub async fn start(builder: RuntimeBuilder) -> Result<Self, TestingError> {
        let server = NatsServer::start()?;
        let runtime = builder
            .connect(ConnectOptions::new([server.url()]))
            .start()
            .await?;
        Ok(Self {
            runtime: Some(runtime),
            server,
        })
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("running until stop")
    }

    /// Its client: publish, request and `js_publish` as the outside world would.
    pub fn client(&self) -> &Client {
        self.runtime().client()
    }

    /// The server, to kill or restart it under the runtime.
    pub fn server(&mut self) -> &mut NatsServer {
        &mut self.server
    }

    /// The runtime's counters now.
    pub fn stats(&self) -> Stats {
        self.runtime().stats()
    }

    /// Waits (up to 10 s) until `handler` (`"Actor::method"`, all instances) has settled
    /// `count` messages (handled, failed or rejected), and returns its stats.
    pub async fn handled(&self, handler: &str, count: u64) -> Result<HandlerStats, TestingError> {
        let deadline = Instant::now() + WITHIN;
        loop {
            let stats = self.stats().handler(handler);
            if let Some(s) = stats.filter(|s| s.handled + s.failed + s.rejected >= count) {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(TestingError::TimedOut {
                    what: format!("{handler} to settle {count} messages (a misspelt name?)"),
                    within: WITHIN,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Starts capturing what is published on `subject` (wildcards allowed); the server knows
    /// the subscription when this returns.
    pub async fn capture(&self, subject: &str) -> Result<Capture, TestingError> {
        let nats = self.client().nats();
        let subscriber = nats
            .subscribe(subject.to_string())
            .await
            .map_err(|e| TestingError::Nats(e.to_string()))?;
        nats.flush()
            .await
            .map_err(|e| TestingError::Nats(e.to_string()))?;
        Ok(Capture {
            subject: subject.into(),
            subscriber,
            codec: self.client().codec(),
        })
    }

    /// Shuts the runtime down gracefully, then the server.
    pub async fn stop(mut self) -> ShutdownReport {
        let runtime = self.runtime.take().expect("running until stop");
        runtime.shutdown().await
    }
}

/// What is published on a subject, from [`TestRuntime::capture`].
#[derive(Debug)]
pub struct Capture {
    subject: String,
    subscriber: async_nats::Subscriber,
    codec: crate::Codec,
}

impl Capture {
    /// The next message (up to 10 s), decoded by its `Content-Type` (else the client's codec).
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, TestingError> {
        let message = self.message().await?;
        let codec = crate::codec::of_headers(message.headers.as_ref())
            .ok()
            .flatten()
            .unwrap_or(self.codec);
        codec
            .decode(&message.payload)
            .map_err(|source| TestingError::Decode {
                subject: message.subject.to_string(),
                source,
            })
    }

    /// The next message as it came (up to 10 s): subject, headers, payload.
    pub async fn message(&mut self) -> Result<async_nats::Message, TestingError> {
        match tokio::time::timeout(WITHIN, self.subscriber.next()).await {
            Ok(Some(message)) => Ok(message),
            _ => Err(TestingError::TimedOut {
                what: format!("a message on `{}`", self.subject),
                within: WITHIN,
            }),
        }
    }
}
