//! The schema a value is checked against: one entry per field of the stream's schema.

/// The JSON shape a field must have, from the field's Avro type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A JSON integer within 32 bits (Avro `int`).
    Int,
    /// A JSON integer within 64 bits (Avro `long`).
    Long,
    /// A JSON number (Avro `float`, `double`); integers are widened.
    Double,
    /// `true` or `false` (Avro `boolean`).
    Boolean,
    /// A JSON string (Avro `string`; also `bytes`, which JSON carries as base64 text).
    Text,
}

impl Kind {
    /// The kind of an Avro primitive type name, or None for a type JSON values cannot carry here.
    pub fn from_avro(name: &str) -> Option<Kind> {
        Some(match name {
            "int" => Kind::Int,
            "long" => Kind::Long,
            "float" | "double" => Kind::Double,
            "boolean" => Kind::Boolean,
            "string" | "bytes" => Kind::Text,
            _ => return None,
        })
    }
}

/// One field: how to check it and where its value goes.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: Box<str>,
    pub kind: Kind,
    /// May be null or absent.
    pub optional: bool,
    /// The output column this field fills, if the query reads it.
    pub column: Option<usize>,
    /// Integers are floor-divided by this (e.g. micros to millis); 1 leaves them alone.
    pub divisor: i64,
}

/// Fields looked up by JSON key. A producer writes its keys in one order, so
/// the field found at the same place in the previous record is tried first.
pub struct FieldIndex {
    pub fields: Vec<Field>,
}

impl FieldIndex {
    pub fn position(&self, key: &str, hint: Option<usize>) -> Option<usize> {
        let key = key.as_bytes();
        if let Some(i) = hint.filter(|&i| same_key(self.fields[i].name.as_bytes(), key)) {
            return Some(i);
        }
        self.fields.iter().position(|f| same_key(f.name.as_bytes(), key))
    }
}

/// Byte equality of two short keys, eight bytes at a time: a call to
/// memcmp per key cost a fifth of the decoding.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a_words, mut b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        if u64::from_ne_bytes(x.try_into().unwrap()) != u64::from_ne_bytes(y.try_into().unwrap()) {
            return false;
        }
    }
    let (a_tail, b_tail) = (a_words.remainder(), b_words.remainder());
    let mut differ = 0u8;
    for k in 0..a_tail.len() {
        differ |= a_tail[k] ^ b_tail[k];
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn keys_compare_by_every_byte() {
        for (a, b, same) in [
            ("", "", true), ("ts", "ts", true), ("ts", "tz", false), ("ts", "t", false),
            ("error_code", "error_code", true), ("error_code", "error_coda", false),
            ("description", "descriptioN", false), ("abcdefgh", "abcdefgh", true), ("abcdefgh", "abcdefgi", false),
            ("abcdefghXjklmnopq", "abcdefghYjklmnopq", false),
        ] {
            assert_eq!(same_key(a.as_bytes(), b.as_bytes()), same, "{a:?} vs {b:?}");
        }
    }
}
