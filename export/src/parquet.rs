//! Tables as Parquet files, through the arrow-rs project's own writer.
//!
//! Output is deterministic: files and row groups are cut at episode boundaries by byte
//! thresholds of the data alone, and the writer records no clock or host.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatchReader;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{ExportError, Result};
use crate::export::{TableWriter, sync_dir};
use crate::manifest::FileEntry;

/// The compression of Parquet pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    None,
    Snappy,
    /// Parquet's `LZ4_RAW`.
    Lz4,
}

impl ParquetCompression {
    /// Parses `none`, `snappy` or `lz4`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(ParquetCompression::None),
            "snappy" => Some(ParquetCompression::Snappy),
            "lz4" => Some(ParquetCompression::Lz4),
            _ => None,
        }
    }

    fn codec(self) -> Compression {
        match self {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
        }
    }
}

/// Writes each table as `NAME/part-NNNNN.parquet` files.
#[derive(Clone, Debug)]
pub struct ParquetWriter {
    pub compression: ParquetCompression,
    /// A row group ends after the episode that brings its buffered data to this size.
    pub row_group_bytes: usize,
    /// A file ends after the episode that brings it to this size.
    pub file_bytes: u64,
}

impl Default for ParquetWriter {
    fn default() -> Self {
        ParquetWriter {
            compression: ParquetCompression::Snappy,
            row_group_bytes: 64 << 20,
            file_bytes: 512 << 20,
        }
    }
}

impl ParquetWriter {
    fn properties(&self, table: &str) -> WriterProperties {
        let steps = table == "steps";
        WriterProperties::builder()
            .set_compression(self.compression.codec())
            // Frames and other arrays rarely repeat: dictionaries would only cost time.
            .set_dictionary_enabled(!steps)
            .set_statistics_enabled(if steps {
                EnabledStatistics::Chunk
            } else {
                EnabledStatistics::Page
            })
            .build()
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ExportError {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<ExportError>() {
            Ok(export) => *export,
            Err(other) => ExportError::Writer {
                format: "parquet",
                message: other.to_string(),
            },
        },
        parquet::errors::ParquetError::ArrowError(message) => ExportError::Writer {
            format: "parquet",
            message,
        },
        e => ExportError::Writer {
            format: "parquet",
            message: e.to_string(),
        },
    }
}

struct OpenFile {
    entry: FileEntry,
    writer: ArrowWriter<File>,
}

impl TableWriter for ParquetWriter {
    fn format(&self) -> &'static str {
        "parquet"
    }

    fn write_table(
        &mut self,
        dir: &Path,
        name: &str,
        batches: Box<dyn RecordBatchReader + Send>,
    ) -> Result<Vec<FileEntry>> {
        let table_dir = dir.join(name);
        std::fs::create_dir_all(&table_dir).map_err(|e| ExportError::io(&table_dir, e))?;
        let schema = batches.schema();
        let mut done: Vec<FileEntry> = Vec::new();
        let mut open: Option<OpenFile> = None;
        let close = |file: OpenFile, done: &mut Vec<FileEntry>| -> Result<()> {
            let OpenFile { mut entry, writer } = file;
            let f = writer.into_inner().map_err(parquet_error)?;
            f.sync_all()
                .map_err(|e| ExportError::io(dir.join(&entry.path), e))?;
            entry.bytes = f
                .metadata()
                .map_err(|e| ExportError::io(dir.join(&entry.path), e))?
                .len();
            done.push(entry);
            Ok(())
        };
        for batch in batches {
            let batch = batch.map_err(ExportError::from_arrow)?;
            let file = match open.as_mut() {
                Some(file) => file,
                None => {
                    let rel = format!("{name}/part-{:05}.parquet", done.len());
                    let path = dir.join(&rel);
                    let f = File::create(&path).map_err(|e| ExportError::io(&path, e))?;
                    let writer =
                        ArrowWriter::try_new(f, schema.clone(), Some(self.properties(name)))
                            .map_err(parquet_error)?;
                    open.insert(OpenFile {
                        entry: FileEntry {
                            path: rel,
                            rows: 0,
                            bytes: 0,
                        },
                        writer,
                    })
                }
            };
            file.writer.write(&batch).map_err(parquet_error)?;
            file.entry.rows += batch.num_rows() as u64;
            if file.writer.in_progress_size() >= self.row_group_bytes {
                file.writer.flush().map_err(parquet_error)?;
            }
            if file.writer.bytes_written() as u64 + file.writer.in_progress_size() as u64
                >= self.file_bytes
            {
                close(open.take().expect("a file is open"), &mut done)?;
            }
        }
        if let Some(file) = open.take() {
            close(file, &mut done)?;
        }
        if done.is_empty() {
            // No rows: one file with the schema alone, so readers still find the columns.
            let rel = format!("{name}/part-00000.parquet");
            let path = dir.join(&rel);
            let f = File::create(&path).map_err(|e| ExportError::io(&path, e))?;
            let writer = ArrowWriter::try_new(f, schema, Some(self.properties(name)))
                .map_err(parquet_error)?;
            close(
                OpenFile {
                    entry: FileEntry {
                        path: rel,
                        rows: 0,
                        bytes: 0,
                    },
                    writer,
                },
                &mut done,
            )?;
        }
        sync_dir(&table_dir)?;
        Ok(done)
    }
}
