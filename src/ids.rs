//! Typed ids: an episode id, a schema id and a segment id are all `u64` on disk, and never
//! interchangeable in the API.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $fmt:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The id as stored.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                $name(id)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, $fmt, self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A committed episode, unique in its store; ids grow in commit order, so an id is also a
    /// cutoff: every episode committed before a snapshot has a smaller id than its
    /// [`cutoff`](crate::Snapshot::cutoff).
    EpisodeId,
    "{}"
);
id_type!(
    /// A step schema registered in a store.
    SchemaId,
    "{}"
);
id_type!(
    /// A segment file, `segments/{id:016x}.seg`; shown in hex, as in its file name.
    SegmentId,
    "{:016x}"
);
