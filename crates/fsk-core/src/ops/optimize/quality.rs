//! How well files prune: the fraction of files a 1% range predicate must open.
//!
//! A file is a box: per column, its minimum and maximum (from footer statistics, or tracked
//! while writing). The predicate `lo <= c AND c <= hi` must open every file whose box meets
//! `[lo, hi]`, and every file without statistics for `c`. The slices are the hundred
//! percentiles of the column's sampled values, so the measure follows the data, not its
//! range. The same measure is B7's.

/// A file's bounds on one column, encoded in the row format (`None`: unknown, or only nulls).
pub type Bounds = Option<(Box<[u8]>, Box<[u8]>)>;

/// The hundred 1% slices of `sorted` (a column's sampled values, ascending), as
/// `(lowest, highest)` value of each.
pub fn percentile_slices(sorted: &[Box<[u8]>]) -> Vec<(&[u8], &[u8])> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len();
    (0..100)
        .map(|i| {
            let lo = (i * n / 100).min(n - 1);
            let hi = (((i + 1) * n / 100).saturating_sub(1)).clamp(lo, n - 1);
            (sorted[lo].as_ref(), sorted[hi].as_ref())
        })
        .collect()
}

fn meets(bounds: &Bounds, slice: (&[u8], &[u8])) -> bool {
    match bounds {
        None => true,
        Some((min, max)) => min.as_ref() <= slice.1 && max.as_ref() >= slice.0,
    }
}

/// The average fraction of `files` (each one column's bounds) that a 1% slice of the column
/// opens. `None` without files or values.
pub fn slice_fraction(files: &[Bounds], sorted: &[Box<[u8]>]) -> Option<f64> {
    let slices = percentile_slices(sorted);
    if files.is_empty() || slices.is_empty() {
        return None;
    }
    let opened: usize = slices
        .iter()
        .map(|&s| files.iter().filter(|b| meets(b, s)).count())
        .sum();
    Some(opened as f64 / (slices.len() * files.len()) as f64)
}

/// The average fraction of files that a 1% slice on each of two columns at once opens, over
/// every pair of slices. `files[f] = (bounds on the first column, on the second)`.
pub fn pair_fraction(
    files: &[(Bounds, Bounds)],
    first: &[Box<[u8]>],
    second: &[Box<[u8]>],
) -> Option<f64> {
    let (a, b) = (percentile_slices(first), percentile_slices(second));
    if files.is_empty() || a.is_empty() || b.is_empty() {
        return None;
    }
    let mut opened = 0usize;
    for &sa in &a {
        let near: Vec<&(Bounds, Bounds)> = files.iter().filter(|f| meets(&f.0, sa)).collect();
        for &sb in &b {
            opened += near.iter().filter(|f| meets(&f.1, sb)).count();
        }
    }
    Some(opened as f64 / (a.len() * b.len() * files.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: u8) -> Box<[u8]> {
        vec![v].into()
    }

    #[test]
    fn disjoint_files_open_one_in_n() {
        // Values 0..200, ten files of twenty values each.
        let sorted: Vec<Box<[u8]>> = (0..200u8).map(b).collect();
        let files: Vec<Bounds> = (0..10u8)
            .map(|i| Some((b(i * 20), b(i * 20 + 19))))
            .collect();
        let f = slice_fraction(&files, &sorted).unwrap();
        assert!((f - 0.1).abs() < 1e-9, "{f}");
        // A file spanning everything is opened by every slice.
        let mut wide = files.clone();
        wide.push(Some((b(0), b(199))));
        let g = slice_fraction(&wide, &sorted).unwrap();
        assert!(g > f);
        // Unknown bounds are opened.
        assert_eq!(slice_fraction(&[None], &sorted), Some(1.0));
    }
}
