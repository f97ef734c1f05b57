//! Where a keyed actor lives on the server: its stream (the key's subjects, each stored under
//! `$ACTORS.<actor>.<partition>.` by the stream's own subject transform), one consumer per
//! partition, its state bucket, and how a stored subject gives back the key and the subject
//! the handler sees.

use crate::error::Error;

/// The header of an ask that names where its answer goes.
pub const REPLY_TO: &str = "Nats-Actors-Reply";

/// Partitions of a keyed actor unless `partitions = N` says otherwise.
pub const DEFAULT_PARTITIONS: u16 = 16;

/// The names and subjects of one keyed actor.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The actor's name (`#[actor(name)]`, by default the type's).
    pub(crate) actor: &'static str,
    /// Its stream, and its state bucket (`ACTORS_<actor>`, both).
    pub(crate) stream: String,
    pub(crate) bucket: String,
    /// The tokens of the key template; `None` where a parameter stands.
    key: Vec<Option<String>>,
    pub(crate) partitions: u16,
}

impl Layout {
    /// The layout of actor `actor` keyed by `template` (literal tokens and `{param}`s, at least
    /// one of them) over `partitions` partitions.
    pub(crate) fn new(actor: &'static str, template: &str, partitions: u16) -> Result<Self, Error> {
        let bad = |reason: String| Error::JetStream {
            what: format!("#[actor(key = \"{template}\")] of {actor}"),
            reason,
        };
        if actor.is_empty()
            || actor.contains(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
        {
            return Err(bad(format!(
                "the actor name `{actor}` names its stream and bucket: use letters, digits, `_` and `-`"
            )));
        }
        let mut key = Vec::new();
        for token in template.split('.') {
            match token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !name.is_empty() => key.push(None),
                _ if token.is_empty() || token.contains(['*', '>', '{', '}', ' ']) => {
                    return Err(bad(format!(
                        "`{token}` is not a subject token or a `{{param}}`"
                    )))
                }
                _ => key.push(Some(token.to_string())),
            }
        }
        if key.iter().all(Option::is_some) {
            return Err(bad(
                "the key names no `{param}`: one actor per value of what?".into(),
            ));
        }
        if partitions == 0 || partitions > 1024 {
            return Err(bad(format!("`partitions = {partitions}`: give 1 to 1024")));
        }
        Ok(Self {
            actor,
            stream: format!("ACTORS_{actor}"),
            bucket: format!("ACTORS_{actor}"),
            key,
            partitions,
        })
    }

    /// What the stream takes: every subject under a key (`account.*.>`).
    pub(crate) fn subjects(&self) -> String {
        let tokens: Vec<&str> = self
            .key
            .iter()
            .map(|t| t.as_deref().unwrap_or("*"))
            .collect();
        format!("{}.>", tokens.join("."))
    }

    /// Where the stream stores each subject: under its partition, a hash of the key's tokens
    /// (`$ACTORS.Account.{{partition(16,1)}}.account.{{wildcard(1)}}.>`).
    pub(crate) fn transform(&self) -> String {
        let params = self.key.iter().filter(|t| t.is_none()).count();
        let indices: Vec<String> = (1..=params).map(|i| i.to_string()).collect();
        let mut n = 0;
        let tokens: Vec<String> = self
            .key
            .iter()
            .map(|t| match t {
                Some(literal) => literal.clone(),
                None => {
                    n += 1;
                    format!("{{{{wildcard({n})}}}}")
                }
            })
            .collect();
        format!(
            "{}.{{{{partition({},{})}}}}.{}.>",
            self.prefix(),
            self.partitions,
            indices.join(","),
            tokens.join(".")
        )
    }

    fn prefix(&self) -> String {
        format!("$ACTORS.{}", self.actor)
    }

    /// The subjects of the stream: the key's (as published), and this actor's own under
    /// `$ACTORS.<actor>` (each partition's messages, and the reminders' schedules).
    pub(crate) fn stream_subjects(&self) -> Vec<String> {
        vec![self.subjects(), format!("{}.>", self.prefix())]
    }

    /// The subject prefix of the reminders of the key whose subject is `key_subject`
    /// (`account.42`): their schedules, which no consumer reads (the server fires them).
    pub(crate) fn reminders(&self, key_subject: &str) -> String {
        format!("{}.reminders.{key_subject}", self.prefix())
    }

    /// The subject prefix of partition `p`'s messages as stored.
    pub(crate) fn partition_prefix(&self, p: u16) -> String {
        format!("{}.{p}", self.prefix())
    }

    /// The filter of partition `p`'s consumer.
    pub(crate) fn partition_filter(&self, p: u16) -> String {
        format!("{}.{p}.>", self.prefix())
    }

    /// The durable name of partition `p`'s consumer.
    pub(crate) fn consumer(&self, p: u16) -> String {
        format!("partition-{p}")
    }

    /// The partition and the subject as published, of a stored subject.
    pub(crate) fn split<'a>(&self, stored: &'a str) -> Option<(u16, &'a str)> {
        let rest = stored
            .strip_prefix("$ACTORS.")?
            .strip_prefix(self.actor)?
            .strip_prefix('.')?;
        let (p, original) = rest.split_once('.')?;
        Some((p.parse().ok()?, original))
    }

    /// The key of a subject as published: its parameters' tokens joined by `.` (`42`, or
    /// `eu.42` for `order.{region}.{id}`); `None` when the subject is not under the key.
    pub(crate) fn key_of(&self, subject: &str) -> Option<String> {
        let mut tokens = subject.split('.');
        let mut key = String::new();
        for part in &self.key {
            let token = tokens.next()?;
            match part {
                Some(literal) if literal != token => return None,
                Some(_) => {}
                None => {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(token);
                }
            }
        }
        tokens.next()?;
        Some(key)
    }

    /// The subject prefix of `key` (`account.42`); an error when `key` does not have one
    /// token per parameter of the template.
    pub(crate) fn key_subject(&self, key: &str) -> Result<String, String> {
        let mut values = key.split('.');
        let mut out = Vec::with_capacity(self.key.len());
        for part in &self.key {
            match part {
                Some(literal) => out.push(literal.as_str()),
                None => match values.next() {
                    Some(v) if valid_token(v) => out.push(v),
                    _ => return Err(self.key_error(key)),
                },
            }
        }
        if values.next().is_some() {
            return Err(self.key_error(key));
        }
        Ok(out.join("."))
    }

    fn key_error(&self, key: &str) -> String {
        let params = self.key.iter().filter(|t| t.is_none()).count();
        format!(
            "`{key}` is not a key of {}: give {params} subject token(s) joined by `.`",
            self.actor
        )
    }
}

fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && !t
            .chars()
            .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
}

/// The state bucket's key for an actor key: KV keys take `[-/_=.a-zA-Z0-9]`, so any other
/// byte (and `=` itself) is written `=XX`.
pub(crate) fn state_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'/' | b'_' | b'.' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parameter() {
        let l = Layout::new("Account", "account.{id}", 16).unwrap();
        assert_eq!(l.subjects(), "account.*.>");
        assert_eq!(
            l.transform(),
            "$ACTORS.Account.{{partition(16,1)}}.account.{{wildcard(1)}}.>"
        );
        assert_eq!(
            l.split("$ACTORS.Account.3.account.42.deposit"),
            Some((3, "account.42.deposit"))
        );
        assert_eq!(l.split("$ACTORS.Other.3.account.42.deposit"), None);
        assert_eq!(l.key_of("account.42.deposit").as_deref(), Some("42"));
        assert_eq!(l.key_of("account.42"), None);
        assert_eq!(l.key_of("order.42.x"), None);
        assert_eq!(l.key_subject("42").unwrap(), "account.42");
        assert!(l.key_subject("4.2").is_err());
        assert!(l.key_subject("").is_err());
    }

    #[test]
    fn two_parameters() {
        let l = Layout::new("Order", "shop.{region}.order.{id}", 4).unwrap();
        assert_eq!(l.subjects(), "shop.*.order.*.>");
        assert_eq!(
            l.transform(),
            "$ACTORS.Order.{{partition(4,1,2)}}.shop.{{wildcard(1)}}.order.{{wildcard(2)}}.>"
        );
        assert_eq!(l.key_of("shop.eu.order.7.pay").as_deref(), Some("eu.7"));
        assert_eq!(l.key_subject("eu.7").unwrap(), "shop.eu.order.7");
        assert!(l.key_subject("eu").is_err());
    }

    #[test]
    fn bad_templates() {
        assert!(Layout::new("A", "account", 16).is_err());
        assert!(Layout::new("A", "account.*", 16).is_err());
        assert!(Layout::new("A", "account.{id}", 0).is_err());
        assert!(Layout::new("A.b", "account.{id}", 16).is_err());
    }

    #[test]
    fn state_keys() {
        assert_eq!(state_key("eu.42"), "eu.42");
        assert_eq!(state_key("a@b=c"), "a=40b=3Dc");
    }
}
