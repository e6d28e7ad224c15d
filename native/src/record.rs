//! One JSON value checked field by field and appended to the output columns.
//!
//! Only acceptance matters here: a value that is not exactly what the schema
//! asks for is refused without a reason, and the Python decoder then finds
//! the reason record by record. So anything doubtful is refused: a key given
//! twice, an integer written as `1.0`, an `int` outside 32 bits.

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::columns::ColumnBuilder;
use crate::fields::{Field, FieldIndex, Kind};

/// Refusal of a value; why is found by the Python path.
#[derive(Debug)]
pub struct Refused;

/// Checks `value` and appends its fields to `columns`; on refusal the
/// columns are left part-filled and must be dropped.
pub fn append(value: &[u8], index: &FieldIndex, state: &mut RecordState, columns: &mut [ColumnBuilder]) -> Result<(), Refused> {
    // One UTF-8 check of the whole value instead of one per string (a
    // quarter less decoding time): a byte that is not UTF-8 is refused
    // either way, since outside a string it is not JSON.
    let text = std::str::from_utf8(value).map_err(|_| Refused)?;
    let mut de = serde_json::Deserializer::from_str(text);
    state.seen.iter_mut().for_each(|s| *s = false);
    RecordSeed { index, columns, state }.deserialize(&mut de).map_err(|_| Refused)?;
    de.end().map_err(|_| Refused)
}

/// What one record's decoding leaves for the next.
pub struct RecordState {
    /// Fields met so far in the current record.
    seen: Vec<bool>,
    /// The field (None: a key not in the schema) at each key position of the previous record.
    key_order: Vec<Option<usize>>,
}

impl RecordState {
    pub fn new(fields: usize) -> RecordState {
        RecordState { seen: vec![false; fields], key_order: Vec::with_capacity(fields) }
    }
}

struct RecordSeed<'a> {
    index: &'a FieldIndex,
    columns: &'a mut [ColumnBuilder],
    state: &'a mut RecordState,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = &self.index.fields;
        let RecordState { seen, key_order } = self.state;
        let mut position = 0;
        while let Some(found) = map.next_key_seed(KeySeed { index: self.index, hint: key_order.get(position).copied().flatten() })? {
            match key_order.get_mut(position) {
                Some(slot) => *slot = found,
                None => key_order.push(found),
            }
            position += 1;
            let Some(i) = found else {
                map.next_value::<Checked>()?;
                continue;
            };
            if std::mem::replace(&mut seen[i], true) {
                return Err(de::Error::custom("key given twice"));
            }
            let field = &fields[i];
            let column = field.column.map(|c| &mut self.columns[c]);
            map.next_value_seed(ValueSeed { field, column, null_allowed: field.optional })?;
        }
        for (field, seen) in fields.iter().zip(seen.iter()) {
            if !seen {
                if !field.optional {
                    return Err(de::Error::custom("required field missing"));
                }
                if let Some(c) = field.column {
                    self.columns[c].append_null();
                }
            }
        }
        Ok(())
    }
}

/// A key, resolved to the schema field it names (None: not in the schema).
struct KeySeed<'a> {
    index: &'a FieldIndex,
    hint: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.index.position(key, self.hint))
    }
}

/// A field's value, checked against its kind and appended to its column if it has one.
struct ValueSeed<'a> {
    field: &'a Field,
    column: Option<&'a mut ColumnBuilder>,
    /// The field is optional and its value not yet known to be present.
    null_allowed: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.null_allowed {
            return deserializer.deserialize_option(self);
        }
        match self.field.kind {
            Kind::Text => deserializer.deserialize_str(self),
            Kind::Int | Kind::Long => deserializer.deserialize_i64(self),
            Kind::Double => deserializer.deserialize_f64(self),
            Kind::Boolean => deserializer.deserialize_bool(self),
        }
    }
}

fn refuse<E: de::Error>() -> E {
    E::custom("value does not match the field's type")
}

impl ValueSeed<'_> {
    fn integer<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.field.kind {
            Kind::Int if i32::try_from(v).is_err() => Err(refuse()),
            Kind::Int | Kind::Long => {
                if let Some(ColumnBuilder::Int(b)) = self.column {
                    b.append_value(v.div_euclid(self.field.divisor));
                }
                Ok(())
            }
            Kind::Double => {
                if let Some(ColumnBuilder::Double(b)) = self.column {
                    b.append_value(v as f64);
                }
                Ok(())
            }
            Kind::Boolean | Kind::Text => Err(refuse()),
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of kind {:?}", self.field.kind)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.integer(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.integer(v),
            Err(_) if self.field.kind == Kind::Double => {
                if let Some(ColumnBuilder::Double(b)) = self.column {
                    b.append_value(v as f64);
                }
                Ok(())
            }
            Err(_) => Err(refuse()),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if self.field.kind != Kind::Double || !v.is_finite() {
            return Err(refuse());
        }
        if let Some(ColumnBuilder::Double(b)) = self.column {
            b.append_value(v);
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.field.kind != Kind::Boolean {
            return Err(refuse());
        }
        if let Some(ColumnBuilder::Boolean(b)) = self.column {
            b.append_value(v);
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.field.kind != Kind::Text {
            return Err(refuse());
        }
        if let Some(ColumnBuilder::Text(b)) = self.column {
            b.append_value(v);
        }
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        ValueSeed { null_allowed: false, ..self }.deserialize(deserializer)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if !self.null_allowed {
            return Err(refuse());
        }
        if let Some(c) = self.column {
            c.append_null();
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(refuse())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(refuse())
    }
}

/// A value of a field the schema does not name: nothing is kept, but it is
/// parsed in full (escapes, UTF-8, numbers), as the Python paths parse it.
/// Skipping it unparsed would take a record they refuse.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}
