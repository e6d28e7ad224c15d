//! The package's native parts: Kafka partitions read in batches into Rust
//! buffers (`kafka`), and JSON values decoded from them straight into Arrow
//! columns for `engine.serde.json_decoder`.
//!
//! The Python decoder's fast path builds a Python object per field of every
//! record and then a polars column from those objects; here a batch is
//! parsed by serde_json and written into Arrow buffers that polars takes over
//! through the Arrow PyCapsule interface, with no Python object per record.
//! It only accepts: the first value that is not exactly what the schema asks
//! for makes `decode` return None, and the caller's record-by-record path
//! names the reasons.

mod columns;
mod fields;
mod kafka;
mod record;

use arrow_array::ArrayRef;
use arrow_data::ffi::FFI_ArrowArray;
use arrow_schema::ffi::FFI_ArrowSchema;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyList};

use crate::columns::ColumnBuilder;
use crate::fields::{Field, FieldIndex, Kind};
use crate::kafka::{MessageBatch, PartitionReader};

/// Decodes batches of JSON object values against one schema.
#[pyclass(module = "iot_native._native", frozen)]
struct JsonColumnDecoder {
    index: FieldIndex,
    /// The kind of each output column, in column order.
    column_kinds: Vec<Kind>,
}

#[pymethods]
impl JsonColumnDecoder {
    /// `fields`: (JSON name, Avro type, may be null or absent, output column or None,
    /// integer divisor) for every field of the schema; output columns are numbered from 0.
    #[new]
    fn new(fields: Vec<(String, String, bool, Option<usize>, i64)>) -> PyResult<Self> {
        let mut parsed = Vec::with_capacity(fields.len());
        for (name, avro_type, optional, column, divisor) in fields {
            let kind = Kind::from_avro(&avro_type)
                .ok_or_else(|| PyValueError::new_err(format!("field {name}: JSON values cannot carry type {avro_type}")))?;
            if divisor < 1 {
                return Err(PyValueError::new_err(format!("field {name}: divisor must be at least 1")));
            }
            parsed.push(Field { name: name.into(), kind, optional, column, divisor });
        }
        let mut column_kinds: Vec<Option<Kind>> = vec![None; parsed.iter().filter(|f| f.column.is_some()).count()];
        for f in &parsed {
            match f.column.and_then(|c| column_kinds.get_mut(c)) {
                Some(slot @ None) => *slot = Some(f.kind),
                Some(Some(_)) => return Err(PyValueError::new_err(format!("field {}: output column taken twice", f.name))),
                None if f.column.is_some() => return Err(PyValueError::new_err(format!("field {}: output column out of range", f.name))),
                None => {}
            }
        }
        Ok(JsonColumnDecoder { index: FieldIndex { fields: parsed }, column_kinds: column_kinds.into_iter().flatten().collect() })
    }

    /// The output columns of `values` (a list of bytes), or None when any value is refused.
    fn decode(&self, values: &Bound<'_, PyAny>) -> PyResult<Option<Vec<ArrowColumn>>> {
        let list = values.cast::<PyList>().map_err(|_| PyTypeError::new_err("values must be a list"))?;
        let mut items = Vec::with_capacity(list.len());
        for item in list.iter() {
            items.push(item.cast_into::<PyBytes>().ok()); // not bytes (a null value): refused below
        }
        Ok(self.columns(items.iter().map(|b| b.as_ref().map(|b| b.as_bytes()))))
    }

    /// The output columns of the values of a `MessageBatch`, read in place, or None when any is refused.
    fn decode_batch(&self, py: Python<'_>, batch: &Bound<'_, MessageBatch>) -> Option<Vec<ArrowColumn>> {
        let batch = batch.get();
        py.detach(|| self.columns((0..batch.len()).map(|i| batch.value(i))))
    }
}

impl JsonColumnDecoder {
    fn columns<'v>(&self, values: impl ExactSizeIterator<Item = Option<&'v [u8]>>) -> Option<Vec<ArrowColumn>> {
        let rows = values.len();
        let mut columns: Vec<ColumnBuilder> = self.column_kinds.iter().map(|k| ColumnBuilder::with_capacity(*k, rows)).collect();
        let mut state = record::RecordState::new(self.index.fields.len());
        for value in values {
            record::append(value?, &self.index, &mut state, &mut columns).ok()?;
        }
        let arrays: Vec<ArrayRef> = columns.iter_mut().map(ColumnBuilder::finish).collect();
        debug_assert!(arrays.is_empty() || columns::rows(&arrays) == rows);
        Some(arrays.into_iter().map(|array| ArrowColumn { array }).collect())
    }
}

/// One decoded column, handed to polars (or any Arrow consumer) without copying.
#[pyclass(module = "iot_native._native", frozen)]
struct ArrowColumn {
    array: ArrayRef,
}

#[pymethods]
impl ArrowColumn {
    /// The Arrow PyCapsule interface: (schema capsule, array capsule).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema; // the column is offered in its own type only
        let data = self.array.to_data();
        let schema = FFI_ArrowSchema::try_from(data.data_type()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let array = FFI_ArrowArray::new(&data);
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(py, array, c"arrow_array")?,
        ))
    }

    fn __len__(&self) -> usize {
        self.array.len()
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<JsonColumnDecoder>()?;
    m.add_class::<ArrowColumn>()?;
    m.add_class::<PartitionReader>()?;
    m.add_class::<MessageBatch>()?;
    Ok(())
}
