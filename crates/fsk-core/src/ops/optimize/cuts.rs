//! Where a folder's sorted rows are cut into files.
//!
//! Files are consecutive ranges of the curve. Cut anywhere, a file can straddle a coarse
//! boundary of the curve (the Z curve's jump from one quadrant to the next) and its box
//! covers both sides: a predicate on one column then opens it from either side. So cuts go
//! to aligned curve prefixes: between a file's half and nine tenths of the target rows, the
//! cut is placed where consecutive curve values differ in the highest bit (ties: the later
//! place, for fuller files), at the value with every lower bit clear. A file then covers
//! whole aligned blocks of the curve, boxes that do not straddle. The positions are planned
//! on the folder's row sample, so the plan is plain data before any row is sorted; the
//! target stays a hard upper bound at write time.

/// The cut values for a folder of `rows` rows, from `sorted` (the curve values of a uniform
/// sample of them, ascending) and the most rows per file. A row with a curve value at or
/// above `cuts[i]` (and below `cuts[i + 1]`) starts or continues file `i + 1`. Empty when one
/// file holds the folder, or when the sample is too thin to place cuts (the hard cap then
/// cuts by row count alone).
pub fn plan_cuts(sorted: &[u64], rows: u64, target_rows: u64) -> Vec<u64> {
    if rows <= target_rows || sorted.len() < 2 {
        return Vec::new();
    }
    // Samples per file at the target.
    let per_file = target_rows as f64 * sorted.len() as f64 / rows as f64;
    if per_file < 4.0 {
        return Vec::new();
    }
    let low = ((per_file * 0.5).ceil() as usize).max(1);
    let high = ((per_file * 0.9).floor() as usize).max(low);
    let mut cuts = Vec::new();
    let mut start = 0usize;
    while sorted.len() - start > high {
        let mut best: Option<(u32, usize)> = None;
        for p in (start + low)..=(start + high).min(sorted.len() - 1) {
            let (a, b) = (sorted[p - 1], sorted[p]);
            if a == b {
                continue;
            }
            let level = 63 - (a ^ b).leading_zeros();
            if best.is_none_or(|(l, _)| level >= l) {
                best = Some((level, p));
            }
        }
        match best {
            Some((level, p)) => {
                let mask = if level == 0 { 0 } else { (1u64 << level) - 1 };
                cuts.push(sorted[p] & !mask);
                start = p;
            }
            None => {
                // One value fills the whole window: cut at the next change.
                match ((start + high).max(1)..sorted.len()).find(|&p| sorted[p - 1] != sorted[p]) {
                    Some(p) => {
                        cuts.push(sorted[p]);
                        start = p;
                    }
                    None => break,
                }
            }
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_land_on_aligned_prefixes_within_the_window() {
        // 1024 distinct values, 10 per file at the target (1024 rows, target 10).
        let sorted: Vec<u64> = (0..1024).collect();
        let cuts = plan_cuts(&sorted, 1024, 10);
        let mut previous = 0;
        for &cut in &cuts {
            let size = cut - previous;
            assert!((5..=9).contains(&size), "file of {size} rows");
            previous = cut;
        }
        // Aligned: in every window of 5..=9 values there is a multiple of 8.
        assert!(cuts.iter().all(|c| c % 8 == 0), "{cuts:?}");
        assert!(plan_cuts(&sorted, 1024, 2000).is_empty(), "one file");
    }

    #[test]
    fn a_repeated_value_is_never_split() {
        let mut sorted = vec![1u64; 600];
        sorted.extend(2..500u64);
        let cuts = plan_cuts(&sorted, sorted.len() as u64, 100);
        assert_eq!(cuts[0], 2, "the first cut follows the run of ones");
    }
}
