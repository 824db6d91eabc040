//! Pre-validation of Parquet footers before the `parquet` crate decodes them.
//!
//! parquet 58.4.1 decodes the footer (a thrift-compact `FileMetaData`) with a hand-written
//! decoder that trusts the bytes: it calls `Vec::with_capacity` with list counts read off the
//! wire, builds the schema tree recursively with no depth limit, reads known field ids by
//! their schema type whatever the wire type says, skips `list<bool>` elements as zero bytes
//! and cannot skip sets or maps. A few crafted bytes can therefore allocate gigabytes,
//! overflow the stack or spin for a very long time. [`validate_footer`] walks the same bytes
//! with explicit bounds first; only footers it accepts should reach the decoder.
//!
//! The walk is table driven (`fields`): for every struct the decoder knows, each field id
//! maps to the type the decoder reads it as. A known field must carry exactly that type, so
//! the decoder consumes the same bytes the walk did and every list count the decoder
//! allocates for was checked here against elements that really exist. Unknown fields are
//! walked the way the decoder's generic `skip` walks them, minus the constructs `skip` gets
//! wrong (`list<bool>`, sets, maps) and with a nesting bound.

/// Limits applied by [`validate_footer`].
#[derive(Clone, Copy, Debug)]
pub struct FooterLimits {
    /// Deepest nesting of structs and lists, `FileMetaData` being level 1 (real footers need
    /// 8 at most). Values above 64 act as 64.
    pub max_struct_depth: usize,
    /// Deepest schema element; the root's children are at depth 1.
    pub max_schema_depth: usize,
    /// Most elements in the flattened schema (`FileMetaData` field 2).
    pub max_schema_elements: usize,
    /// Most row groups (`FileMetaData` field 4).
    pub max_row_groups: usize,
    /// Largest sum over the schema's leaves of their depth: how many path components the
    /// decoder copies into column descriptors.
    pub max_leaf_path_total: usize,
}

impl Default for FooterLimits {
    fn default() -> Self {
        Self {
            max_struct_depth: 16,
            max_schema_depth: 64,
            max_schema_elements: 100_000,
            max_row_groups: 32_767,
            max_leaf_path_total: 4_000_000,
        }
    }
}

/// Checks a thrift-compact `FileMetaData` footer; `Err(message)` says what is wrong (the
/// caller wraps it in its `CorruptFile` error with the path).
///
/// `bytes` are the `metadata_length` bytes before the 8-byte tail. Bytes after the
/// `FileMetaData` stop byte are ignored, as the decoder ignores them.
pub fn validate_footer(bytes: &[u8], limits: &FooterLimits) -> Result<(), String> {
    let mut walker = Walker {
        buf: bytes,
        pos: 0,
        max_depth: limits.max_struct_depth.min(HARD_MAX_DEPTH),
        limits: *limits,
        schema: Vec::new(),
        long_stat_columns: Vec::new(),
    };
    walker.walk_struct(S::FileMetaData, 1)?;
    let columns = check_schema(&walker.schema, limits)?;
    // The decoder asserts INT96 min/max are exactly 12 bytes (shorter is a clean error).
    if let Some(column) = walker
        .long_stat_columns
        .iter()
        .find(|&&c| columns.get(c) == Some(&PHYSICAL_INT96))
    {
        return Err(format!(
            "column {column} is INT96 but has a min/max statistic longer than {INT96_LEN} bytes"
        ));
    }
    Ok(())
}

/// Fills in `RowGroup.total_byte_size` (field 2, required by the decoder) where an older
/// writer left it out, as 0: fsk never uses it. Returns the footer unchanged (no copy) when
/// every row group has it. Call on a footer [`validate_footer`] accepted.
pub fn with_total_byte_size(footer: &bytes::Bytes) -> Result<bytes::Bytes, String> {
    let spans = row_group_spans(footer)?;
    let missing: Vec<usize> = spans
        .iter()
        .filter(|span| !span.has_total_byte_size)
        .map(|span| span.stop)
        .collect();
    if missing.is_empty() {
        return Ok(footer.clone());
    }
    let mut out = Vec::with_capacity(footer.len() + 3 * missing.len());
    let mut copied = 0;
    for stop in missing {
        out.extend_from_slice(&footer[copied..stop]);
        // A long-form header (delta 0, i64), field id 2 as a zigzag varint, the value 0.
        out.extend_from_slice(&[T_I64, 0x04, 0x00]);
        copied = stop;
    }
    out.extend_from_slice(&footer[copied..]);
    Ok(bytes::Bytes::from(out))
}

/// Where one `RowGroup` struct lies in the footer.
struct RowGroupSpan {
    /// Byte offset of the struct's first field header (used by the test rewriter).
    #[cfg_attr(not(any(test, feature = "failpoints")), allow(dead_code))]
    start: usize,
    /// Byte offset of its stop byte.
    stop: usize,
    has_total_byte_size: bool,
}

/// The `RowGroup` structs of `FileMetaData.row_groups`, walked generically.
fn row_group_spans(footer: &[u8]) -> R<Vec<RowGroupSpan>> {
    let mut walker = Walker {
        buf: footer,
        pos: 0,
        max_depth: HARD_MAX_DEPTH,
        limits: FooterLimits::default(),
        schema: Vec::new(),
        long_stat_columns: Vec::new(),
    };
    let mut spans = Vec::new();
    let mut last = 0i16;
    while let Some((code, id)) = walker.field_header(&mut last)? {
        if id != 4 || code != T_LIST {
            walker.skip(code, 1)?;
            continue;
        }
        let (elem, count) = walker.list_header()?;
        for _ in 0..count {
            if elem != T_STRUCT {
                return Err("FileMetaData.row_groups is not a list of structs".to_string());
            }
            let start = walker.pos;
            let mut inner = 0i16;
            let mut has_total_byte_size = false;
            loop {
                let at = walker.pos;
                match walker.field_header(&mut inner)? {
                    None => {
                        spans.push(RowGroupSpan {
                            start,
                            stop: at,
                            has_total_byte_size,
                        });
                        break;
                    }
                    Some((field, field_id)) => {
                        has_total_byte_size |= field_id == 2;
                        walker.skip(field, 2)?;
                    }
                }
            }
        }
    }
    Ok(spans)
}

/// Helpers for tests that need files as older writers made them.
#[cfg(any(test, feature = "failpoints"))]
pub mod testing {
    /// A copy of the parquet file `file` whose footer has no `RowGroup.total_byte_size`, as
    /// older writers produced: every row group's fields are re-emitted with long-form
    /// headers (which carry their own ids), without field 2.
    pub fn without_total_byte_size(file: &[u8]) -> Result<Vec<u8>, String> {
        let n = file.len();
        if n < 12 {
            return Err("too small".into());
        }
        let length =
            u32::from_le_bytes(file[n - 8..n - 4].try_into().map_err(|_| "tail")?) as usize;
        let footer_start = n
            .checked_sub(8 + length)
            .ok_or_else(|| "footer length".to_string())?;
        let footer = &file[footer_start..n - 8];
        let spans = super::row_group_spans(footer)?;
        let mut rewritten = Vec::with_capacity(footer.len());
        let mut copied = 0;
        for span in spans {
            rewritten.extend_from_slice(&footer[copied..span.start]);
            let mut walker = super::Walker {
                buf: &footer[..span.stop],
                pos: span.start,
                max_depth: super::HARD_MAX_DEPTH,
                limits: super::FooterLimits::default(),
                schema: Vec::new(),
                long_stat_columns: Vec::new(),
            };
            let mut last = 0i16;
            while walker.pos < span.stop {
                let Some((code, id)) = walker.field_header(&mut last)? else {
                    break;
                };
                let value_start = walker.pos;
                walker.skip(code, 2)?;
                if id == 2 {
                    continue;
                }
                rewritten.push(code);
                let zigzag = ((i32::from(id) << 1) ^ (i32::from(id) >> 31)) as u32;
                let mut v = zigzag;
                loop {
                    let byte = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        rewritten.push(byte);
                        break;
                    }
                    rewritten.push(byte | 0x80);
                }
                rewritten.extend_from_slice(&footer[value_start..walker.pos]);
            }
            copied = span.stop;
        }
        rewritten.extend_from_slice(&footer[copied..]);
        let mut out = file[..footer_start].to_vec();
        out.extend_from_slice(&rewritten);
        out.extend_from_slice(&(rewritten.len() as u32).to_le_bytes());
        out.extend_from_slice(b"PAR1");
        Ok(out)
    }
}

type R<T> = Result<T, String>;

// Compact-protocol type codes, as used in field headers and list headers.
const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;

/// Bounds our own recursion whatever `max_struct_depth` says (the decoder's generic skip
/// gives up at 64 levels too).
const HARD_MAX_DEPTH: usize = 64;
/// Largest field id in the tables (`LogicalType` GEOGRAPHY = 18): per-struct arrays span it.
const MAX_FIELD_ID: usize = 18;
/// `Type::INT96` in `SchemaElement.type`.
const PHYSICAL_INT96: i64 = 3;
/// Length the decoder asserts for INT96 statistics.
const INT96_LEN: i64 = 12;
/// Bound on the name bytes the decoder copies into leaf column paths (each leaf's path holds
/// a copy of every ancestor's name, so one long group name over many leaves multiplies).
const MAX_LEAF_PATH_NAME_BYTES: u64 = 64 << 20;

fn wire_name(code: u8) -> &'static str {
    match code {
        T_STOP => "stop",
        T_TRUE | T_FALSE => "bool",
        T_BYTE => "byte",
        T_I16 => "i16",
        T_I32 => "i32",
        T_I64 => "i64",
        T_DOUBLE => "double",
        T_BINARY => "binary",
        T_LIST => "list",
        T_SET => "set",
        T_MAP => "map",
        T_STRUCT => "struct",
        _ => "invalid type",
    }
}

/// Every thrift struct (or union: on the wire a union is a struct with one field) that
/// parquet 58.4.1 decodes inside a `FileMetaData`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S {
    FileMetaData,
    SchemaElement,
    LogicalType,
    StringType,
    MapType,
    ListType,
    EnumType,
    DecimalType,
    DateType,
    TimeType,
    TimestampType,
    TimeUnit,
    MilliSeconds,
    MicroSeconds,
    NanoSeconds,
    IntType,
    NullType,
    JsonType,
    BsonType,
    UuidType,
    Float16Type,
    VariantType,
    GeometryType,
    GeographyType,
    RowGroup,
    SortingColumn,
    ColumnChunk,
    ColumnMetaData,
    Statistics,
    PageEncodingStats,
    SizeStatistics,
    GeospatialStatistics,
    BoundingBox,
    KeyValue,
    ColumnOrder,
    TypeDefinedOrder,
    EncryptionAlgorithm,
    AesGcmV1,
    AesGcmCtrV1,
    ColumnCryptoMetaData,
    EncryptionWithFooterKey,
    EncryptionWithColumnKey,
}

/// The type the decoder reads a field (or list element) as. Thrift enums are i32.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    Binary,
    List(&'static Ty),
    Struct(S),
}

impl Ty {
    /// Whether a field header or list header type code carries this type.
    fn accepts(self, code: u8) -> bool {
        match self {
            Ty::Bool => matches!(code, T_TRUE | T_FALSE),
            Ty::Byte => code == T_BYTE,
            Ty::I16 => code == T_I16,
            Ty::I32 => code == T_I32,
            Ty::I64 => code == T_I64,
            Ty::Double => code == T_DOUBLE,
            Ty::Binary => code == T_BINARY,
            Ty::List(_) => code == T_LIST,
            Ty::Struct(_) => code == T_STRUCT,
        }
    }

    fn describe(self) -> String {
        match self {
            Ty::List(elem) => format!("list<{}>", elem.describe()),
            Ty::Struct(s) => format!("struct {s:?}"),
            Ty::Bool => "bool".into(),
            Ty::Byte => "byte".into(),
            Ty::I16 => "i16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::Double => "double".into(),
            Ty::Binary => "binary".into(),
        }
    }
}

/// Field id -> type for each struct, from parquet 58.4.1 (`src/format.rs` cross-checked with
/// the decoders in `file/metadata/thrift/mod.rs`, `basic.rs`, `file/metadata/mod.rs`,
/// `thrift/encryption.rs` and `file/column_crypto_metadata.rs`).
fn fields(s: S) -> &'static [(i16, Ty)] {
    use Ty::{Binary, Bool, Byte, Double, I16, I32, I64, List, Struct};
    match s {
        S::FileMetaData => &[
            (1, I32),                             // version
            (2, List(&Struct(S::SchemaElement))), // schema
            (3, I64),                             // num_rows
            (4, List(&Struct(S::RowGroup))),      // row_groups
            (5, List(&Struct(S::KeyValue))),      // key_value_metadata
            (6, Binary),                          // created_by
            (7, List(&Struct(S::ColumnOrder))),   // column_orders
            (8, Struct(S::EncryptionAlgorithm)),  // encryption_algorithm
            (9, Binary),                          // footer_signing_key_metadata
        ],
        S::SchemaElement => &[
            (1, I32),                     // type
            (2, I32),                     // type_length
            (3, I32),                     // repetition_type
            (4, Binary),                  // name
            (5, I32),                     // num_children
            (6, I32),                     // converted_type
            (7, I32),                     // scale
            (8, I32),                     // precision
            (9, I32),                     // field_id
            (10, Struct(S::LogicalType)), // logical_type
        ],
        // Id 9 (the old INTERVAL) was never assigned.
        S::LogicalType => &[
            (1, Struct(S::StringType)),
            (2, Struct(S::MapType)),
            (3, Struct(S::ListType)),
            (4, Struct(S::EnumType)),
            (5, Struct(S::DecimalType)),
            (6, Struct(S::DateType)),
            (7, Struct(S::TimeType)),
            (8, Struct(S::TimestampType)),
            (10, Struct(S::IntType)),
            (11, Struct(S::NullType)),
            (12, Struct(S::JsonType)),
            (13, Struct(S::BsonType)),
            (14, Struct(S::UuidType)),
            (15, Struct(S::Float16Type)),
            (16, Struct(S::VariantType)),
            (17, Struct(S::GeometryType)),
            (18, Struct(S::GeographyType)),
        ],
        S::StringType
        | S::MapType
        | S::ListType
        | S::EnumType
        | S::DateType
        | S::MilliSeconds
        | S::MicroSeconds
        | S::NanoSeconds
        | S::NullType
        | S::JsonType
        | S::BsonType
        | S::UuidType
        | S::Float16Type
        | S::TypeDefinedOrder
        | S::EncryptionWithFooterKey => &[],
        S::DecimalType => &[(1, I32), (2, I32)], // scale, precision
        // is_adjusted_to_u_t_c, unit
        S::TimeType | S::TimestampType => &[(1, Bool), (2, Struct(S::TimeUnit))],
        S::TimeUnit => &[
            (1, Struct(S::MilliSeconds)),
            (2, Struct(S::MicroSeconds)),
            (3, Struct(S::NanoSeconds)),
        ],
        S::IntType => &[(1, Byte), (2, Bool)], // bit_width, is_signed
        S::VariantType => &[(1, Byte)],        // specification_version
        S::GeometryType => &[(1, Binary)],     // crs
        S::GeographyType => &[(1, Binary), (2, I32)], // crs, algorithm
        S::RowGroup => &[
            (1, List(&Struct(S::ColumnChunk))),   // columns
            (2, I64),                             // total_byte_size
            (3, I64),                             // num_rows
            (4, List(&Struct(S::SortingColumn))), // sorting_columns
            (5, I64),                             // file_offset
            (6, I64),                             // total_compressed_size
            (7, I16),                             // ordinal
        ],
        S::SortingColumn => &[(1, I32), (2, Bool), (3, Bool)], // column_idx, descending, nulls_first
        S::ColumnChunk => &[
            (1, Binary),                          // file_path
            (2, I64),                             // file_offset
            (3, Struct(S::ColumnMetaData)),       // meta_data
            (4, I64),                             // offset_index_offset
            (5, I32),                             // offset_index_length
            (6, I64),                             // column_index_offset
            (7, I32),                             // column_index_length
            (8, Struct(S::ColumnCryptoMetaData)), // crypto_metadata
            (9, Binary),                          // encrypted_column_metadata
        ],
        S::ColumnMetaData => &[
            (1, I32),                                  // type
            (2, List(&I32)),                           // encodings
            (3, List(&Binary)),                        // path_in_schema
            (4, I32),                                  // codec
            (5, I64),                                  // num_values
            (6, I64),                                  // total_uncompressed_size
            (7, I64),                                  // total_compressed_size
            (8, List(&Struct(S::KeyValue))),           // key_value_metadata
            (9, I64),                                  // data_page_offset
            (10, I64),                                 // index_page_offset
            (11, I64),                                 // dictionary_page_offset
            (12, Struct(S::Statistics)),               // statistics
            (13, List(&Struct(S::PageEncodingStats))), // encoding_stats
            (14, I64),                                 // bloom_filter_offset
            (15, I32),                                 // bloom_filter_length
            (16, Struct(S::SizeStatistics)),           // size_statistics
            (17, Struct(S::GeospatialStatistics)),     // geospatial_statistics
        ],
        S::Statistics => &[
            (1, Binary), // max
            (2, Binary), // min
            (3, I64),    // null_count
            (4, I64),    // distinct_count
            (5, Binary), // max_value
            (6, Binary), // min_value
            (7, Bool),   // is_max_value_exact
            (8, Bool),   // is_min_value_exact
        ],
        S::PageEncodingStats => &[(1, I32), (2, I32), (3, I32)], // page_type, encoding, count
        // unencoded_byte_array_data_bytes, repetition/definition level histograms
        S::SizeStatistics => &[(1, I64), (2, List(&I64)), (3, List(&I64))],
        S::GeospatialStatistics => &[(1, Struct(S::BoundingBox)), (2, List(&I32))],
        // xmin, xmax, ymin, ymax, zmin, zmax, mmin, mmax
        S::BoundingBox => &[
            (1, Double),
            (2, Double),
            (3, Double),
            (4, Double),
            (5, Double),
            (6, Double),
            (7, Double),
            (8, Double),
        ],
        S::KeyValue => &[(1, Binary), (2, Binary)],
        S::ColumnOrder => &[(1, Struct(S::TypeDefinedOrder))],
        S::EncryptionAlgorithm => &[(1, Struct(S::AesGcmV1)), (2, Struct(S::AesGcmCtrV1))],
        // aad_prefix, aad_file_unique, supply_aad_prefix
        S::AesGcmV1 | S::AesGcmCtrV1 => &[(1, Binary), (2, Binary), (3, Bool)],
        S::ColumnCryptoMetaData => &[
            (1, Struct(S::EncryptionWithFooterKey)),
            (2, Struct(S::EncryptionWithColumnKey)),
        ],
        S::EncryptionWithColumnKey => &[(1, List(&Binary)), (2, Binary)], // path, key_metadata
    }
}

/// The slot and type of a known field, or `None` for a field the decoder skips generically.
fn lookup(s: S, id: i16) -> Option<(usize, Ty)> {
    let &(_, ty) = fields(s).iter().find(|&&(known, _)| known == id)?;
    let slot = usize::try_from(id)
        .ok()
        .filter(|&slot| slot <= MAX_FIELD_ID)?;
    Some((slot, ty))
}

/// What one struct instance held, indexed by field id.
#[derive(Default)]
struct Fields {
    seen: [bool; MAX_FIELD_ID + 1],
    /// Integer fields' values and binary fields' lengths.
    ints: [Option<i64>; MAX_FIELD_ID + 1],
    /// A `Statistics` below this struct has an over-long min/max (see `finish`).
    long_stat: bool,
}

impl Fields {
    fn has(&self, id: usize) -> bool {
        self.seen.get(id).copied().unwrap_or(false)
    }

    fn int(&self, id: usize) -> Option<i64> {
        self.ints.get(id).copied().flatten()
    }
}

/// What the schema check needs from one `SchemaElement`.
struct SchemaElem {
    num_children: Option<i64>,
    name_len: u64,
    physical: Option<i64>,
}

struct Walker<'a> {
    buf: &'a [u8],
    /// Next byte to read; always `<= buf.len()`.
    pos: usize,
    max_depth: usize,
    limits: FooterLimits,
    /// The `FileMetaData.schema` elements, in order.
    schema: Vec<SchemaElem>,
    /// Positions within their row group of column chunks with a min/max longer than 12 bytes.
    long_stat_columns: Vec<usize>,
}

impl Walker<'_> {
    fn eof(&self) -> String {
        format!("footer ends unexpectedly at byte {}", self.pos)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn advance(&mut self, n: usize) -> R<()> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                Ok(())
            }
            _ => Err(self.eof()),
        }
    }

    fn byte(&mut self) -> R<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.eof())?;
        self.advance(1)?;
        Ok(b)
    }

    /// ULEB128 of at most 10 bytes that fits in 64 bits.
    fn varint(&mut self) -> R<u64> {
        let at = self.pos;
        let mut value = 0u64;
        for i in 0..10u32 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7F);
            // The tenth byte may only carry bit 63.
            if i == 9 && bits > 1 {
                return Err(format!("varint at byte {at} overflows 64 bits"));
            }
            // 7 * i <= 63: the shift cannot overflow.
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint at byte {at} is longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> R<i64> {
        let at = self.pos;
        let u = self.varint()?;
        let half = i64::try_from(u >> 1).map_err(|_| format!("bad varint at byte {at}"))?;
        // (u >> 1) ^ -(u & 1)
        Ok(if u & 1 == 0 { half } else { !half })
    }

    /// A zigzag integer of wire type `code`, range checked like the decoder's target type
    /// (the decoder truncates silently; no writer produces out-of-range values).
    fn int(&mut self, code: u8) -> R<i64> {
        let at = self.pos;
        let v = self.zigzag()?;
        let in_range = match code {
            T_I16 => i16::try_from(v).is_ok(),
            T_I32 => i32::try_from(v).is_ok(),
            _ => true,
        };
        if in_range {
            Ok(v)
        } else {
            Err(format!(
                "{} value {v} out of range at byte {at}",
                wire_name(code)
            ))
        }
    }

    /// Skips a binary and returns its length.
    fn binary(&mut self) -> R<i64> {
        let at = self.pos;
        let len = self.varint()?;
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "binary of {len} bytes at byte {at} exceeds the {} bytes left",
                    self.remaining()
                )
            })?;
        self.advance(n)?;
        i64::try_from(len).map_err(|_| format!("binary at byte {at} is too long"))
    }

    /// A field header: `None` at the struct's stop byte, else the type code and field id.
    fn field_header(&mut self, last: &mut i16) -> R<Option<(u8, i16)>> {
        let at = self.pos;
        let b = self.byte()?;
        let code = b & 0x0F;
        if code == T_STOP {
            // The decoder ends the struct on a zero type whatever the high nibble holds.
            return Ok(None);
        }
        if code > T_STRUCT {
            return Err(format!("invalid field type {code} at byte {at}"));
        }
        let delta = b >> 4;
        let prev = *last;
        let id = if delta == 0 {
            let v = self.int(T_I16)?;
            i16::try_from(v).map_err(|_| format!("field id {v} out of range at byte {at}"))?
        } else {
            prev.checked_add(i16::from(delta))
                .ok_or_else(|| format!("field id {prev} + {delta} overflows at byte {at}"))?
        };
        *last = id;
        Ok(Some((code, id)))
    }

    /// A list (or set) header: element type code and count. The count is at most the bytes
    /// left, as every element the walk accepts takes at least one byte.
    fn list_header(&mut self) -> R<(u8, usize)> {
        let at = self.pos;
        let h = self.byte()?;
        if h == 0 {
            // Some writers encode an empty list as a bare zero byte (the decoder allows it).
            return Ok((0, 0));
        }
        let elem = h & 0x0F;
        if elem == 0 || elem > T_STRUCT {
            return Err(format!("invalid list element type {elem} at byte {at}"));
        }
        let count = match h >> 4 {
            15 => {
                let v = self.varint()?;
                if v > u64::from(i32::MAX.unsigned_abs()) {
                    return Err(format!("list size {v} at byte {at} exceeds i32::MAX"));
                }
                v
            }
            n => u64::from(n),
        };
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "list of {count} elements at byte {at} exceeds the {} bytes left",
                    self.remaining()
                )
            })?;
        Ok((elem, count))
    }

    fn enter(&self, depth: usize) -> R<()> {
        if depth > self.max_depth {
            Err(format!(
                "structs and lists nested deeper than {} levels at byte {}",
                self.max_depth, self.pos
            ))
        } else {
            Ok(())
        }
    }

    /// A scalar of a known type; integers give their value, binaries their length.
    fn scalar(&mut self, ty: Ty) -> R<i64> {
        match ty {
            Ty::Byte => Ok(i64::from(i8::from_ne_bytes([self.byte()?]))),
            Ty::I16 => self.int(T_I16),
            Ty::I32 => self.int(T_I32),
            Ty::I64 => self.int(T_I64),
            Ty::Double => self.advance(8).map(|()| 0),
            Ty::Binary => self.binary(),
            Ty::Bool | Ty::List(_) | Ty::Struct(_) => {
                Err(format!("internal: {} is not a scalar", ty.describe()))
            }
        }
    }

    /// A struct the decoder knows, at nesting level `depth`.
    fn walk_struct(&mut self, s: S, depth: usize) -> R<Fields> {
        self.enter(depth)?;
        let mut f = Fields::default();
        let mut last = 0i16;
        loop {
            let at = self.pos;
            let Some((code, id)) = self.field_header(&mut last)? else {
                break;
            };
            // depth <= HARD_MAX_DEPTH, so `depth + 1` cannot overflow.
            let Some((slot, ty)) = lookup(s, id) else {
                self.skip(code, depth + 1)?;
                continue;
            };
            // The decoder reads a known id by its schema type whatever the header says, so
            // any other wire type would desynchronise it from this walk.
            if !ty.accepts(code) {
                return Err(format!(
                    "{s:?} field {id}: expected {}, found {} at byte {at}",
                    ty.describe(),
                    wire_name(code)
                ));
            }
            // A repeated field is decoded twice (RowGroup columns would even be appended
            // twice); no writer repeats one.
            let seen = f
                .seen
                .get_mut(slot)
                .ok_or_else(|| format!("internal: no slot for {s:?} field {id}"))?;
            if *seen {
                return Err(format!("{s:?} field {id} appears twice (at byte {at})"));
            }
            *seen = true;
            match ty {
                Ty::Bool => {} // the value is the header's type code
                Ty::Struct(child) => {
                    let inner = self.walk_struct(child, depth + 1)?;
                    f.long_stat |= inner.long_stat;
                }
                Ty::List(elem) => self.walk_list(s, id, *elem, depth + 1)?,
                scalar => {
                    let v = self.scalar(scalar)?;
                    if let Some(value) = f.ints.get_mut(slot) {
                        *value = Some(v);
                    }
                }
            }
        }
        finish(s, &mut f)?;
        Ok(f)
    }

    /// A known list field `id` of struct `s` with elements of type `elem`, at level `depth`.
    fn walk_list(&mut self, s: S, id: i16, elem: Ty, depth: usize) -> R<()> {
        self.enter(depth)?;
        let at = self.pos;
        let (code, count) = self.list_header()?;
        let (limit, what) = match (s, id) {
            (S::FileMetaData, 2) => (self.limits.max_schema_elements, "schema elements"),
            (S::FileMetaData, 4) => (self.limits.max_row_groups, "row groups"),
            _ => (usize::MAX, "elements"),
        };
        if count > limit {
            return Err(format!("{count} {what} exceed the limit of {limit}"));
        }
        // An empty list reads nothing, whatever element type it names.
        if count > 0 && !elem.accepts(code) {
            return Err(format!(
                "{s:?} field {id}: expected list<{}>, found list<{}> at byte {at}",
                elem.describe(),
                wire_name(code)
            ));
        }
        for index in 0..count {
            match elem {
                // Inside lists a bool takes a byte (none of the known lists holds bools).
                Ty::Bool => {
                    let b = self.byte()?;
                    if b > T_FALSE {
                        return Err(format!("invalid bool {b} at byte {}", self.pos));
                    }
                }
                Ty::Struct(child) => {
                    let f = self.walk_struct(child, depth + 1)?;
                    self.collect(child, index, &f);
                }
                Ty::List(inner) => self.walk_list(s, id, *inner, depth + 1)?,
                scalar => {
                    self.scalar(scalar)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps what the whole-footer checks need from a list element.
    fn collect(&mut self, s: S, index: usize, f: &Fields) {
        match s {
            S::SchemaElement => self.schema.push(SchemaElem {
                num_children: f.int(5),
                name_len: f
                    .int(4)
                    .and_then(|len| u64::try_from(len).ok())
                    .unwrap_or(0),
                physical: f.int(1),
            }),
            S::ColumnChunk if f.long_stat => self.long_stat_columns.push(index),
            _ => {}
        }
    }

    /// A value the decoder does not know and skips generically, at level `depth`.
    fn skip(&mut self, code: u8, depth: usize) -> R<()> {
        let at = self.pos;
        match code {
            T_TRUE | T_FALSE => Ok(()), // a bool field has no payload
            T_BYTE => self.advance(1),
            T_I16 | T_I32 | T_I64 => self.int(code).map(drop),
            T_DOUBLE => self.advance(8),
            T_BINARY => self.binary().map(drop),
            T_LIST => {
                self.enter(depth)?;
                let (elem, count) = self.list_header()?;
                match elem {
                    T_TRUE | T_FALSE => {
                        return Err(format!(
                            "list<bool> in an unknown field at byte {at} (the decoder would \
                             skip its elements as zero bytes)"
                        ));
                    }
                    T_SET | T_MAP => {
                        return Err(format!(
                            "list<{}> in an unknown field at byte {at} (the decoder cannot skip it)",
                            wire_name(elem)
                        ));
                    }
                    _ => {}
                }
                for _ in 0..count {
                    self.skip(elem, depth + 1)?;
                }
                Ok(())
            }
            T_STRUCT => {
                self.enter(depth)?;
                let mut last = 0i16;
                while let Some((field, _)) = self.field_header(&mut last)? {
                    self.skip(field, depth + 1)?;
                }
                Ok(())
            }
            T_SET | T_MAP => Err(format!(
                "{} in an unknown field at byte {at} (the decoder cannot skip it)",
                wire_name(code)
            )),
            _ => Err(format!("invalid type {code} at byte {at}")),
        }
    }
}

/// Checks on one struct once all its fields are walked.
fn finish(s: S, f: &mut Fields) -> R<()> {
    match s {
        S::FileMetaData => {
            for (id, name) in [
                (1, "version"),
                (2, "schema"),
                (3, "num_rows"),
                (4, "row_groups"),
            ] {
                if !f.has(id) {
                    return Err(format!("FileMetaData.{name} (field {id}) is missing"));
                }
            }
        }
        // The decoder (or code right after it) asserts or casts these as non-negative.
        S::ColumnChunk => non_negative(
            s,
            f,
            &[
                (2, "file_offset"),
                (4, "offset_index_offset"),
                (5, "offset_index_length"),
                (6, "column_index_offset"),
                (7, "column_index_length"),
            ],
        )?,
        S::ColumnMetaData => non_negative(
            s,
            f,
            &[
                (6, "total_uncompressed_size"),
                (7, "total_compressed_size"),
                (9, "data_page_offset"),
                (10, "index_page_offset"),
                (11, "dictionary_page_offset"),
                (14, "bloom_filter_offset"),
                (15, "bloom_filter_length"),
            ],
        )?,
        S::Statistics => {
            // The decoder uses min_value/max_value, or min/max when both new ones are absent.
            let old_format = f.int(5).is_none() && f.int(6).is_none();
            let (max, min) = if old_format { (1, 2) } else { (5, 6) };
            let long = [max, min]
                .into_iter()
                .any(|id| f.int(id).is_some_and(|len| len > INT96_LEN));
            f.long_stat |= long;
        }
        _ => {}
    }
    Ok(())
}

fn non_negative(s: S, f: &Fields, checks: &[(usize, &str)]) -> R<()> {
    for &(id, name) in checks {
        if let Some(v) = f.int(id).filter(|&v| v < 0) {
            return Err(format!("{s:?}.{name} is negative ({v})"));
        }
    }
    Ok(())
}

fn num_children(e: &SchemaElem, index: usize) -> R<usize> {
    match e.num_children {
        None => Ok(0),
        Some(n) => usize::try_from(n)
            .map_err(|_| format!("schema element {index} has negative num_children {n}")),
    }
}

/// Rebuilds the schema tree the way the decoder does (element 0 is the root, a group with n
/// children is followed by its n children depth first), with an explicit stack instead of
/// the decoder's recursion. Returns the physical types of the leaf columns, in order.
fn check_schema(elements: &[SchemaElem], limits: &FooterLimits) -> R<Vec<i64>> {
    struct Group {
        /// Children still to come.
        left: usize,
        /// Name bytes on the path from the root (excluded) down to this group.
        path_bytes: u64,
    }
    let (root, rest) = elements
        .split_first()
        .ok_or_else(|| "schema has no elements".to_string())?;
    // Child slots opened but not yet filled; each needs an element of its own.
    let mut pending = num_children(root, 0)?;
    if pending > rest.len() {
        return Err(format!(
            "schema root claims {pending} children but only {} elements follow",
            rest.len()
        ));
    }
    let mut stack = Vec::new();
    if pending > 0 {
        stack.push(Group {
            left: pending,
            path_bytes: 0,
        });
    }
    let mut leaf_depth_total = 0usize;
    let mut leaf_name_bytes = 0u64;
    let mut columns = Vec::new();
    for (offset, e) in rest.iter().enumerate() {
        let index = offset.saturating_add(1);
        // The root's children are at depth 1.
        let depth = stack.len();
        let Some(parent) = stack.last_mut() else {
            // The decoder would parse these as further roots, recursing without a limit.
            return Err(format!(
                "schema element {index} is outside the tree rooted at element 0"
            ));
        };
        parent.left = parent
            .left
            .checked_sub(1)
            .ok_or_else(|| "internal: schema group over-filled".to_string())?;
        let path_bytes = parent
            .path_bytes
            .checked_add(e.name_len)
            .ok_or_else(|| "schema path names overflow".to_string())?;
        pending = pending
            .checked_sub(1)
            .ok_or_else(|| "internal: schema child count".to_string())?;
        if depth > limits.max_schema_depth {
            return Err(format!(
                "schema element {index} is nested deeper than {} levels",
                limits.max_schema_depth
            ));
        }
        let children = num_children(e, index)?;
        if children > 0 {
            // Elements after this one, less those already promised to open slots.
            let room = rest
                .len()
                .saturating_sub(offset.saturating_add(1))
                .saturating_sub(pending);
            if children > room {
                return Err(format!(
                    "schema element {index} claims {children} children but only {room} \
                     elements are left for them"
                ));
            }
            pending = pending
                .checked_add(children)
                .ok_or_else(|| "schema child count overflows".to_string())?;
            stack.push(Group {
                left: children,
                path_bytes,
            });
        } else {
            // A leaf (or an empty group, which the decoder also accepts).
            leaf_depth_total = leaf_depth_total
                .checked_add(depth)
                .filter(|&t| t <= limits.max_leaf_path_total)
                .ok_or_else(|| {
                    format!(
                        "schema leaves' total depth exceeds the limit of {}",
                        limits.max_leaf_path_total
                    )
                })?;
            leaf_name_bytes = leaf_name_bytes
                .checked_add(path_bytes)
                .filter(|&t| t <= MAX_LEAF_PATH_NAME_BYTES)
                .ok_or_else(|| {
                    format!(
                        "schema leaf paths hold more than {MAX_LEAF_PATH_NAME_BYTES} name bytes"
                    )
                })?;
            if let Some(physical) = e.physical {
                columns.push(physical);
            }
        }
        while stack.last().is_some_and(|g| g.left == 0) {
            stack.pop();
        }
    }
    if !stack.is_empty() {
        return Err(format!("schema tree is missing {pending} elements"));
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, DictionaryArray, Float64Array, Int64Array, ListArray, StringArray,
        StructArray,
    };
    use arrow::datatypes::{DataType, Field, Int32Type};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    use super::*;

    const INT32: i32 = 1;
    const INT64: i32 = 2;
    const INT96: i32 = 3;
    const REQUIRED: i32 = 0;

    /// A tiny compact-protocol encoder: just what the tests need.
    #[derive(Default)]
    struct Enc {
        out: Vec<u8>,
        /// Last field id of each open struct.
        last: Vec<i16>,
    }

    impl Enc {
        fn begin(&mut self) {
            self.last.push(0);
        }

        fn end(&mut self) {
            self.out.push(T_STOP);
            self.last.pop();
        }

        fn header(&mut self, id: i16, code: u8) {
            let last = self.last.last().copied().expect("field outside a struct");
            let delta = id - last;
            if (1..=15).contains(&delta) {
                self.out.push(((delta as u8) << 4) | code);
            } else {
                self.out.push(code);
                self.zz(i64::from(id));
            }
            if let Some(l) = self.last.last_mut() {
                *l = id;
            }
        }

        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.out.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.out.push(v as u8);
        }

        fn zz(&mut self, v: i64) {
            self.varint(((v << 1) ^ (v >> 63)) as u64);
        }

        fn i32f(&mut self, id: i16, v: i32) {
            self.header(id, T_I32);
            self.zz(i64::from(v));
        }

        fn i64f(&mut self, id: i16, v: i64) {
            self.header(id, T_I64);
            self.zz(v);
        }

        fn binf(&mut self, id: i16, b: &[u8]) {
            self.header(id, T_BINARY);
            self.varint(b.len() as u64);
            self.out.extend_from_slice(b);
        }

        fn list_header(&mut self, elem: u8, n: usize) {
            if n < 15 {
                self.out.push(((n as u8) << 4) | elem);
            } else {
                self.out.push(0xF0 | elem);
                self.varint(n as u64);
            }
        }

        fn list(&mut self, id: i16, elem: u8, n: usize) {
            self.header(id, T_LIST);
            self.list_header(elem, n);
        }

        fn struct_field(&mut self, id: i16) {
            self.header(id, T_STRUCT);
            self.begin();
        }
    }

    struct Elem {
        name: &'static str,
        physical: Option<i32>,
        children: Option<i32>,
    }

    fn root(children: i32) -> Elem {
        Elem {
            name: "schema",
            physical: None,
            children: Some(children),
        }
    }

    fn group(children: i32) -> Elem {
        Elem {
            name: "g",
            physical: None,
            children: Some(children),
        }
    }

    fn leaf(physical: i32) -> Elem {
        Elem {
            name: "a",
            physical: Some(physical),
            children: None,
        }
    }

    fn write_elem(e: &mut Enc, el: &Elem, is_root: bool) {
        e.begin();
        if let Some(t) = el.physical {
            e.i32f(1, t);
        }
        if !is_root {
            e.i32f(3, REQUIRED);
        }
        e.binf(4, el.name.as_bytes());
        if let Some(n) = el.children {
            e.i32f(5, n);
        }
        e.end();
    }

    /// A FileMetaData with `elements` as its schema; `rest` writes field 4 and anything after.
    fn file_meta(elements: &[Elem], num_rows: i64, rest: impl FnOnce(&mut Enc)) -> Vec<u8> {
        let mut e = Enc::default();
        e.begin();
        e.i32f(1, 1);
        e.list(2, T_STRUCT, elements.len());
        for (i, el) in elements.iter().enumerate() {
            write_elem(&mut e, el, i == 0);
        }
        e.i64f(3, num_rows);
        rest(&mut e);
        e.end();
        e.out
    }

    fn no_row_groups(e: &mut Enc) {
        e.list(4, T_STRUCT, 0);
    }

    fn minimal() -> Vec<u8> {
        file_meta(&[root(1), leaf(INT32)], 0, no_row_groups)
    }

    /// One leaf column `a` of type `physical`, one row group with one column chunk whose
    /// statistics min_value/max_value are `stat_len` bytes.
    fn chunk_footer(physical: i32, stat_len: usize, data_page_offset: i64) -> Vec<u8> {
        file_meta(&[root(1), leaf(physical)], 1, |e| {
            e.list(4, T_STRUCT, 1);
            e.begin(); // RowGroup
            e.list(1, T_STRUCT, 1);
            e.begin(); // ColumnChunk
            e.i64f(2, 4);
            e.struct_field(3); // ColumnMetaData
            e.i32f(1, physical);
            e.list(2, T_I32, 1);
            e.zz(0); // PLAIN
            e.list(3, T_BINARY, 1);
            e.varint(1);
            e.out.push(b'a');
            e.i32f(4, 0); // UNCOMPRESSED
            e.i64f(5, 1);
            e.i64f(6, 16);
            e.i64f(7, 16);
            e.i64f(9, data_page_offset);
            e.struct_field(12); // Statistics
            let value = vec![0u8; stat_len];
            e.binf(5, &value);
            e.binf(6, &value);
            e.end(); // Statistics
            e.end(); // ColumnMetaData
            e.end(); // ColumnChunk
            e.i64f(2, 16);
            e.i64f(3, 1);
            e.end(); // RowGroup
        })
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        validate_footer(bytes, &FooterLimits::default())
    }

    fn rejected(bytes: &[u8], needle: &str) {
        match check(bytes) {
            Ok(()) => panic!("accepted; expected an error mentioning {needle:?}"),
            Err(msg) => assert!(
                msg.contains(needle),
                "error {msg:?} does not mention {needle:?}"
            ),
        }
    }

    const ALL_STRUCTS: &[S] = &[
        S::FileMetaData,
        S::SchemaElement,
        S::LogicalType,
        S::StringType,
        S::MapType,
        S::ListType,
        S::EnumType,
        S::DecimalType,
        S::DateType,
        S::TimeType,
        S::TimestampType,
        S::TimeUnit,
        S::MilliSeconds,
        S::MicroSeconds,
        S::NanoSeconds,
        S::IntType,
        S::NullType,
        S::JsonType,
        S::BsonType,
        S::UuidType,
        S::Float16Type,
        S::VariantType,
        S::GeometryType,
        S::GeographyType,
        S::RowGroup,
        S::SortingColumn,
        S::ColumnChunk,
        S::ColumnMetaData,
        S::Statistics,
        S::PageEncodingStats,
        S::SizeStatistics,
        S::GeospatialStatistics,
        S::BoundingBox,
        S::KeyValue,
        S::ColumnOrder,
        S::TypeDefinedOrder,
        S::EncryptionAlgorithm,
        S::AesGcmV1,
        S::AesGcmCtrV1,
        S::ColumnCryptoMetaData,
        S::EncryptionWithFooterKey,
        S::EncryptionWithColumnKey,
    ];

    #[test]
    fn field_tables_are_well_formed() {
        for &s in ALL_STRUCTS {
            let table = fields(s);
            for (i, &(id, _)) in table.iter().enumerate() {
                assert!(
                    lookup(s, id).is_some(),
                    "{s:?} field {id} is out of the slot range"
                );
                assert!(
                    table[..i].iter().all(|&(other, _)| other != id),
                    "{s:?} repeats field {id}"
                );
            }
        }
    }

    #[test]
    fn minimal_footer_passes_and_decodes() {
        let footer = minimal();
        check(&footer).expect("minimal footer is valid");
        let meta = ParquetMetaDataReader::decode_metadata(&footer).expect("parquet decodes it");
        assert_eq!(meta.file_metadata().schema_descr().num_columns(), 1);
    }

    #[test]
    fn trailing_bytes_after_stop_are_ignored() {
        let mut footer = minimal();
        footer.extend_from_slice(&[0xFF, 0x12, 0x00]);
        check(&footer).expect("trailing bytes are fine");
    }

    #[test]
    fn huge_list_count_is_rejected() {
        // key_value_metadata (field 5): list<struct> of 2^31-1 elements, 10 bytes in all.
        rejected(
            &[0x59, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0, 0, 0],
            "bytes left",
        );
        // The same in an unknown field (id 20, full-form header).
        rejected(
            &[T_LIST, 40, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0, 0],
            "bytes left",
        );
        // 2^31 does not fit the decoder's i32 size.
        rejected(
            &[0x59, 0xFC, 0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0],
            "i32::MAX",
        );
    }

    #[test]
    fn wrong_wire_type_for_known_field_is_rejected() {
        // version as i64
        let mut e = Enc::default();
        e.begin();
        e.i64f(1, 1);
        e.end();
        rejected(&e.out, "expected i32");

        // SchemaElement.name as i32
        let mut e = Enc::default();
        e.begin();
        e.list(2, T_STRUCT, 1);
        e.begin();
        e.i32f(4, 7);
        e.end();
        e.end();
        rejected(&e.out, "expected binary");

        // schema as list<i32>
        let mut e = Enc::default();
        e.begin();
        e.list(2, T_I32, 1);
        e.zz(1);
        e.end();
        rejected(&e.out, "expected list<struct SchemaElement>");

        // LogicalType.STRING (an empty struct) as a bool
        let mut e = Enc::default();
        e.begin();
        e.list(2, T_STRUCT, 1);
        e.begin();
        e.binf(4, b"schema");
        e.struct_field(10);
        e.header(1, T_TRUE);
        e.end();
        e.end();
        e.end();
        rejected(&e.out, "expected struct StringType");
    }

    #[test]
    fn deep_schema_is_rejected_without_recursion() {
        let mut elements = vec![root(1)];
        elements.extend((0..1000).map(|_| group(1)));
        elements.push(leaf(INT32));
        rejected(&file_meta(&elements, 0, no_row_groups), "deeper than 64");
    }

    #[test]
    fn num_children_beyond_the_remaining_elements_is_rejected() {
        rejected(
            &file_meta(&[root(5), leaf(INT32)], 0, no_row_groups),
            "children",
        );
        rejected(
            &file_meta(
                &[root(2), group(3), leaf(INT32), leaf(INT32)],
                0,
                no_row_groups,
            ),
            "children",
        );
        rejected(
            &file_meta(&[root(1), group(-1)], 0, no_row_groups),
            "negative",
        );
        rejected(
            &file_meta(&[root(1), leaf(INT32), leaf(INT32)], 0, no_row_groups),
            "outside the tree",
        );
        rejected(&file_meta(&[], 0, no_row_groups), "no elements");
    }

    #[test]
    fn schema_and_row_group_counts_are_limited() {
        let limits = FooterLimits {
            max_leaf_path_total: 3,
            ..FooterLimits::default()
        };
        let one_leaf = file_meta(&[root(1), group(1), leaf(INT32)], 0, no_row_groups);
        validate_footer(&one_leaf, &limits).expect("total depth 2");
        let two_leaves = file_meta(
            &[root(2), group(1), leaf(INT32), group(1), leaf(INT32)],
            0,
            no_row_groups,
        );
        let err = validate_footer(&two_leaves, &limits).expect_err("total depth 4");
        assert!(err.contains("total depth"), "{err}");

        let limits = FooterLimits {
            max_schema_elements: 2,
            ..FooterLimits::default()
        };
        let err = validate_footer(&two_leaves, &limits).expect_err("5 elements");
        assert!(err.contains("schema elements"), "{err}");

        let limits = FooterLimits {
            max_row_groups: 0,
            ..FooterLimits::default()
        };
        let err = validate_footer(&chunk_footer(INT32, 4, 4), &limits).expect_err("1 row group");
        assert!(err.contains("row groups"), "{err}");
    }

    #[test]
    fn deeply_nested_unknown_struct_is_rejected() {
        let mut e = Enc::default();
        e.begin();
        e.struct_field(20);
        for _ in 0..100 {
            e.struct_field(1);
        }
        for _ in 0..101 {
            e.end();
        }
        e.end();
        rejected(&e.out, "nested deeper");

        // Unknown lists of lists count too.
        let mut bytes: Vec<u8> = vec![T_LIST, 40];
        bytes.extend([0x19; 100]);
        rejected(&bytes, "nested deeper");
    }

    #[test]
    fn unknown_fields_are_walked_generically() {
        let footer = file_meta(&[root(1), leaf(INT32)], 0, |e| {
            no_row_groups(e);
            e.struct_field(20);
            e.i32f(1, 5);
            e.binf(2, b"x");
            e.list(3, T_I64, 2);
            e.zz(1);
            e.zz(-2);
            e.header(4, T_TRUE);
            e.header(5, T_DOUBLE);
            e.out.extend_from_slice(&1.5f64.to_le_bytes());
            e.list(6, T_STRUCT, 1);
            e.begin();
            e.end();
            e.end();
        });
        check(&footer).expect("unknown fields pass");
        ParquetMetaDataReader::decode_metadata(&footer).expect("and parquet skips them");
    }

    #[test]
    fn list_of_bool_in_unknown_field_is_rejected() {
        let footer = file_meta(&[root(1), leaf(INT32)], 0, |e| {
            no_row_groups(e);
            e.list(20, T_TRUE, 3);
            e.out.extend_from_slice(&[1, 2, 1]);
        });
        rejected(&footer, "list<bool>");
    }

    #[test]
    fn set_and_map_are_rejected() {
        for code in [T_SET, T_MAP] {
            let footer = file_meta(&[root(1), leaf(INT32)], 0, |e| {
                no_row_groups(e);
                e.header(20, code);
                e.out.push(0);
            });
            rejected(&footer, wire_name(code));
        }
    }

    #[test]
    fn bad_varints_and_duplicates_are_rejected() {
        let mut bytes: Vec<u8> = vec![0x15];
        bytes.extend([0x80; 10]);
        bytes.push(0);
        rejected(&bytes, "longer than 10 bytes");

        let mut e = Enc::default();
        e.begin();
        e.header(1, T_I32);
        e.zz(i64::from(i32::MAX) + 1);
        e.end();
        rejected(&e.out, "out of range");

        let mut e = Enc::default();
        e.begin();
        e.i32f(1, 1);
        e.i32f(1, 2);
        e.end();
        rejected(&e.out, "twice");

        rejected(&[0x1D], "invalid field type");
    }

    #[test]
    fn int96_statistics_must_not_exceed_12_bytes() {
        let ok = chunk_footer(INT96, 12, 4);
        check(&ok).expect("12-byte INT96 statistics pass");
        ParquetMetaDataReader::decode_metadata(&ok).expect("parquet decodes it");
        rejected(&chunk_footer(INT96, 13, 4), "INT96");
        check(&chunk_footer(INT64, 13, 4)).expect("longer statistics are fine for INT64");
    }

    #[test]
    fn negative_offsets_are_rejected() {
        check(&chunk_footer(INT32, 4, 4)).expect("valid chunk");
        rejected(&chunk_footer(INT32, 4, -1), "data_page_offset");
    }

    #[test]
    fn every_truncation_is_rejected() {
        for footer in [minimal(), chunk_footer(INT96, 12, 4)] {
            check(&footer).expect("the whole footer passes");
            for len in 0..footer.len() {
                assert!(
                    check(&footer[..len]).is_err(),
                    "prefix of {len} bytes accepted"
                );
            }
        }
    }

    /// The footer of a small file written by parquet's `ArrowWriter`: nested struct/list,
    /// dictionary strings, page statistics, bloom filters, several row groups, key/values.
    fn real_footer() -> Vec<u8> {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some("c"),
            Some("d"),
            Some("e"),
        ]));
        let dict: ArrayRef = Arc::new(
            ["x", "y", "x", "x", "z"]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3)]),
            Some(vec![None]),
        ]);
        let list_type = list.data_type().clone();
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0, 5.0]));
        let nested = StructArray::from(vec![
            (Arc::new(Field::new("x", DataType::Float64, false)), x),
            (
                Arc::new(Field::new("l", list_type, true)),
                Arc::new(list) as ArrayRef,
            ),
        ]);
        let batch = RecordBatch::try_from_iter(vec![
            ("id", ids),
            ("name", names),
            ("dict", dict),
            ("s", Arc::new(nested) as ArrayRef),
        ])
        .expect("batch");
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_bloom_filter_enabled(true)
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "origin".to_string(),
                "footer_guard".to_string(),
            )]))
            .build();
        let mut file: Vec<u8> = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");

        let tail = file.len().checked_sub(8).expect("file has a tail");
        assert_eq!(&file[tail + 4..], b"PAR1");
        let len = u32::from_le_bytes(file[tail..tail + 4].try_into().expect("4 bytes")) as usize;
        file[tail - len..tail].to_vec()
    }

    #[test]
    fn footer_written_by_parquet_passes() {
        let footer = real_footer();
        check(&footer).expect("a real footer passes");
        let meta = ParquetMetaDataReader::decode_metadata(&footer).expect("parquet decodes it");
        assert!(meta.num_row_groups() >= 2, "several row groups");
        for len in 0..footer.len() {
            assert!(
                check(&footer[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn mutated_real_footers_that_pass_decode_without_panicking() {
        let footer = real_footer();
        for (i, &b) in footer.iter().enumerate() {
            for v in [0x00, 0xFF, b ^ 0x01, b ^ 0x40] {
                let mut mutated = footer.clone();
                mutated[i] = v;
                if check(&mutated).is_ok() {
                    // Errors are fine; a panic, a huge allocation or a hang is not.
                    let _ = ParquetMetaDataReader::decode_metadata(&mutated);
                }
            }
        }
    }
}
