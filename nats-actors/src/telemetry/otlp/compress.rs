//! `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`, and gzip of a request body.

use std::io::Write as _;

use bytes::Bytes;

/// How request bodies are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Compression {
    #[default]
    None,
    Gzip,
}

impl Compression {
    /// The compression `signal` (`TRACES`, `METRICS`) asks for: the signal's variable, else
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`. A value that is neither `gzip` nor `none` is ignored
    /// and the next variable read, as the OpenTelemetry SDK does; the second part says so, to
    /// be logged.
    pub(crate) fn from_env(signal: &str) -> (Self, Option<String>) {
        Self::from_vars(signal, |k| std::env::var(k).ok())
    }

    /// [`Compression::from_env`] with the variables read through `var`.
    fn from_vars(signal: &str, var: impl Fn(&str) -> Option<String>) -> (Self, Option<String>) {
        let mut ignored = None;
        for k in [
            format!("OTEL_EXPORTER_OTLP_{signal}_COMPRESSION"),
            "OTEL_EXPORTER_OTLP_COMPRESSION".to_string(),
        ] {
            let Some(v) = var(&k).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            match v.trim().to_ascii_lowercase().as_str() {
                "none" => return (Self::None, ignored),
                "gzip" => return (Self::Gzip, ignored),
                other => {
                    ignored.get_or_insert(format!(
                        "{k}=`{other}` is not supported (gzip or none): ignored"
                    ));
                }
            }
        }
        (Self::None, ignored)
    }

    /// `body` as sent: gzipped when asked. A gRPC body is a framed message (a 5-byte prefix:
    /// the compressed flag and the message's length); gzipped, the message is compressed and
    /// framed again with the flag set.
    pub(crate) fn apply(self, body: Bytes, grpc: bool) -> Bytes {
        if self == Self::None {
            return body;
        }
        let message = if grpc {
            &body[5.min(body.len())..]
        } else {
            &body[..]
        };
        let mut out = Vec::with_capacity(message.len() / 4 + 64);
        if grpc {
            out.extend_from_slice(&[1, 0, 0, 0, 0]);
        }
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        // Writing to a Vec does not fail.
        let _ = gz.write_all(message);
        let Ok(mut out) = gz.finish() else {
            return body;
        };
        if grpc {
            let len = u32::try_from(out.len() - 5).unwrap_or(u32::MAX);
            out[1..5].copy_from_slice(&len.to_be_bytes());
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_signal_variable_wins_and_an_unknown_value_is_ignored_with_a_note() {
        fn from(pairs: &[(&str, &str)]) -> (Compression, Option<String>) {
            Compression::from_vars("TRACES", |k| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            })
        }
        let generic = "OTEL_EXPORTER_OTLP_COMPRESSION";
        let traces = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
        assert_eq!(from(&[]), (Compression::None, None));
        assert_eq!(from(&[(generic, "GZIP")]), (Compression::Gzip, None));
        assert_eq!(
            from(&[(traces, "none"), (generic, "gzip")]),
            (Compression::None, None)
        );
        // As the SDK: an unknown value is ignored and the next variable read, but not silently.
        let (c, note) = from(&[(traces, "zstd"), (generic, "gzip")]);
        assert_eq!(c, Compression::Gzip);
        let note = note.expect("a note naming the value");
        assert!(note.contains(traces) && note.contains("`zstd`"), "{note}");
        let (c, note) = from(&[(generic, "brotli")]);
        assert_eq!(c, Compression::None);
        assert!(note.is_some_and(|n| n.contains("`brotli`")));
    }

    #[test]
    fn gzip_of_an_http_body_and_of_a_grpc_frame() {
        let message: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let http = Compression::Gzip.apply(Bytes::from(message.clone()), false);
        assert!(http.len() < message.len() / 10);
        assert_eq!(gunzip(&http), message);

        let mut frame = vec![0u8];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let grpc = Compression::Gzip.apply(Bytes::from(frame.clone()), true);
        assert_eq!(grpc[0], 1, "the compressed flag");
        let len = u32::from_be_bytes(grpc[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, grpc.len() - 5, "the length of the compressed message");
        assert_eq!(gunzip(&grpc[5..]), message);

        assert_eq!(
            Compression::None.apply(Bytes::from(frame.clone()), true),
            frame
        );
    }
}
