//! The dataset model, the lowest layer: where a dataset lives ([`storage`], [`options`]),
//! what is in it ([`listing`], [`layout`]), its hive partitions ([`partition`]), its schema
//! ([`schema`]) and its files' footers and statistics ([`footer`], [`footer_guard`],
//! [`stats`]). Nothing here plans, executes or commits.

pub mod footer;
pub mod footer_guard;
pub mod layout;
pub mod listing;
pub mod options;
pub mod partition;
pub mod schema;
pub mod stats;
pub mod storage;
