//! Output columns being filled, and their hand-over to Python as Arrow arrays.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef};

use crate::fields::Kind;

/// A column under construction; its type follows the field's kind.
pub enum ColumnBuilder {
    Int(Int64Builder),
    Double(Float64Builder),
    Boolean(BooleanBuilder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    pub fn with_capacity(kind: Kind, rows: usize) -> ColumnBuilder {
        match kind {
            Kind::Int | Kind::Long => ColumnBuilder::Int(Int64Builder::with_capacity(rows)),
            Kind::Double => ColumnBuilder::Double(Float64Builder::with_capacity(rows)),
            Kind::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            Kind::Text => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// The Arrow arrays' length, for a caller that checks it.
pub fn rows(arrays: &[ArrayRef]) -> usize {
    arrays.first().map_or(0, |a| a.len())
}
