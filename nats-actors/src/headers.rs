//! Header helpers: case-tolerant lookup and values that are safe to send.

use async_nats::HeaderMap;

/// The error headers of the NATS Service API (ADR-32).
pub(crate) const SERVICE_ERROR: &str = "Nats-Service-Error";
/// The error code header of the NATS Service API (ADR-32).
pub(crate) const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
/// Trace context headers carried from an incoming message to what its handler sends.
pub(crate) const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// The value of `name`, matched exactly first, then ignoring ASCII case. A name NATS cannot carry
/// matches nothing (async-nats would panic on it).
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    if !valid_name(name) {
        return None;
    }
    if let Some(v) = headers.get(name) {
        return Some(v.as_str());
    }
    headers
        .iter()
        .find(|(k, _)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(|v| v.as_str())
}

/// Whether async-nats accepts `name` as a header name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b':' && b != b' ')
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
