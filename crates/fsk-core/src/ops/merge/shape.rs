//! The dataset as a merge sees it, from the footers: partition layout and columns, the
//! schema of the files and of the dataset.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};

use crate::dataset::footer::FileMeta;
use crate::dataset::partition::PartitionSchema;
use crate::dataset::schema::unify;
use crate::error::{Error, Result};
use crate::ops::merge::MergeOptions;

/// The dataset as a merge sees it: partition layout and columns, file and dataset schemas.
pub(crate) struct Shape {
    /// The typed partition layout of the folders.
    pub(crate) layout: PartitionSchema,
    /// The partition columns, outermost first.
    pub(crate) partitions: Vec<String>,
    /// The columns stored in files (the unified schema of the files, or the source's without
    /// partition columns for a new dataset).
    pub(crate) file_schema: SchemaRef,
    /// The file schema with the partition columns.
    pub(crate) dataset_schema: SchemaRef,
}

impl Shape {
    /// The shape from the footers (or from the source and options for a new dataset).
    /// Partition values live in paths, untyped: they are read as the source's types so that a
    /// source with `day` as text matches folders that inference would read as dates.
    pub(crate) fn of(
        metas: &[FileMeta],
        source_schema: &SchemaRef,
        options: &MergeOptions,
    ) -> Result<Shape> {
        let layouts: Vec<_> = metas.iter().map(|m| m.file.partition.clone()).collect();
        let overrides: HashMap<String, DataType> =
            PartitionSchema::infer(&layouts, &HashMap::new())
                .names()
                .into_iter()
                .filter_map(|name| {
                    let field = source_schema.field_with_name(&name).ok()?;
                    Some((name, field.data_type().clone()))
                })
                .collect();
        let layout = PartitionSchema::infer(&layouts, &overrides);
        if metas.is_empty() {
            let partitions = options.partition_by.clone().unwrap_or_default();
            let write = options.write.clone().with_partition_by(partitions.clone());
            return Ok(Shape {
                layout,
                file_schema: write.file_schema(source_schema)?,
                dataset_schema: Arc::clone(source_schema),
                partitions,
            });
        }
        let partitions = layout.names();
        if let Some(given) = &options.partition_by
            && given != &partitions
        {
            return Err(Error::invalid_argument(
                "partition_by",
                given.join(","),
                format!("the dataset is partitioned by [{}]", partitions.join(",")),
            ));
        }
        let schemas: Vec<SchemaRef> = metas.iter().map(|m| Arc::clone(&m.schema)).collect();
        let file_schema = Arc::new(unify(&schemas)?);
        let dataset_schema = Arc::new(layout.extend(&file_schema));
        Ok(Shape {
            layout,
            partitions,
            file_schema,
            dataset_schema,
        })
    }
}
