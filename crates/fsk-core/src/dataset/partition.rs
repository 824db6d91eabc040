//! Hive partitions: `col=value` folder names, their encoding and their typed values.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::{Error, Result};
use crate::value::ScalarValue;

/// The folder value that stands for a null partition value (Hive's convention).
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Everything but the URI unreserved characters is percent-encoded in a partition value, so a
/// value always stays one path segment and round-trips exactly.
const VALUE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes a partition value (`None` is null) into the text after `col=`.
pub fn encode_value(value: Option<&str>) -> String {
    match value {
        None => HIVE_NULL.to_string(),
        Some(v) => utf8_percent_encode(v, VALUE_ENCODE).to_string(),
    }
}

/// Decodes the text after `col=` (`None` for the Hive null).
pub fn decode_value(text: &str) -> Option<String> {
    if text == HIVE_NULL {
        None
    } else {
        Some(percent_decode_str(text).decode_utf8_lossy().into_owned())
    }
}

/// The `col=value` segments of a `/`-separated relative path (the folders, not the file name),
/// decoded, in path order.
pub fn parse_hive_path(relative: &str) -> Vec<(String, Option<String>)> {
    let mut segments: Vec<&str> = relative.split('/').collect();
    segments.pop();
    segments
        .into_iter()
        .filter_map(|segment| {
            let (key, value) = segment.split_once('=')?;
            if key.is_empty() {
                return None;
            }
            Some((
                percent_decode_str(key).decode_utf8_lossy().into_owned(),
                decode_value(value),
            ))
        })
        .collect()
}

/// Each row's values of the partition `columns` of `batch`, displayed as Arrow displays them
/// (dates `YYYY-MM-DD`); `None` is null. `context` names the input in a missing-column error.
pub fn row_values(
    batch: &arrow::array::RecordBatch,
    columns: &[String],
    context: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    use arrow::array::Array;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let arrays: Vec<&ArrayRef> = columns
        .iter()
        .map(|c| {
            batch
                .column_by_name(c)
                .ok_or_else(|| Error::column_not_found(c, context, &batch.schema()))
        })
        .collect::<Result<_>>()?;
    let options = FormatOptions::default();
    let formatters = arrays
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow("formatting partition values", e))?;
    Ok((0..batch.num_rows())
        .map(|row| {
            arrays
                .iter()
                .zip(&formatters)
                .map(|(a, f)| a.is_valid(row).then(|| f.value(row).to_string()))
                .collect()
        })
        .collect())
}

/// Distinct partition values (as [`row_values`] gives them) and each row's index into them.
pub type RowGroups = (Vec<Vec<Option<String>>>, Vec<u32>);

/// Groups the rows of `batch` by their values of `columns`: the distinct values (displayed,
/// as [`row_values`] gives them) in order of first appearance, and each row's group. Rows
/// are compared by their row-encoded bytes, so nothing is formatted or allocated per row.
pub fn group_rows(
    batch: &arrow::array::RecordBatch,
    columns: &[String],
    context: &str,
) -> Result<RowGroups> {
    use arrow::row::{RowConverter, SortField};
    if columns.is_empty() {
        return Ok((vec![Vec::new()], vec![0; batch.num_rows()]));
    }
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|c| {
            batch
                .column_by_name(c)
                .cloned()
                .ok_or_else(|| Error::column_not_found(c, context, &batch.schema()))
        })
        .collect::<Result<_>>()?;
    let converter = RowConverter::new(
        arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect(),
    )
    .map_err(|e| Error::arrow("encoding partition values", e))?;
    let encoded = converter
        .convert_columns(&arrays)
        .map_err(|e| Error::arrow("encoding partition values", e))?;
    let mut firsts: Vec<usize> = Vec::new();
    let mut index: std::collections::HashMap<&[u8], u32> = std::collections::HashMap::new();
    let groups: Vec<u32> = (0..batch.num_rows())
        .map(|row| {
            *index.entry(encoded.row(row).data()).or_insert_with(|| {
                firsts.push(row);
                (firsts.len() - 1) as u32
            })
        })
        .collect();
    let values = firsts
        .iter()
        .map(|&row| {
            row_values(&batch.slice(row, 1), columns, context)
                .map(|mut v| v.pop().unwrap_or_default())
        })
        .collect::<Result<_>>()?;
    Ok((values, groups))
}

/// The folder for one row's partition values: `a=1/b=x`.
pub fn partition_dir(columns: &[String], values: &[Option<String>]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(column, value)| format!("{column}={}", encode_value(value.as_deref())))
        .collect::<Vec<_>>()
        .join("/")
}

/// Infers the type of a partition column from its textual values: all integers give
/// `Int64`, all `YYYY-MM-DD` dates give `Date32`, anything else `Utf8`. Nulls are ignored.
pub fn infer_type<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> DataType {
    let mut all_int = true;
    let mut all_date = true;
    let mut any = false;
    for value in values.into_iter().flatten() {
        any = true;
        if all_int && value.parse::<i64>().is_err() {
            all_int = false;
        }
        if all_date && !is_iso_date(value) {
            all_date = false;
        }
        if !all_int && !all_date {
            break;
        }
    }
    if !any {
        DataType::Utf8
    } else if all_int {
        DataType::Int64
    } else if all_date {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

fn is_iso_date(value: &str) -> bool {
    value.len() == 10
        && value.as_bytes()[4] == b'-'
        && value.as_bytes()[7] == b'-'
        && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
}

/// Converts a textual partition value to a typed one-element array of `data_type`.
pub fn typed_value(column: &str, value: Option<&str>, data_type: &DataType) -> Result<ScalarValue> {
    let Some(text) = value else {
        return Ok(ScalarValue::null(data_type));
    };
    let array: ArrayRef = match data_type {
        DataType::Int64 => Arc::new(Int64Array::from(vec![text.parse::<i64>().map_err(
            |_| Error::SchemaMismatch {
                message: format!("partition value {text:?} of column {column} is not an int64"),
                columns: vec![column.to_string()],
            },
        )?])),
        DataType::Date32 => {
            let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                Error::SchemaMismatch {
                    message: format!("partition value {text:?} of column {column} is not a date"),
                    columns: vec![column.to_string()],
                }
            })?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            Arc::new(Date32Array::from(vec![(date - epoch).num_days() as i32]))
        }
        DataType::Utf8 => Arc::new(StringArray::from(vec![text])),
        other => {
            let utf8: ArrayRef = Arc::new(StringArray::from(vec![text]));
            let cast = arrow::compute::cast(&utf8, other).map_err(|e| Error::SchemaMismatch {
                message: format!(
                    "partition value {text:?} of column {column} cannot be read as {other}: {e}"
                ),
                columns: vec![column.to_string()],
            })?;
            if cast.is_null(0) {
                return Err(Error::SchemaMismatch {
                    message: format!(
                        "partition value {text:?} of column {column} cannot be read as {other}"
                    ),
                    columns: vec![column.to_string()],
                });
            }
            cast
        }
    };
    Ok(ScalarValue::new(array))
}

/// A column of `len` copies of `value`.
pub fn repeat_value(value: &ScalarValue, len: usize) -> Result<ArrayRef> {
    if value.is_null() {
        return Ok(new_null_array(value.data_type(), len));
    }
    let indices = arrow::array::UInt32Array::from(vec![0u32; len]);
    arrow::compute::take(value.array().as_ref(), &indices, None)
        .map_err(|e| Error::arrow("expanding a partition value", e))
}

/// The partition layout of a dataset: its partition columns with their types, and for each
/// file the typed values.
#[derive(Clone, Debug, Default)]
pub struct PartitionSchema {
    /// Partition columns in folder order, with inferred (or given) types; nullable.
    pub fields: Vec<Field>,
}

impl PartitionSchema {
    /// Infers the layout from every file's `col=value` segments. Columns are ordered by first
    /// appearance; `overrides` fixes the type of a column.
    pub fn infer(
        files: &[Vec<(String, Option<String>)>],
        overrides: &HashMap<String, DataType>,
    ) -> Self {
        let mut names: Vec<String> = Vec::new();
        for parts in files {
            for (key, _) in parts {
                if !names.contains(key) {
                    names.push(key.clone());
                }
            }
        }
        // Columns given a type but absent from the layout exist too (all null).
        let mut extra: Vec<&String> = overrides.keys().filter(|k| !names.contains(k)).collect();
        extra.sort();
        names.extend(extra.into_iter().cloned());
        let fields = names
            .into_iter()
            .map(|name| {
                let data_type = overrides.get(&name).cloned().unwrap_or_else(|| {
                    infer_type(files.iter().flat_map(|parts| {
                        parts
                            .iter()
                            .filter(|(k, _)| *k == name)
                            .map(|(_, v)| v.as_deref())
                    }))
                });
                Field::new(name, data_type, true)
            })
            .collect();
        PartitionSchema { fields }
    }

    /// Whether there are no partition columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The partition column names.
    pub fn names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name().clone()).collect()
    }

    /// The typed values of one file (missing columns are null).
    pub fn values_of(
        &self,
        parts: &[(String, Option<String>)],
    ) -> Result<HashMap<String, ScalarValue>> {
        self.fields
            .iter()
            .map(|field| {
                let text = parts
                    .iter()
                    .find(|(k, _)| k == field.name())
                    .and_then(|(_, v)| v.as_deref());
                Ok((
                    field.name().clone(),
                    typed_value(field.name(), text, field.data_type())?,
                ))
            })
            .collect()
    }

    /// `file_schema` with the partition columns appended (a file column of the same name wins).
    pub fn extend(&self, file_schema: &Schema) -> Schema {
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for field in &self.fields {
            if file_schema.field_with_name(field.name()).is_err() {
                fields.push(field.clone());
            }
        }
        Schema::new_with_metadata(fields, file_schema.metadata().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_encoding() {
        for value in [
            "2025-01-01",
            "New York",
            "a/b",
            "50%",
            "x=y",
            "é",
            "",
            "__x",
        ] {
            let encoded = encode_value(Some(value));
            assert!(!encoded.contains('/'), "{encoded}");
            assert_eq!(decode_value(&encoded).as_deref(), Some(value));
        }
        assert_eq!(encode_value(None), HIVE_NULL);
        assert_eq!(decode_value(HIVE_NULL), None);
    }

    #[test]
    fn parses_folders_not_file_names() {
        let parts = parse_hive_path("day=2025-01-01/city=New%20York/part-1.parquet");
        assert_eq!(
            parts,
            vec![
                ("day".to_string(), Some("2025-01-01".to_string())),
                ("city".to_string(), Some("New York".to_string())),
            ]
        );
        assert!(parse_hive_path("a=1.parquet").is_empty());
        assert_eq!(
            parse_hive_path(&format!("n={HIVE_NULL}/f.parquet")),
            vec![("n".to_string(), None)]
        );
    }

    #[test]
    fn infers_int_date_and_string() {
        assert_eq!(infer_type([Some("1"), None, Some("-20")]), DataType::Int64);
        assert_eq!(
            infer_type([Some("2025-01-01"), Some("2024-02-29")]),
            DataType::Date32
        );
        assert_eq!(infer_type([Some("2025-02-30")]), DataType::Utf8);
        assert_eq!(infer_type([Some("1"), Some("x")]), DataType::Utf8);
        assert_eq!(infer_type([None]), DataType::Utf8);
    }

    #[test]
    fn typed_values_and_layout() {
        let files = vec![
            parse_hive_path("day=2025-01-01/n=1/a.parquet"),
            parse_hive_path("day=2025-01-02/n=10/b.parquet"),
        ];
        let layout = PartitionSchema::infer(&files, &HashMap::new());
        assert_eq!(layout.names(), vec!["day", "n"]);
        assert_eq!(layout.fields[0].data_type(), &DataType::Date32);
        assert_eq!(layout.fields[1].data_type(), &DataType::Int64);
        let values = layout.values_of(&files[1]).unwrap();
        assert_eq!(values["n"].to_string(), "10");
        assert_eq!(values["day"].to_string(), "2025-01-02");
    }
}
