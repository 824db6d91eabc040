//! The write operation: the input streamed through the shared writer into staged files,
//! committed by the commit protocol.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::commit::Transaction;
use crate::dataset::footer::read_footer;
use crate::dataset::listing::{self, Listing};
use crate::dataset::schema::{check_fits, conform_batch};
use crate::dataset::storage::Location;
use crate::error::{Error, Result};
use crate::ops::{Execution, WriteReport};
use crate::progress::Unit;
use crate::stream::Batches;
use crate::write::{DatasetWriter, WriteMode, WriteOptions, WrittenFile};

/// Fails with [`Error::NotADirectory`] when the dataset path is an existing file (one stat
/// locally, at most one HEAD on an object store).
pub async fn reject_file_path(location: &Location) -> Result<()> {
    let is_file = if let Some(local) = location.local_root() {
        std::fs::metadata(local).is_ok_and(|m| m.is_file())
    } else {
        location.root().as_ref().ends_with(".parquet")
            && object_store::ObjectStoreExt::head(location.store().as_ref(), location.root())
                .await
                .is_ok()
    };
    if is_file {
        return Err(Error::NotADirectory {
            path: location.to_string(),
        });
    }
    Ok(())
}

/// Writes `input` into the dataset through the commit protocol with the shared writer.
/// `engine` names the engine in the report.
pub async fn write_dataset(
    engine: &str,
    location: &Location,
    input: Batches,
    options: &WriteOptions,
) -> Result<WriteReport> {
    let started = Instant::now();
    options.validate()?;
    let progress = &options.progress;
    let rows_hint = input.rows_hint();
    let (input_schema, mut stream) = input.into_parts();
    let file_schema = options.file_schema(&input_schema)?;
    reject_file_path(location).await?;
    let mut tx = Transaction::begin(location, "write", options.wait).await?;
    let result = async {
        // Listed under the lease, so nothing changes between this listing and the commit.
        let existing = match listing::list(location).await? {
            Listing::Dataset(files) => files,
            _ => Vec::new(),
        };
        // Appends must fit the dataset's schema; the dataset's types never change.
        let mut target_schema = Arc::clone(&file_schema);
        if options.mode == WriteMode::Append
            && let Some(first) = existing.first()
        {
            let meta = read_footer(location, first.clone()).await?;
            check_fits(&file_schema, &meta.schema, "append")?;
            target_schema = Arc::clone(&meta.schema);
        }
        let writer_schema = if options.partition_by.is_empty() {
            Arc::clone(&target_schema)
        } else {
            // Keep partition columns (as given) alongside the dataset's file columns.
            let mut fields: Vec<_> = target_schema.fields().iter().cloned().collect();
            for column in &options.partition_by {
                let field = input_schema.field_with_name(column).expect("checked");
                fields.push(Arc::new(field.clone()));
            }
            Arc::new(arrow::datatypes::Schema::new(fields))
        };
        let mut writer =
            DatasetWriter::new(tx.staging(), Arc::clone(&writer_schema), options.clone())?;
        progress.phase("write", rows_hint, Unit::Rows);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let batch = conform_batch(&batch, &writer_schema)?;
            writer.write(&batch).await?;
            progress.advance(batch.num_rows() as u64);
        }
        tx.add_all(writer.finish().await?);
        let mut removed = Vec::new();
        if options.mode == WriteMode::Overwrite {
            for file in existing {
                removed.push(file.relative.clone());
                tx.remove(file.relative);
            }
        }
        Ok::<_, Error>(removed)
    }
    .await;
    let removed = match result {
        Ok(removed) => removed,
        Err(e) => {
            tx.abort().await;
            return Err(e);
        }
    };
    progress.phase("commit", None, Unit::Files);
    let outcome = tx.commit().await?;
    let files: Vec<WrittenFile> = outcome.files.into_iter().map(WrittenFile::from).collect();
    Ok(WriteReport {
        total_rows: files.iter().map(|f| f.row_count).sum(),
        files,
        mode: options.mode,
        engine: engine.to_string(),
        execution: Execution {
            write: Some(crate::ops::CORE_WRITER.to_string()),
            ..Default::default()
        },
        removed_files: removed,
        committed: true,
        cleanup_pending: outcome.cleanup_pending,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
