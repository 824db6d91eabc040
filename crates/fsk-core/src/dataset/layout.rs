//! The names fsk gives its own state inside a dataset: the hidden `_fsk/` folder, its
//! journals under `_fsk/txn/`. Listing uses them to skip fsk's state and to see unfinished
//! transactions; the commit protocol ([`crate::commit`]) writes them.

/// The hidden folder fsk keeps its state in.
pub const FSK_DIR: &str = "_fsk";

/// The transaction id when a path relative to the dataset root names a journal
/// (`_fsk/txn/<txn>.json`).
pub fn journal_txn(relative: &str) -> Option<&str> {
    relative
        .strip_prefix(&format!("{FSK_DIR}/txn/"))?
        .strip_suffix(".json")
        .filter(|txn| !txn.is_empty() && !txn.contains('/'))
}
