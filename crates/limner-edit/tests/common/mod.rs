//! Shared by limner-edit's tests: the fetched face networks (missing → fail under CI=true, else
//! a note and skip, as `limner_core::testing` decides).
#![allow(dead_code)]

/// `Some(())` when face-api is fetched; `None` (with a note) outside CI when it is not.
pub fn models() -> Option<()> {
    limner_core::testing::fetched(limner_models::fetch::net_path("tiny-face-detector")).map(|_| ())
}
