//! The store suites run on every backend.

/// Expands the items given (tests and what they use) twice: in `mod embedded`, where `open`
/// opens a fresh embedded store in a temp dir, and in `mod mongodb`, where it opens a fresh
/// database on the test run's nx-27017 ([`crate::support`]). So test names print as
/// `<suite>::embedded::...` and `<suite>::mongodb::...`.
macro_rules! on_every_backend {
    ($($item:item)*) => {
        mod embedded {
            use crate::support::open_embedded as open;
            $($item)*
        }
        mod mongodb {
            use crate::support::open_mongo as open;
            $($item)*
        }
    };
}
