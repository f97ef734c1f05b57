//! Compressed payloads, marked by the `Content-Encoding` header (`gzip` or `zstd`).
//!
//! Receiving: every handler kind takes a compressed payload as if it were not, decompressed
//! before it is decoded, and so do replies to requests. Decompression stops at a bound (16 times
//! the server's `max_payload`, 16 MiB at the server's defaults): a payload that would inflate
//! past it (a decompression bomb) is rejected with code 413, an encoding other than `gzip`,
//! `zstd` or `identity` with 415, a corrupt one with 400; a request gets that error as its
//! reply, a JetStream message goes to the dead letters with the reason.
//!
//! Sending: [`RuntimeBuilder::compression`](crate::RuntimeBuilder::compression) (or
//! [`Client::with_compression`](crate::Client::with_compression)) compresses what the runtime
//! publishes, requests and replies once it is at least the threshold's size (1 KiB by default),
//! and marks it.
//!
//! ```
//! use nats_actors::Compression;
//!
//! let zstd = Compression::zstd().min_size(4096);
//! assert_eq!(zstd.encoding(), "zstd");
//! ```

use std::borrow::Cow;
#[cfg(feature = "compression")]
use std::io::{Read, Write};

use async_nats::HeaderMap;
use bytes::Bytes;

use crate::error::DecodeError;

/// The header that says how a payload is compressed.
pub(crate) const CONTENT_ENCODING: &str = "Content-Encoding";
/// [`CONTENT_ENCODING`] as a header name made at compile time: inserting or looking it up
/// copies no bytes, where a `&str` name is checked and copied each time.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) const CONTENT_ENCODING_NAME: async_nats::HeaderName =
    async_nats::HeaderName::from_static(CONTENT_ENCODING);

/// How much larger than the server's `max_payload` a payload may inflate.
const INFLATE_FACTOR: usize = 16;

/// What a handler or actor sends: compressed as its `compress = ...` option says, or not at
/// all (`compress = "none"`), whatever the runtime's default.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    Off,
    #[cfg(feature = "compression")]
    On(Compression),
}

/// How what is sent is compressed; see [the module](crate::compression).
#[cfg(feature = "compression")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    encoding: Encoding,
    min_size: usize,
}

#[cfg(feature = "compression")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Gzip,
    Zstd,
}

#[cfg(feature = "compression")]
impl Compression {
    /// gzip (fast level), for payloads of 1 KiB or more.
    pub fn gzip() -> Self {
        Self {
            encoding: Encoding::Gzip,
            min_size: 1024,
        }
    }

    /// zstd (level 3), for payloads of 1 KiB or more.
    pub fn zstd() -> Self {
        Self {
            encoding: Encoding::Zstd,
            min_size: 1024,
        }
    }

    /// Compress only payloads of at least `bytes` (smaller ones gain little and cost CPU).
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// The `Content-Encoding` it writes.
    pub fn encoding(&self) -> &'static str {
        match self.encoding {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// `payload` compressed when it is at least the threshold's size and compression makes it
    /// smaller; with the encoding to mark it with.
    pub(crate) fn apply(&self, payload: Bytes) -> (Bytes, Option<&'static str>) {
        if payload.len() < self.min_size {
            return (payload, None);
        }
        let packed = match self.encoding {
            Encoding::Gzip => {
                let mut out = flate2::write::GzEncoder::new(
                    Vec::with_capacity(payload.len() / 4),
                    flate2::Compression::fast(),
                );
                out.write_all(&payload).and_then(|()| out.finish())
            }
            Encoding::Zstd => zstd::bulk::compress(&payload, 3),
        };
        match packed {
            Ok(packed) if packed.len() < payload.len() => {
                (Bytes::from(packed), Some(self.encoding()))
            }
            // Incompressible (or, never seen, a failure of the encoder): sent as it is.
            _ => (payload, None),
        }
    }
}

/// The most a payload may inflate to on a server whose `max_payload` is `max_payload`.
pub(crate) fn inflate_limit(max_payload: usize) -> usize {
    max_payload.saturating_mul(INFLATE_FACTOR)
}

/// The payload of a message with `headers`: as sent, or decompressed (to at most `limit`
/// bytes) when its `Content-Encoding` says it is compressed.
#[inline]
pub(crate) fn payload<'a>(
    headers: Option<&HeaderMap>,
    payload: &'a Bytes,
    limit: impl FnOnce() -> usize,
) -> Result<Cow<'a, Bytes>, DecodeError> {
    match headers.and_then(|h| crate::headers::get(h, CONTENT_ENCODING)) {
        None => Ok(Cow::Borrowed(payload)),
        Some(encoding) => decompress(encoding, payload, limit()).map(Cow::Owned),
    }
}

/// `payload` as its `Content-Encoding` says, inflated to at most `limit` bytes.
pub(crate) fn decompress(
    encoding: &str,
    payload: &[u8],
    limit: usize,
) -> Result<Bytes, DecodeError> {
    let encoding = encoding.trim();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(Bytes::copy_from_slice(payload));
    }
    inflate(encoding, payload, limit)
}

#[cfg(feature = "compression")]
fn inflate(encoding: &str, payload: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    let zstd = encoding.eq_ignore_ascii_case("zstd");
    // A zstd frame that states its size (what zstd's encoders write) and fits the limit is
    // inflated into a buffer of that size at once; a wrong size fails there and is read again
    // by the bounded stream below.
    if zstd {
        if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(payload) {
            if let Ok(size) = usize::try_from(size) {
                if size <= limit {
                    if let Ok(out) = zstd::bulk::decompress(payload, size) {
                        return Ok(Bytes::from(out));
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(limit));
    let read = if encoding.eq_ignore_ascii_case("gzip") {
        flate2::read::GzDecoder::new(payload)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
    } else if zstd {
        zstd::stream::read::Decoder::with_buffer(payload)
            .and_then(|d| d.take(limit as u64 + 1).read_to_end(&mut out))
    } else {
        return Err(DecodeError::UnknownEncoding(encoding.to_string()));
    };
    match read {
        Ok(_) if out.len() > limit => Err(DecodeError::TooLarge { limit }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(DecodeError::Corrupt {
            encoding: encoding.to_string(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(not(feature = "compression"))]
fn inflate(encoding: &str, _payload: &[u8], _limit: usize) -> Result<Bytes, DecodeError> {
    Err(DecodeError::UnknownEncoding(format!(
        "{encoding} (the `compression` feature of nats-actors is off)"
    )))
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_round_trip_above_the_threshold_only() {
        let big = Bytes::from(vec![b'a'; 4096]);
        for c in [Compression::gzip(), Compression::zstd()] {
            let (packed, encoding) = c.apply(big.clone());
            assert_eq!(encoding, Some(c.encoding()));
            assert!(
                packed.len() < 200,
                "{}: {} bytes",
                c.encoding(),
                packed.len()
            );
            assert_eq!(decompress(c.encoding(), &packed, 1 << 20).unwrap(), big);
            let (small, none) = c.apply(Bytes::from_static(b"tiny"));
            assert_eq!((small.as_ref(), none), (&b"tiny"[..], None));
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_bad_input_is_typed() {
        let (bomb, _) = Compression::gzip().apply(Bytes::from(vec![0u8; 1 << 20]));
        assert!(matches!(
            decompress("gzip", &bomb, 64 * 1024),
            Err(DecodeError::TooLarge { limit: 65536 })
        ));
        assert!(matches!(
            decompress("br", b"x", 10),
            Err(DecodeError::UnknownEncoding(e)) if e == "br"
        ));
        assert!(matches!(
            decompress("zstd", b"not zstd", 10),
            Err(DecodeError::Corrupt { .. })
        ));
        assert_eq!(decompress("identity", b"as is", 10).unwrap(), "as is");
    }
}
