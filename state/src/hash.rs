//! Spark's `Murmur3Hash` (seed 42) and `pmod(hash, P)` partitioning.
//!
//! Which state partition owns a key is persisted implicitly: state files of partition `p` hold
//! exactly the keys that hash to `p`. The hash therefore must never change between sluice
//! versions — so it is Spark's own, specified value by value (not an in-memory encoding that a
//! library upgrade could alter), which also places every key in the partition Spark would.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType,
};

use sluice_common::error::{Result, SluiceError};

/// Spark's default seed for `hash()` and `HashPartitioning`.
pub const SPARK_SEED: u32 = 42;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix_k1(mut k1: u32) -> u32 {
    k1 = k1.wrapping_mul(C1);
    k1 = k1.rotate_left(15);
    k1.wrapping_mul(C2)
}

fn mix_h1(mut h1: u32, k1: u32) -> u32 {
    h1 ^= k1;
    h1 = h1.rotate_left(13);
    h1.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

fn fmix(mut h1: u32, length: u32) -> u32 {
    h1 ^= length;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^ (h1 >> 16)
}

/// `Murmur3_x86_32.hashInt`.
pub fn hash_int(v: i32, seed: u32) -> u32 {
    fmix(mix_h1(seed, mix_k1(v as u32)), 4)
}

/// `Murmur3_x86_32.hashLong`.
pub fn hash_long(v: i64, seed: u32) -> u32 {
    let low = v as u32;
    let high = (v >> 32) as u32;
    let h1 = mix_h1(seed, mix_k1(low));
    let h1 = mix_h1(h1, mix_k1(high));
    fmix(h1, 8)
}

/// `Murmur3_x86_32.hashUnsafeBytes` (Spark's variant: trailing bytes are mixed one at a time
/// as signed ints, unlike reference Murmur3).
pub fn hash_bytes(bytes: &[u8], seed: u32) -> u32 {
    let aligned = bytes.len() - bytes.len() % 4;
    let mut h1 = seed;
    for chunk in bytes[..aligned].chunks_exact(4) {
        let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        h1 = mix_h1(h1, mix_k1(word));
    }
    for &b in &bytes[aligned..] {
        h1 = mix_h1(h1, mix_k1(b as i8 as i32 as u32));
    }
    fmix(h1, bytes.len() as u32)
}

/// Folds row `row` of `array` into `seed` the way Spark's `HashExpression` does for its type;
/// NULL leaves the hash unchanged.
pub fn hash_value(array: &dyn Array, row: usize, seed: u32) -> Result<u32> {
    if array.is_null(row) {
        return Ok(seed);
    }
    Ok(match array.data_type() {
        DataType::Boolean => hash_int(array.as_boolean().value(row) as i32, seed),
        DataType::Int8 => hash_int(array.as_primitive::<Int8Type>().value(row) as i32, seed),
        DataType::Int16 => hash_int(array.as_primitive::<Int16Type>().value(row) as i32, seed),
        DataType::Int32 => hash_int(array.as_primitive::<Int32Type>().value(row), seed),
        DataType::Date32 => hash_int(array.as_primitive::<Date32Type>().value(row), seed),
        DataType::Int64 => hash_long(array.as_primitive::<Int64Type>().value(row), seed),
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            hash_long(array.as_primitive::<TimestampMicrosecondType>().value(row), seed)
        }
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            // Spark normalises -0.0 to 0.0 before hashing.
            hash_int(if v == 0.0 { 0 } else { v.to_bits() as i32 }, seed)
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            hash_long(if v == 0.0 { 0 } else { v.to_bits() as i64 }, seed)
        }
        DataType::Decimal128(p, _) if *p <= 18 => hash_long(array.as_primitive::<Decimal128Type>().value(row) as i64, seed),
        DataType::Decimal128(..) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            hash_bytes(&big_endian_minimal(v), seed)
        }
        DataType::Utf8 => hash_bytes(array.as_string::<i32>().value(row).as_bytes(), seed),
        DataType::LargeUtf8 => hash_bytes(array.as_string::<i64>().value(row).as_bytes(), seed),
        DataType::Utf8View => hash_bytes(array.as_string_view().value(row).as_bytes(), seed),
        DataType::Binary => hash_bytes(array.as_binary::<i32>().value(row), seed),
        DataType::Struct(_) => {
            let s = array.as_struct();
            let mut h = seed;
            for c in s.columns() {
                h = hash_value(c.as_ref(), row, h)?;
            }
            h
        }
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let values = l.value(row);
            let mut h = seed;
            for i in 0..values.len() {
                h = hash_value(values.as_ref(), i, h)?;
            }
            h
        }
        DataType::Timestamp(..) => {
            let micros = sluice_common::time::to_micros(&arrow::array::make_array(array.to_data())).map_err(SluiceError::from)?;
            hash_long(micros.value(row), seed)
        }
        other => return Err(SluiceError::user(format!("cannot partition by a column of type {other}"))),
    })
}

/// Java's `BigInteger.toByteArray` for an i128: minimal big-endian two's complement.
fn big_endian_minimal(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Spark's `HashPartitioning`: `pmod(murmur3(keys, 42), num_partitions)` for every row.
pub fn partition_ids(keys: &[ArrayRef], num_rows: usize, num_partitions: u32) -> Result<Vec<u32>> {
    let mut hashes = vec![SPARK_SEED; num_rows];
    for k in keys {
        fold_column(k.as_ref(), &mut hashes)?;
    }
    Ok(hashes.into_iter().map(|h| (h as i32).rem_euclid(num_partitions as i32) as u32).collect())
}

/// Folds every row of `array` into that row's running hash in `hashes`, as [`hash_value`] does
/// row by row. The common key types are folded a column at a time — the type is matched once,
/// not once per value, which made hashing a shuffle's keys a measurable share of a batch — and
/// everything else row by row.
fn fold_column(array: &dyn Array, hashes: &mut [u32]) -> Result<()> {
    match array.data_type() {
        DataType::Int32 => fold_primitive(array.as_primitive::<Int32Type>(), hashes, hash_int),
        DataType::Date32 => fold_primitive(array.as_primitive::<Date32Type>(), hashes, hash_int),
        DataType::Int64 => fold_primitive(array.as_primitive::<Int64Type>(), hashes, hash_long),
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            fold_primitive(array.as_primitive::<TimestampMicrosecondType>(), hashes, hash_long)
        }
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            for (row, h) in hashes.iter_mut().enumerate() {
                if strings.is_valid(row) {
                    *h = hash_bytes(strings.value(row).as_bytes(), *h);
                }
            }
        }
        // A NULL struct leaves the hash as it is, whatever its fields hold: only a struct without
        // NULLs folds field by field.
        DataType::Struct(_) if array.null_count() == 0 => {
            for field in array.as_struct().columns() {
                fold_column(field.as_ref(), hashes)?;
            }
        }
        _ => {
            for (row, h) in hashes.iter_mut().enumerate() {
                *h = hash_value(array, row, *h)?;
            }
        }
    }
    Ok(())
}

fn fold_primitive<T: arrow::datatypes::ArrowPrimitiveType>(
    values: &arrow::array::PrimitiveArray<T>,
    hashes: &mut [u32],
    hash: impl Fn(T::Native, u32) -> u32,
) {
    if values.null_count() == 0 {
        for (h, v) in hashes.iter_mut().zip(values.values()) {
            *h = hash(*v, *h);
        }
    } else {
        for (row, h) in hashes.iter_mut().enumerate() {
            if values.is_valid(row) {
                *h = hash(values.value(row), *h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn matches_sparks_hash_function() {
        // Spark: SELECT hash(1) = -559580957, SELECT hash(0) = 933211791.
        assert_eq!(hash_int(1, SPARK_SEED) as i32, -559_580_957);
        assert_eq!(hash_int(0, SPARK_SEED) as i32, 933_211_791);
        // Murmur3 of the empty byte string with seed 42 is fmix(42, 0).
        assert_eq!(hash_bytes(b"", SPARK_SEED), fmix(SPARK_SEED, 0));
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        let keys: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(vec![1, 2, 3, 1])), Arc::new(StringArray::from(vec!["a", "b", "c", "a"]))];
        let p = partition_ids(&keys, 4, 5).unwrap();
        assert!(p.iter().all(|x| *x < 5));
        assert_eq!(p[0], p[3], "equal keys, equal partition");
        let ints: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(vec![1]))];
        // pmod(-559580957, 5) = 3
        assert_eq!(partition_ids(&ints, 1, 5).unwrap(), vec![3]);
    }

    /// Column-at-a-time partitioning is row-at-a-time `hash_value`, NULLs (of values, of
    /// structs and of their fields) included.
    #[test]
    fn partitions_by_column_are_the_row_by_row_hash() {
        use arrow::array::{BooleanArray, Date32Array, StructArray, TimestampMicrosecondArray};
        use arrow::buffer::NullBuffer;
        use arrow::datatypes::{Field, Fields};
        let n = 64usize;
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let mut column = |null_every: i64| -> Vec<Option<i64>> {
            (0..n).map(|_| Some(next() - (1 << 30)).filter(|v| null_every == 0 || v % null_every != 0)).collect()
        };
        let (a, b, c, d) = (column(0), column(5), column(3), column(4));
        let starts = TimestampMicrosecondArray::from(a.clone()).with_timezone("UTC");
        let ends = TimestampMicrosecondArray::from(b.clone());
        let fields = Fields::from(vec![
            Field::new("start", starts.data_type().clone(), true),
            Field::new("end", ends.data_type().clone(), true),
        ]);
        let struct_nulls = NullBuffer::from((0..n).map(|i| i % 7 != 0).collect::<Vec<_>>());
        let window: ArrayRef =
            Arc::new(StructArray::try_new(fields.clone(), vec![Arc::new(starts.clone()), Arc::new(ends.clone())], None).unwrap());
        let nullable_window: ArrayRef =
            Arc::new(StructArray::try_new(fields, vec![Arc::new(starts), Arc::new(ends)], Some(struct_nulls)).unwrap());
        let keys: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(a.clone())),
            Arc::new(Int64Array::from(b)),
            Arc::new(Int32Array::from(c.iter().map(|v| v.map(|v| v as i32)).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(d.iter().map(|v| v.map(|v| v as i32 % 100_000)).collect::<Vec<_>>())),
            Arc::new(StringArray::from(c.iter().map(|v| v.map(|v| format!("k{v}"))).collect::<Vec<_>>())),
            window,
            nullable_window,
            Arc::new(BooleanArray::from(d.iter().map(|v| v.map(|v| v % 2 == 0)).collect::<Vec<_>>())),
        ];
        for partitions in [1, 7, 200] {
            let by_column = partition_ids(&keys, n, partitions).unwrap();
            let by_row: Vec<u32> = (0..n)
                .map(|row| {
                    let h = keys.iter().fold(SPARK_SEED, |h, k| hash_value(k.as_ref(), row, h).unwrap());
                    (h as i32).rem_euclid(partitions as i32) as u32
                })
                .collect();
            assert_eq!(by_column, by_row, "{partitions} partitions");
        }
        assert!(partition_ids(&keys, n, 200).unwrap().iter().collect::<std::collections::HashSet<_>>().len() > 20);
    }

    #[test]
    fn java_big_integer_bytes() {
        assert_eq!(big_endian_minimal(0), vec![0]);
        assert_eq!(big_endian_minimal(127), vec![127]);
        assert_eq!(big_endian_minimal(128), vec![0, 128]);
        assert_eq!(big_endian_minimal(-1), vec![0xff]);
        assert_eq!(big_endian_minimal(-129), vec![0xff, 0x7f]);
    }
}
