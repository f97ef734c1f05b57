//! Header helpers: case-tolerant lookup and values that are safe to send.

use async_nats::HeaderMap;

/// The error headers of the NATS Service API (ADR-32).
pub(crate) const SERVICE_ERROR: &str = "Nats-Service-Error";
/// The error code header of the NATS Service API (ADR-32).
pub(crate) const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
/// Trace context headers carried from an incoming message to what its handler sends.
pub(crate) const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// The (first) value of `name`, matched exactly first, then ignoring ASCII case.
///
/// One pass over the few headers a message has, with nothing allocated: async-nats' own
/// `get(&str)` copies the name into a new `HeaderName` to hash it.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut folded = None;
    for (key, values) in headers.iter() {
        let key: &str = key.as_ref();
        if key.len() != name.len() {
            continue;
        }
        if key == name {
            return values.first().map(|v| v.as_str());
        }
        if folded.is_none() && key.eq_ignore_ascii_case(name) {
            folded = values.first();
        }
    }
    folded.map(|v| v.as_str())
}

/// A header value that cannot break the protocol: no CR/LF, at most `max` bytes.
pub(crate) fn safe_value(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The headers of an error reply: the NATS service error and its code.
pub(crate) fn error_headers(err: &crate::error::HandlerError) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(SERVICE_ERROR, safe_value(err.description(), 1024).as_str());
    h.insert(SERVICE_ERROR_CODE, err.code().to_string().as_str());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_values_are_made_safe() {
        let mut h = HeaderMap::new();
        h.insert("TraceParent", "00-abc");
        assert_eq!(get(&h, "traceparent"), Some("00-abc"));
        assert_eq!(get(&h, "tracestate"), None);
        assert_eq!(
            get(&h, "bad:name"),
            None,
            "an invalid name is no match, not a panic"
        );
        assert_eq!(get(&h, "tr\u{e9}ce"), None);
        assert_eq!(safe_value("a\r\nb", 10), "a  b");
        assert_eq!(safe_value("ééé", 3), "é");
    }
}
