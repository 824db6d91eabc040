//! The stats operation: data files with sizes and row counts from their footers.

use crate::dataset::footer::read_footers;
use crate::dataset::listing::{self, filter_partitions};
use crate::dataset::storage::Location;
use crate::error::{Error, Result};
use crate::ops::{FileStats, StatsOptions, StatsReport};

/// Files with sizes and row counts (from the footers, read concurrently).
pub async fn stats(location: &Location, options: &StatsOptions) -> Result<StatsReport> {
    let mut files = listing::data_files(location).await?;
    let mut criteria = "*.parquet, ignoring names starting with _ or .".to_string();
    if let Some(filter) = &options.partition_filter {
        files = filter_partitions(files, filter)?;
        criteria = format!("{criteria}, partition_filter={filter}");
    }
    if files.is_empty() {
        return Err(Error::NoDataFiles {
            path: location.to_string(),
            criteria,
        });
    }
    let metas = read_footers(location, files).await?;
    let files: Vec<FileStats> = metas
        .iter()
        .map(|m| FileStats {
            path: m.file.relative.clone(),
            size_bytes: m.file.size,
            num_rows: m.num_rows,
        })
        .collect();
    Ok(StatsReport {
        total_bytes: files.iter().map(|f| f.size_bytes).sum(),
        total_rows: files.iter().map(|f| f.num_rows).sum(),
        files,
    })
}
