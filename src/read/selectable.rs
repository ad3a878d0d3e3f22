//! The one view of an episode a query filters on, whichever way it was read.

use crate::ids::EpisodeId;
use crate::index::records::Outcome;

/// What a [`Query`](super::Query) filters on, for every view of an episode it is asked about: a full
/// [`Episode`](super::Episode) or a row of a [`Catalog`](crate::Catalog).
pub(crate) trait Selectable {
    fn id(&self) -> EpisodeId;
    fn user(&self) -> &str;
    fn env(&self) -> &str;
    fn has_tag(&self, tag: &str) -> bool;
    fn outcome(&self) -> Outcome;
    fn total_return(&self) -> f64;
    fn steps(&self) -> u32;
}
