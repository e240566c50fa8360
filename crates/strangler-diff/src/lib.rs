//! Pure comparison of two HTTP answers (legacy and new) under declarative rules.
//!
//! No I/O lives here: the shadow proxy and reconciliation feed it responses and rows.
