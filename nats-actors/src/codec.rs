//! Codecs: JSON and MessagePack, chosen by the `Content-Type` header or a handler's default.

use std::sync::LazyLock;

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, EncodeError};

/// The header naming a payload's codec.
pub const CONTENT_TYPE: &str = "Content-Type";

/// A payload encoding.
///
/// ```
/// use nats_actors::Codec;
/// let bytes = Codec::MsgPack.encode(&vec![1u8, 2, 3]).unwrap();
/// assert_eq!(Codec::MsgPack.decode::<Vec<u8>>(&bytes).unwrap(), vec![1, 2, 3]);
/// assert_eq!(Codec::from_content_type("application/json; charset=utf-8"), Some(Codec::Json));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON (`application/json`), the default.
    #[default]
    Json,
    /// MessagePack with field names (`application/msgpack`), readable by any msgpack library.
    MsgPack,
}

impl Codec {
    /// The `Content-Type` value sent with this codec.
    pub const fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::MsgPack => "application/msgpack",
        }
    }

    /// A new header map holding this codec's `Content-Type`: a copy of one made once per
    /// codec, which spares each message hashing the name and checking the value.
    pub(crate) fn headers(self) -> HeaderMap {
        static MAPS: LazyLock<[HeaderMap; 2]> = LazyLock::new(|| {
            [Codec::Json, Codec::MsgPack].map(|codec| {
                let mut map = HeaderMap::new();
                map.insert(CONTENT_TYPE, codec.content_type());
                map
            })
        });
        MAPS[match self {
            Codec::Json => 0,
            Codec::MsgPack => 1,
        }]
        .clone()
    }

    /// The codec of a `Content-Type` value (parameters and case ignored), if known.
    pub fn from_content_type(value: &str) -> Option<Codec> {
        let media = value.split(';').next().unwrap_or("").trim();
        let is = |s: &str| media.eq_ignore_ascii_case(s);
        if is("application/json") || is("text/json") || ends_with_ignore_case(media, "+json") {
            Some(Codec::Json)
        } else if is("application/msgpack")
            || is("application/x-msgpack")
            || is("application/vnd.msgpack")
        {
            Some(Codec::MsgPack)
        } else {
            None
        }
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, EncodeError> {
        Ok(match self {
            Codec::Json => Bytes::from(serde_json::to_vec(value)?),
            Codec::MsgPack => Bytes::from(rmp_serde::to_vec_named(value)?),
        })
    }

    /// Decodes a value; an empty payload is [`DecodeError::EmptyPayload`].
    #[inline]
    pub fn decode<T: DeserializeOwned>(self, payload: &[u8]) -> Result<T, DecodeError> {
        if payload.is_empty() {
            return Err(DecodeError::EmptyPayload);
        }
        Ok(match self {
            Codec::Json => serde_json::from_slice(payload)?,
            Codec::MsgPack => rmp_serde::from_slice(payload)?,
        })
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The codec a message's headers ask for: `Ok(None)` without a `Content-Type`.
pub(crate) fn of_headers(
    headers: Option<&async_nats::HeaderMap>,
) -> Result<Option<Codec>, DecodeError> {
    let Some(value) = headers.and_then(|h| crate::headers::get(h, CONTENT_TYPE)) else {
        return Ok(None);
    };
    Codec::from_content_type(value)
        .map(Some)
        .ok_or_else(|| DecodeError::UnknownContentType(value.chars().take(100).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            Codec::from_content_type("APPLICATION/JSON"),
            Some(Codec::Json)
        );
        assert_eq!(
            Codec::from_content_type("application/cloudevents+json"),
            Some(Codec::Json)
        );
        assert_eq!(
            Codec::from_content_type("application/x-msgpack"),
            Some(Codec::MsgPack)
        );
        assert_eq!(Codec::from_content_type("text/plain"), None);
        assert_eq!(Codec::from_content_type(""), None);
    }

    #[test]
    fn round_trips_and_errors() {
        for codec in [Codec::Json, Codec::MsgPack] {
            let b = codec.encode(&("a", 1u32)).unwrap();
            assert_eq!(codec.decode::<(String, u32)>(&b).unwrap(), ("a".into(), 1));
            assert!(matches!(
                codec.decode::<u32>(b""),
                Err(DecodeError::EmptyPayload)
            ));
            assert!(codec.decode::<(String, u32)>(&b[..b.len() - 1]).is_err());
        }
    }
}
