//! Space-filling curves over per-column ranks: Morton (Z-order) and Hilbert, most
//! significant bits first, in a `u64`.

use serde::{Deserialize, Serialize};

/// Most clustering columns: each keeps at least 8 bits of rank in the 64-bit curve value.
pub const MAX_COLUMNS: usize = 8;

/// The curve the rows are ordered on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Curve {
    /// Morton order: the ranks' bits interleaved, most significant first.
    #[default]
    #[serde(rename = "zorder")]
    ZOrder,
    /// The Hilbert curve on the same ranks (Skilling's transform): consecutive values are
    /// neighbouring cells, so a file's box is more compact.
    Hilbert,
}

impl Curve {
    /// `zorder` or `hilbert`.
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::ZOrder => "zorder",
            Curve::Hilbert => "hilbert",
        }
    }

    /// The curve value of one row's ranks, each below `2^bits`, with `ranks.len() * bits`
    /// at most 64.
    pub fn index(self, ranks: &[u32], bits: u32) -> u64 {
        match (self, ranks) {
            (_, [one]) => u64::from(*one),
            (Curve::ZOrder, _) => interleave(ranks, bits),
            (Curve::Hilbert, _) => {
                let mut axes = [0u32; MAX_COLUMNS];
                axes[..ranks.len()].copy_from_slice(ranks);
                let axes = &mut axes[..ranks.len()];
                axes_to_transpose(axes, bits);
                interleave(axes, bits)
            }
        }
    }
}

impl std::fmt::Display for Curve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Curve {
    type Err = crate::error::Error;

    fn from_str(text: &str) -> crate::error::Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "zorder" | "z-order" | "morton" => Ok(Curve::ZOrder),
            "hilbert" => Ok(Curve::Hilbert),
            _ => Err(crate::error::Error::invalid_argument(
                "curve",
                text,
                "must be zorder or hilbert",
            )),
        }
    }
}

/// Bits of rank per column for `columns` clustering columns: 16 (the rank resolution of the
/// quantile sample), fewer where the curve value would overflow 64 bits.
pub fn bits_per_column(columns: usize) -> u32 {
    (64 / columns.max(1) as u32).min(16)
}

/// Interleaves the low `bits` bits of each value, most significant level first, the first
/// value's bit highest within a level.
fn interleave(values: &[u32], bits: u32) -> u64 {
    let mut out = 0u64;
    for level in (0..bits).rev() {
        for value in values {
            out = (out << 1) | u64::from((value >> level) & 1);
        }
    }
    out
}

/// Skilling's "AxestoTranspose" (Programming the Hilbert curve, AIP Conf. Proc. 707, 2004):
/// rewrites the axes in place into the transposed Hilbert index, whose interleaved bits are
/// the index.
fn axes_to_transpose(x: &mut [u32], bits: u32) {
    let n = x.len();
    let top = 1u32 << (bits - 1);
    // Inverse undo.
    let mut q = top;
    while q > 1 {
        let p = q - 1;
        for i in 0..n {
            if x[i] & q != 0 {
                x[0] ^= p;
            } else {
                let t = (x[0] ^ x[i]) & p;
                x[0] ^= t;
                x[i] ^= t;
            }
        }
        q >>= 1;
    }
    // Gray encode.
    for i in 1..n {
        x[i] ^= x[i - 1];
    }
    let mut t = 0;
    let mut q = top;
    while q > 1 {
        if x[n - 1] & q != 0 {
            t ^= q - 1;
        }
        q >>= 1;
    }
    for v in x.iter_mut() {
        *v ^= t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell of a grid, ordered by the curve.
    fn walk(curve: Curve, dims: usize, bits: u32) -> Vec<Vec<u32>> {
        let side = 1u32 << bits;
        let mut cells: Vec<Vec<u32>> = vec![Vec::new()];
        for _ in 0..dims {
            cells = cells
                .into_iter()
                .flat_map(|c| {
                    (0..side).map(move |v| {
                        let mut c = c.clone();
                        c.push(v);
                        c
                    })
                })
                .collect();
        }
        let mut indexed: Vec<(u64, Vec<u32>)> = cells
            .into_iter()
            .map(|c| (curve.index(&c, bits), c))
            .collect();
        indexed.sort();
        let indices: Vec<u64> = indexed.iter().map(|(i, _)| *i).collect();
        let expected: Vec<u64> = (0..indices.len() as u64).collect();
        assert_eq!(indices, expected, "{curve} is a bijection onto 0..cells");
        indexed.into_iter().map(|(_, c)| c).collect()
    }

    fn distance(a: &[u32], b: &[u32]) -> u32 {
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).sum()
    }

    #[test]
    fn hilbert_steps_to_a_neighbour_every_time() {
        for (dims, bits) in [(2, 1), (2, 4), (3, 3), (4, 2)] {
            let cells = walk(Curve::Hilbert, dims, bits);
            for pair in cells.windows(2) {
                assert_eq!(distance(&pair[0], &pair[1]), 1, "{pair:?} in {dims}d");
            }
        }
    }

    #[test]
    fn zorder_interleaves_most_significant_bits_first() {
        // x = 0b10, y = 0b01: levels (1,0) then (0,1) -> 0b1001.
        assert_eq!(Curve::ZOrder.index(&[0b10, 0b01], 2), 0b1001);
        let cells = walk(Curve::ZOrder, 2, 3);
        // The first quarter of the curve is the lower-left quadrant.
        assert!(cells[..16].iter().all(|c| c[0] < 4 && c[1] < 4));
        // One column: the rank itself.
        assert_eq!(Curve::Hilbert.index(&[77], 16), 77);
    }

    #[test]
    fn bits_fit_in_64() {
        assert_eq!(bits_per_column(1), 16);
        assert_eq!(bits_per_column(4), 16);
        assert_eq!(bits_per_column(5), 12);
        assert_eq!(bits_per_column(MAX_COLUMNS), 8);
        assert_eq!("Hilbert".parse::<Curve>().unwrap(), Curve::Hilbert);
        assert!("peano".parse::<Curve>().is_err());
    }
}
