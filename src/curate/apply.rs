//! Applying a resolved curation operation (episode ids, not a query) to the index: shared by
//! the live operations and by `repair` replaying the curation log onto a rebuilt index.

use crate::curate::log::LogOp;
use crate::error::Result;
use crate::index::curation::CurationTxn;
use crate::index::records::{DeletedRecordV1, HistoryRecordV1, LabelChange};

/// Applies `op`; returns the ids it changed. Ids it cannot apply to (already deleted, not
/// deleted, gone) are skipped: live operations checked them first, and a replay meets a
/// rebuilt index that may lack an episode whose bytes were lost.
pub(crate) fn apply(c: &mut CurationTxn<'_>, op: &LogOp) -> Result<Vec<u64>> {
    let mut changed = Vec::new();
    match op {
        LogOp::Delete { ids, at_us, by } => {
            let hidden_from = c.advance_clock()?;
            for &id in ids {
                let Some(record) = c.episode(id)? else {
                    continue;
                };
                let tombstone = DeletedRecordV1 {
                    record,
                    deleted_at_us: *at_us,
                    deleted_by: by.clone(),
                    hidden_from,
                };
                c.delete(id, &tombstone)?;
                c.push_history(id, &entry(*at_us, by, vec![LabelChange::Deleted]))?;
                changed.push(id);
            }
        }
        LogOp::Restore { ids, at_us, by } => {
            for &id in ids {
                let Some(t) = c.tombstone(id)? else {
                    continue;
                };
                c.restore(id, &t.record)?;
                c.push_history(id, &entry(*at_us, by, vec![LabelChange::Restored]))?;
                changed.push(id);
            }
        }
        LogOp::Relabel {
            ids,
            relabel,
            at_us,
            by,
        } => {
            for &id in ids {
                let Some(old) = c.episode(id)? else {
                    continue;
                };
                let (new, changes) = relabel.apply(&old)?;
                if changes.is_empty() {
                    continue;
                }
                c.replace(id, &old, &new)?;
                c.push_history(id, &entry(*at_us, by, changes))?;
                changed.push(id);
            }
        }
        LogOp::Split { spec } => c.set_split(spec)?,
        LogOp::Purge { ids } => {
            for &id in ids {
                if c.tombstone(id)?.is_some() {
                    c.purge(id)?;
                    changed.push(id);
                }
            }
        }
        LogOp::Aborted { .. } => {}
    }
    Ok(changed)
}

fn entry(at_us: i64, by: &str, changes: Vec<LabelChange>) -> HistoryRecordV1 {
    HistoryRecordV1 {
        at_us,
        by: by.to_owned(),
        changes,
    }
}
