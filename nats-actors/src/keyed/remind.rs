//! Durable reminders: a message a keyed actor sends to its own key later, held by the server
//! (a JetStream message schedule, nats-server 2.12+) and delivered to whichever process owns the
//! key then, even if every process restarted in between.

use std::time::Duration;

use serde::Serialize;

use crate::context::{Context, TurnIds};
use crate::error::PublishError;
use crate::jetstream::JsPublish;
use crate::send::HasOrigin;

impl Context {
    /// In a keyed actor's turn: delivers `value` to this key's `subject` (what comes after the
    /// key: `"expire"` for `account.{id}.expire`) after `delay`, as a command of its own. The
    /// server holds it (a JetStream message schedule on the actor's stream), so it is delivered
    /// even if every process restarted meanwhile, to within about a second. Setting a reminder
    /// of the same `name` again replaces it; [`Context::cancel_reminder`] removes it.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # use std::time::Duration;
    /// #[derive(Actor, Default, Serialize, Deserialize)]
    /// #[actor(key = "transfer.{id}")]
    /// struct Transfer { settled: bool, expired: bool }
    ///
    /// #[handlers]
    /// impl Transfer {
    ///     #[command("transfer.{id}.start")]
    ///     async fn start(&mut self, ctx: &Context) -> Result<(), HandlerError> {
    ///         ctx.remind_in("expire", Duration::from_secs(30), "expire", &())
    ///             .await
    ///             .map_err(|e| HandlerError::new(e.to_string()))?;
    ///         Ok(())
    ///     }
    ///
    ///     #[command("transfer.{id}.expire")]
    ///     async fn expire(&mut self) {
    ///         if !self.settled {
    ///             self.expired = true;
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn remind_in<T: Serialize + ?Sized>(
        &self,
        name: &str,
        delay: Duration,
        subject: &str,
        value: &T,
    ) -> Result<(), PublishError> {
        let turn = self.reminder_turn(name)?;
        let reminders = &turn.reminders;
        if subject.is_empty() || !subject.split('.').all(valid_token) {
            return Err(refused(
                name,
                format!("`{subject}` is not the subject after the key: tokens without wildcards or spaces"),
            ));
        }
        let at = time::OffsetDateTime::now_utc() + delay;
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| refused(name, e.to_string()))?;
        let origin = self.origin();
        let payload = origin.encode(subject, value)?;
        let mut headers = origin.headers();
        headers.insert("Nats-Schedule", format!("@at {at}").as_str());
        let target = format!("{}.{}.{subject}", reminders.target, reminders.key_subject);
        headers.insert("Nats-Schedule-Target", target.as_str());
        let schedule = format!("{}.{name}", reminders.schedules);
        let options = JsPublish::new().msg_id(turn.next());
        self.client()
            .js_send(
                Some(self.frame()),
                &schedule,
                headers,
                payload,
                &options,
                usize::MAX,
            )
            .await
            .map(|_| ())
    }

    /// In a keyed actor's turn: removes this key's reminder `name`, if it has not fired yet
    /// (one that fired already is delivered all the same). Cancelling one that is not there
    /// is not an error.
    ///
    /// ```no_run
    /// # use nats_actors::prelude::*;
    /// # async fn settle(ctx: &Context) -> Result<(), HandlerError> {
    /// ctx.cancel_reminder("expire")
    ///     .await
    ///     .map_err(|e| HandlerError::new(e.to_string()))?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel_reminder(&self, name: &str) -> Result<(), PublishError> {
        let turn = self.reminder_turn(name)?;
        let reminders = &turn.reminders;
        let schedule = format!("{}.{name}", reminders.schedules);
        let js = self.client().jetstream();
        let stream = js
            .get_stream_no_info(&*reminders.stream)
            .await
            .map_err(|e| refused(name, e.to_string()))?;
        stream
            .purge()
            .filter(schedule)
            .await
            .map(|_| ())
            .map_err(|e| refused(name, format!("the server did not remove it: {e}")))
    }

    /// This turn's ids and reminders, if `name` fits and this is a keyed actor's turn.
    fn reminder_turn(&self, name: &str) -> Result<&TurnIds, PublishError> {
        if !valid_token(name) {
            return Err(refused(
                name,
                "a reminder's name is one subject token (no `.`, wildcards or spaces)".into(),
            ));
        }
        self.turn_ids().ok_or_else(|| {
            refused(
                name,
                "reminders are set in a keyed actor's #[command] or #[ask]".into(),
            )
        })
    }
}

fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && !t
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
}

fn refused(name: &str, reason: String) -> PublishError {
    PublishError::Reminder {
        name: name.to_string(),
        reason,
    }
}
