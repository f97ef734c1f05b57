//! [`Buffer`]: how much a handler holds for its waiting messages before it drops new ones.

use std::fmt;

/// How much a core handler (`#[subscribe]`, `#[request]`, `#[endpoint]`) holds of the messages
/// waiting for it, in messages or in bytes (subject, headers and payload, as on the wire). A
/// message that arrives when the buffer is full is dropped, counted in the handler's
/// [`HandlerStats::dropped`](crate::HandlerStats::dropped) and logged: never silently.
///
/// The default, [`Buffer::DEFAULT`], is 64 MiB per handler: what nats-server itself holds for
/// a slow connection before it cuts it (`max_pending`), so a burst the server would have
/// delivered is not dropped by the client. Set it per handler or actor (`buffer = 10_000`,
/// `buffer = "8MiB"`), for the whole runtime with
/// [`RuntimeBuilder::buffer`](crate::RuntimeBuilder::buffer), or with `NATS_ACTORS_BUFFER`.
///
/// ```
/// use nats_actors::Buffer;
/// assert_eq!(Buffer::parse("10000"), Ok(Buffer::messages(10_000)));
/// assert_eq!(Buffer::parse("8MiB"), Ok(Buffer::bytes(8 << 20)));
/// assert_eq!(Buffer::parse("512 KiB"), Ok(Buffer::bytes(512 << 10)));
/// assert!(Buffer::parse("8 parsecs").is_err());
/// assert_eq!(Buffer::DEFAULT, Buffer::bytes(64 << 20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer(Limit);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    Messages(usize),
    Bytes(usize),
}

impl Buffer {
    /// 64 MiB: nats-server's own default `max_pending` for a connection.
    pub const DEFAULT: Buffer = Buffer(Limit::Bytes(64 << 20));

    /// At most `n` messages waiting (at least 1).
    pub const fn messages(n: usize) -> Self {
        Self(Limit::Messages(if n == 0 { 1 } else { n }))
    }

    /// At most `n` bytes of messages waiting (at least one message is always held).
    pub const fn bytes(n: usize) -> Self {
        Self(Limit::Bytes(n))
    }

    /// `"10000"` (messages) or a size with a unit: `B`, `KiB`, `MiB`, `GiB` (or `KB`, `MB`,
    /// `GB`, powers of 1000), with or without a space.
    pub const fn parse(s: &str) -> Result<Self, BufferError> {
        let b = s.as_bytes();
        let (mut i, mut n) = (0, 0usize);
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            if b[i] != b'_' {
                n = match n.checked_mul(10) {
                    Some(v) => match v.checked_add((b[i] - b'0') as usize) {
                        Some(v) => v,
                        None => return Err(BufferError::TooLarge),
                    },
                    None => return Err(BufferError::TooLarge),
                };
            }
            i += 1;
        }
        if i == start {
            return Err(BufferError::NotANumber);
        }
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let mut end = b.len();
        while end > i && b[end - 1] == b' ' {
            end -= 1;
        }
        let unit: usize = match unit(b, i, end) {
            Some(u) => u,
            None => return Err(BufferError::UnknownUnit),
        };
        if unit == 0 {
            return Ok(Self::messages(n));
        }
        match n.checked_mul(unit) {
            Some(v) => Ok(Self::bytes(v)),
            None => Err(BufferError::TooLarge),
        }
    }

    /// [`Buffer::parse`] for a `buffer = "..."` option: an invalid one fails the build.
    #[doc(hidden)]
    pub const fn of_attribute(s: &str) -> Self {
        match Self::parse(s) {
            Ok(b) => b,
            Err(BufferError::NotANumber) => {
                panic!("buffer = \"...\": expected a number of messages or a size such as \"8MiB\"")
            }
            Err(BufferError::UnknownUnit) => {
                panic!("buffer = \"...\": unknown unit; use B, KiB, MiB, GiB, KB, MB or GB")
            }
            Err(BufferError::TooLarge) => panic!("buffer = \"...\": too large"),
        }
    }

    /// Whether one more message of `size` bytes fits beside `held` messages of `held_bytes`.
    #[inline(always)]
    pub(crate) fn admits(&self, held: usize, held_bytes: usize, size: usize) -> bool {
        match self.0 {
            Limit::Messages(n) => held < n,
            Limit::Bytes(n) => held == 0 || held_bytes.saturating_add(size) <= n,
        }
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Limit::Messages(n) => write!(f, "{n} messages"),
            Limit::Bytes(n) => write!(f, "{n} bytes"),
        }
    }
}

/// The multiplier of the unit in `b[from..to]` (0 for no unit: messages).
const fn unit(b: &[u8], from: usize, to: usize) -> Option<usize> {
    const UNITS: [(&[u8], usize); 8] = [
        (b"", 0),
        (b"B", 1),
        (b"KiB", 1 << 10),
        (b"MiB", 1 << 20),
        (b"GiB", 1 << 30),
        (b"KB", 1_000),
        (b"MB", 1_000_000),
        (b"GB", 1_000_000_000),
    ];
    let mut u = 0;
    while u < UNITS.len() {
        let (name, value) = UNITS[u];
        if name.len() == to - from {
            let mut k = 0;
            while k < name.len() && name[k].eq_ignore_ascii_case(&b[from + k]) {
                k += 1;
            }
            if k == name.len() {
                return Some(value);
            }
        }
        u += 1;
    }
    None
}

/// A buffer size that does not parse.
///
/// ```
/// use nats_actors::{Buffer, BufferError};
/// assert_eq!(Buffer::parse("lots"), Err(BufferError::NotANumber));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// It does not start with a number.
    #[error("expected a number of messages or a size such as 8MiB")]
    NotANumber,
    /// The unit is not one of B, KiB, MiB, GiB, KB, MB, GB.
    #[error("unknown unit; use B, KiB, MiB, GiB, KB, MB or GB")]
    UnknownUnit,
    /// The size does not fit in a `usize`.
    #[error("too large")]
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_their_units_and_bounds_hold() {
        assert_eq!(Buffer::parse(" 1_000 "), Ok(Buffer::messages(1000)));
        assert_eq!(Buffer::parse("2kb"), Ok(Buffer::bytes(2000)));
        assert_eq!(Buffer::parse("1GiB"), Ok(Buffer::bytes(1 << 30)));
        assert_eq!(Buffer::parse("7 B"), Ok(Buffer::bytes(7)));
        assert_eq!(Buffer::parse("MiB"), Err(BufferError::NotANumber));
        assert_eq!(
            Buffer::parse("99999999999999999999999"),
            Err(BufferError::TooLarge)
        );
        assert_eq!(Buffer::messages(0), Buffer::messages(1));
        let three = Buffer::messages(3);
        assert!(three.admits(2, 0, 100) && !three.admits(3, 0, 1));
        let small = Buffer::bytes(100);
        // One message is always held, however large; then the bytes bound.
        assert!(small.admits(0, 0, 1000));
        assert!(small.admits(1, 60, 40) && !small.admits(1, 60, 41));
    }
}
