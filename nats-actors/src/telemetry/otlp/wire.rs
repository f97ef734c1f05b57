//! Protobuf wire-format primitives, written straight into a byte buffer.

pub(super) const LEN: u32 = 2;
pub(super) const VARINT: u32 = 0;
pub(super) const I64: u32 = 1;
pub(super) const I32: u32 = 5;

pub(super) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(super) fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

pub(super) fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(super) fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, I64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// The encoded length of a length-delimited field with a one-byte key.
pub(super) fn field_len(content: usize) -> usize {
    1 + varint_len(content as u64) + content
}

pub(super) enum AnyRef<'a> {
    Str(&'a str),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A `KeyValue` as field `field` of the enclosing message.
pub(super) fn kv(out: &mut Vec<u8>, field: u32, k: &str, v: AnyRef<'_>) {
    let any_len = match v {
        AnyRef::Str(s) => field_len(s.len()),
        AnyRef::I64(n) => 1 + varint_len(n as u64),
        AnyRef::F64(_) => 9,
        AnyRef::Bool(_) => 2,
    };
    let kv_len = field_len(k.len()) + field_len(any_len);
    out.reserve(field_len(kv_len) + 1);
    key(out, field, LEN);
    varint(out, kv_len as u64);
    bytes_field(out, 1, k.as_bytes());
    key(out, 2, LEN);
    varint(out, any_len as u64);
    match v {
        AnyRef::Str(s) => bytes_field(out, 1, s.as_bytes()),
        AnyRef::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(b));
        }
        AnyRef::I64(n) => {
            key(out, 3, VARINT);
            varint(out, n as u64);
        }
        AnyRef::F64(f) => {
            fixed64(out, 4, f.to_bits());
        }
    }
}

/// A span attribute (field 9) with a string value, its key's part written as it is.
pub(super) fn span_attr_str(out: &mut Vec<u8>, key_part: &[u8], s: &[u8]) {
    let any_len = field_len(s.len());
    let kv_len = key_part.len() + varint_len(any_len as u64) + any_len;
    out.reserve(1 + varint_len(kv_len as u64) + kv_len);
    out.push(9 << 3 | LEN as u8);
    varint(out, kv_len as u64);
    out.extend_from_slice(key_part);
    varint(out, any_len as u64);
    out.push(1 << 3 | LEN as u8);
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A span attribute (field 9) with an integer value, its key's part written as it is.
pub(super) fn span_attr_int(out: &mut Vec<u8>, key_part: &[u8], n: u64) {
    let any_len = 1 + varint_len(n);
    let kv_len = key_part.len() + 1 + any_len;
    out.reserve(1 + varint_len(kv_len as u64) + kv_len);
    out.push(9 << 3 | LEN as u8);
    varint(out, kv_len as u64);
    out.extend_from_slice(key_part);
    out.push(any_len as u8);
    out.push(3 << 3 | VARINT as u8);
    varint(out, n);
}

/// Writes a length-delimited field whose content `write` appends, encoding it once: two bytes
/// are left for its length (enough below 16 KiB, which a span is unless it carries many
/// events) and fixed up once the length is known.
pub(super) fn nested(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    write(out);
    let len = out.len() - at - 2;
    if len < 0x80 {
        out[at] = len as u8;
        out.remove(at + 1);
    } else if len < 0x4000 {
        out[at] = (len as u8) | 0x80;
        out[at + 1] = (len >> 7) as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        out.splice(at..at + 2, prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn nested_fields_are_encoded_as_bytes_fields_are() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, 40_000] {
            let content: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut expected = vec![7];
            bytes_field(&mut expected, 2, &content);
            let mut out = vec![7];
            nested(&mut out, 2, |out| out.extend_from_slice(&content));
            assert_eq!(out, expected, "{n} bytes");
        }
    }
}
