//! A reference to one keyed actor, by its key: sends its commands (stored by the stream, acked
//! by the server) and its asks (stored the same way, answered by the actor after the
//! commands stored before them). The generated `<Actor>Ref` types wrap it.

use std::time::Duration;

use async_nats::StatusCode;
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::layout::Layout;
use super::layout::REPLY_TO;
use crate::client::{self, Client};
use crate::codec::{self, Codec};
use crate::error::{PublishError, RequestError};
use crate::jetstream::{JsPublish, Published};
use crate::origin::Origin;
use crate::telemetry::metrics::Operation;
use crate::telemetry::spans::SendKind;

/// A reference to the keyed actor of one key. `#[handlers]` generates a typed one for every
/// keyed actor (`AccountRef` for `Account`), with a method per `#[command]` and `#[ask]`.
///
/// ```no_run
/// # use nats_actors::prelude::*;
/// # use nats_actors::keyed::KeyedRef;
/// # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
/// let account = KeyedRef::new(&client, "Account", "account.{id}", "42", None)?;
/// account.command(&account.subject("account.{id}.deposit"), &5).await?;
/// let balance: i64 = account.ask(&account.subject("account.{id}.balance"), &()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct KeyedRef {
    client: Client,
    key: String,
    /// The key's subject prefix (`account.42`) and the number of template tokens it fills.
    prefix: String,
    key_tokens: usize,
    codec: Codec,
}

impl KeyedRef {
    /// The reference to the actor of `key` (its parameters' tokens joined by `.`) of actor
    /// `actor`, keyed by `template`; `codec` (by default the client's) encodes what is sent.
    pub fn new(
        client: &Client,
        actor: &'static str,
        template: &str,
        key: &str,
        codec: Option<Codec>,
    ) -> Result<Self, RequestError> {
        let layout = Layout::new(actor, template, 1).map_err(|e| RequestError::InvalidSubject {
            subject: template.to_string(),
            reason: e.to_string(),
        })?;
        let prefix = layout
            .key_subject(key)
            .map_err(|reason| RequestError::InvalidSubject {
                subject: template.to_string(),
                reason,
            })?;
        Ok(Self {
            client: client.clone(),
            key: key.to_string(),
            prefix,
            key_tokens: template.split('.').count(),
            codec: codec.unwrap_or(client.codec()),
        })
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same reference with another timeout for its asks (the client's by default).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            client: self.client.with_timeout(timeout),
            ..self.clone()
        }
    }

    /// The subject of handler `template` for this key: the key's tokens, then the template's
    /// others (literal: a keyed actor's subjects have its key's parameters only).
    #[doc(hidden)]
    pub fn subject(&self, template: &str) -> String {
        let rest: Vec<&str> = template.split('.').skip(self.key_tokens).collect();
        format!("{}.{}", self.prefix, rest.join("."))
    }

    /// Sends a command on `subject` (under this key) and waits until the stream stored it,
    /// sending it again (under the same message id, so stored once) when an ack is lost.
    pub async fn command<T: Serialize + ?Sized>(
        &self,
        subject: &str,
        payload: &T,
    ) -> Result<Published, PublishError> {
        let origin = Origin::client(&self.client, self.codec);
        let bytes = origin.encode(subject, payload)?;
        // A message id of its own makes a second send after a lost ack safe: the stream
        // stores it once.
        let options = JsPublish::new()
            .msg_id(nuid::next().to_string())
            .attempts(3);
        origin.js_publish(subject, bytes, &options).await
    }

    /// Sends an ask on `subject` (under this key) and waits for the actor's answer, up to the
    /// client's timeout: the stream stores the ask, the actor answers after the commands
    /// stored before it.
    pub async fn ask<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        subject: &str,
        payload: &T,
    ) -> Result<R, RequestError> {
        let origin = Origin::client(&self.client, self.codec);
        let bytes = origin.encode(subject, payload)?;
        let reply = self.ask_bytes(subject, bytes).await?;
        let codec = codec::of_headers(reply.headers.as_ref())?.unwrap_or(self.codec);
        let payload = crate::compression::payload(reply.headers.as_ref(), &reply.payload, || {
            crate::compression::inflate_limit(self.client.nats().server_info().max_payload)
        })?;
        Ok(codec.decode(&payload)?)
    }

    async fn ask_bytes(
        &self,
        subject: &str,
        payload: Bytes,
    ) -> Result<async_nats::Message, RequestError> {
        let nats = self.client.nats();
        let not_stored = |reason: String| RequestError::NotStored {
            subject: subject.to_string(),
            reason,
        };
        let inbox = nats.new_inbox();
        let mut answers = nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| not_stored(format!("cannot subscribe to the answer's inbox: {e}")))?;
        let mut headers = self.codec.headers();
        headers.insert(REPLY_TO, inbox.as_str());
        let (span, started) = self.client.begin(
            None,
            SendKind::Request,
            subject,
            payload.len(),
            &mut headers,
        );
        let timeout = self.client.timeout();
        let result = async {
            nats.publish_with_reply_and_headers(subject.to_string(), inbox, headers, payload)
                .await
                .map_err(|e| not_stored(e.to_string()))?;
            let wait = async {
                // The stream's ack comes first, without headers; then the answer, with them.
                while let Some(m) = answers.next().await {
                    if m.status == Some(StatusCode::NO_RESPONDERS) {
                        return Err(RequestError::NoResponders {
                            subject: subject.to_string(),
                        });
                    }
                    let Some(h) = m.headers.as_ref() else {
                        if let Some(reason) = ack_error(&m.payload) {
                            return Err(not_stored(reason));
                        }
                        continue;
                    };
                    if let Some(err) = client::service_error(Some(h)) {
                        return Err(err);
                    }
                    return Ok(m);
                }
                Err(not_stored("the connection closed".into()))
            };
            tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| RequestError::Timeout {
                    subject: subject.to_string(),
                    timeout,
                })?
        }
        .await;
        let error_type = result.as_ref().err().map(|e| match e {
            RequestError::NoResponders { .. } => "no_responders",
            RequestError::Timeout { .. } => "timeout",
            RequestError::Service { .. } => "service_error",
            _ => "request",
        });
        client::finish(&span, started, Operation::Request, &result, error_type);
        result
    }
}

/// The error of a JetStream publish ack, if it is one (`{"error":{"description":...}}`).
fn ack_error(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ack {
        error: Option<AckError>,
    }
    #[derive(serde::Deserialize)]
    struct AckError {
        description: Option<String>,
        code: Option<u16>,
    }
    let ack: Ack = serde_json::from_slice(payload).ok()?;
    let e = ack.error?;
    Some(format!(
        "{} ({})",
        e.description.unwrap_or_default(),
        e.code.unwrap_or_default()
    ))
}
