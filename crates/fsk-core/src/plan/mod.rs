//! Plans: plain data the engines execute. A [`scan::ScanPlan`] names the files, row groups,
//! columns and predicate of a read; a sort request names its keys and memory budget
//! ([`sort`]); a SQL query names its tables, each a full scan plan, and its typed parameters
//! ([`sql`]). Merge and compaction build theirs in [`crate::ops`] from these.

pub mod scan;
pub mod sort;
pub mod sql;
